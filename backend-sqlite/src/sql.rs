//! The SQL: schema migrations, and one function per operation. Every statement goes through
//! [`Conn`], which counts it as one round trip of its kind.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Params, Row, ToSql, params};
use sekiban_core::backend::sql::{
    LogKind, POINTER_COLUMNS, PointerColumns, listed_stream, listing_cursor, to_i64 as i,
    to_u64 as u,
};
use sekiban_core::backend::{CostCounter, FeedPoll};
use sekiban_core::idempotency::{PriorEvent, match_resend};
use sekiban_core::paging::{Page, PageRequest};
use sekiban_core::snapshot::{PointerWrite, Snapshot, StoredSnapshot, check_snapshot_version};
use sekiban_core::{
    AppendResult, Checkpoint, DeleteMode, Direction, Etag, EventData, EventId, ExpectedVersion,
    FeedItem, Metadata, OpKind, RecordedEvent, StoreError, StreamId, StreamInfo, Version,
};

use crate::config::{SqliteConfig, SqlitePath, Synchronous};
use crate::error::{Context, classify, is_unique_violation};
use crate::worker::JOB_SAVEPOINT;

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Embedded, versioned migrations: (version, SQL). Applied in order inside one write transaction.
pub(crate) const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_key_id.sql")),
];

/// One SQLite connection and the counter its statements are counted in.
pub(crate) struct Conn {
    conn: Connection,
    costs: Arc<CostCounter>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Conn")
    }
}

/// What a connection is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Writer,
    Reader,
}

pub(crate) fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn from_micros(m: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(u(m))
}

