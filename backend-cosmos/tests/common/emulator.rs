//! The one place the SDK's in-process emulator is wired: a `CosmosClient` whose HTTP client is
//! the emulator's, so the whole SDK pipeline (routing, retries, session tokens) runs against an
//! in-memory account with the Cosmos DB API's behaviour (hierarchical keys, transactional
//! batches, the change feed per feed range, partition splits and merges).

use std::sync::Arc;

use azure_data_cosmos::{
    AccountReference, CosmosClient, CosmosClientBuilder, CosmosRuntimeBuilder, RoutingStrategy,
};
use azure_data_cosmos_driver::in_memory_emulator::{
    ConsistencyLevel, InMemoryEmulatorHttpClient, VirtualAccountConfig, VirtualRegion,
};

/// The emulated account's endpoint (no request leaves the process).
const ENDPOINT: &str = "https://sekiban-test.documents.azure.com:443/";

/// A client of a new emulated account (one per test process: nextest runs each test alone).
pub async fn client() -> CosmosClient {
    account().await.0
}

/// A client of a new emulated account, and the emulator (to split and merge its partitions).
pub async fn account() -> (CosmosClient, Arc<InMemoryEmulatorHttpClient>) {
    sekiban_cosmos::install_tls();
    let url: url::Url = ENDPOINT.parse().expect("endpoint");
    let config = VirtualAccountConfig::new(vec![VirtualRegion::new("East US", url.clone())])
        .expect("an emulator configuration")
        .with_consistency(ConsistencyLevel::Session);
    let emulator = Arc::new(InMemoryEmulatorHttpClient::new(config));
    let runtime = CosmosRuntimeBuilder::from(emulator.runtime_builder())
        .build()
        .await
        .expect("a runtime");
    let client = CosmosClientBuilder::new()
        .with_runtime(runtime)
        .build(
            AccountReference::with_authentication_key(url.into(), String::from("dGVzdGtleQ==")),
            RoutingStrategy::ProximityTo("East US".into()),
        )
        .await
        .expect("a client of the emulator");
    (client, emulator)
}
