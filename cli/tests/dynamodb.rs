//! `sekiban init` on a `dynamodb://` URL creates the table, and says so; a second run finds it.
#![cfg(feature = "dynamodb")]

mod common;

use common::{sekiban_ok, sekiban_on};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_creates_the_table_then_finds_it() {
    let endpoint = std::env::var("SEKIBAN_DYNAMODB_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "SEKIBAN_DYNAMODB_ENDPOINT is not set: run `bash scripts/test.sh`, which starts DynamoDB Local \
             (see backend-dynamodb/README.md to start it yourself)"
        )
    });
    let name = format!("sekiban-cli-{}", uuid::Uuid::new_v4().simple());
    let url = format!("dynamodb://{name}?endpoint={endpoint}");
    let first = sekiban_ok(&url, &["init"]);
    assert!(first.contains(&format!("table {name} created")), "{first}");
    assert!(first.contains("stream NEW_IMAGE"), "{first}");
    let second = sekiban_ok(&url, &["init"]);
    assert!(second.contains("already existed; it matches"), "{second}");
    let (code, _, err) = sekiban_on(&url, &["streams", "--tenant", "acme"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("sekiban init"), "{err}");

    let config = sekiban_dynamodb::DynamoDbConfig::from_url(&url).expect("the URL");
    let table = sekiban_dynamodb::DynamoDbTable::connect(config).await;
    table.check().await.expect("the table sekiban init made");
    table
        .client()
        .delete_table()
        .table_name(&name)
        .send()
        .await
        .expect("delete the test table");
}
