//! The one place a store URL becomes a store.
//!
//! Each backend parses its own URLs (`MemoryStore::from_url`, `SqliteEventStore::from_url`); this
//! module only reads the scheme and hands the whole URL to the backend that owns it.

use std::sync::Arc;

use sekiban_core::{BlobStore, MemoryStore, Store, StoreError};

/// A store opened from a URL, with the blob store its large snapshots are offloaded to.
#[derive(Clone, Debug)]
pub struct OpenedStore {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The blob store the store offloads large snapshots to.
    pub blobs: Arc<dyn BlobStore>,
    /// Which backend: `"memory"`, `"sqlite"` or `"postgres"`.
    pub kind: &'static str,
}

#[cfg(feature = "sqlite")]
macro_rules! sqlite_urls {
    () => {
        ", sqlite:///abs/path.db, sqlite://rel/path.db, sqlite::memory: \
         (sqlite parameters: synchronous=full|normal, busy_timeout_ms=N, readers=N, blobs=DIR, \
         wal_limit_kib=N, watch_ms=N|off)"
    };
}
#[cfg(not(feature = "sqlite"))]
macro_rules! sqlite_urls {
    () => {
        " (this build has no `sqlite` feature)"
    };
}
#[cfg(feature = "postgres")]
macro_rules! postgres_urls {
    () => {
        ", postgres://user[:password]@host[:port]/database (or postgresql://; \
         postgres parameters: schema=NAME, pool=N, connect_timeout_ms=N, notify_ms=N|off, blobs=DIR; \
         `sekiban init` migrates the schema)"
    };
}
#[cfg(not(feature = "postgres"))]
macro_rules! postgres_urls {
    () => {
        " (this build has no `postgres` feature)"
    };
}

#[cfg(feature = "dynamodb")]
macro_rules! dynamodb_urls {
    () => {
        ", dynamodb://TABLE (dynamodb parameters: region=R, endpoint=URL, bucket=B, \
         s3_endpoint=URL, blobs=DIR; `sekiban init` creates the table and the bucket)"
    };
}
#[cfg(not(feature = "dynamodb"))]
macro_rules! dynamodb_urls {
    () => {
        " (this build has no `dynamodb` feature)"
    };
}

#[cfg(feature = "cosmos")]
macro_rules! cosmos_urls {
    () => {
        ", cosmos://ACCOUNT-HOST[:PORT]/DATABASE/CONTAINER (cosmos parameters: key_env=VAR \
         (default SEKIBAN_COSMOS_KEY), credential=managed|workload|cli (Entra ID, without a key), region=R, leases=NAME, \
         partition_key=/T,/S, tls=false, blob_account=A, \
         blob_container=C, blob_endpoint=URL, blob_key_env=VAR, blobs=DIR; `sekiban init` \
         creates the database and containers)"
    };
}
#[cfg(not(feature = "cosmos"))]
macro_rules! cosmos_urls {
    () => {
        " (this build has no `cosmos` feature)"
    };
}

/// The URL forms this build opens, for help texts and error messages.
macro_rules! supported_urls {
    () => {
        concat!(
            "memory://[?blobs=DIR&partitions=N] (this process only)",
            sqlite_urls!(),
            postgres_urls!(),
            dynamodb_urls!(),
            cosmos_urls!(),
        )
    };
}

/// The URL forms this build opens, for help texts and error messages.
pub fn supported_urls() -> &'static str {
    supported_urls!()
}

/// `--store`'s long help: every URL form this build opens.
pub const STORE_HELP: &str = concat!(
    "The store to use. URL forms: ",
    supported_urls!(),
    ". A SQLite file is created with its schema when missing; its directory must exist"
);

/// Every scheme [`open_store`] opens in a build with every backend feature (the default): the
/// help and `cli/README.md` name each, which a test keeps so.
pub const SCHEMES: &[&str] = &[
    "memory",
    "sqlite",
    "postgres",
    "postgresql",
    "dynamodb",
    "cosmos",
];

