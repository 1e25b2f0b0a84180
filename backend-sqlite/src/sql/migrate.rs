//! The schema: the embedded migrations and applying them.

use super::*;

/// Embedded, versioned migrations: (version, SQL). Applied in order inside one write transaction.
pub(crate) const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../../migrations/0001_init.sql")),
    (2, include_str!("../../migrations/0002_key_id.sql")),
];

/// Creates or migrates the schema; returns the database's store id (names its checkpoints).
pub(crate) fn migrate(c: &Conn, what: &str) -> Result<String> {
    c.batch(OpKind::Other, "BEGIN IMMEDIATE")?;
    let r = migrate_in_tx(c, what);
    match &r {
        Ok(_) => c.batch(OpKind::Other, "COMMIT")?,
        Err(_) => {
            let _ = c.batch(OpKind::Other, "ROLLBACK");
        }
    }
    r
}

pub(super) fn migrate_in_tx(c: &Conn, what: &str) -> Result<String> {
    let has_meta = c
        .one(
            OpKind::Other,
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sekiban_meta'",
            [],
            |_| Ok(()),
        )?
        .is_some();
    if !has_meta {
        let others: i64 = c
            .one(
                OpKind::Other,
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
                [],
                |r| r.get(0),
            )?
            .unwrap_or(0);
        if others > 0 {
            return Err(StoreError::invalid(format!(
                "{what} is a SQLite database with {others} tables of something else, not a sekiban store; point the store at a new file"
            )));
        }
        c.batch(
            OpKind::Other,
            "CREATE TABLE sekiban_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
        )?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        c.exec(
            OpKind::Other,
            0,
            "INSERT INTO sekiban_meta (key, value) VALUES ('store_id', ?1), ('schema_version', '0')",
            [&id],
        )?;
    }
    let meta = |key: &str| {
        c.one(
            OpKind::Other,
            "SELECT value FROM sekiban_meta WHERE key = ?1",
            [key],
            |r| r.get::<_, String>(0),
        )
    };
    let current: u32 = meta("schema_version")?
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| decode(what, "sekiban_meta has no schema_version"))?;
    let latest = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > latest {
        return Err(StoreError::invalid(format!(
            "{what} has schema version {current}, newer than this sekiban-sqlite knows ({latest}); upgrade sekiban-sqlite"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        c.batch(OpKind::Other, sql)?;
        c.exec(
            OpKind::Other,
            0,
            "UPDATE sekiban_meta SET value = ?1 WHERE key = 'schema_version'",
            [version.to_string()],
        )?;
    }
    meta("store_id")?.ok_or_else(|| decode(what, "sekiban_meta has no store_id"))
}
