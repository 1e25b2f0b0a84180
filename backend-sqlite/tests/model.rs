//! The model-based property test against SQLite, on a file and in memory.

use std::sync::Arc;

use sekiban_conformance::{Harness, model::run_model_test};
use sekiban_core::{BlobStore, ObjectBlobStore};
use sekiban_sqlite::{SqliteConfig, SqliteEventStore};

async fn harness(config: SqliteConfig) -> Harness {
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::memory());
    let store = SqliteEventStore::open_with_blobs(config, blobs.clone())
        .await
        .unwrap_or_else(|e| panic!("open the SQLite store: {e}"));
    Harness::new(Arc::new(store), blobs)
}

#[test]
fn sqlite_file_matches_the_model() {
    run_model_test("sqlite_file_matches_the_model", || {
        let name = format!("model-{}.db", uuid::Uuid::new_v4().simple());
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        harness(SqliteConfig::file(path))
    });
}

#[test]
fn sqlite_memory_matches_the_model() {
    run_model_test("sqlite_memory_matches_the_model", || {
        harness(SqliteConfig::memory())
    });
}
