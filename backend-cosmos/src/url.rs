//! `cosmos://ACCOUNT-HOST[:PORT]/DATABASE/CONTAINER?…`: a store from a URL. The account key
//! comes from the environment, never from the URL (URLs end up in logs and shell histories).

use std::sync::Arc;

use azure_data_cosmos::{AccountReference, CosmosClientBuilder, RoutingStrategy};
use sekiban_core::{BlobStore, ObjectBlobStore, Result, StoreError};

use crate::{AzureBlobConfig, CosmosConfig, CosmosStore, account, azure_blobs, install_tls};

/// The environment variable the account key is read from unless `key_env=` names another.
pub const KEY_ENV: &str = "SEKIBAN_COSMOS_KEY";

/// What a `cosmos://` URL says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CosmosUrl {
    /// The account endpoint (`https://HOST[:PORT]/`, or `http://` with `tls=false`).
    pub endpoint: String,
    /// Database and containers.
    pub config: CosmosConfig,
    /// The environment variable holding the account key.
    pub key_env: String,
    /// Without a key in `key_env`: the Entra ID credential (`credential=managed`, `workload` or
    /// `cli`).
    pub credential: Option<String>,
    /// The region the client prefers (`region=`, default `East US`; any region of the account
    /// works, the SDK routes to the nearest).
    pub region: String,
    /// Where large snapshots go: an Azure Blob container (`blob_account=`, `blob_container=`,
    /// `blob_endpoint=`, `blob_key_env=`)...
    pub blob: Option<AzureBlobConfig>,
    /// ...or a local directory (`blobs=DIR`, for development).
    pub blobs_dir: Option<String>,
}

const PARAMETERS: &[&str] = &[
    "leases",
    "partition_key",
    "key_env",
    "credential",
    "region",
    "tls",
    "blob_account",
    "blob_container",
    "blob_endpoint",
    "blob_key_env",
    "blobs",
    "retries",
];

impl CosmosUrl {
    /// Parses a `cosmos://` URL.
    ///
    /// ```
    /// use sekiban_cosmos::CosmosUrl;
    /// let u = CosmosUrl::parse("cosmos://acme.documents.azure.com/sekiban/events?blob_account=acmesnap&blob_container=snapshots").unwrap();
    /// assert_eq!(u.endpoint, "https://acme.documents.azure.com/");
    /// assert_eq!((u.config.database.as_str(), u.config.container.as_str()), ("sekiban", "events"));
    /// assert_eq!(u.blob.unwrap().container, "snapshots");
    /// assert!(CosmosUrl::parse("cosmos://acme.documents.azure.com/only-a-database").is_err());
    /// ```
    pub fn parse(url: &str) -> Result<Self> {
        let bad = |why: String| {
            StoreError::invalid(format!(
                "{url:?}: {why}; the form is cosmos://ACCOUNT-HOST[:PORT]/DATABASE/CONTAINER[?leases=NAME&partition_key=/T,/S&key_env=VAR&credential=managed|workload|cli&region=R&tls=false&blob_account=A&blob_container=C&blob_endpoint=URL&blob_key_env=VAR&blobs=DIR&retries=N]"
            ))
        };
        let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if !parsed.scheme().eq_ignore_ascii_case("cosmos")
            && !parsed.scheme().eq_ignore_ascii_case("cosmosdb")
        {
            return Err(bad(format!("scheme {} is not cosmos", parsed.scheme())));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad(
                "a user or key in the URL; give the key in the environment (key_env=)".into(),
            ));
        }
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no account host".into()))?;
        let segments: Vec<String> = parsed
            .path_segments()
            .map(|s| {
                s.map(|p| percent_decode(p).map_err(|e| bad(format!("path segment {p:?}: {e}"))))
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?
            .unwrap_or_default()
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        let [database, container] = segments.as_slice() else {
            return Err(bad(format!(
                "the path has {} part(s); name the database and the container",
                segments.len()
            )));
        };
        let mut config = CosmosConfig::new(database.clone(), container.clone());
        let mut key_env = KEY_ENV.to_owned();
        let mut credential = None;
        let mut region = "East US".to_owned();
        let mut tls = true;
        let (mut blob_account, mut blob_container, mut blob_endpoint, mut blob_key_env) =
            (None, None, None, None);
        let mut blobs_dir = None;
        for (k, v) in parsed.query_pairs() {
            let v = v.into_owned();
            match k.as_ref() {
                "leases" => config.leases = v,
                "partition_key" => match v.split_once(',') {
                    Some((t, s)) => config.partition_key_paths = [t.to_owned(), s.to_owned()],
                    None => {
                        return Err(bad(format!(
                            "partition_key={v}: name the tenant's path and the stream's, /a,/b"
                        )));
                    }
                },
                "key_env" => key_env = v,
                "credential" => {
                    if !matches!(v.as_str(), "managed" | "workload" | "cli") {
                        return Err(bad(format!(
                            "credential={v}: say managed (a managed identity), workload (a workload identity) or cli (the Azure CLI's login)"
                        )));
                    }
                    credential = Some(v);
                }
                "region" => region = v,
                "tls" => {
                    tls = match v.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(bad(format!("tls={v}: say true or false"))),
                    }
                }
                "blob_account" => blob_account = Some(v),
                "blob_container" => blob_container = Some(v),
                "blob_endpoint" => blob_endpoint = Some(v),
                "blob_key_env" => blob_key_env = Some(v),
                "blobs" => blobs_dir = Some(v),
                "retries" => {
                    config.retry_attempts = Some(
                        v.parse()
                            .ok()
                            .filter(|n| (1..=100).contains(n))
                            .ok_or_else(|| {
                                bad(format!(
                                    "retries={v} is not a number of attempts in 1..=100"
                                ))
                            })?,
                    );
                }
                other => {
                    return Err(bad(format!(
                        "unknown parameter {other:?} (known: {})",
                        PARAMETERS.join(", ")
                    )));
                }
            }
        }
        config.validate()?;
        let blob = match (blob_account, blob_container) {
            (Some(account), Some(container)) => {
                let mut b = AzureBlobConfig::new(account, container);
                b.endpoint = blob_endpoint;
                // The account's Entra ID credential serves the blobs too, unless a key is named.
                if blob_key_env.is_none() {
                    b.credential = credential.clone();
                }
                b.key =
                    match blob_key_env {
                        Some(var) => Some(std::env::var(&var).map_err(|_| {
                            bad(format!("blob_key_env={var}, but {var} is not set"))
                        })?),
                        None => None,
                    };
                Some(b)
            }
            (None, None) if blob_endpoint.is_none() && blob_key_env.is_none() => None,
            _ => {
                return Err(bad(
                    "blob_account and blob_container go together (blob_endpoint and blob_key_env need them)"
                        .into(),
                ));
            }
        };
        if blob.is_some() && blobs_dir.is_some() {
            return Err(bad(
                "an Azure Blob container and a blobs directory; snapshots go to one of them".into(),
            ));
        }
        let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
        let scheme = if tls { "https" } else { "http" };
        Ok(CosmosUrl {
            endpoint: format!("{scheme}://{host}{port}/"),
            config,
            key_env,
            credential,
            region,
            blob,
            blobs_dir,
        })
    }
}

