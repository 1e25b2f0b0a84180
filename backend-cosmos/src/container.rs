//! The containers, defined once ([`DEFINITION`]): `init` creates them from it, opening checks
//! them against it, and the templates in `infra/` are checked against it.

use std::sync::Arc;

use azure_data_cosmos::CosmosClient;
use azure_data_cosmos::clients::ContainerClient;
use azure_data_cosmos::models::{ContainerProperties, IndexingPolicy, PartitionKeyDefinition};
use serde::Serialize;

use sekiban_core::backend::CostCounter;
use sekiban_core::{OpKind, Result, StoreError};

use crate::config::CosmosConfig;
use crate::conn::{CONFLICT, NOT_FOUND, error};

/// What `init` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// Created the database or a container.
    Created,
    /// Everything existed already.
    Existed,
}

/// The containers as the store needs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ContainerDefinition {
    /// The events container's hierarchical partition key (MultiHash, version 2): the tenant,
    /// then the stream (`category|id`), so one stream is one logical partition and a tenant
    /// may grow past one logical partition's 20 GB. These are the default paths;
    /// `CosmosConfig::partition_key_paths` (URL `partition_key=/a,/b`) names others.
    pub partition_key_paths: [&'static str; 2],
    /// The partition key's kind: `MultiHash` (hierarchical), hash version 2.
    pub partition_key_kind: &'static str,
    /// The hash version of the partition key.
    pub partition_key_version: u8,
    /// The only paths the events container indexes (the document kind, its order keys forward
    /// and backward, and its first and last versions); event data and everything else is not indexed, so writes are
    /// charged for their bytes, not for index entries.
    pub indexed_paths: [&'static str; 5],
    /// Every other path is excluded from the index.
    pub excluded_paths: [&'static str; 1],
    /// The checkpoint container's partition key.
    pub checkpoint_partition_key_path: &'static str,
}

/// The one definition of the containers.
pub const DEFINITION: ContainerDefinition = ContainerDefinition {
    partition_key_paths: ["/t", "/s"],
    partition_key_kind: "MultiHash",
    partition_key_version: 2,
    indexed_paths: ["/k/?", "/o/?", "/r/?", "/f/?", "/l/?"],
    excluded_paths: ["/*"],
    checkpoint_partition_key_path: "/id",
};

impl ContainerDefinition {
    /// The events container, partitioned by `paths` (the default ones, or a config's).
    fn events(&self, name: &str, paths: &[String; 2]) -> ContainerProperties {
        let pk = PartitionKeyDefinition::new(paths.iter().map(|p| p.clone().into()).collect())
            .with_kind(azure_data_cosmos::models::PartitionKeyKind::MultiHash);
        let mut indexing = IndexingPolicy::default();
        for p in self.excluded_paths {
            indexing = indexing.with_excluded_path(p);
        }
        for p in self.indexed_paths {
            indexing = indexing.with_included_path(p);
        }
        ContainerProperties::new(name.to_owned(), pk).with_indexing_policy(indexing)
    }

    fn checkpoints(&self, name: &str) -> ContainerProperties {
        ContainerProperties::new(name.to_owned(), self.checkpoint_partition_key_path.into())
    }

    /// Checks an existing events container's partition key against the configured paths.
    fn check_events(
        &self,
        name: &str,
        found: &ContainerProperties,
        want: &[String; 2],
    ) -> Result<()> {
        let paths = key_paths(found);
        if paths != *want {
            return Err(StoreError::invalid(format!(
                "container {name} is partitioned by {paths:?}; this store is configured for the hierarchical key {want:?}"
            )));
        }
        Ok(())
    }
}

/// A container's partition key paths.
pub(crate) fn key_paths(found: &ContainerProperties) -> Vec<&str> {
    found
        .partition_key
        .paths()
        .iter()
        .map(|p| p.as_ref())
        .collect()
}

/// The events and checkpoint containers' clients and the events container's resource id;
/// `NotInitialized` when one is missing.
pub(crate) async fn clients(
    client: &CosmosClient,
    config: &CosmosConfig,
) -> Result<(ContainerClient, ContainerClient, String)> {
    config.validate()?;
    let db = client.database_client(config.database.as_str());
    let open = async |name: &str| {
        db.container_client(name, None).await.map_err(|e| {
            if u16::from(e.status().status_code()) == NOT_FOUND {
                StoreError::NotInitialized {
                    what: format!(
                        "container {name} of database {} does not exist; create it with CosmosStore::init or the templates in infra/",
                        config.database
                    ),
                }
            } else {
                error(&format!("open container {name}"), e)
            }
        })
    };
    let events = open(&config.container).await?;
    let leases = open(&config.leases).await?;
    let found = events
        .read(None)
        .await
        .map_err(|e| error("read the events container's properties", e))?
        .into_model()
        .map_err(|e| error("read the events container's properties", e))?;
    DEFINITION.check_events(&config.container, &found, &config.partition_key_paths)?;
    let rid = found
        .system_properties
        .resource_id
        .clone()
        .unwrap_or_else(|| format!("{}/{}", config.database, config.container));
    Ok((events, leases, rid))
}

/// Creates what is missing of the database and both containers.
pub(crate) async fn create(
    client: &CosmosClient,
    config: &CosmosConfig,
    costs: &Arc<CostCounter>,
) -> Result<Init> {
    config.validate()?;
    let mut created = false;
    let ok_or_exists =
        |r: std::result::Result<(), azure_data_cosmos::CosmosError>, what: &str| -> Result<bool> {
            costs.record(OpKind::Other, 0, 0);
            match r {
                Ok(()) => Ok(true),
                Err(e) if u16::from(e.status().status_code()) == CONFLICT => Ok(false),
                Err(e) => Err(error(what, e)),
            }
        };
    created |= ok_or_exists(
        client
            .create_database(&config.database, None)
            .await
            .map(|_| ()),
        "create the database",
    )?;
    let db = client.database_client(config.database.as_str());
    created |= ok_or_exists(
        db.create_container(
            DEFINITION.events(&config.container, &config.partition_key_paths),
            None,
        )
        .await
        .map(|_| ()),
        "create the events container",
    )?;
    created |= ok_or_exists(
        db.create_container(DEFINITION.checkpoints(&config.leases), None)
            .await
            .map(|_| ()),
        "create the checkpoint container",
    )?;
    clients(client, config).await?;
    Ok(if created {
        Init::Created
    } else {
        Init::Existed
    })
}

#[cfg(test)]
mod tests {
    use super::DEFINITION;

    /// What `init` sends is what `DEFINITION` says (the IaC templates are checked against it).
    #[test]
    fn the_created_container_is_the_definition() {
        let paths = DEFINITION.partition_key_paths.map(str::to_owned);
        let sent = serde_json::to_value(DEFINITION.events("events", &paths)).unwrap();
        let pk = &sent["partitionKey"];
        assert_eq!(
            pk["paths"],
            serde_json::json!(DEFINITION.partition_key_paths)
        );
        assert_eq!(pk["kind"], DEFINITION.partition_key_kind);
        assert_eq!(pk["version"], DEFINITION.partition_key_version);
        let indexing = &sent["indexingPolicy"];
        let included: Vec<&str> = indexing["includedPaths"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["path"].as_str().unwrap())
            .collect();
        assert_eq!(included, DEFINITION.indexed_paths);
        assert_eq!(
            indexing["excludedPaths"][0]["path"],
            DEFINITION.excluded_paths[0]
        );
        let checkpoints = serde_json::to_value(DEFINITION.checkpoints("cp")).unwrap();
        assert_eq!(
            checkpoints["partitionKey"]["paths"],
            serde_json::json!([DEFINITION.checkpoint_partition_key_path])
        );
    }
}
