//! The conformance suite and the model test against a memory store whose feed has three
//! partitions (`MemoryStore::partitioned`), read by the shared feed driver as a sharded
//! service's feed is.

use std::sync::Arc;

use sekiban_conformance::Harness;
use sekiban_conformance::model::run_model_test;
use sekiban_core::MemoryStore;

fn harness() -> Harness {
    let store = MemoryStore::partitioned(3);
    let blobs = store.blobs();
    Harness::new(Arc::new(store), blobs)
}

sekiban_conformance::conformance_tests!(harness());

#[test]
fn partitioned_memory_store_matches_the_model() {
    run_model_test("partitioned_memory_store_matches_the_model", || async {
        harness()
    });
}
