//! What the PostgreSQL test binaries share: the server from `SEKIBAN_POSTGRES_URL`, a schema
//! per test run, and a harness.
#![allow(dead_code)]

use std::sync::Arc;

use sekiban_conformance::Harness;
use sekiban_core::{BlobStore, ObjectBlobStore};
use sekiban_postgres::{PostgresConfig, PostgresEventStore};

/// The server URL, or a failure that names the command that provides one.
pub fn url() -> String {
    match std::env::var("SEKIBAN_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "SEKIBAN_POSTGRES_URL is not set: run the tests with `bash scripts/test.sh`, which finds or starts a \
             PostgreSQL server (installed by `bash scripts/setup.sh`), or set it to a server you own, e.g. \
             postgres://postgres@127.0.0.1:5432/test"
        ),
    }
}

/// The schema of this test run (`SEKIBAN_POSTGRES_SCHEMA`, which `scripts/test.sh` makes unique
/// per run and drops afterwards), else `sekiban_test`.
pub fn schema() -> String {
    std::env::var("SEKIBAN_POSTGRES_SCHEMA").unwrap_or_else(|_| "sekiban_test".into())
}

/// A configuration for this run's schema with a small pool.
pub fn config() -> PostgresConfig {
    let mut c = PostgresConfig::from_url(&url()).unwrap_or_else(|e| panic!("{e}"));
    c.schema = schema();
    c.pool_size = 4;
    c
}

/// A store on this run's schema (migrated first), with snapshot blobs in memory.
pub async fn store_with(blobs: Arc<dyn BlobStore>) -> PostgresEventStore {
    let c = config();
    PostgresEventStore::migrate(&c)
        .await
        .unwrap_or_else(|e| panic!("migrate: {e}"));
    PostgresEventStore::connect_with_blobs(c, blobs)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"))
}

/// A conformance harness.
pub async fn harness() -> Harness {
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::memory());
    let store = store_with(blobs.clone()).await;
    Harness::new(Arc::new(store), blobs)
}