impl Conn {
    /// Opens a connection with the store's settings (WAL, `synchronous`, busy timeout).
    pub(crate) fn open(config: &SqliteConfig, role: Role, costs: Arc<CostCounter>) -> Result<Conn> {
        let flags = match role {
            Role::Writer => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
            Role::Reader => OpenFlags::SQLITE_OPEN_READ_ONLY,
        } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = match &config.path {
            SqlitePath::Memory => Connection::open_in_memory().ctx("open an in-memory database")?,
            SqlitePath::File(p) => {
                let dir = match p.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                    _ => std::path::PathBuf::from("."),
                };
                if !dir.is_dir() {
                    return Err(StoreError::invalid(format!(
                        "cannot create {}: the directory {} does not exist; create it first",
                        p.display(),
                        dir.display()
                    )));
                }
                Connection::open_with_flags(p, flags).ctx(&format!("open {}", p.display()))?
            }
        };
        conn.busy_timeout(config.busy_timeout)
            .ctx("set the busy timeout")?;
        conn.set_prepared_statement_cache_capacity(64);
        let c = Conn { conn, costs };
        let what = match &config.path {
            SqlitePath::Memory => "the in-memory database".to_string(),
            SqlitePath::File(p) => p.display().to_string(),
        };
        if let SqlitePath::File(_) = config.path {
            if role == Role::Writer {
                let mode: String = c
                    .conn
                    .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
                    .map_err(|e| classify(&format!("open {what}"), e))?;
                if !mode.eq_ignore_ascii_case("wal") {
                    return Err(StoreError::invalid(format!(
                        "{what}: could not switch to WAL journal mode (got {mode}); is it on a network filesystem?"
                    )));
                }
            }
            if role == Role::Writer {
                // SQLite's own (passive) checkpoints start at half the WAL bound; a WAL reset
                // truncates the file to the bound.
                let page: i64 = c
                    .conn
                    .query_row("PRAGMA page_size", [], |r| r.get(0))
                    .ctx("read the page size")?;
                let pages =
                    (config.wal_limit / 2 / u64::try_from(page.max(512)).unwrap_or(4096)).max(16);
                c.conn
                    .execute_batch(&format!(
                        "PRAGMA journal_size_limit = {}; PRAGMA wal_autocheckpoint = {pages}",
                        i(config.wal_limit)
                    ))
                    .ctx("set the WAL bound")?;
            }
            let sync = match config.synchronous {
                Synchronous::Full => "FULL",
                Synchronous::Normal => "NORMAL",
            };
            c.conn
                .execute_batch(&format!("PRAGMA synchronous={sync}"))
                .ctx("set synchronous")?;
        }
        Ok(c)
    }

    fn prepare(&self, sql: &str) -> Result<rusqlite::CachedStatement<'_>> {
        self.conn.prepare_cached(sql).ctx("prepare a statement")
    }

    /// Runs one statement; counts one round trip of `kind` with `sent` bytes.
    pub(crate) fn exec(
        &self,
        kind: OpKind,
        sent: usize,
        sql: &str,
        p: impl Params,
    ) -> Result<usize> {
        self.costs.record(kind, sent as u64, 0);
        self.prepare(sql)?.execute(p).ctx(sql_context(sql))
    }

    /// Runs an INSERT; `Ok(false)` when a unique index refused the row.
    pub(crate) fn insert(
        &self,
        kind: OpKind,
        sent: usize,
        sql: &str,
        p: impl Params,
    ) -> Result<bool> {
        self.costs.record(kind, sent as u64, 0);
        match self.prepare(sql)?.execute(p) {
            Ok(_) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(classify(sql_context(sql), e)),
        }
    }

    /// Runs a statement without parameters (BEGIN, COMMIT, SAVEPOINT …); counted too.
    pub(crate) fn batch(&self, kind: OpKind, sql: &str) -> Result<()> {
        self.costs.record(kind, 0, 0);
        self.conn.execute_batch(sql).ctx(sql_context(sql))
    }

    /// Runs a query returning at most one row.
    fn one<T>(
        &self,
        kind: OpKind,
        sql: &str,
        p: impl Params,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>> {
        self.costs.record(kind, 0, 0);
        self.prepare(sql)?
            .query_row(p, f)
            .optional()
            .ctx(sql_context(sql))
    }

    /// Runs a query and maps rows until `f` says stop; returns the mapped rows.
    fn rows<T>(
        &self,
        kind: OpKind,
        sql: &str,
        p: impl Params,
        mut f: impl FnMut(&Row<'_>) -> Result<Option<T>>,
    ) -> Result<Vec<T>> {
        self.costs.record(kind, 0, 0);
        let mut stmt = self.prepare(sql)?;
        let mut rows = stmt.query(p).ctx(sql_context(sql))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().ctx(sql_context(sql))? {
            match f(row)? {
                Some(t) => out.push(t),
                None => break,
            }
        }
        Ok(out)
    }

    pub(crate) fn costs(&self) -> &CostCounter {
        &self.costs
    }

    /// `PRAGMA data_version`: changes when another connection (another process, for the
    /// writer's connection) committed since the previous call on this connection.
    pub(crate) fn data_version(&self) -> Result<i64> {
        self.costs.record(OpKind::Feed, 0, 0);
        self.prepare("PRAGMA data_version")?
            .query_row([], |r| r.get(0))
            .ctx("PRAGMA data_version")
    }

    /// A checkpoint that waits up to `wait` for readers and writers of other connections, copies
    /// the whole WAL into the database and truncates the WAL file to zero bytes. `Ok(false)`
    /// when others kept it from completing (the WAL is then left as it was, or partly copied).
    /// A checkpoint another connection runs at the same moment (SQLite's own passive one after
    /// a commit) makes it fail at once; it is then tried again until `wait` has passed.
    pub(crate) fn checkpoint_truncate(&self, wait: Duration, busy: Duration) -> Result<bool> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            self.costs.record(OpKind::Other, 0, 0);
            self.conn.busy_timeout(left).ctx("set the busy timeout")?;
            let r = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    r.get::<_, i64>(0)
                });
            self.conn.busy_timeout(busy).ctx("set the busy timeout")?;
            let done = match r {
                Ok(blocked) => blocked == 0,
                Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => false,
                Err(e) => return Err(classify("PRAGMA wal_checkpoint(TRUNCATE)", e)),
            };
            if done || left.is_zero() {
                return Ok(done);
            }
            std::thread::sleep(left.min(Duration::from_millis(2)));
        }
    }

    /// Closes the connection; the last connection to a WAL database checkpoints it and removes
    /// the `-wal` and `-shm` files.
    pub(crate) fn close(self) -> Result<()> {
        self.conn
            .close()
            .map_err(|(_, e)| classify("close the database connection", e))
    }
}

