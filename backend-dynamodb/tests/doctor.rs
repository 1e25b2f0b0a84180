//! `DynamoDbTable::diagnose` against DynamoDB Local and the S3 emulator `scripts/test.sh` starts:
//! a table `init` made passes; a table without the stream, with another key type, or with TTL
//! on, and a missing bucket, each fail the check that names them; nothing is written.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};
use sekiban_core::doctor::{Diagnosis, Verdict};
use sekiban_dynamodb::{DynamoDbConfig, DynamoDbTable, TABLE};

mod common;

/// A client for a fresh table name (and, given, a bucket on the S3 emulator).
async fn fresh(bucket: Option<&str>) -> DynamoDbTable {
    let name = format!("sekiban-doctor-{}", uuid::Uuid::new_v4().simple());
    let mut url = format!("dynamodb://{name}?endpoint={}", common::endpoint());
    if let Some(b) = bucket {
        url.push_str(&format!(
            "&bucket={b}&s3_endpoint={}",
            common::s3_endpoint()
        ));
    }
    DynamoDbTable::connect(DynamoDbConfig::from_url(&url).expect("URL")).await
}

fn verdict(d: &Diagnosis, check: &str) -> Verdict {
    d.get(check)
        .unwrap_or_else(|| panic!("no {check} finding in\n{d}"))
        .verdict
}

/// Creates the table with `pk`'s type `kind`, with or without the stream.
async fn create_raw(t: &DynamoDbTable, kind: ScalarAttributeType, stream: bool) {
    let attr = |name: &str, kind: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .unwrap()
    };
    let key = |name: &str, k: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(k)
            .build()
            .unwrap()
    };
    let mut req = t
        .client()
        .create_table()
        .table_name(&t.config().table)
        .attribute_definitions(attr(TABLE.partition_key.name, kind))
        .attribute_definitions(attr(TABLE.sort_key.name, ScalarAttributeType::N))
        .key_schema(key(TABLE.partition_key.name, KeyType::Hash))
        .key_schema(key(TABLE.sort_key.name, KeyType::Range))
        .billing_mode(BillingMode::PayPerRequest);
    if stream {
        req = req.stream_specification(
            aws_sdk_dynamodb::types::StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(aws_sdk_dynamodb::types::StreamViewType::NewImage)
                .build()
                .unwrap(),
        );
    }
    req.send().await.expect("create the table");
}

async fn item_count(t: &DynamoDbTable) -> i32 {
    t.client()
        .scan()
        .table_name(&t.config().table)
        .consistent_read(true)
        .send()
        .await
        .expect("scan")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_init_made_passes_and_nothing_is_written() {
    let bucket = format!(
        "sekiban-doctor-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let t = fresh(Some(&bucket)).await;
    let d = t.diagnose().await;
    assert_eq!(verdict(&d, "table"), Verdict::Failed, "{d}");
    assert!(d.to_string().contains("does not exist"), "{d}");

    t.init().await.expect("init");
    t.init_bucket().await.expect("bucket");
    let d = t.diagnose().await;
    assert!(!d.failed(), "{d}");
    for check in [
        "table",
        "keys",
        "stream",
        "billing",
        "region",
        "ttl",
        "permission: read",
        "permission: write",
        "permission: transactions",
        "permission: stream",
        "snapshot bucket",
    ] {
        assert_eq!(verdict(&d, check), Verdict::Ok, "{check}: {d}");
    }
    // init leaves deletion protection off; the templates turn it on.
    assert_eq!(verdict(&d, "deletion protection"), Verdict::Warning, "{d}");
    assert_eq!(item_count(&t).await, 0, "the probes wrote nothing");
    common::drop_table(&t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_without_the_stream_or_with_another_key_type_fails() {
    let t = fresh(None).await;
    create_raw(&t, ScalarAttributeType::S, false).await;
    let d = t.diagnose().await;
    assert_eq!(verdict(&d, "stream"), Verdict::Failed, "{d}");
    assert_eq!(verdict(&d, "permission: stream"), Verdict::Failed, "{d}");
    assert_eq!(verdict(&d, "keys"), Verdict::Ok, "{d}");
    assert_eq!(verdict(&d, "snapshot blobs"), Verdict::Warning, "{d}");
    common::drop_table(&t).await;

    let t = fresh(None).await;
    create_raw(&t, ScalarAttributeType::N, true).await;
    let d = t.diagnose().await;
    assert_eq!(verdict(&d, "keys"), Verdict::Failed, "{d}");
    assert!(
        d.get("keys")
            .unwrap()
            .detail
            .contains("HASH key must be pk of type S"),
        "{d}"
    );
    assert_eq!(verdict(&d, "stream"), Verdict::Ok, "{d}");
    common::drop_table(&t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_on_and_a_missing_bucket_fail() {
    let t = fresh(Some("sekiban-doctor-no-such-bucket")).await;
    t.init().await.expect("init");
    t.client()
        .update_time_to_live()
        .table_name(&t.config().table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("expires")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("turn TTL on");
    let d = t.diagnose().await;
    assert_eq!(verdict(&d, "ttl"), Verdict::Failed, "{d}");
    assert!(d.get("ttl").unwrap().detail.contains("expires"), "{d}");
    assert_eq!(verdict(&d, "snapshot bucket"), Verdict::Failed, "{d}");
    assert!(d.failed());
    common::drop_table(&t).await;
}
