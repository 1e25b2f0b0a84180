//! The whole conformance suite on the SDK's in-process emulator: one test per case, each in a
//! process and database of its own.

use std::sync::Arc;

use sekiban_conformance::Harness;

mod common;

async fn harness() -> Harness {
    let (store, blobs) = common::memory_blobs_store().await;
    Harness::new(Arc::new(store), blobs)
}

sekiban_conformance::conformance_tests!(harness().await);
