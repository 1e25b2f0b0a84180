//! `sekiban init` on a `dynamodb://` URL creates the table, and says so; a second run finds it.
#![cfg(feature = "dynamodb")]

mod common;

use common::{sekiban_ok, sekiban_on};

/// The test endpoint, which `scripts/test.sh` starts.
fn endpoint() -> String {
    std::env::var("SEKIBAN_DYNAMODB_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "SEKIBAN_DYNAMODB_ENDPOINT is not set: run `bash scripts/test.sh`, which starts DynamoDB Local \
             (see backend-dynamodb/README.md to start it yourself)"
        )
    })
}

/// Deletes the table a test made.
async fn drop_table(url: &str) {
    let table = sekiban_dynamodb::DynamoDbTable::open(url)
        .await
        .expect("the table");
    let name = table.config().table.clone();
    table
        .client()
        .delete_table()
        .table_name(name)
        .send()
        .await
        .expect("delete the test table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_creates_the_table_then_finds_it() {
    let endpoint = endpoint();
    let name = format!("sekiban-cli-{}", uuid::Uuid::new_v4().simple());
    let url = format!("dynamodb://{name}?endpoint={endpoint}");
    let first = sekiban_ok(&url, &["init"]);
    assert!(first.contains(&format!("table {name} created")), "{first}");
    assert!(first.contains("stream NEW_IMAGE"), "{first}");
    let second = sekiban_ok(&url, &["init"]);
    assert!(second.contains("already existed; it matches"), "{second}");
    let missing = format!(
        "dynamodb://sekiban-cli-missing-{}?endpoint={endpoint}",
        uuid::Uuid::new_v4().simple()
    );
    let (code, _, err) = sekiban_on(&missing, &["events", "acme/order/1"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("does not exist") && err.contains("init"),
        "{err}"
    );

    // Opening checks the table sekiban init made.
    drop_table(&url).await;
}

/// The whole conformance suite through the CLI, on a table and a snapshot bucket `sekiban init`
/// made (S3 at `SEKIBAN_S3_ENDPOINT`, which `scripts/test.sh` starts); it cleans up after itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_passes_on_dynamodb() {
    let endpoint = endpoint();
    let s3 = std::env::var("SEKIBAN_S3_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "SEKIBAN_S3_ENDPOINT is not set: run `bash scripts/test.sh`, which starts moto for S3 \
             (see backend-dynamodb/README.md to start it yourself)"
        )
    });
    let name = format!("sekiban-cli-{}", uuid::Uuid::new_v4().simple());
    let bucket = format!(
        "sekiban-cli-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let url = format!("dynamodb://{name}?endpoint={endpoint}&bucket={bucket}&s3_endpoint={s3}");
    let init = sekiban_ok(&url, &["init"]);
    assert!(
        init.contains(&format!("snapshot bucket {bucket} created")),
        "{init}"
    );
    let out = sekiban_ok(&url, &["conformance"]);
    assert!(out.contains(" passed, 0 failed"), "{out}");
    assert!(out.contains("removed: "), "{out}");
    drop_table(&url).await;
}

/// `sekiban doctor`: a missing table fails with exit code 1 and says how to deploy one; a table
/// `init` made passes, as a report and as JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_the_table() {
    let url = format!(
        "dynamodb://sekiban-cli-doctor-{}?endpoint={}",
        uuid::Uuid::new_v4().simple(),
        endpoint()
    );
    let (code, out, _) = sekiban_on(&url, &["doctor"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL  table:") && out.contains("infra/aws"),
        "{out}"
    );

    sekiban_ok(&url, &["init"]);
    let out = sekiban_ok(&url, &["doctor"]);
    assert!(
        out.contains("ok    keys: pk (S, HASH) and sk (N, RANGE)"),
        "{out}"
    );
    assert!(out.contains("ok    permission: write"), "{out}");
    assert!(out.contains(", 0 failed"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&sekiban_ok(&url, &["doctor", "--json"])).expect("JSON");
    assert_eq!(json["failed"], false, "{json}");
    assert!(
        json["findings"].as_array().is_some_and(|f| f
            .iter()
            .any(|x| x["check"] == "stream" && x["verdict"] == "ok")),
        "{json}"
    );
    drop_table(&url).await;
}
