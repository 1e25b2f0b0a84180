//! The conformance suite against the in-memory store.

use std::sync::Arc;

use sekiban_conformance::Harness;
use sekiban_core::{BlobStore, MemoryStore, ObjectBlobStore, memory::default_memory_limits};

fn memory_harness() -> Harness {
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::memory());
    let store = MemoryStore::with_config(default_memory_limits(), blobs.clone());
    Harness::new(Arc::new(store), blobs)
}

sekiban_conformance::conformance_tests!(memory_harness());
