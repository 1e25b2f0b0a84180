//! What the PostgreSQL test binaries share: the server from `SEKIBAN_POSTGRES_URL`, a schema
//! per test run, and a harness.
#![allow(dead_code)]

use std::sync::Arc;

use sekiban_conformance::Harness;
use sekiban_core::{BlobStore, ObjectBlobStore};
use sekiban_postgres::{PostgresConfig, PostgresEventStore};

/// The server URL: `SEKIBAN_POSTGRES_URL`; else, with the `testcontainers` feature, a container
/// started for this test process; else a failure that names the command that provides one.
pub fn url() -> String {
    match std::env::var("SEKIBAN_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        #[cfg(feature = "testcontainers")]
        _ => container_url(),
        #[cfg(not(feature = "testcontainers"))]
        _ => panic!(
            "SEKIBAN_POSTGRES_URL is not set: run the tests with `bash scripts/test.sh`, which finds or starts a \
             PostgreSQL server (installed by `bash scripts/setup.sh`), or set it to a server you own, e.g. \
             postgres://postgres@127.0.0.1:5432/test"
        ),
    }
}

/// One container per test process, started on first use. It is left running when the process
/// exits (nothing drops a static): remove it with `docker rm -f`.
#[cfg(feature = "testcontainers")]
fn container_url() -> String {
    static CONTAINER: std::sync::OnceLock<sekiban_postgres::testcontainer::PostgresContainer> =
        std::sync::OnceLock::new();
    CONTAINER
        .get_or_init(|| {
            std::thread::spawn(|| {
                let rt = tokio::runtime::Runtime::new().expect("a runtime");
                rt.block_on(sekiban_postgres::testcontainer::start())
            })
            .join()
            .expect("the container thread")
            .unwrap_or_else(|e| panic!("{e}"))
        })
        .url
        .clone()
}

/// The schema of this test run (`SEKIBAN_POSTGRES_SCHEMA`, which `scripts/test.sh` makes unique
/// per run and drops afterwards), else `sekiban_test`.
pub fn schema() -> String {
    std::env::var("SEKIBAN_POSTGRES_SCHEMA").unwrap_or_else(|_| "sekiban_test".into())
}

/// A configuration for this run's schema with a small pool.
pub fn config() -> PostgresConfig {
    let mut c = PostgresConfig::from_url(&url()).unwrap_or_else(|e| panic!("{e}"));
    c.schema = schema();
    c.pool_size = 4;
    c
}

/// A store on this run's schema (migrated first), offloading snapshots to `blobs`.
pub async fn store_with(blobs: Arc<dyn BlobStore>) -> PostgresEventStore {
    open(config(), blobs).await
}

/// A store with `config` (its schema migrated first), offloading snapshots to `blobs`.
pub async fn open(config: PostgresConfig, blobs: Arc<dyn BlobStore>) -> PostgresEventStore {
    PostgresEventStore::migrate(&config)
        .await
        .unwrap_or_else(|e| panic!("migrate: {e}"));
    PostgresEventStore::connect_with_blobs(config, blobs)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"))
}

/// A conformance harness.
pub async fn harness() -> Harness {
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::memory());
    let store = store_with(blobs.clone()).await;
    Harness::new(Arc::new(store), blobs)
}

/// A plain connection of its own to the test server, outside any store.
pub async fn raw() -> sekiban_postgres::tokio_postgres::Client {
    let (client, connection) =
        sekiban_postgres::tokio_postgres::connect(&url(), sekiban_postgres::tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
    tokio::spawn(connection);
    client
}

/// The fault rate of the suite's fault profile: each of four faults (a reply dropped after the
/// server carried the request out, a serialization failure, a reply cut after two messages, a
/// connection closed before the request) hits this share of requests.
pub const PROFILE_RATE: f64 = 0.02;

/// Attempts per operation in the fault profile. An attempt can fail at its statement and, after
/// a fault broke the connection, at the new connection's set-up (about one in six at 8 % a
/// request): answered `Unavailable` once in (1/6)⁸ ≈ 6·10⁻⁷ operations.
pub const PROFILE_ATTEMPTS: u32 = 8;

/// A conformance harness whose store reaches the server through a fault proxy (one per test
/// process, `sekiban-faults`) injecting faults into [`PROFILE_RATE`] of requests, seeded by
/// `SEKIBAN_FAULT_SEED` (printed).
pub async fn faulty_harness() -> Harness {
    use sekiban_faults::{Fault, Faults, PgProxy, Rule};
    static PROXY: tokio::sync::OnceCell<PgProxy> = tokio::sync::OnceCell::const_new();
    let proxy = PROXY
        .get_or_init(|| async {
            let parsed = url::Url::parse(&url()).expect("SEKIBAN_POSTGRES_URL is a URL");
            let upstream = format!(
                "{}:{}",
                parsed.host_str().unwrap_or("127.0.0.1"),
                parsed.port().unwrap_or(5432)
            );
            PgProxy::start(&upstream, Faults::new(Faults::seed_from_env()))
                .await
                .expect("start the fault proxy")
        })
        .await;
    // The schema is made and the store opened without faults: the profile is about the
    // operations.
    proxy.faults().clear();
    let mut config = config();
    PostgresEventStore::migrate(&config)
        .await
        .unwrap_or_else(|e| panic!("migrate: {e}"));
    config.url = proxy.url(&config.url);
    config.retry = sekiban_core::backend::RetryBudget::attempts(PROFILE_ATTEMPTS);
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::memory());
    let store = PostgresEventStore::connect_with_blobs(config, blobs.clone())
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let serialization = Fault::Refuse {
        code: "40001".into(),
    };
    proxy.faults().set(
        [
            Fault::DropReply,
            serialization,
            Fault::CutReply { after: 2 },
            Fault::Close,
        ]
        .into_iter()
        .map(|f| Rule::every(f).rate(PROFILE_RATE))
        .collect(),
    );
    Harness::new(Arc::new(store), blobs).with_faults()
}
