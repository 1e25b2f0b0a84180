//! The conformance suite against SQLite, on a file and in memory.

use std::sync::Arc;

use sekiban_conformance::Harness;
use sekiban_core::{BlobStore, ObjectBlobStore};
use sekiban_sqlite::{SqliteConfig, SqliteEventStore};

async fn harness(config: SqliteConfig) -> Harness {
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::memory());
    let store = SqliteEventStore::open_with_blobs(config, blobs.clone())
        .await
        .unwrap_or_else(|e| panic!("open the SQLite store: {e}"));
    Harness::new(Arc::new(store), blobs)
}

fn new_file() -> std::path::PathBuf {
    let name = format!("conformance-{}.db", uuid::Uuid::new_v4().simple());
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

mod file {
    use super::*;
    sekiban_conformance::conformance_tests!(harness(SqliteConfig::file(new_file())).await);
}

mod memory {
    use super::*;
    sekiban_conformance::conformance_tests!(harness(SqliteConfig::memory()).await);
}
