//! The whole conformance suite on a container partitioned by other paths than the default
//! (`/tenant`, `/stream`): the documents carry their tenant and stream under those names, as the
//! container's key demands (a document without them would be refused).

use std::sync::Arc;

use sekiban_conformance::Harness;
use sekiban_core::{BlobStore, ObjectBlobStore};

mod common;

async fn harness() -> Harness {
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::memory());
    let store = common::store_with(blobs.clone(), |c| {
        c.partition_key_paths = ["/tenant".into(), "/stream".into()];
    })
    .await;
    Harness::new(Arc::new(store), blobs)
}

sekiban_conformance::conformance_tests!(harness().await);