fn percent_decode(s: &str) -> std::result::Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or("a % without two hex digits")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "a % without two hex digits")?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "not UTF-8 once decoded".to_owned())
}

impl CosmosStore {
    /// Opens the store a `cosmos://` URL names ([`CosmosUrl`]): a client with the account key
    /// from the environment, an account with multi-region writes refused (its properties read
    /// first), the containers checked (they must exist: `init` creates them), and large
    /// snapshots offloaded to the Blob container or directory the URL names.
    pub async fn open(url: &str) -> Result<Self> {
        let (client, parsed) = Self::client_for(url).await?;
        let blobs: Arc<dyn BlobStore> = match (&parsed.blob, &parsed.blobs_dir) {
            (Some(b), _) => Arc::new(azure_blobs(b)?),
            (None, Some(dir)) => Arc::new(ObjectBlobStore::create_dir(dir)?),
            (None, None) => return Self::connect(client, parsed.config).await,
        };
        Self::connect_with_blobs(client, parsed.config, blobs).await
    }

    /// Creates the database and containers a `cosmos://` URL names (`sekiban init`).
    pub async fn init_url(url: &str) -> Result<crate::Init> {
        let (client, parsed) = Self::client_for(url).await?;
        Self::init(&client, &parsed.config).await
    }

    async fn client_for(url: &str) -> Result<(azure_data_cosmos::CosmosClient, CosmosUrl)> {
        let (parsed, auth) = Self::auth_for(url)?;
        account::check_write_regions(&parsed.endpoint, &auth).await?;
        let client = Self::client_with(url, &parsed, auth).await?;
        Ok((client, parsed))
    }

    /// The URL parsed, and the credential it names (the key from the environment, or Entra ID).
    pub(crate) fn auth_for(url: &str) -> Result<(CosmosUrl, account::Auth)> {
        let parsed = CosmosUrl::parse(url)?;
        install_tls();
        let auth = match (std::env::var(&parsed.key_env), parsed.credential.as_deref()) {
            (_, Some(kind)) => account::Auth::Entra(entra(kind).map_err(|e| {
                StoreError::invalid(format!("{url:?}: the {kind} credential: {e}"))
            })?),
            (Ok(key), None) => account::Auth::Key(key),
            (Err(_), None) => {
                return Err(StoreError::invalid(format!(
                    "{url:?}: the account key is read from {}, which is not set; or name an Entra ID credential (credential=managed, workload or cli)",
                    parsed.key_env
                )));
            }
        };
        Ok((parsed, auth))
    }

