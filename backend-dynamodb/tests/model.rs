//! The model-based property test on DynamoDB Local (or the account `SEKIBAN_DYNAMODB_ENDPOINT`
//! points at): each case works on a fresh table of its own (on one shared table every case's feed
//! would read all earlier cases' records), named `sekiban-test-model-<uuid>`.

use std::sync::Arc;

use sekiban_conformance::Harness;
use sekiban_conformance::model::run_model_test;
use sekiban_core::{BlobStore, ObjectBlobStore};

mod common;

async fn harness() -> Harness {
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::memory());
    let name = format!("sekiban-test-model-{}", uuid::Uuid::new_v4().simple());
    let t = common::table(&name, Some(blobs.clone())).await;
    Harness::new(Arc::new(t), blobs)
}

#[test]
fn dynamodb_matches_the_model() {
    run_model_test("dynamodb_matches_the_model", harness);
}
