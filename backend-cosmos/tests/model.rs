//! The model-based property test on the SDK's in-process emulator: each case on a database of
//! its own.

use std::sync::Arc;

use sekiban_conformance::Harness;
use sekiban_conformance::model::run_model_test;

mod common;

async fn harness() -> Harness {
    let (store, blobs) = common::memory_blobs_store().await;
    Harness::new(Arc::new(store), blobs)
}

#[test]
fn cosmos_matches_the_model() {
    run_model_test("cosmos_matches_the_model", harness);
}
