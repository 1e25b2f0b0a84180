//! The whole conformance suite on DynamoDB Local (or the account `SEKIBAN_DYNAMODB_ENDPOINT`
//! points at): one test per case, each on its own tenant of one shared table.

use std::sync::Arc;

use sekiban_conformance::Harness;
use sekiban_core::{BlobStore, ObjectBlobStore};

mod common;

async fn harness() -> Harness {
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::memory());
    let t = common::table("sekiban-test-conformance", Some(blobs.clone())).await;
    Harness::new(Arc::new(t), blobs)
}

sekiban_conformance::conformance_tests!(harness().await);
