//! The one place the SDK's in-process emulator is wired: a `CosmosClient` whose HTTP client is
//! the emulator's, so the whole SDK pipeline (routing, retries, session tokens) runs against an
//! in-memory account with the Cosmos DB API's behaviour (hierarchical keys, transactional
//! batches, the change feed per feed range, partition splits and merges).
//!
//! With `SEKIBAN_COSMOS_ENDPOINT` (and `SEKIBAN_COSMOS_KEY`) set, the tests run against that
//! account instead: the official emulator or a real account.

use std::sync::Arc;

use azure_data_cosmos::{
    AccountReference, CosmosClient, CosmosClientBuilder, CosmosRuntimeBuilder, RoutingStrategy,
};
use azure_data_cosmos_driver::in_memory_emulator::{
    ConsistencyLevel, InMemoryEmulatorHttpClient, VirtualAccountConfig, VirtualRegion,
};

/// The emulated account's endpoint (no request leaves the process).
const ENDPOINT: &str = "https://sekiban-test.documents.azure.com:443/";

/// A client of the test account: a new emulated one (one per test process: nextest runs each
/// test alone), or the one `SEKIBAN_COSMOS_ENDPOINT` names.
pub async fn client() -> CosmosClient {
    sekiban_cosmos::install_tls();
    match std::env::var("SEKIBAN_COSMOS_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => real_account(&endpoint).await,
        #[cfg(feature = "testcontainers")]
        _ => container_account().await,
        #[cfg(not(feature = "testcontainers"))]
        _ => account().await.0,
    }
}

/// The official emulator in a container started for this test process (left running when the
/// process exits: nothing drops a static; remove it with `docker rm -f`).
#[cfg(feature = "testcontainers")]
async fn container_account() -> CosmosClient {
    static CONTAINER: std::sync::OnceLock<sekiban_cosmos::testcontainer::CosmosContainer> =
        std::sync::OnceLock::new();
    let endpoint = CONTAINER
        .get_or_init(|| {
            std::thread::spawn(|| {
                let rt = tokio::runtime::Runtime::new().expect("a runtime");
                rt.block_on(sekiban_cosmos::testcontainer::start())
            })
            .join()
            .expect("the container thread")
            .unwrap_or_else(|e| panic!("{e}"))
        })
        .endpoint
        .clone();
    key_account(&endpoint, sekiban_cosmos::testcontainer::KEY).await
}

/// A client of the account at `endpoint`, with the key in `SEKIBAN_COSMOS_KEY`.
async fn real_account(endpoint: &str) -> CosmosClient {
    let key = std::env::var("SEKIBAN_COSMOS_KEY")
        .expect("SEKIBAN_COSMOS_ENDPOINT is set: set SEKIBAN_COSMOS_KEY to the account's key too");
    key_account(endpoint, &key).await
}

/// A client of the account at `endpoint` with `key`.
async fn key_account(endpoint: &str, key: &str) -> CosmosClient {
    let key = key.to_owned();
    let region = std::env::var("SEKIBAN_COSMOS_REGION").unwrap_or_else(|_| "East US".into());
    let url: azure_data_cosmos::AccountEndpoint = endpoint
        .parse()
        .unwrap_or_else(|e| panic!("the account endpoint {endpoint:?}: {e}"));
    CosmosClientBuilder::new()
        .build(
            AccountReference::with_authentication_key(url, key),
            RoutingStrategy::ProximityTo(region.into()),
        )
        .await
        .unwrap_or_else(|e| panic!("a client of the account at {endpoint}: {e}"))
}

/// A client of a new emulated account, and the emulator (to split and merge its partitions).
pub async fn account() -> (CosmosClient, Arc<InMemoryEmulatorHttpClient>) {
    account_with_faults(Vec::new()).await
}

/// The same, every request of the client passing the fault-injection `rules` first.
pub async fn account_with_faults(
    rules: Vec<Arc<azure_data_cosmos_driver::fault_injection::FaultInjectionRule>>,
) -> (CosmosClient, Arc<InMemoryEmulatorHttpClient>) {
    sekiban_cosmos::install_tls();
    assert!(
        std::env::var("SEKIBAN_COSMOS_ENDPOINT").is_err(),
        "this test splits and merges the in-process emulator's partitions: unset SEKIBAN_COSMOS_ENDPOINT \
         (against a real account, run with -E 'not binary(feed_ranges)')"
    );
    let url: url::Url = ENDPOINT.parse().expect("endpoint");
    let config = VirtualAccountConfig::new(vec![VirtualRegion::new("East US", url.clone())])
        .expect("an emulator configuration")
        .with_consistency(ConsistencyLevel::Session);
    let emulator = Arc::new(InMemoryEmulatorHttpClient::new(config));
    let runtime = CosmosRuntimeBuilder::from(emulator.runtime_builder_with_fault_rules(rules))
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

/// A fault-injection rule, off until enabled: requests of `op` meet `error` with chance
/// `probability`, at most `hit_limit` times (no limit when `None`).
pub fn fault_rule(
    id: &str,
    op: azure_data_cosmos_driver::fault_injection::FaultOperationType,
    error: azure_data_cosmos_driver::fault_injection::FaultInjectionErrorType,
    probability: f32,
    hit_limit: Option<u32>,
) -> Arc<azure_data_cosmos_driver::fault_injection::FaultInjectionRule> {
    use azure_data_cosmos_driver::fault_injection::{
        FaultInjectionConditionBuilder, FaultInjectionResultBuilder, FaultInjectionRuleBuilder,
    };
    let mut rule = FaultInjectionRuleBuilder::new(
        id,
        FaultInjectionResultBuilder::new()
            .with_error(error)
            .with_probability(probability)
            .build(),
    )
    .with_condition(
        FaultInjectionConditionBuilder::new()
            .with_operation_type(op)
            .build(),
    );
    if let Some(n) = hit_limit {
        rule = rule.with_hit_limit(n);
    }
    let rule = Arc::new(rule.build());
    rule.disable();
    rule
}
