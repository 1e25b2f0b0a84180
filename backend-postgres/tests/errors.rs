//! Bad input gives a clear error that says what to do.

mod common;

use std::time::Duration;

use sekiban_core::StoreError;
use sekiban_postgres::{PostgresConfig, PostgresEventStore};

fn with(url: &str, schema: &str) -> PostgresConfig {
    let mut c = PostgresConfig::from_url(url).unwrap_or_else(|e| panic!("{e}"));
    c.schema = schema.into();
    c.connect_timeout = std::time::Duration::from_secs(3);
    c.pool_size = 1;
    c
}

fn invalid_saying(r: Result<PostgresEventStore, StoreError>, words: &str) {
    match r {
        Err(e @ StoreError::InvalidInput { .. }) => {
            assert!(e.to_string().contains(words), "{e}")
        }
        other => panic!("expected InvalidInput saying {words:?}, got {other:?}"),
    }
}

#[test]
fn malformed_urls_are_refused() {
    for (url, words) in [
        ("mysql://x@127.0.0.1/db", "not a postgres:// URL"),
        ("postgres://x@127.0.0.1/db?schema=Drop-Table", "schema name"),
        ("postgres://x@127.0.0.1/db?pool=0", "pool=0"),
        ("postgres://x@127.0.0.1/db?notify_ms=soon", "notify_ms=soon"),
        ("postgres://x@127.0.0.1:notaport/db", "PostgreSQL URL"),
    ] {
        let e = PostgresConfig::from_url(url).expect_err(url);
        assert!(
            matches!(e, StoreError::InvalidInput { .. }) && e.to_string().contains(words),
            "{url}: {e}"
        );
    }
    for (url, interval) in [
        (
            "postgres://x@127.0.0.1/db",
            Some(sekiban_postgres::DEFAULT_NOTIFY_INTERVAL),
        ),
        (
            "postgres://x@127.0.0.1/db?notify_ms=20",
            Some(Duration::from_millis(20)),
        ),
        ("postgres://x@127.0.0.1/db?notify_ms=off", None),
    ] {
        let c = PostgresConfig::from_url(url).expect(url);
        assert_eq!(c.notify_interval, interval, "{url}");
        assert!(!c.url.contains("notify_ms"), "{url} → {}", c.url);
    }
    let c = PostgresConfig::from_url("postgres://app:hunter2@127.0.0.1/db").expect("valid");
    assert!(
        !format!("{c:?}").contains("hunter2"),
        "Debug hides the password"
    );
}

#[tokio::test]
async fn a_server_that_is_down_is_unavailable() {
    let c = with("postgres://postgres@127.0.0.1:1/test", "sekiban");
    let e = PostgresEventStore::connect(c)
        .await
        .expect_err("nothing listens on port 1");
    assert!(e.is_transient(), "{e:?}");
    assert!(e.to_string().contains("running and reachable"), "{e}");
}

#[tokio::test]
async fn an_unknown_user_or_database_says_so() {
    let base = common::url();
    let host = base
        .split_once('@')
        .map_or("127.0.0.1:5432/test", |(_, h)| h);
    let host_only = host.split('/').next().unwrap_or("127.0.0.1:5432");
    let unknown_user = format!("postgres://no_such_user_x:wrong@{host_only}/test");
    invalid_saying(
        PostgresEventStore::connect(with(&unknown_user, "sekiban")).await,
        "user and password",
    );
    let unknown_db = format!("postgres://postgres@{host_only}/no_such_database_x");
    invalid_saying(
        PostgresEventStore::connect(with(&unknown_db, "sekiban")).await,
        "database does not exist",
    );
}

/// A schema never migrated is `NotInitialized` (the CLI adds the `sekiban init` hint).
#[tokio::test]
async fn a_missing_schema_is_not_initialized() {
    let c = with(&common::url(), "sekiban_never_migrated");
    match PostgresEventStore::connect(c).await {
        Err(e @ StoreError::NotInitialized { .. }) => {
            assert!(e.to_string().contains("sekiban_never_migrated"), "{e}");
            assert!(e.to_string().contains("migrate"), "{e}");
        }
        other => panic!("expected NotInitialized, got {other:?}"),
    }
}
