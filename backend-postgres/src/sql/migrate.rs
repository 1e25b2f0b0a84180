//! The schema: its embedded, versioned migrations, applying them, and the check at start-up
//! that the schema is there at the version this code needs.

use sekiban_core::{OpKind, StoreError};
use tokio_postgres::Row;

use super::rows::{decode, get};
use super::{Db, Result};
use crate::error::Context;

/// Embedded, versioned migrations: (version, SQL with `{schema}`).
pub(crate) const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../../migrations/0001_init.sql")),
    (2, include_str!("../../migrations/0002_key_id.sql")),
];

/// The whole schema as one SQL script for the quoted schema `s`, in one transaction: what
/// `migrate` does to an empty database, for DBAs who apply SQL themselves.
pub(crate) fn schema_script(s: &str) -> String {
    let latest = MIGRATIONS.last().map_or(0, |m| m.0);
    let mut out = format!(
        "BEGIN;\n\nCREATE SCHEMA IF NOT EXISTS {s};\n\
         CREATE TABLE IF NOT EXISTS {s}.meta (key text PRIMARY KEY, value text NOT NULL);\n\
         INSERT INTO {s}.meta (key, value) VALUES ('schema_version', '0') ON CONFLICT DO NOTHING;\n"
    );
    for (version, sql) in MIGRATIONS {
        out.push_str(&format!("\n-- Migration {version}\n"));
        out.push_str(sql.replace("{schema}", s).trim_end());
        out.push('\n');
    }
    out.push_str(&format!(
        "\nUPDATE {s}.meta SET value = '{latest}' WHERE key = 'schema_version';\n\nCOMMIT;\n"
    ));
    out
}

impl Db {
    /// Creates or upgrades the schema in one transaction under an advisory lock.
    pub(crate) async fn migrate(&self, schema: &str) -> Result<i32> {
        let mut conn = self.client().await?;
        let tx = conn.client.transaction().await.ctx("begin the migration")?;
        self.costs.record(OpKind::Other, 0, 0);
        let s = &self.schema;
        let lock = "SELECT pg_advisory_xact_lock(hashtext('sekiban:' || $1))";
        tx.query(lock, &[&schema]).await.ctx("lock the migration")?;
        let setup = format!(
            "CREATE SCHEMA IF NOT EXISTS {s}; \
             CREATE TABLE IF NOT EXISTS {s}.meta (key text PRIMARY KEY, value text NOT NULL); \
             INSERT INTO {s}.meta (key, value) VALUES ('schema_version', '0') ON CONFLICT DO NOTHING"
        );
        tx.batch_execute(&setup).await.ctx("create the schema")?;
        let current = tx
            .query_one(
                &format!("SELECT value::int FROM {s}.meta WHERE key = 'schema_version'"),
                &[],
            )
            .await
            .ctx("read the schema version")?;
        let current: i32 = get(&current, 0)?;
        let latest = MIGRATIONS.last().map_or(0, |m| m.0);
        if current > latest {
            return Err(StoreError::invalid(format!(
                "schema {schema} has version {current}, newer than this sekiban-postgres knows ({latest}); upgrade it"
            )));
        }
        for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
            tx.batch_execute(&sql.replace("{schema}", s))
                .await
                .ctx(&format!("apply migration {version}"))?;
            tx.execute(
                &format!("UPDATE {s}.meta SET value = $1 WHERE key = 'schema_version'"),
                &[&version.to_string()],
            )
            .await
            .ctx("record the schema version")?;
        }
        tx.commit().await.ctx("commit the migration")?;
        self.costs.record(OpKind::Other, 0, 0);
        Ok(latest)
    }

    /// Before the pool opens, on one connection outside it: checks that the schema is there at
    /// the version this code needs (else `StoreError::NotInitialized`), and returns the
    /// cluster's system identifier (checkpoints name it: xids restart after a restore).
    pub(crate) async fn check_server(&self, schema: &str) -> Result<String> {
        let conn = self.client().await?;
        let client = &conn.client;
        // An unprepared statement costs two round trips: prepare, then execute.
        let query = |sql: String, what: &'static str| async move {
            self.costs.record(OpKind::Other, 0, 0);
            self.costs.record(OpKind::Other, 0, 0);
            client.query(&sql, &[]).await.ctx(what)
        };
        let first = |rows: Vec<Row>| rows.into_iter().next();
        let meta = format!("{}.meta", self.schema).replace('\'', "''");
        let exists = first(
            query(
                format!("SELECT to_regclass('{meta}')::text IS NOT NULL"),
                "look for the schema",
            )
            .await?,
        )
        .map(|r| get::<bool>(&r, 0))
        .transpose()?
        .unwrap_or(false);
        let missing = || StoreError::NotInitialized {
            what: format!(
                "schema {schema:?} has no sekiban tables; create them with PostgresEventStore::migrate"
            ),
        };
        if !exists {
            return Err(missing());
        }
        let version: i32 = first(
            query(
                format!(
                    "SELECT value::int FROM {}.meta WHERE key = 'schema_version'",
                    self.schema
                ),
                "read the schema version",
            )
            .await?,
        )
        .map(|r| get(&r, 0))
        .transpose()?
        .ok_or_else(missing)?;
        let latest = MIGRATIONS.last().map_or(0, |m| m.0);
        match version.cmp(&latest) {
            std::cmp::Ordering::Equal => {}
            std::cmp::Ordering::Less => {
                return Err(StoreError::NotInitialized {
                    what: format!(
                        "schema {schema:?} is at version {version}, this code needs {latest}; migrate it with PostgresEventStore::migrate"
                    ),
                });
            }
            std::cmp::Ordering::Greater => {
                return Err(StoreError::invalid(format!(
                    "schema {schema:?} is at version {version}, newer than this sekiban-postgres ({latest}); upgrade it"
                )));
            }
        }
        first(
            query(
                "SELECT system_identifier::text FROM pg_control_system()".into(),
                "read the system identifier",
            )
            .await?,
        )
        .map(|r| get::<String>(&r, 0))
        .transpose()?
        .ok_or_else(|| decode("pg_control_system()", "no row"))
    }
}