fn sql_context(sql: &str) -> &str {
    sql.split_whitespace().next().unwrap_or("statement")
}

fn decode(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: format!("{what}: {e}"),
    }
}

fn col<T: rusqlite::types::FromSql>(row: &Row<'_>, idx: usize) -> Result<T> {
    row.get(idx).map_err(|e| decode("a row read back", e))
}

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

fn migrate_in_tx(c: &Conn, what: &str) -> Result<String> {
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

/// The stream's row: head, soft-deleted-up-to, erased.
struct Head {
    version: Version,
    hidden_upto: Version,
    erased: bool,
}

fn head(c: &Conn, kind: OpKind, s: &StreamId) -> Result<Option<Head>> {
    c.one(
        kind,
        "SELECT version, hidden_upto, erased FROM sekiban_streams WHERE tenant = ?1 AND category = ?2 AND stream_id = ?3",
        params![s.tenant(), s.category(), s.id()],
        |r| {
            Ok(Head {
                version: Version(u(r.get(0)?)),
                hidden_upto: Version(u(r.get(1)?)),
                erased: r.get::<_, i64>(2)? != 0,
            })
        },
    )
}

fn live(s: &StreamId, h: Option<Head>) -> Result<Option<Head>> {
    match h {
        Some(h) if h.erased => Err(StoreError::StreamDeleted {
            stream: s.clone(),
            version: h.version,
        }),
        other => Ok(other),
    }
}

fn metadata_json(m: &Metadata) -> Result<Option<String>> {
    if m.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(m)
        .map(Some)
        .map_err(|e| StoreError::invalid(format!("metadata cannot be encoded: {e}")))
}

fn parse_metadata(text: Option<String>) -> Result<Metadata> {
    match text {
        None => Ok(Metadata::default()),
        Some(t) => serde_json::from_str(&t).map_err(|e| decode("event metadata", e)),
    }
}

fn event_id(bytes: Vec<u8>) -> Result<EventId> {
    uuid::Uuid::from_slice(&bytes)
        .map(EventId)
        .map_err(|e| decode("an event id", e))
}

/// Columns of an event row, from index `at`: version, event_id, event_type, schema_version,
/// data, metadata, recorded_at.
const EVENT_COLUMNS: &str =
    "l.version, l.event_id, l.event_type, l.schema_version, l.data, l.metadata, l.recorded_at";

fn event_at(stream: StreamId, row: &Row<'_>, at: usize) -> Result<RecordedEvent> {
    Ok(RecordedEvent {
        stream,
        version: Version(u(col(row, at)?)),
        id: event_id(col(row, at + 1)?)?,
        event_type: col(row, at + 2)?,
        schema_version: u32::try_from(col::<i64>(row, at + 3)?)
            .map_err(|e| decode("a schema version", e))?,
        data: Bytes::from(col::<Vec<u8>>(row, at + 4)?),
        metadata: parse_metadata(col(row, at + 5)?)?,
        recorded_at: from_micros(col(row, at + 6)?),
    })
}

/// Appends inside the caller's transaction. Rule 3 is checked first, then the expected version.
pub(crate) fn append(
    c: &Conn,
    s: &StreamId,
    expected: ExpectedVersion,
    events: &[EventData],
) -> Result<AppendResult> {
    let h = live(s, head(c, OpKind::Append, s)?)?;
    let current = h.as_ref().map_or(Version::NONE, |h| h.version);
    if !expected.accepts(current) {
        // A re-send conflicts under Exact/NoStream: compare ids on this path only.
        if current > Version::NONE
            && let Some(r) = find_resend(c, s, events)?
        {
            return Ok(r);
        }
        return Err(StoreError::WrongExpectedVersion {
            stream: s.clone(),
            expected,
            actual: current,
        });
    }
    let first = current.plus(1);
    let last = current.plus(events.len() as u64);
    let now = now_micros();
    for (n, e) in events.iter().enumerate() {
        let inserted = c.insert(
            OpKind::Append,
            e.size(),
            "INSERT INTO sekiban_log (kind, tenant, category, stream_id, version, event_id, event_type, schema_version, data, metadata, recorded_at, append_first, append_last) \
             VALUES (0, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                s.tenant(),
                s.category(),
                s.id(),
                i(first.0 + n as u64),
                e.id.0.as_bytes().as_slice(),
                e.event_type,
                i64::from(e.schema_version),
                e.data.as_ref(),
                metadata_json(&e.metadata)?,
                now,
                i(first.0),
                i(last.0),
            ],
        )?;
        if !inserted {
            // An event id the stream already holds: undo this append's rows, then it is either a
            // re-send of an earlier append or a conflict.
            c.batch(OpKind::Append, &format!("ROLLBACK TO {JOB_SAVEPOINT}"))?;
            return find_resend(c, s, events)?.ok_or_else(|| {
                StoreError::backend(
                    "append",
                    "a unique index refused a row no stored event explains",
                )
            });
        }
    }
    c.exec(
        OpKind::Append,
        0,
        "INSERT INTO sekiban_streams (tenant, category, stream_id, version) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (tenant, category, stream_id) DO UPDATE SET version = excluded.version",
        params![s.tenant(), s.category(), s.id(), i(last.0)],
    )?;
    Ok(AppendResult {
        first,
        last,
        deduplicated: false,
    })
}

