//! What the SQLite test binaries share: a harness over a store, and fresh database files.
//! Each test binary uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sekiban_conformance::Harness;
use sekiban_core::{BlobStore, ObjectBlobStore};
use sekiban_sqlite::{SqliteConfig, SqliteEventStore};

/// A harness over a store opened with `config` and in-memory blobs.
pub async fn harness(config: SqliteConfig) -> Harness {
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::memory());
    let store = SqliteEventStore::open_with_blobs(config, blobs.clone())
        .await
        .unwrap_or_else(|e| panic!("open the SQLite store: {e}"));
    Harness::new(Arc::new(store), blobs)
}

/// A database file that does not exist yet, under the target directory's scratch space.
pub fn new_file(tag: &str) -> PathBuf {
    let name = format!("{tag}-{}.db", uuid::Uuid::new_v4().simple());
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}
