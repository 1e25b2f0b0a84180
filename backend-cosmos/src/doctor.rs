//! `CosmosStore::diagnose`: a deployed account, database and containers (and blob container)
//! checked against what the backend needs, writing nothing to the containers.

use std::sync::Arc;

use azure_data_cosmos::CosmosClient;
use azure_data_cosmos::clients::ContainerClient;
use azure_data_cosmos::models::{ContainerProperties, TimeToLive};
use sekiban_core::BlobStore;
use sekiban_core::doctor::{Diagnosis, Verdict};

use crate::config::CosmosConfig;
use crate::conn::NOT_FOUND;
use crate::container::key_paths;
use crate::{CosmosStore, DEFINITION, account, azure_blobs};

/// The id and partition the permission probes name; nothing is ever written under them.
const PROBE: &str = "sekiban-doctor";

fn status(e: &azure_data_cosmos::CosmosError) -> u16 {
    u16::from(e.status().status_code())
}

impl CosmosStore {
    /// Diagnoses the deployment a `cosmos://` URL names: the account refuses no credential and
    /// writes in one region, then [`CosmosStore::diagnose`] on its containers and blob
    /// container. An error only for a URL that cannot be used at all (malformed, no key).
    ///
    /// ```no_run
    /// # async fn run() -> sekiban_core::Result<()> {
    /// let url = "cosmos://myaccount.documents.azure.com/sekiban/events?credential=cli";
    /// let d = sekiban_cosmos::CosmosStore::diagnose_url(url).await?;
    /// println!("{d}");
    /// # Ok(()) }
    /// ```
    pub async fn diagnose_url(url: &str) -> sekiban_core::Result<Diagnosis> {
        let (parsed, auth) = Self::auth_for(url)?;
        let mut d = Diagnosis::default();
        let blobs: Option<Arc<dyn BlobStore>> = match parsed.blob.as_ref().map(azure_blobs) {
            Some(Ok(b)) => Some(Arc::new(b)),
            Some(Err(e)) => {
                d.fail("snapshot blobs", e.to_string());
                None
            }
            None => None,
        };
        match account::check_write_regions(&parsed.endpoint, &auth).await {
            Ok(()) => d.ok(
                "account",
                format!("{} answers; one region accepts writes", parsed.endpoint),
            ),
            Err(e) => {
                d.fail("account", e.to_string());
                return Ok(d);
            }
        }
        let client = match Self::client_with(url, &parsed, auth).await {
            Ok(c) => c,
            Err(e) => {
                d.fail("account", e.to_string());
                return Ok(d);
            }
        };
        let more = Self::diagnose(&client, &parsed.config, blobs).await;
        d.findings.extend(more.findings);
        if parsed.blob.is_none() {
            match &parsed.blobs_dir {
                Some(dir) => d.ok(
                    "snapshot blobs",
                    format!("a local directory, {dir} (for development)"),
                ),
                None => d.warn(
                    "snapshot blobs",
                    "no blob container: snapshots over the inline limit are refused; add blob_account= and blob_container= to the URL",
                ),
            }
        }
        Ok(d)
    }

    /// Checks the database and both containers `config` names against [`DEFINITION`] (the
    /// partition key's paths, kind and version, the indexing policy, no default TTL), that the
    /// credential may read and write items (a replace of an item that does not exist: nothing
    /// is written) and read the change feed's ranges, and, given `blobs`, that a probe blob can
    /// be written, read and deleted.
    pub async fn diagnose(
        client: &CosmosClient,
        config: &CosmosConfig,
        blobs: Option<Arc<dyn BlobStore>>,
    ) -> Diagnosis {
        let mut d = Diagnosis::default();
        if let Err(e) = config.validate() {
            d.fail("configuration", e.to_string());
            return d;
        }
        let db = client.database_client(config.database.as_str());
        let read = async |name: &str| -> Result<(ContainerClient, ContainerProperties), String> {
            let c = db.container_client(name, None).await.map_err(|e| {
                if status(&e) == NOT_FOUND {
                    format!(
                        "{name} (or database {}) does not exist: deploy infra/azure or run `sekiban init`",
                        config.database
                    )
                } else {
                    crate::conn::error(&format!("open container {name}"), e).to_string()
                }
            })?;
            let found = c
                .read(None)
                .await
                .and_then(|r| r.into_model())
                .map_err(|e| {
                    crate::conn::error(&format!("read container {name}"), e).to_string()
                })?;
            Ok((c, found))
        };
        let events = match read(&config.container).await {
            Ok((events, found)) => {
                events_container(&mut d, config, &found);
                events
            }
            Err(e) => {
                d.fail("events container", e);
                return d;
            }
        };
        match read(&config.leases).await {
            Ok((_, found)) => {
                let paths = key_paths(&found);
                if paths == [DEFINITION.checkpoint_partition_key_path] {
                    d.ok(
                        "checkpoints container",
                        format!("{} exists, partitioned by {paths:?}", config.leases),
                    );
                } else {
                    d.fail(
                        "checkpoints container",
                        format!(
                            "{} is partitioned by {paths:?}; the backend writes checkpoints keyed by {}",
                            config.leases, DEFINITION.checkpoint_partition_key_path
                        ),
                    );
                }
            }
            Err(e) => d.fail("checkpoints container", e),
        }
        // The probes address the configured partition key: on another one they cannot answer.
        if d.get("partition key").map(|f| f.verdict) == Some(Verdict::Ok) {
            permissions(&mut d, &events, config).await;
        } else {
            d.warn(
                "permissions",
                "not probed: the events container's partition key is not the configured one",
            );
        }
        if let Some(blobs) = blobs {
            let key = format!("{PROBE}/{}", uuid::Uuid::new_v4().simple());
            let probe = async {
                blobs.put(&key, bytes::Bytes::new()).await?;
                let got = blobs.get(&key).await?;
                blobs.delete(&key).await?;
                Ok::<_, sekiban_core::StoreError>(got.is_some())
            };
            match probe.await {
                Ok(true) => d.ok(
                    "snapshot blobs",
                    "an empty probe blob was written, read and deleted",
                ),
                Ok(false) => d.fail("snapshot blobs", "a probe blob written was not found again"),
                Err(e) => d.fail("snapshot blobs", format!("{e} (probe blob {key})")),
            }
        }
        d
    }
}

