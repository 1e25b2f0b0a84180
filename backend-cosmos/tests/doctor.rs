//! `CosmosStore::diagnose` on the test account: containers `init` made pass (with snapshot
//! blobs in Azurite); a container with another partition key, a default TTL or an indexing
//! policy that leaves out what the backend queries, and a missing checkpoints container, each
//! fail the check that names them; the probes write nothing.

use std::borrow::Cow;

use azure_data_cosmos::CosmosClient;
use azure_data_cosmos::models::{ContainerProperties, IndexingPolicy, PartitionKeyDefinition};
use sekiban_core::doctor::{Diagnosis, Verdict};
use sekiban_cosmos::{CosmosConfig, CosmosStore, DEFINITION};

mod common;

fn verdict(d: &Diagnosis, check: &str) -> Verdict {
    d.get(check)
        .unwrap_or_else(|| panic!("no {check} finding in\n{d}"))
        .verdict
}

fn fresh_config() -> CosmosConfig {
    CosmosConfig::new(
        format!("sekiban-doctor-{}", uuid::Uuid::new_v4().simple()),
        "events",
    )
}

/// Creates the database and the events container as `events` says, and the checkpoints
/// container partitioned by `leases` when given.
async fn create(
    client: &CosmosClient,
    config: &CosmosConfig,
    events: ContainerProperties,
    leases: Option<&'static str>,
) {
    client
        .create_database(&config.database, None)
        .await
        .expect("create the database");
    let db = client.database_client(config.database.as_str());
    db.create_container(events, None)
        .await
        .expect("create events");
    if let Some(path) = leases {
        let pk: PartitionKeyDefinition = path.into();
        db.create_container(ContainerProperties::new(config.leases.clone(), pk), None)
            .await
            .expect("create checkpoints");
    }
}

fn multihash(paths: [&'static str; 2]) -> PartitionKeyDefinition {
    PartitionKeyDefinition::new(paths.iter().map(|p| Cow::Borrowed(*p)).collect())
        .with_kind(azure_data_cosmos::models::PartitionKeyKind::MultiHash)
}

fn backend_indexing() -> IndexingPolicy {
    let mut p = IndexingPolicy::default();
    for x in DEFINITION.excluded_paths {
        p = p.with_excluded_path(x);
    }
    for x in DEFINITION.indexed_paths {
        p = p.with_included_path(x);
    }
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_init_made_pass_and_nothing_is_written() {
    let client = common::emulator::client().await;
    let config = fresh_config();
    let d = CosmosStore::diagnose(&client, &config, None).await;
    assert_eq!(verdict(&d, "events container"), Verdict::Failed, "{d}");
    assert!(d.to_string().contains("does not exist"), "{d}");

    CosmosStore::init(&client, &config).await.expect("init");
    let blobs = common::azurite::blobs().await;
    let d = CosmosStore::diagnose(&client, &config, Some(blobs)).await;
    assert!(!d.failed(), "{d}");
    for check in [
        "partition key",
        "indexing policy",
        "ttl",
        "checkpoints container",
        "permission: read",
        "permission: write",
        "permission: change feed",
        "snapshot blobs",
    ] {
        assert_eq!(verdict(&d, check), Verdict::Ok, "{check}: {d}");
    }
    let events = client
        .database_client(config.database.as_str())
        .container_client(config.container.as_str(), None)
        .await
        .expect("container");
    let probe = azure_data_cosmos::PartitionKey::from((
        "sekiban-doctor".to_string(),
        "sekiban-doctor".to_string(),
    ));
    let e = events
        .read_item(probe, "sekiban-doctor", None)
        .await
        .expect_err("the probes wrote nothing");
    assert_eq!(u16::from(e.status().status_code()), 404, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_partition_key_or_a_ttl_or_missing_indexes_fail() {
    let client = common::emulator::client().await;

    let config = fresh_config();
    let single: PartitionKeyDefinition = "/t".into();
    let props = ContainerProperties::new(config.container.clone(), single)
        .with_indexing_policy(backend_indexing());
    create(&client, &config, props, Some("/t")).await;
    let d = CosmosStore::diagnose(&client, &config, None).await;
    assert_eq!(verdict(&d, "partition key"), Verdict::Failed, "{d}");
    assert_eq!(verdict(&d, "checkpoints container"), Verdict::Failed, "{d}");
    assert!(
        d.get("checkpoints container")
            .unwrap()
            .detail
            .contains("keyed by /id"),
        "{d}"
    );

    let config = fresh_config();
    let props = ContainerProperties::new(config.container.clone(), multihash(["/t", "/s"]))
        .with_indexing_policy(backend_indexing())
        .with_default_ttl(86_400u32);
    create(
        &client,
        &config,
        props,
        Some(DEFINITION.checkpoint_partition_key_path),
    )
    .await;
    let d = CosmosStore::diagnose(&client, &config, None).await;
    assert_eq!(verdict(&d, "ttl"), Verdict::Failed, "{d}");
    assert_eq!(verdict(&d, "checkpoints container"), Verdict::Ok, "{d}");
    assert_eq!(verdict(&d, "partition key"), Verdict::Ok, "{d}");

    let config = fresh_config();
    let props = ContainerProperties::new(config.container.clone(), multihash(["/t", "/s"]))
        .with_indexing_policy(
            IndexingPolicy::default()
                .with_excluded_path("/*")
                .with_included_path("/k/?"),
        );
    create(&client, &config, props, None).await;
    let d = CosmosStore::diagnose(&client, &config, None).await;
    assert_eq!(verdict(&d, "indexing policy"), Verdict::Failed, "{d}");
    assert!(
        d.get("checkpoints container")
            .unwrap()
            .detail
            .contains("does not exist"),
        "{d}"
    );
    assert!(
        d.get("indexing policy").unwrap().detail.contains("/o/?"),
        "{d}"
    );
}