/// What a role may do in the store's schema: [`Db::privileges`].
#[derive(Debug, Default)]
pub(crate) struct Privileges {
    /// The server's version (`server_version`).
    pub server_version: String,
    /// The role connected.
    pub role: String,
    /// Whether the role may use the schema.
    pub schema_usage: bool,
    /// Each table or sequence of the schema and the privileges the store needs that the role
    /// lacks on it.
    pub missing: Vec<(String, Vec<&'static str>)>,
    /// Tables and sequences looked at.
    pub relations: usize,
}

impl Db {
    /// The server's version, the role, and what it lacks of the privileges the store needs on the
    /// schema's tables (`SELECT`, `INSERT`, `UPDATE`, `DELETE`) and sequences (`USAGE`,
    /// `UPDATE`). Reads the catalog only.
    pub(crate) async fn privileges(&self, schema: &str) -> Result<Privileges> {
        let conn = self.client().await?;
        let client = &conn.client;
        self.costs.record(OpKind::Other, 0, 0);
        let head = client
            .query_one(
                "SELECT current_setting('server_version'), current_user::text, \
                 coalesce(has_schema_privilege(current_user, n.oid, 'USAGE'), false) \
                 FROM (SELECT 1) one LEFT JOIN pg_namespace n ON n.nspname = $1",
                &[&schema],
            )
            .await
            .ctx("read the server's version and the role's schema privilege")?;
        let mut out = Privileges {
            server_version: get(&head, 0)?,
            role: get(&head, 1)?,
            schema_usage: get(&head, 2)?,
            ..Privileges::default()
        };
        self.costs.record(OpKind::Other, 0, 0);
        let rows = client
            .query(
                "SELECT c.relname::text, c.relkind::text, \
                 has_table_privilege(c.oid, 'SELECT'), has_table_privilege(c.oid, 'INSERT'), \
                 has_table_privilege(c.oid, 'UPDATE'), has_table_privilege(c.oid, 'DELETE'), \
                 c.relkind = 'S' AND has_sequence_privilege(c.oid, 'USAGE'), \
                 c.relkind = 'S' AND has_sequence_privilege(c.oid, 'UPDATE') \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'S') ORDER BY 1",
                &[&schema],
            )
            .await
            .ctx("read the role's privileges on the schema's tables")?;
        for r in &rows {
            out.relations += 1;
            let name: String = get(r, 0)?;
            let kind: String = get(r, 1)?;
            let wanted: &[(usize, &'static str)] = if kind == "S" {
                &[(6, "USAGE"), (7, "UPDATE")]
            } else {
                &[(2, "SELECT"), (3, "INSERT"), (4, "UPDATE"), (5, "DELETE")]
            };
            let mut lacks = Vec::new();
            for (i, privilege) in wanted {
                if !get::<bool>(r, *i)? {
                    lacks.push(*privilege);
                }
            }
            if !lacks.is_empty() {
                out.missing.push((name, lacks));
            }
        }
        Ok(out)
    }
}
