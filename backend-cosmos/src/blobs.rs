//! Snapshot blobs in Azure Blob Storage, through `object_store`'s Azure client.

use std::sync::Arc;

use http_body_util::BodyExt;
use object_store::RetryConfig;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::client::{
    ClientOptions, HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse,
    HttpResponseBody, HttpService, ReqwestConnector,
};
use sekiban_core::blob::TransientBlobError;
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
    /// The account key; without one, [`AzureBlobConfig::credential`].
    pub key: Option<String>,
    /// The Entra ID credential without a key, as `credential=` names it for the account:
    /// `managed` (the managed identity: a user-assigned one when `AZURE_CLIENT_ID` is set),
    /// `workload` (a workload identity, from `AZURE_CLIENT_ID`, `AZURE_TENANT_ID` and
    /// `AZURE_FEDERATED_TOKEN_FILE`) or `cli` (the Azure CLI's login); `None` is the host's
    /// managed identity.
    pub credential: Option<String>,
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
            credential: None,
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
    let env = |var: &str| std::env::var(var).ok().filter(|v| !v.is_empty());
    match (&config.key, config.credential.as_deref()) {
        (Some(key), _) => builder = builder.with_access_key(key),
        (None, Some("cli")) => builder = builder.with_use_azure_cli(true),
        (None, Some("workload")) => {
            let (Some(client), Some(tenant), Some(file)) = (
                env("AZURE_CLIENT_ID"),
                env("AZURE_TENANT_ID"),
                env("AZURE_FEDERATED_TOKEN_FILE"),
            ) else {
                return Err(StoreError::invalid(format!(
                    "Azure Blob container {} of account {}: a workload identity needs AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE",
                    config.container, config.account
                )));
            };
            builder = builder
                .with_client_id(client)
                .with_tenant_id(tenant)
                .with_federated_token_file(file);
        }
        (None, Some("managed")) => {
            if let Some(client) = env("AZURE_CLIENT_ID") {
                builder = builder.with_client_id(client);
            }
        }
        (None, Some(other)) => {
            return Err(StoreError::invalid(format!(
                "Azure Blob container {} of account {}: unknown credential {other:?} (managed, workload or cli)",
                config.container, config.account
            )));
        }
        (None, None) => {}
    }
    if let Some(endpoint) = &config.endpoint {
        builder = builder
            .with_allow_http(endpoint.starts_with("http://"))
            .with_endpoint(endpoint.clone());
    }
    // One place retries: the store's loop (`SnapshotOffload::counted_retrying`), which counts
    // every attempt. The client retries nothing and says which failures are transient.
    builder = builder
        .with_retry(RetryConfig {
            max_retries: 0,
            ..RetryConfig::default()
        })
        .with_http_connector(Typed);
    let store = builder.build().map_err(|e| {
        StoreError::invalid(format!(
            "Azure Blob container {} of account {}: {e}",
            config.container, config.account
        ))
    })?;
    Ok(ObjectBlobStore::new(Arc::new(store)))
}

/// The HTTP layer under the blob client: reqwest's, with every failure the service calls
/// transient turned into a [`TransientBlobError`] (a 429 or 5xx answer, a connection failed or
/// lost, a body cut short), which `ObjectBlobStore` answers `Throttled` or `Unavailable`.
#[derive(Debug)]
struct Typed;

impl HttpConnector for Typed {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(TypedService(inner)))
    }
}

#[derive(Debug)]
struct TypedService(HttpClient);

/// A failure of the connection as a transient one, of the same kind.
fn lost(e: HttpError) -> HttpError {
    let kind = e.kind();
    match kind {
        HttpErrorKind::Connect
        | HttpErrorKind::Request
        | HttpErrorKind::Timeout
        | HttpErrorKind::Interrupted
        | HttpErrorKind::Decode => HttpError::new(kind, TransientBlobError::lost(e)),
        _ => e,
    }
}

#[async_trait::async_trait]
impl HttpService for TypedService {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let resp = self.0.execute(req).await.map_err(lost)?;
        let status = resp.status();
        if status.as_u16() == 429 || status.is_server_error() {
            return Err(HttpError::new(
                HttpErrorKind::Unknown,
                TransientBlobError::status(status.as_u16()),
            ));
        }
        // A body cut short after the answer began is transient too.
        Ok(resp.map(|body| HttpResponseBody::new(body.map_err(lost))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_credential_builds_a_store_and_an_unknown_one_is_refused() {
        for credential in [None, Some("managed"), Some("cli")] {
            let mut c = AzureBlobConfig::new("acct", "snapshots");
            c.credential = credential.map(str::to_owned);
            assert!(azure_blobs(&c).is_ok(), "{credential:?}");
        }
        let mut c = AzureBlobConfig::new("acct", "snapshots");
        c.credential = Some("password".into());
        let e = azure_blobs(&c).unwrap_err().to_string();
        assert!(e.contains("unknown credential"), "{e}");
    }
}
