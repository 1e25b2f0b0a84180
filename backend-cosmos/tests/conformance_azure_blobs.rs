//! The whole conformance suite again, with large snapshots offloaded to Azure Blob Storage
//! (Azurite, or the account `SEKIBAN_AZURE_BLOB_ENDPOINT` names): every snapshot case then puts,
//! reads, hash-checks and deletes real blobs.

use std::sync::Arc;

use sekiban_conformance::Harness;

mod common;

async fn harness() -> Harness {
    let (store, blobs) = common::azure_blobs_store().await;
    Harness::new(Arc::new(store), blobs)
}

sekiban_conformance::conformance_tests!(harness().await);
