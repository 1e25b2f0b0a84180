//! What the test binaries share: the test endpoint, and a table on it.
#![allow(dead_code)]

use std::sync::Arc;

use sekiban_core::BlobStore;
use sekiban_dynamodb::{DynamoDbConfig, DynamoDbTable};

/// The test endpoint: `SEKIBAN_DYNAMODB_ENDPOINT` (with the credentials scripts/test.sh sets
/// for the emulator, so the SDK never looks further for any); else, with the `testcontainers`
/// feature, a container started for this test process; else a failure naming the command that
/// provides one.
pub fn endpoint() -> String {
    match std::env::var("SEKIBAN_DYNAMODB_ENDPOINT") {
        Ok(e) if !e.is_empty() => e,
        #[cfg(feature = "testcontainers")]
        _ => container_endpoint(),
        #[cfg(not(feature = "testcontainers"))]
        _ => panic!(
            "SEKIBAN_DYNAMODB_ENDPOINT is not set: run `bash scripts/test.sh`, which starts DynamoDB Local, \
             or start it yourself (see backend-dynamodb/README.md) and set SEKIBAN_DYNAMODB_ENDPOINT=http://127.0.0.1:PORT"
        ),
    }
}

/// One container per test process, started on first use. It is left running when the process
/// exits (nothing drops a static): remove it with `docker rm -f`.
#[cfg(feature = "testcontainers")]
fn container_endpoint() -> String {
    static CONTAINER: std::sync::OnceLock<sekiban_dynamodb::testcontainer::DynamoDbContainer> =
        std::sync::OnceLock::new();
    CONTAINER
        .get_or_init(|| {
            std::thread::spawn(|| {
                let rt = tokio::runtime::Runtime::new().expect("a runtime");
                rt.block_on(sekiban_dynamodb::testcontainer::start())
            })
            .join()
            .expect("the container thread")
            .unwrap_or_else(|e| panic!("{e}"))
        })
        .endpoint
        .clone()
}

/// The S3 endpoint of the tests' buckets: `SEKIBAN_S3_ENDPOINT` (the emulator `scripts/test.sh`
/// starts, or an account), else a failure naming the command that provides one.
pub fn s3_endpoint() -> String {
    std::env::var("SEKIBAN_S3_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "SEKIBAN_S3_ENDPOINT is not set: run `bash scripts/test.sh`, which starts an S3 emulator (moto), \
             or start one yourself (see backend-dynamodb/README.md) and set SEKIBAN_S3_ENDPOINT=http://127.0.0.1:PORT"
        )
    })
}

/// A bucket name of its own for a test.
pub fn fresh_bucket() -> String {
    format!(
        "sekiban-test-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// A client for the table `name` on the test endpoint, not created yet.
pub async fn client(name: &str, blobs: Option<Arc<dyn BlobStore>>) -> DynamoDbTable {
    let url = format!("dynamodb://{name}?endpoint={}", endpoint());
    let config = DynamoDbConfig::from_url(&url).expect("a valid URL");
    match blobs {
        Some(blobs) => DynamoDbTable::connect_with_blobs(config, blobs).await,
        None => DynamoDbTable::connect(config).await,
    }
}

/// The table `name` on the test endpoint, created when missing.
pub async fn table(name: &str, blobs: Option<Arc<dyn BlobStore>>) -> DynamoDbTable {
    let t = client(name, blobs).await;
    t.init().await.expect("init");
    t
}

/// Deletes the table of `t` (a test's own).
pub async fn drop_table(t: &DynamoDbTable) {
    t.client()
        .delete_table()
        .table_name(&t.config().table)
        .send()
        .await
        .expect("delete the test table");
}
