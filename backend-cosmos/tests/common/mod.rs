//! What the test binaries share: a Cosmos DB account (the SDK's in-process emulator, or the
//! account `SEKIBAN_COSMOS_ENDPOINT` and `SEKIBAN_COSMOS_KEY` name) and a store on it.
#![allow(dead_code)]

pub mod azurite;
pub mod emulator;

use std::sync::Arc;

use sekiban_core::{BlobStore, ObjectBlobStore};
use sekiban_cosmos::{CosmosConfig, CosmosStore};

/// A store on a fresh database of the test account, its containers created, large snapshots
/// offloaded to `blobs`.
pub async fn store(blobs: Arc<dyn BlobStore>) -> CosmosStore {
    store_with(blobs, |_| {}).await
}

/// The same, its configuration changed by `configure` first.
pub async fn store_with(
    blobs: Arc<dyn BlobStore>,
    configure: impl FnOnce(&mut CosmosConfig),
) -> CosmosStore {
    let client = emulator::client().await;
    let db = format!("sekiban-test-{}", uuid::Uuid::new_v4().simple());
    let mut config = CosmosConfig::new(db, "events");
    configure(&mut config);
    CosmosStore::init(&client, &config).await.expect("init");
    CosmosStore::connect_with_blobs(client, config, blobs)
        .await
        .expect("connect")
}

/// A store on a fresh database of a new emulated account, the emulator, and the database's name.
pub async fn emulated_store() -> (
    CosmosStore,
    Arc<azure_data_cosmos_driver::in_memory_emulator::InMemoryEmulatorHttpClient>,
    String,
) {
    let (client, emulator) = emulator::account().await;
    let db = format!("sekiban-test-{}", uuid::Uuid::new_v4().simple());
    let config = CosmosConfig::new(db.clone(), "events");
    CosmosStore::init(&client, &config).await.expect("init");
    let store = CosmosStore::connect(client, config).await.expect("connect");
    (store, emulator, db)
}

/// A store whose large snapshots go to a new container of the Blob test endpoint (Azurite).
pub async fn azure_blobs_store() -> (CosmosStore, Arc<dyn BlobStore>) {
    let blobs = azurite::blobs().await;
    (store(blobs.clone()).await, blobs)
}

/// A store with an in-memory blob store.
pub async fn memory_blobs_store() -> (CosmosStore, Arc<dyn BlobStore>) {
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::memory());
    (store(blobs.clone()).await, blobs)
}

/// A store on a fresh database of a new emulated account whose requests pass the
/// fault-injection `rules` first (off until the test enables them), with an in-memory blob
/// store.
pub async fn faulted_store(
    rules: Vec<Arc<azure_data_cosmos_driver::fault_injection::FaultInjectionRule>>,
    attempts: Option<u32>,
) -> (CosmosStore, Arc<dyn BlobStore>) {
    let (client, _emulator) = emulator::account_with_faults(rules).await;
    let mut config = CosmosConfig::new(
        format!("faults-{}", uuid::Uuid::new_v4().simple()),
        "events",
    );
    config.retry_attempts = attempts;
    CosmosStore::init(&client, &config).await.expect("init");
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::memory());
    let store = CosmosStore::connect_with_blobs(client, config, blobs.clone())
        .await
        .expect("connect");
    (store, blobs)
}
