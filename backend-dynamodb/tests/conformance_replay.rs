//! The whole conformance suite again, with a replay margin of zero: a feed from `Beginning`
//! gets everything written before it starts from the table scan, not from Streams (with the
//! default two minutes, the suite's freshly written events are all Streams'). One table shared
//! by the cases, each on its own tenant.

use std::sync::Arc;

use sekiban_conformance::Harness;
use sekiban_core::{BlobStore, ObjectBlobStore};
use sekiban_dynamodb::{DynamoDbConfig, DynamoDbTable};

mod common;

async fn harness() -> Harness {
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::memory());
    let url = format!(
        "dynamodb://sekiban-test-conformance-replay?endpoint={}",
        common::endpoint()
    );
    let mut config = DynamoDbConfig::from_url(&url).expect("a valid URL");
    config.replay_margin = std::time::Duration::ZERO;
    let t = DynamoDbTable::connect_with_blobs(config, blobs.clone()).await;
    t.init().await.expect("init");
    Harness::new(Arc::new(t), blobs)
}

sekiban_conformance::conformance_tests!(harness().await);