/// The URL's scheme: the letters before the first `:`, when they form a scheme of at least two
/// characters (a single letter is a Windows drive, not a scheme).
fn scheme(url: &str) -> Option<&str> {
    let (head, _) = url.split_once(':')?;
    let mut chars = head.chars();
    let first = chars.next()?;
    (head.len() >= 2
        && first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(head)
}

fn unusable(why: String) -> StoreError {
    StoreError::invalid(format!("{why}; this build opens {}", supported_urls()))
}

/// Opens the store a URL names:
///
/// * `memory://`, `memory://?blobs=DIR&partitions=N` — [`MemoryStore::from_url`]: everything
///   in this process, gone when it exits;
/// * `sqlite:…` — `SqliteEventStore::from_url` (cargo feature `sqlite`, on by default): a file
///   (created with its schema, or migrated, when opened) or `sqlite::memory:`;
/// * `postgres://…` — `PostgresEventStore::from_url` (cargo feature `postgres`, on by default):
///   a migrated schema (`sekiban init` migrates it);
/// * `dynamodb://TABLE…` — `DynamoDbTable::open` (cargo feature `dynamodb`, on by default): a
///   table `sekiban init` created;
/// * `cosmos://ACCOUNT-HOST/DATABASE/CONTAINER…` — `CosmosStore::open` (cargo feature `cosmos`,
///   on by default): containers `sekiban init` created, the account key from the environment.
///
/// A URL without a scheme, an unknown scheme, or a malformed URL is
/// [`StoreError::InvalidInput`] naming the forms this build supports.
pub async fn open_store(url: &str) -> Result<OpenedStore, StoreError> {
    let Some(scheme) = scheme(url) else {
        if url.trim().is_empty() {
            return Err(unusable("the store URL is empty".into()));
        }
        return Err(unusable(format!(
            "store URL {url:?} has no scheme; for a SQLite file write sqlite://{url}"
        )));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "memory" => {
            let store = MemoryStore::from_url(url)?;
            let blobs = store.blobs();
            Ok(OpenedStore {
                store: Arc::new(store),
                blobs,
                kind: "memory",
            })
        }
        "sqlite" => open_sqlite(url).await,
        "postgres" | "postgresql" => open_postgres(url).await,
        "dynamodb" => open_dynamodb(url).await,
        "cosmos" | "cosmosdb" => open_cosmos(url).await,
        other => Err(unusable(format!("unknown store URL scheme {other:?}"))),
    }
}

#[cfg(feature = "sqlite")]
async fn open_sqlite(url: &str) -> Result<OpenedStore, StoreError> {
    let store = sekiban_sqlite::SqliteEventStore::from_url(url).await?;
    let blobs = store.blobs();
    Ok(OpenedStore {
        store: Arc::new(store),
        blobs,
        kind: "sqlite",
    })
}

#[cfg(not(feature = "sqlite"))]
async fn open_sqlite(_url: &str) -> Result<OpenedStore, StoreError> {
    Err(unusable(
        "this sekiban was built without the `sqlite` cargo feature".into(),
    ))
}

#[cfg(feature = "postgres")]
async fn open_postgres(url: &str) -> Result<OpenedStore, StoreError> {
    let store = sekiban_postgres::PostgresEventStore::from_url(url).await?;
    let blobs = store.blobs();
    Ok(OpenedStore {
        store: Arc::new(store),
        blobs,
        kind: "postgres",
    })
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(_url: &str) -> Result<OpenedStore, StoreError> {
    Err(unusable(
        "this sekiban was built without the `postgres` cargo feature".into(),
    ))
}

#[cfg(feature = "dynamodb")]
async fn open_dynamodb(url: &str) -> Result<OpenedStore, StoreError> {
    let store = sekiban_dynamodb::DynamoDbTable::open(url).await?;
    let blobs = store.blobs();
    Ok(OpenedStore {
        store: Arc::new(store),
        blobs,
        kind: "dynamodb",
    })
}

#[cfg(not(feature = "dynamodb"))]
async fn open_dynamodb(_url: &str) -> Result<OpenedStore, StoreError> {
    Err(unusable(
        "this sekiban was built without the `dynamodb` cargo feature".into(),
    ))
}

#[cfg(feature = "cosmos")]
async fn open_cosmos(url: &str) -> Result<OpenedStore, StoreError> {
    let store = sekiban_cosmos::CosmosStore::open(url).await?;
    let blobs = store.blobs();
    Ok(OpenedStore {
        store: Arc::new(store),
        blobs,
        kind: "cosmos",
    })
}

#[cfg(not(feature = "cosmos"))]
async fn open_cosmos(_url: &str) -> Result<OpenedStore, StoreError> {
    Err(unusable(
        "this sekiban was built without the `cosmos` cargo feature".into(),
    ))
}

/// Whether `url` names a Cosmos DB container.
pub fn is_cosmos(url: &str) -> bool {
    scheme(url)
        .is_some_and(|s| s.eq_ignore_ascii_case("cosmos") || s.eq_ignore_ascii_case("cosmosdb"))
}

/// Whether `url` names a DynamoDB table.
pub fn is_dynamodb(url: &str) -> bool {
    scheme(url).is_some_and(|s| s.eq_ignore_ascii_case("dynamodb"))
}

/// Whether `url` names a PostgreSQL store.
pub fn is_postgres(url: &str) -> bool {
    matches!(
        scheme(url).map(str::to_ascii_lowercase).as_deref(),
        Some("postgres" | "postgresql")
    )
}

/// Creates or migrates what the store at `url` needs (`sekiban init`); other stores create
/// theirs when opened.
pub async fn prepare_store(url: &str) -> Result<(), StoreError> {
    #[cfg(feature = "postgres")]
    if is_postgres(url) {
        let config = sekiban_postgres::PostgresConfig::from_url(url)?;
        return sekiban_postgres::PostgresEventStore::migrate(&config).await;
    }
    let _ = url;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        assert_eq!(scheme("memory://"), Some("memory"));
        assert_eq!(scheme("sqlite::memory:"), Some("sqlite"));
        assert_eq!(scheme("sqlite:///tmp/x.db"), Some("sqlite"));
        assert_eq!(scheme("nosuch://x"), Some("nosuch"));
        assert_eq!(scheme("/tmp/x.db"), None);
        assert_eq!(scheme("events.db"), None);
        assert_eq!(scheme("C:\\data\\x.db"), None);
        assert_eq!(scheme(""), None);
    }

    /// Every scheme of `SCHEMES` reaches a backend, and no other does.
    #[tokio::test]
    async fn every_listed_scheme_is_opened() {
        for s in SCHEMES {
            // Malformed on purpose: refused by the backend, not as an unknown scheme.
            let e = open_store(&format!("{s}://a b?nosuch=1"))
                .await
                .map(|o| o.kind);
            let Err(e) = e else { continue };
            assert!(
                !e.to_string().contains("unknown store URL scheme"),
                "{s}: {e}"
            );
        }
        let Err(e) = open_store("nosuch://x").await else {
            panic!("an unknown scheme must be refused")
        };
        assert!(e.to_string().contains("unknown store URL scheme"), "{e}");
    }

    #[tokio::test]
    async fn opening() {
        let m = open_store("memory://").await.map(|o| o.kind);
        assert!(matches!(m, Ok("memory")));
        for bad in [
            "",
            "nosuch://x",
            "/tmp/x.db",
            "dynamodb://t",
            "postgres://u@127.0.0.1:1/db?schema=Not-Valid",
            "memory://x",
        ] {
            let e = open_store(bad).await.map(|o| o.kind);
            assert!(
                matches!(e, Err(StoreError::InvalidInput { .. })),
                "{bad:?}: {e:?}"
            );
        }
        let Err(e) = open_store("/tmp/x.db").await else {
            panic!("a bare path must be refused")
        };
        assert!(e.to_string().contains("sqlite:///tmp/x.db"), "{e}");
    }
}