/// The stream's stored events with the ids of `events`, matched by the one rule in core.
fn find_resend(c: &Conn, s: &StreamId, events: &[EventData]) -> Result<Option<AppendResult>> {
    let marks = vec!["?"; events.len()].join(", ");
    let sql = format!(
        "SELECT {EVENT_COLUMNS}, l.append_first, l.append_last FROM sekiban_log l \
         WHERE l.tenant = ? AND l.category = ? AND l.stream_id = ? AND l.kind = 0 AND l.event_id IN ({marks})"
    );
    let ids: Vec<Vec<u8>> = events.iter().map(|e| e.id.0.as_bytes().to_vec()).collect();
    let (t, cat, id) = (s.tenant(), s.category(), s.id());
    let mut p: Vec<&dyn ToSql> = vec![&t, &cat, &id];
    p.extend(ids.iter().map(|b| b as &dyn ToSql));
    let found = c.rows(OpKind::Append, &sql, p.as_slice(), |row| {
        let e = event_at(s.clone(), row, 0)?;
        Ok(Some((
            e,
            Version(u(col(row, 7)?)),
            Version(u(col(row, 8)?)),
        )))
    })?;
    if found.is_empty() {
        return Ok(None);
    }
    let by_id: HashMap<EventId, &(RecordedEvent, Version, Version)> =
        found.iter().map(|f| (f.0.id, f)).collect();
    match_resend(s, events, |id| {
        by_id.get(&id).map(|(event, first, last)| PriorEvent {
            event,
            append_first: *first,
            append_last: *last,
        })
    })
}

/// The stream's head version (0 when missing).
pub(crate) fn stream_version(c: &Conn, s: &StreamId) -> Result<Version> {
    Ok(live(s, head(c, OpKind::Read, s)?)?.map_or(Version::NONE, |h| h.version))
}

