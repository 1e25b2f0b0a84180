//! The conformance suite against a memory store whose feed reads as four partitions do: per
//! stream in order, in no order across streams.

use std::sync::Arc;

use sekiban_conformance::{Harness, PartitionedFeed};
use sekiban_core::{BlobStore, MemoryStore, ObjectBlobStore, memory::default_memory_limits};

fn partitioned_harness() -> Harness {
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::memory());
    let store = MemoryStore::with_config(default_memory_limits(), blobs.clone());
    Harness::new(Arc::new(PartitionedFeed::new(store, 4)), blobs)
}

sekiban_conformance::conformance_tests!(partitioned_harness());