    /// A client on the account `parsed` names, with `auth`.
    pub(crate) async fn client_with(
        url: &str,
        parsed: &CosmosUrl,
        auth: account::Auth,
    ) -> Result<azure_data_cosmos::CosmosClient> {
        let endpoint: azure_data_cosmos::AccountEndpoint =
            parsed.endpoint.parse().map_err(|e| {
                StoreError::invalid(format!("{url:?}: endpoint {}: {e}", parsed.endpoint))
            })?;
        let account = match auth {
            account::Auth::Key(key) => AccountReference::with_authentication_key(endpoint, key),
            account::Auth::Entra(credential) => {
                AccountReference::with_credential(endpoint, credential)
            }
        };
        let client = CosmosClientBuilder::new()
            .build(
                account,
                RoutingStrategy::ProximityTo(parsed.region.clone().into()),
            )
            .await
            .map_err(|e| {
                crate::conn::error(&format!("reach the account at {}", parsed.endpoint), e)
            })?;
        Ok(client)
    }
}

/// An Entra ID credential of a kind `credential=` names, configured from the environment (as
/// `azure_identity` reads it: `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, `AZURE_FEDERATED_TOKEN_FILE`).
fn entra(
    kind: &str,
) -> azure_core::Result<std::sync::Arc<dyn azure_core::credentials::TokenCredential>> {
    Ok(match kind {
        // A user-assigned identity when AZURE_CLIENT_ID names one; else the system-assigned.
        "managed" => azure_identity::ManagedIdentityCredential::new(Some(
            azure_identity::ManagedIdentityCredentialOptions {
                user_assigned_id: std::env::var("AZURE_CLIENT_ID")
                    .ok()
                    .filter(|id| !id.is_empty())
                    .map(azure_identity::UserAssignedId::ClientId),
                ..Default::default()
            },
        ))?,
        "workload" => azure_identity::WorkloadIdentityCredential::new(None)?,
        _ => azure_identity::DeveloperToolsCredential::new(None)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = CosmosUrl::parse(
            "cosmos://127.0.0.1:8081/db/events?tls=false&leases=cp&region=West%20Europe&key_env=K",
        )
        .unwrap();
        assert_eq!(u.endpoint, "http://127.0.0.1:8081/");
        assert_eq!(u.config.leases, "cp");
        assert_eq!(u.region, "West Europe");
        assert_eq!(u.key_env, "K");
        let u = CosmosUrl::parse("cosmos://h/db/c?partition_key=/tenant,/stream").unwrap();
        assert_eq!(u.config.partition_key_paths, ["/tenant", "/stream"]);
        let u = CosmosUrl::parse("cosmos://h/db/c?credential=workload").unwrap();
        assert_eq!(u.credential.as_deref(), Some("workload"));
        // The account's credential serves the blob container too, unless a key is named.
        let u = CosmosUrl::parse("cosmos://h/db/c?credential=cli&blob_account=a&blob_container=s")
            .unwrap();
        assert_eq!(u.blob.unwrap().credential.as_deref(), Some("cli"));
        // (PATH stands in for a variable holding a key: it is always set.)
        let u = CosmosUrl::parse(
            "cosmos://h/db/c?credential=cli&blob_account=a&blob_container=s&blob_key_env=PATH",
        )
        .unwrap();
        let b = u.blob.unwrap();
        assert_eq!(b.credential, None);
        assert_eq!(b.key, std::env::var("PATH").ok());
        let u = CosmosUrl::parse("cosmos://h/d%20b/ev?blobs=/tmp/x").unwrap();
        assert_eq!(u.config.database, "d b");
        assert_eq!(u.blobs_dir.as_deref(), Some("/tmp/x"));
        assert_eq!(u.config.retry_attempts, None);
        let u = CosmosUrl::parse("cosmos://h/db/c?retries=3").unwrap();
        assert_eq!(u.config.retry_attempts, Some(3));
        for bad in [
            "cosmos://h/db/c?retries=0",
            "cosmos://h/db/c?retries=many",
            "cosmos://h/db",
            "cosmos://h/db/c/extra",
            "cosmos:///db/c",
            "cosmos://user:key@h/db/c",
            "cosmos://h/db/c?nosuch=1",
            "cosmos://h/db/c?tls=maybe",
            "cosmos://h/db/c?credential=password",
            "cosmos://h/db/c?partition_key=/t",
            "cosmos://h/db/c?partition_key=/t,/v",
            "cosmos://h/db/c?partition_key=/a/b,/c",
            "cosmos://h/db/c?blob_account=a",
            "cosmos://h/db/c?blob_account=a&blob_container=c&blobs=/tmp",
            "cosmos://h/db/c?leases=c",
            "cosmos://h/d%2Fb/c",
            "postgres://h/db/c",
        ] {
            assert!(CosmosUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