/// The page statement: the stream's row joined with the events from the page's first version
/// (`?4`, or past the soft-deleted ones) to `?5`. Both bounds are in the index seek, so a page
/// costs the same at any depth.
fn read_page_sql(order: &str) -> String {
    format!(
        "SELECT s.erased, s.version, {EVENT_COLUMNS} FROM sekiban_streams s \
         LEFT JOIN sekiban_log l ON l.tenant = s.tenant AND l.category = s.category AND l.stream_id = s.stream_id \
           AND l.kind = 0 AND l.version >= max(?4, s.hidden_upto + 1) AND l.version <= ?5 \
         WHERE s.tenant = ?1 AND s.category = ?2 AND s.stream_id = ?3 ORDER BY l.version {order} LIMIT ?6"
    )
}

/// One page of a stream read in one statement (the stream's row joined with its events, so a
/// missing, erased or soft-deleted stream is answered by the same statement).
pub(crate) fn read_page(
    c: &Conn,
    s: &StreamId,
    page: PageRequest,
    page_bytes: usize,
) -> Result<Page> {
    let limit = page.limit;
    let (order, lo, hi) = match page.direction {
        Direction::Forward => ("ASC", page.from.0, u64::MAX),
        Direction::Backward => ("DESC", 1, page.from.0),
    };
    let sql = read_page_sql(order);
    let mut bytes = 0usize;
    let mut erased = None;
    let mut more = false;
    let mut count = 0usize;
    let events = c.rows(
        OpKind::Read,
        &sql,
        params![
            s.tenant(),
            s.category(),
            s.id(),
            i(lo),
            i(hi),
            // One row more than the page tells whether another page follows.
            i(limit as u64 + 1)
        ],
        |row| {
            if col::<i64>(row, 0)? != 0 {
                erased = Some(Version(u(col(row, 1)?)));
                return Ok(None);
            }
            if col::<Option<i64>>(row, 2)?.is_none() {
                return Ok(None);
            }
            if bytes >= page_bytes || count == limit {
                more = true;
                return Ok(None);
            }
            let e = event_at(s.clone(), row, 2)?;
            bytes += e.size();
            count += 1;
            Ok(Some(e))
        },
    )?;
    c.costs().record_bytes(OpKind::Read, 0, bytes as u64);
    if let Some(version) = erased {
        return Err(StoreError::StreamDeleted {
            stream: s.clone(),
            version,
        });
    }
    Ok((events, more))
}

/// The highest log position ever used (0 for an empty log).
pub(crate) fn last_position(c: &Conn) -> Result<u64> {
    Ok(c.one(
        OpKind::Feed,
        "SELECT seq FROM sqlite_sequence WHERE name = 'sekiban_log'",
        [],
        |r| r.get::<_, i64>(0),
    )?
    .map_or(0, u))
}

/// One feed poll after `after`: items (with their positions) and the position reached. Reads
/// the last position first, then rows up to it, so `reached` covers rows other tenants wrote.
pub(crate) fn poll_feed(
    c: &Conn,
    after: u64,
    tenant: Option<&str>,
    category: Option<&str>,
    limit: usize,
    page_bytes: usize,
) -> Result<FeedPoll<u64>> {
    let max = last_position(c)?;
    if max <= after {
        return Ok(FeedPoll::new(Vec::new(), limit, false, after, after));
    }
    let (after_i, max_i, limit_i) = (i(after), i(max), i(limit as u64));
    let mut p: Vec<&dyn ToSql> = vec![&after_i, &max_i, &limit_i];
    let mut filter = String::new();
    for (column, value) in [("tenant", &tenant), ("category", &category)] {
        if let Some(v) = value {
            p.push(v);
            filter.push_str(&format!(" AND l.{column} = ?{}", p.len()));
        }
    }
    let sql = format!(
        "SELECT l.position, l.kind, l.tenant, l.category, l.stream_id, {EVENT_COLUMNS} FROM sekiban_log l \
         JOIN sekiban_streams s ON s.tenant = l.tenant AND s.category = l.category AND s.stream_id = l.stream_id \
         WHERE l.position > ?1 AND l.position <= ?2{filter} AND (l.kind <> 0 OR l.version > s.hidden_upto) \
         ORDER BY l.position LIMIT ?3"
    );
    let mut bytes = 0usize;
    let mut cut = false;
    let items = c.rows(OpKind::Feed, &sql, p.as_slice(), |row| {
        // A batch ends with the event that reaches `page_bytes`.
        if bytes >= page_bytes {
            cut = true;
            return Ok(None);
        }
        let position = u(col(row, 0)?);
        let kind: i64 = col(row, 1)?;
        let stream = StreamId::new(
            col::<String>(row, 2)?,
            col::<String>(row, 3)?,
            col::<String>(row, 4)?,
        )
        .map_err(|e| decode("a stored stream id", e))?;
        let item = match LogKind::from_code(kind) {
            Some(LogKind::Event) => {
                let e = event_at(stream, row, 5)?;
                bytes += e.size();
                FeedItem::Event(e)
            }
            Some(LogKind::Deleted(mode)) => FeedItem::Deleted {
                stream,
                version: Version(u(col(row, 5)?)),
                mode,
            },
            None => return Err(decode("a log row", format!("unknown kind {kind}"))),
        };
        Ok(Some((position, item)))
    })?;
    c.costs().record_bytes(OpKind::Feed, 0, bytes as u64);
    Ok(FeedPoll::new(items, limit, cut, after, max))
}

