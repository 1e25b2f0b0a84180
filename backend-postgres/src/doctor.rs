//! `PostgresEventStore::diagnose`: a deployed schema checked against what the store needs,
//! without migrating or writing anything.

use std::sync::Arc;

use sekiban_core::backend::CostCounter;
use sekiban_core::doctor::Diagnosis;

use crate::sql::{Db, MIGRATIONS};
use crate::{PostgresConfig, PostgresEventStore, check_schema};

impl PostgresEventStore {
    /// Checks the server and schema `config` names: the server answers; the schema exists at
    /// the version this code needs (nothing is migrated: `sekiban init` or
    /// `infra/postgres/schema.sql` does that); the role may use the schema and has the privileges
    /// the store needs on each of its tables and sequences; where large snapshots go.
    /// `sekiban doctor` prints the result.
    ///
    /// ```no_run
    /// # async fn run() -> sekiban_core::Result<()> {
    /// use sekiban_postgres::{PostgresConfig, PostgresEventStore};
    /// let config = PostgresConfig::from_url("postgres://app@db.internal/events?schema=sekiban")?;
    /// let d = PostgresEventStore::diagnose(&config).await;
    /// println!("{d}");
    /// # Ok(()) }
    /// ```
    pub async fn diagnose(config: &PostgresConfig) -> Diagnosis {
        let mut d = Diagnosis::default();
        let schema = &config.schema;
        if let Err(e) = check_schema(schema) {
            d.fail("configuration", e.to_string());
            return d;
        }
        let db = match Db::connect(config, Arc::new(CostCounter::new())) {
            Ok(db) => db,
            Err(e) => {
                d.fail("server", e.to_string());
                return d;
            }
        };
        let p = match db.privileges(schema).await {
            Ok(p) => p,
            Err(e) => {
                d.fail("server", e.to_string());
                return d;
            }
        };
        d.ok(
            "server",
            format!(
                "PostgreSQL {} answers, as role {}",
                p.server_version, p.role
            ),
        );
        let latest = MIGRATIONS.last().map_or(0, |m| m.0);
        match db.check_server(schema).await {
            Ok(_) => d.ok(
                "schema",
                format!("{schema} is at version {latest}, the one this code needs"),
            ),
            Err(e) => d.fail(
                "schema",
                format!("{e}: `sekiban init` or infra/postgres/schema.sql creates or migrates it"),
            ),
        }
        if !p.schema_usage {
            d.fail(
                "permissions",
                format!("role {} may not use schema {schema} (GRANT USAGE)", p.role),
            );
        } else if p.missing.is_empty() {
            d.ok(
                "permissions",
                format!(
                    "role {} has what the store needs on the schema's {} tables and sequences",
                    p.role, p.relations
                ),
            );
        } else {
            let lacks: Vec<String> = p
                .missing
                .iter()
                .map(|(rel, privileges)| format!("{rel} ({})", privileges.join(", ")))
                .collect();
            d.fail(
                "permissions",
                format!("role {} lacks {}", p.role, lacks.join("; ")),
            );
        }
        match &config.blob_dir {
            Some(dir) => d.ok(
                "snapshot blobs",
                format!("the directory {} (blobs=)", dir.display()),
            ),
            None => d.warn(
                "snapshot blobs",
                "no blobs=DIR: a snapshot over the inline limit is kept in the process's memory and lost when it exits",
            ),
        }
        d
    }
}
