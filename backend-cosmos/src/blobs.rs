//! Snapshot blobs in Azure Blob Storage, through `object_store`'s Azure client.

use std::sync::Arc;

use object_store::azure::MicrosoftAzureBuilder;
use sekiban_core::{ObjectBlobStore, Result, StoreError};

/// Where large snapshots go: a container of a storage account.
///
/// ```
/// let c = sekiban_cosmos::AzureBlobConfig::new("mystorage", "snapshots");
/// assert!(sekiban_cosmos::azure_blobs(&c).is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AzureBlobConfig {
    /// The storage account.
    pub account: String,
    /// The blob container (it must exist: `infra/` creates it).
    pub container: String,
    /// The Blob endpoint, when not `https://ACCOUNT.blob.core.windows.net` (Azurite:
    /// `http://127.0.0.1:PORT/devstoreaccount1`).
    pub endpoint: Option<String>,
    /// The account key; without one the Azure environment's credential is used (a managed
    /// identity, a workload identity, a service principal or the Azure CLI, as `object_store`
    /// finds them).
    pub key: Option<String>,
}

impl AzureBlobConfig {
    /// The container `container` of `account`, at its public endpoint, with the environment's
    /// credential.
    pub fn new(account: impl Into<String>, container: impl Into<String>) -> Self {
        AzureBlobConfig {
            account: account.into(),
            container: container.into(),
            endpoint: None,
            key: None,
        }
    }
}

/// Makes rustls on ring the process's TLS provider, unless one is installed already. The SDK's
/// and the blob store's HTTP client (reqwest, with rustls and no provider of its own, so that the
/// workspace has one TLS stack) need one: call this before building a `CosmosClient`.
///
/// ```
/// sekiban_cosmos::install_tls();
/// sekiban_cosmos::install_tls(); // a second call changes nothing
/// ```
pub fn install_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A blob store on the container `config` names. Sends nothing yet.
pub fn azure_blobs(config: &AzureBlobConfig) -> Result<ObjectBlobStore> {
    install_tls();
    let mut builder = MicrosoftAzureBuilder::new()
        .with_account(&config.account)
        .with_container_name(&config.container);
    if let Some(key) = &config.key {
        builder = builder.with_access_key(key);
    }
    if let Some(endpoint) = &config.endpoint {
        builder = builder
            .with_allow_http(endpoint.starts_with("http://"))
            .with_endpoint(endpoint.clone());
    }
    let store = builder.build().map_err(|e| {
        StoreError::invalid(format!(
            "Azure Blob container {} of account {}: {e}",
            config.container, config.account
        ))
    })?;
    Ok(ObjectBlobStore::new(Arc::new(store)))
}