/// The snapshot pointer in the row's [`POINTER_COLUMNS`] from column `at` on.
fn read_pointer(row: &Row<'_>, at: usize) -> Result<Option<StoredSnapshot>> {
    PointerColumns {
        version: col(row, at)?,
        state_type: col(row, at + 1)?,
        schema_version: col(row, at + 2)?,
        inline: col(row, at + 3)?,
        blob: col(row, at + 4)?,
    }
    .into_pointer()
}

/// The stream's snapshot pointer.
pub(crate) fn load_pointer(c: &Conn, s: &StreamId) -> Result<Option<StoredSnapshot>> {
    let sql = format!(
        "SELECT erased, version, {POINTER_COLUMNS} FROM sekiban_streams WHERE tenant = ?1 AND category = ?2 AND stream_id = ?3"
    );
    let row = c.rows(
        OpKind::Snapshot,
        &sql,
        params![s.tenant(), s.category(), s.id()],
        |row| {
            if col::<i64>(row, 0)? != 0 {
                return Err(StoreError::StreamDeleted {
                    stream: s.clone(),
                    version: Version(u(col(row, 1)?)),
                });
            }
            Ok(Some(read_pointer(row, 2)?))
        },
    )?;
    let pointer = row.into_iter().next().flatten();
    let received = pointer.as_ref().map_or(0, StoredSnapshot::size);
    c.costs().record_bytes(OpKind::Snapshot, 0, received as u64);
    Ok(pointer)
}

fn write_pointer_columns(c: &Conn, s: &StreamId, p: Option<&StoredSnapshot>) -> Result<()> {
    let p = PointerColumns::of(p)?;
    c.exec(
        OpKind::Snapshot,
        p.sent(),
        "UPDATE sekiban_streams SET snapshot_version = ?4, snapshot_type = ?5, snapshot_schema = ?6, \
         snapshot_state = ?7, snapshot_blob = ?8 WHERE tenant = ?1 AND category = ?2 AND stream_id = ?3",
        params![
            s.tenant(),
            s.category(),
            s.id(),
            p.version,
            p.state_type,
            p.schema_version,
            p.inline,
            p.blob
        ],
    )?;
    Ok(())
}

/// Step 2 of a snapshot save: the conditional pointer write.
pub(crate) fn save_pointer(
    c: &Conn,
    snapshot: &Snapshot,
    stored: StoredSnapshot,
) -> Result<PointerWrite> {
    let s = &snapshot.stream;
    let h = live(s, head(c, OpKind::Snapshot, s)?)?;
    check_snapshot_version(
        snapshot,
        h.as_ref().map(|h| h.version),
        h.as_ref().map_or(Version::NONE, |h| h.hidden_upto),
    )?;
    let current = load_pointer(c, s)?;
    if current
        .as_ref()
        .is_some_and(|p| p.version > snapshot.version)
    {
        return Ok(PointerWrite::Refused);
    }
    write_pointer_columns(c, s, Some(&stored))?;
    Ok(PointerWrite::Replaced(current))
}

