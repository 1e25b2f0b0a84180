//! The model-based property test on DynamoDB Local (or the account `SEKIBAN_DYNAMODB_ENDPOINT`
//! points at): each case works on a fresh table of its own (on one shared table every case's feed
//! would read all earlier cases' records), named `sekiban-test-model-<uuid>`, with a replay
//! margin of zero: a feed from `Beginning` takes what was written before it from the table scan
//! and the rest from Streams, so both paths and the hand-over between them are checked against
//! the model (the suite checks the default margin, where fresh events are all Streams').

use std::sync::Arc;

use sekiban_conformance::Harness;
use sekiban_conformance::model::run_model_test;
use sekiban_core::{BlobStore, ObjectBlobStore};
use sekiban_dynamodb::{DynamoDbConfig, DynamoDbTable};

mod common;

async fn harness() -> Harness {
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::memory());
    let name = format!("sekiban-test-model-{}", uuid::Uuid::new_v4().simple());
    let url = format!("dynamodb://{name}?endpoint={}", common::endpoint());
    let mut config = DynamoDbConfig::from_url(&url).expect("a valid URL");
    config.replay_margin = std::time::Duration::ZERO;
    let t = DynamoDbTable::connect_with_blobs(config, blobs.clone()).await;
    t.init().await.expect("init");
    Harness::new(Arc::new(t), blobs)
}

#[test]
fn dynamodb_matches_the_model() {
    run_model_test("dynamodb_matches_the_model", harness);
}
