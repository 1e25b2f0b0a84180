//! `PostgresEventStore::diagnose` on the test server: a schema not migrated yet fails (and is
//! not migrated by it), a migrated one passes, and a role with only `SELECT` fails the
//! permissions check, naming what it lacks.

use sekiban_core::doctor::{Diagnosis, Verdict};
use sekiban_postgres::PostgresEventStore;
use sekiban_postgres::tokio_postgres::config::Host;

mod common;

fn verdict(d: &Diagnosis, check: &str) -> Verdict {
    d.get(check)
        .unwrap_or_else(|| panic!("no {check} finding in\n{d}"))
        .verdict
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_is_checked_without_being_migrated_and_a_role_without_writes_fails() {
    let mut config = common::config();
    // A schema of its own (scripts/test.sh drops it with the run's others).
    config.schema = format!("{}_doctor", common::schema());
    let raw = common::raw().await;
    raw.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", config.schema))
        .await
        .expect("drop");

    let d = PostgresEventStore::diagnose(&config).await;
    assert_eq!(verdict(&d, "server"), Verdict::Ok, "{d}");
    assert_eq!(verdict(&d, "schema"), Verdict::Failed, "{d}");
    assert!(
        d.get("schema").unwrap().detail.contains("sekiban init"),
        "{d}"
    );
    assert_eq!(verdict(&d, "permissions"), Verdict::Failed, "{d}");
    assert_eq!(verdict(&d, "snapshot blobs"), Verdict::Warning, "{d}");
    let exists: bool = raw
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &[&config.schema],
        )
        .await
        .expect("query")
        .get(0);
    assert!(!exists, "diagnose created the schema");

    PostgresEventStore::migrate(&config).await.expect("migrate");
    let d = PostgresEventStore::diagnose(&config).await;
    assert!(!d.failed(), "{d}");
    assert_eq!(verdict(&d, "schema"), Verdict::Ok, "{d}");
    assert_eq!(verdict(&d, "permissions"), Verdict::Ok, "{d}");

    // A role that may only read.
    let role = format!("sekiban_doctor_{}", std::process::id());
    raw.batch_execute(&format!(
        "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN; \
         GRANT USAGE ON SCHEMA {s} TO {role}; GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {role}",
        s = config.schema
    ))
    .await
    .expect("create the role");
    let server: sekiban_postgres::tokio_postgres::Config = config.url.parse().expect("URL");
    let host = match server.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        other => panic!("a TCP host in the test URL, not {other:?}"),
    };
    let port = server.get_ports().first().copied().unwrap_or(5432);
    let db = server.get_dbname().unwrap_or("postgres");
    let mut reader = config.clone();
    reader.url = format!("postgres://{role}@{host}:{port}/{db}");
    let d = PostgresEventStore::diagnose(&reader).await;
    raw.batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await
        .expect("drop the role");
    assert_eq!(verdict(&d, "permissions"), Verdict::Failed, "{d}");
    let detail = &d.get("permissions").unwrap().detail;
    assert!(detail.contains("INSERT") && detail.contains(&role), "{d}");
    assert_eq!(verdict(&d, "schema"), Verdict::Ok, "{d}");
}