/// Deletes a stream inside the caller's transaction. `None`: nothing to delete; else the
/// snapshot pointer it dropped.
pub(crate) fn delete(
    c: &Conn,
    s: &StreamId,
    mode: DeleteMode,
) -> Result<Option<Option<StoredSnapshot>>> {
    let Some(h) = head(c, OpKind::Delete, s)?.filter(|h| !h.erased) else {
        return Ok(None);
    };
    let old = load_pointer(c, s)?;
    let kind = match mode {
        DeleteMode::Soft => {
            c.exec(
                OpKind::Delete,
                0,
                "UPDATE sekiban_streams SET hidden_upto = version, snapshot_version = NULL, snapshot_type = NULL, \
                 snapshot_schema = NULL, snapshot_state = NULL, snapshot_blob = NULL \
                 WHERE tenant = ?1 AND category = ?2 AND stream_id = ?3",
                params![s.tenant(), s.category(), s.id()],
            )?;
            LogKind::Deleted(DeleteMode::Soft).code()
        }
        DeleteMode::Hard => {
            c.exec(
                OpKind::Delete,
                0,
                "DELETE FROM sekiban_log WHERE tenant = ?1 AND category = ?2 AND stream_id = ?3 AND kind = 0",
                params![s.tenant(), s.category(), s.id()],
            )?;
            c.exec(
                OpKind::Delete,
                0,
                "UPDATE sekiban_streams SET erased = 1, snapshot_version = NULL, snapshot_type = NULL, \
                 snapshot_schema = NULL, snapshot_state = NULL, snapshot_blob = NULL \
                 WHERE tenant = ?1 AND category = ?2 AND stream_id = ?3",
                params![s.tenant(), s.category(), s.id()],
            )?;
            LogKind::Deleted(DeleteMode::Hard).code()
        }
    };
    c.exec(
        OpKind::Delete,
        0,
        "INSERT INTO sekiban_log (kind, tenant, category, stream_id, version, recorded_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![kind, s.tenant(), s.category(), s.id(), i(h.version.0), now_micros()],
    )?;
    Ok(Some(old))
}

/// A consumer's checkpoint and etag.
pub(crate) fn load_checkpoint(c: &Conn, name: &str) -> Result<Option<(Checkpoint, Etag)>> {
    c.one(
        OpKind::Checkpoint,
        "SELECT checkpoint, etag FROM sekiban_checkpoints WHERE name = ?1",
        [name],
        |r| {
            Ok((
                Checkpoint::new(r.get::<_, String>(0)?),
                Etag(r.get::<_, i64>(1)?.to_string()),
            ))
        },
    )
}

/// Saves a checkpoint if the stored etag is `expected`.
pub(crate) fn save_checkpoint(
    c: &Conn,
    name: &str,
    checkpoint: &Checkpoint,
    expected: Option<&Etag>,
) -> Result<Etag> {
    let current = load_checkpoint(c, name)?.map(|(_, e)| e);
    if current.as_ref() != expected {
        return Err(StoreError::CheckpointConflict {
            name: name.to_string(),
        });
    }
    // From the clock in microseconds, growing by at least one: a name deleted and saved anew
    // never hands out an etag it handed out before.
    let last = current.and_then(|e| e.0.parse::<i64>().ok()).unwrap_or(0);
    let next = (last + 1).max(now_micros());
    c.exec(
        OpKind::Checkpoint,
        name.len() + checkpoint.as_str().len(),
        "INSERT INTO sekiban_checkpoints (name, checkpoint, etag) VALUES (?1, ?2, ?3) \
         ON CONFLICT (name) DO UPDATE SET checkpoint = excluded.checkpoint, etag = excluded.etag",
        params![name, checkpoint.as_str(), next],
    )?;
    Ok(Etag(next.to_string()))
}