/// The events container's partition key, indexing policy and TTL.
fn events_container(d: &mut Diagnosis, config: &CosmosConfig, found: &ContainerProperties) {
    let pk = &found.partition_key;
    let paths = key_paths(found);
    let kind = format!("{:?}", pk.kind());
    let version = format!("{:?}", pk.version());
    let want_version = format!("V{}", DEFINITION.partition_key_version);
    if paths == config.partition_key_paths
        && kind == DEFINITION.partition_key_kind
        && version == want_version
    {
        d.ok(
            "partition key",
            format!(
                "{} is partitioned by {paths:?} ({kind}, {version})",
                config.container
            ),
        );
    } else {
        d.fail(
            "partition key",
            format!(
                "{} is partitioned by {paths:?} ({kind}, {version}); the backend expects {:?} ({}, {want_version}): deploy a new container from infra/azure",
                config.container, config.partition_key_paths, DEFINITION.partition_key_kind
            ),
        );
    }
    match &found.indexing_policy {
        None => d.warn("indexing policy", "not reported"),
        Some(p) => {
            let included: Vec<&str> = p.included_paths.iter().map(|x| x.path.as_str()).collect();
            let excluded: Vec<&str> = p.excluded_paths.iter().map(|x| x.path.as_str()).collect();
            let everything = included.contains(&"/*");
            let missing: Vec<&str> = DEFINITION
                .indexed_paths
                .iter()
                .copied()
                .filter(|x| !included.contains(x))
                .collect();
            if !everything && !missing.is_empty() {
                d.fail(
                    "indexing policy",
                    format!(
                        "{missing:?} are not indexed: the backend's queries filter and order by them"
                    ),
                );
            } else if everything || !excluded.contains(&"/*") {
                d.warn(
                    "indexing policy",
                    format!(
                        "more is indexed than the backend queries (included {included:?}, excluded {excluded:?}): every write costs more RU; the backend indexes only {:?}",
                        DEFINITION.indexed_paths
                    ),
                );
            } else {
                d.ok("indexing policy", format!("only {included:?} indexed"));
            }
        }
    }
    match found.default_ttl {
        TimeToLive::Forever => d.ok("ttl", "no default time to live: no event expires"),
        ref ttl => d.fail(
            "ttl",
            format!(
                "the container has a default time to live ({ttl:?}): expiring documents would remove events and leave gaps; remove it"
            ),
        ),
    }
}

/// Read and write permissions on the events container, and the change feed's ranges.
async fn permissions(d: &mut Diagnosis, events: &ContainerClient, config: &CosmosConfig) {
    let pk = || azure_data_cosmos::PartitionKey::from((PROBE.to_string(), PROBE.to_string()));
    match events.read_item(pk(), PROBE, None).await {
        Err(e) if status(&e) == NOT_FOUND => d.ok("permission: read", "a point read answered"),
        Ok(_) => d.ok("permission: read", "a point read answered"),
        Err(e) => d.fail(
            "permission: read",
            crate::conn::error("read an item", e).to_string(),
        ),
    }
    let mut probe = serde_json::json!({ "id": PROBE });
    for path in &config.partition_key_paths {
        probe[path.trim_start_matches('/')] = PROBE.into();
    }
    match events.replace_item(pk(), PROBE, probe, None).await {
        Err(e) if status(&e) == NOT_FOUND => d.ok(
            "permission: write",
            "a replace of an absent item was allowed (and found nothing: nothing written)",
        ),
        Ok(_) => d.fail(
            "permission: write",
            format!("a replace of the absent item {PROBE} succeeded: remove it and report this"),
        ),
        Err(e) => d.fail(
            "permission: write",
            crate::conn::error("replace an item", e).to_string(),
        ),
    }
    match events.read_feed_ranges(None).await {
        Ok(r) => d.ok(
            "permission: change feed",
            format!("{} feed ranges listed", r.len()),
        ),
        Err(e) => d.fail(
            "permission: change feed",
            crate::conn::error("read the feed ranges", e).to_string(),
        ),
    }
}
