//! What the test binaries share: the test endpoint, and a table on it.
#![allow(dead_code)]

use std::sync::Arc;

use sekiban_core::BlobStore;
use sekiban_dynamodb::{DynamoDbConfig, DynamoDbTable};

/// The test endpoint (and, with it, the credentials scripts/test.sh sets for the emulator, so
/// the SDK never looks further for any).
pub fn endpoint() -> String {
    std::env::var("SEKIBAN_DYNAMODB_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "SEKIBAN_DYNAMODB_ENDPOINT is not set: run `bash scripts/test.sh`, which starts DynamoDB Local, \
             or start it yourself (see backend-dynamodb/README.md) and set SEKIBAN_DYNAMODB_ENDPOINT=http://127.0.0.1:PORT"
        )
    })
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