/// Deletes a checkpoint (nothing when there is none).
pub(crate) fn delete_checkpoint(c: &Conn, name: &str) -> Result<()> {
    c.exec(
        OpKind::Checkpoint,
        name.len(),
        "DELETE FROM sekiban_checkpoints WHERE name = ?1",
        [name],
    )?;
    Ok(())
}

/// Lists streams of a tenant, in (category, id) order.
pub(crate) fn list_streams(
    c: &Conn,
    tenant: &str,
    category: Option<&str>,
    after: Option<&StreamId>,
    limit: usize,
) -> Result<Vec<StreamInfo>> {
    let (after_cat, after_id) = listing_cursor(tenant, after);
    let listed = c.rows(
        OpKind::Other,
        "SELECT category, stream_id, version, hidden_upto, erased FROM sekiban_streams \
         WHERE tenant = ?1 AND (?2 IS NULL OR category = ?2) AND (category, stream_id) > (?3, ?4) \
         ORDER BY category, stream_id LIMIT ?5",
        params![tenant, category, after_cat, after_id, i(limit as u64)],
        |row| {
            let erased = col::<i64>(row, 4)? != 0;
            let (category, id) = (col(row, 0)?, col(row, 1)?);
            listed_stream(tenant, category, id, col(row, 2)?, col(row, 3)?, erased).map(Some)
        },
    )?;
    let received: usize = listed.iter().map(StreamInfo::size).sum();
    c.costs().record_bytes(OpKind::Other, 0, received as u64);
    Ok(listed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::StatementStatus;

    /// Virtual-machine steps of reading one page from `from` (the page statement's own counter).
    fn page_steps(c: &Conn, s: &StreamId, from: u64, direction: Direction) -> i32 {
        let page = PageRequest {
            from: Version(from),
            direction,
            limit: 100,
        };
        let (events, _) = read_page(c, s, page, usize::MAX).expect("read a page");
        assert_eq!(events.len(), 100);
        let order = match direction {
            Direction::Forward => "ASC",
            Direction::Backward => "DESC",
        };
        c.prepare(&read_page_sql(order))
            .expect("the cached page statement")
            .reset_status(StatementStatus::VmStep)
    }

    #[test]
    fn a_page_costs_the_same_at_any_depth() {
        let c = Conn::open(
            &SqliteConfig::memory(),
            Role::Writer,
            Arc::new(CostCounter::new()),
        )
        .expect("open");
        migrate(&c, "a test database").expect("migrate");
        let s = StreamId::new("t", "c", "deep").expect("stream id");
        c.batch(OpKind::Other, "BEGIN").expect("begin");
        for _ in 0..20 {
            let events: Vec<_> = (0..1000).map(|_| EventData::new("T", "{}")).collect();
            append(&c, &s, ExpectedVersion::Any, &events).expect("append");
        }
        // Soft-deleting the first half puts the other bound (hidden_upto) in play.
        c.exec(
            OpKind::Other,
            0,
            "UPDATE sekiban_streams SET hidden_upto = 10000",
            [],
        )
        .expect("soft delete");
        c.batch(OpKind::Other, "COMMIT").expect("commit");
        for direction in [Direction::Forward, Direction::Backward] {
            let (near, deep) = match direction {
                Direction::Forward => (10_001, 19_801),
                Direction::Backward => (10_100, 20_000),
            };
            page_steps(&c, &s, near, direction);
            let shallow = page_steps(&c, &s, near, direction);
            let far = page_steps(&c, &s, deep, direction);
            assert!(
                far < shallow * 3 / 2 && shallow < far * 3 / 2,
                "{direction:?}: a page at {deep} takes {far} steps, at {near} {shallow}"
            );
        }
    }
}
