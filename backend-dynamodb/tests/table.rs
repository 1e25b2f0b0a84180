//! The table against DynamoDB Local (or the account `SEKIBAN_DYNAMODB_ENDPOINT` points at):
//! `init` creates it as `TABLE` defines it, a second `init` finds it, a table of another shape
//! is refused, and every request is counted.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use sekiban_core::{OpKind, StoreError};
use sekiban_dynamodb::{DynamoDbConfig, DynamoDbTable, Init, TABLE};

mod common;

/// A client for a fresh table name on the test endpoint.
async fn fresh_table() -> DynamoDbTable {
    let name = format!("sekiban-test-{}", uuid::Uuid::new_v4().simple());
    common::client(&name, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_creates_the_table_once_and_counts_its_requests() {
    let t = fresh_table().await;
    let missing = t.check().await.expect_err("no table yet");
    let text = missing.to_string();
    assert!(text.contains("does not exist"), "{text}");
    // The error says what is missing; the CLI adds which command creates it.
    assert!(
        matches!(missing, StoreError::NotInitialized { .. }),
        "{missing:?}"
    );

    let before = t.costs();
    assert_eq!(t.init().await.expect("init"), Init::Created);
    let spent = t.costs() - before;
    let other = spent.get(OpKind::Other);
    assert!(other.round_trips >= 2, "create + describe: {spent}");
    assert!(other.bytes_sent > 0 && other.bytes_received > 0, "{spent}");

    assert_eq!(t.init().await.expect("second init"), Init::Existed);
    t.check().await.expect("the created table passes the check");

    let described = t
        .client()
        .describe_table()
        .table_name(&t.config().table)
        .send()
        .await
        .expect("describe");
    let d = described.table().expect("a description");
    assert_eq!(TABLE.differences(d), Vec::<String>::new());
    let billing = d.billing_mode_summary().and_then(|b| b.billing_mode());
    assert_eq!(billing, Some(&BillingMode::PayPerRequest));
    assert!(d.latest_stream_arn().is_some(), "the table has a stream");
    common::drop_table(&t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_of_another_shape_is_refused() {
    let t = fresh_table().await;
    t.client()
        .create_table()
        .table_name(&t.config().table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .expect("key"),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create a table of another shape");
    for r in [t.check().await, t.init().await.map(drop)] {
        let e = r.expect_err("another shape is refused");
        assert!(matches!(e, StoreError::InvalidInput { .. }), "{e:?}");
        let text = e.to_string();
        assert!(text.contains("not a sekiban table"), "{text}");
        assert!(text.contains("HASH key must be pk"), "{text}");
        assert!(text.contains("stream must be enabled"), "{text}");
    }
    common::drop_table(&t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_is_unavailable() {
    common::endpoint();
    let config = DynamoDbConfig::from_url("dynamodb://sekiban-nowhere?endpoint=http://127.0.0.1:9")
        .expect("a valid URL");
    let t = DynamoDbTable::connect(config).await;
    let e = t.check().await.expect_err("nothing listens on port 9");
    assert!(e.is_transient(), "{e:?}");
}
