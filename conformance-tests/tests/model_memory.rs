//! The model-based property test against the in-memory store.

use std::sync::Arc;

use sekiban_conformance::Harness;
use sekiban_conformance::model::run_model_test;
use sekiban_core::{BlobStore, MemoryStore, ObjectBlobStore, memory::default_memory_limits};

#[test]
fn memory_store_matches_the_model() {
    run_model_test("memory_store_matches_the_model", || async {
        let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::memory());
        let store = MemoryStore::with_config(default_memory_limits(), blobs.clone());
        Harness::new(Arc::new(store), blobs)
    });
}
