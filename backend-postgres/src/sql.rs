//! The SQL: one statement per operation, every statement counted where it is sent ([`Db`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use deadpool::Runtime;
use deadpool::managed::{self, Metrics, QueueMode, RecycleError, RecycleResult, Timeouts};
use futures::StreamExt;
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
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::config::{PostgresConfig, redact};
use crate::error::{Context, classify, is_unique_violation, pool_error};

type Result<T, E = StoreError> = std::result::Result<T, E>;
type Param<'a> = &'a (dyn ToSql + Sync);

/// Embedded, versioned migrations: (version, SQL with `{schema}`).
pub(crate) const MIGRATIONS: &[(i32, &str)] = &[(1, include_str!("../migrations/0001_init.sql"))];

const NOTIFY: &str = "SELECT pg_notify($1, t) FROM unnest($2::text[]) t";

/// What every pooled connection sets once, when it opens: no bitmap scans. The store's reads
/// (pages, feed polls, listings) walk an index in its order from where they start and stop at
/// their LIMIT; the rest touch a few rows by key. A bitmap scan never helps them, but when the
/// planner expects about as many rows as the LIMIT — a range bound it cannot estimate, or
/// correlated columns (a tenant whose commits are all recent) — it prefers a bitmap scan and a
/// sort, which read every row of the range: a feed poll far behind, or a page far from the
/// head, would read the rest of the log or stream each time. Without bitmap scans an ordered
/// index scan stopped by the LIMIT is the cheapest plan whatever the estimate.
pub(crate) const SESSION: &str = "SET enable_bitmapscan = off";

/// The pool, the counter, and the statements with the schema filled in. Clones share the pool.
#[derive(Clone)]
pub(crate) struct Db {
    pool: Pool,
    /// Where the pool's connections go; also used for the one-off connections of `migrate` and
    /// of the checks at start-up, which run before the schema's statements can be prepared.
    server: tokio_postgres::Config,
    costs: Arc<CostCounter>,
    schema: String,
    sql: Arc<Statements>,
}

type Pool = managed::Pool<Connector>;
type Object = managed::Object<Connector>;

/// A pooled connection with every statement of the store prepared on it (in [`Sql::ALL`] order).
pub(crate) struct Conn {
    client: tokio_postgres::Client,
    prepared: Vec<tokio_postgres::Statement>,
    /// The task driving the connection; it ends once the client is dropped and the server has
    /// been told goodbye.
    driver: tokio::task::JoinHandle<()>,
}

impl Conn {
    /// Closes the connection and waits (up to `timeout`) until the server has been told.
    async fn close(self, timeout: std::time::Duration) {
        let Conn {
            client,
            prepared,
            driver,
        } = self;
        // The client first: its statements then have nobody to send their own close through.
        drop(client);
        drop(prepared);
        let _ = tokio::time::timeout(timeout, driver).await;
    }

    fn statement(&self, which: Sql) -> Result<&tokio_postgres::Statement> {
        self.prepared
            .get(which as usize)
            .ok_or_else(|| StoreError::backend("prepare", format!("{which:?} is not prepared")))
    }
}

/// Opens the pool's connections: connects, sets [`SESSION`], then prepares every statement of
/// the store (each counted as `Other`), so no operation later pays a hidden prepare; checkouts
/// are not pinged.
pub(crate) struct Connector {
    server: tokio_postgres::Config,
    sql: Arc<Statements>,
    costs: Arc<CostCounter>,
}

impl managed::Manager for Connector {
    type Type = Conn;
    type Error = tokio_postgres::Error;

    async fn create(&self) -> std::result::Result<Conn, tokio_postgres::Error> {
        let (client, driver) = connect(&self.server).await?;
        self.costs.record(OpKind::Other, 0, 0);
        client.batch_execute(SESSION).await?;
        let mut prepared = Vec::with_capacity(Sql::ALL.len());
        for which in Sql::ALL {
            self.costs.record(OpKind::Other, 0, 0);
            prepared.push(client.prepare(self.sql.text(which)).await?);
        }
        Ok(Conn {
            client,
            prepared,
            driver,
        })
    }

    async fn recycle(&self, conn: &mut Conn, _: &Metrics) -> RecycleResult<tokio_postgres::Error> {
        if conn.client.is_closed() {
            Err(RecycleError::message("the connection is closed"))
        } else {
            Ok(())
        }
    }
}

/// A connection with its driver task running.
async fn connect(
    server: &tokio_postgres::Config,
) -> std::result::Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>
{
    let (client, connection) = server.connect(tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(async move {
        // Ends when the client is dropped (after a Terminate to the server) or the connection
        // breaks; the client then reports it.
        let _ = connection.await;
    });
    Ok((client, driver))
}

/// The store's statements by name; a pooled connection holds them prepared in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sql {
    AppendNew,
    AppendExisting,
    AppendRefused,
    Version,
    ReadForward,
    ReadBackward,
    Xmin,
    SavePointer,
    LoadPointer,
    SoftDelete,
    HardDelete,
    LoadCheckpoint,
    InsertCheckpoint,
    UpdateCheckpoint,
    DeleteCheckpoint,
    ListStreams,
    ListCategory,
    Notify,
    Feed,
    FeedTenant,
    FeedCategory,
    FeedTenantCategory,
}

impl Sql {
    const ALL: [Sql; 22] = [
        Sql::AppendNew,
        Sql::AppendExisting,
        Sql::AppendRefused,
        Sql::Version,
        Sql::ReadForward,
        Sql::ReadBackward,
        Sql::Xmin,
        Sql::SavePointer,
        Sql::LoadPointer,
        Sql::SoftDelete,
        Sql::HardDelete,
        Sql::LoadCheckpoint,
        Sql::InsertCheckpoint,
        Sql::UpdateCheckpoint,
        Sql::DeleteCheckpoint,
        Sql::ListStreams,
        Sql::ListCategory,
        Sql::Notify,
        Sql::Feed,
        Sql::FeedTenant,
        Sql::FeedCategory,
        Sql::FeedTenantCategory,
    ];

    fn name(self) -> &'static str {
        match self {
            Sql::AppendNew => "append_new",
            Sql::AppendExisting => "append_existing",
            Sql::AppendRefused => "append_refused",
            Sql::Version => "version",
            Sql::ReadForward => "read_forward",
            Sql::ReadBackward => "read_backward",
            Sql::Xmin => "xmin",
            Sql::SavePointer => "save_pointer",
            Sql::LoadPointer => "load_pointer",
            Sql::SoftDelete => "soft_delete",
            Sql::HardDelete => "hard_delete",
            Sql::LoadCheckpoint => "load_checkpoint",
            Sql::InsertCheckpoint => "insert_checkpoint",
            Sql::UpdateCheckpoint => "update_checkpoint",
            Sql::DeleteCheckpoint => "delete_checkpoint",
            Sql::ListStreams => "list_streams",
            Sql::ListCategory => "list_category",
            Sql::Notify => "notify",
            Sql::Feed => "feed",
            Sql::FeedTenant => "feed_tenant",
            Sql::FeedCategory => "feed_category",
            Sql::FeedTenantCategory => "feed_tenant_category",
        }
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("schema", &self.schema).finish()
    }
}

fn decode(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: format!("{what}: {e}"),
    }
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, idx: usize) -> Result<T> {
    row.try_get(idx).map_err(|e| decode("a row read back", e))
}

/// The statements, formatted once with the schema.
struct Statements {
    append_new: String,
    append_existing: String,
    append_refused: String,
    version: String,
    read_forward: String,
    read_backward: String,
    feed: [String; 4],
    xmin: String,
    save_pointer: String,
    load_pointer: String,
    soft_delete: String,
    hard_delete: String,
    load_checkpoint: String,
    insert_checkpoint: String,
    update_checkpoint: String,
    delete_checkpoint: String,
    list_streams: String,
    list_category: String,
}

const EVENT_COLUMNS: &str = "l.version, l.event_id, l.event_type, l.schema_version, l.data, l.metadata::text, l.recorded_at";
const KEY: &str = "tenant = $1 AND category = $2 AND stream_id = $3";
/// The clock in microseconds since the epoch, as a checkpoint etag's floor.
const ETAG_CLOCK: &str = "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint";

impl Statements {
    /// The text of one statement.
    fn text(&self, which: Sql) -> &str {
        match which {
            Sql::AppendNew => &self.append_new,
            Sql::AppendExisting => &self.append_existing,
            Sql::AppendRefused => &self.append_refused,
            Sql::Version => &self.version,
            Sql::ReadForward => &self.read_forward,
            Sql::ReadBackward => &self.read_backward,
            Sql::Xmin => &self.xmin,
            Sql::SavePointer => &self.save_pointer,
            Sql::LoadPointer => &self.load_pointer,
            Sql::SoftDelete => &self.soft_delete,
            Sql::HardDelete => &self.hard_delete,
            Sql::LoadCheckpoint => &self.load_checkpoint,
            Sql::InsertCheckpoint => &self.insert_checkpoint,
            Sql::UpdateCheckpoint => &self.update_checkpoint,
            Sql::DeleteCheckpoint => &self.delete_checkpoint,
            Sql::ListStreams => &self.list_streams,
            Sql::ListCategory => &self.list_category,
            Sql::Notify => NOTIFY,
            Sql::Feed => &self.feed[0],
            Sql::FeedTenant => &self.feed[1],
            Sql::FeedCategory => &self.feed[2],
            Sql::FeedTenantCategory => &self.feed[3],
        }
    }

    fn new(s: &str) -> Self {
        // A page: first a row of the stream's own (its head version, and its soft-deleted-up-to
        // version in the last column, -1 when erased; no row: no stream), then its events in
        // order from the (stream, version) index, with the last column NULL. Nothing about the
        // stream is repeated on the event rows.
        //
        // The index scan is bounded where the page starts — `from`, and going forward the
        // soft-deleted prefix too — and ends at the LIMIT. The bounds at the page's far end
        // (`$5`, and going backward the soft-deleted prefix) are applied after the LIMIT: the
        // rows they drop form the tail of the ordered scan, so the page is the same, and the
        // planner never sees a range whose one end is unknown when it plans (the soft-deleted
        // bound comes from the stream's row): for such a range it assumes 0.5 % of the table,
        // expects a handful of rows and picks a bitmap scan and a sort that read every row of
        // the range, i.e. the whole stream from `from` on, for every page.
        let read = |forward: bool| {
            let hidden = "(SELECT hidden_upto FROM st WHERE NOT erased)";
            let (start, order, far) = if forward {
                (
                    format!("l.version > {hidden} AND l.version >= $4"),
                    "ASC",
                    "page.version <= $5".to_string(),
                )
            } else {
                (
                    "l.version <= $4".to_string(),
                    "DESC",
                    format!("page.version >= $5 AND page.version > {hidden}"),
                )
            };
            format!(
                "WITH st AS (SELECT version, hidden_upto, erased FROM {s}.streams WHERE {KEY}) \
                 SELECT version, NULL::uuid, NULL::text, NULL::int, NULL::bytea, NULL::text, NULL::timestamptz, \
                   CASE WHEN erased THEN -1 ELSE hidden_upto END FROM st \
                 UNION ALL \
                 SELECT * FROM (SELECT {EVENT_COLUMNS}, NULL::bigint FROM {s}.log l WHERE l.tenant = $1 \
                   AND l.category = $2 AND l.stream_id = $3 AND l.kind = 0 AND {start} \
                   ORDER BY l.version {order} LIMIT $6) page WHERE {far}"
            )
        };
        // A feed poll walks the (tx, position) index from its position and stops at the LIMIT,
        // whatever the statistics. Whether a row's stream hides it (soft-deleted events) is
        // looked up per row read (a primary-key probe of the stream's row, NULL when it has
        // none, like an inner join). A join there instead gives the planner a row estimate it
        // cannot make (one row), so it plans a hash join of every row after the position and a
        // sort: each poll of a reader far behind would read the whole rest of the log.
        let feed = |filter: &str| {
            format!(
                "WITH snap AS (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin) \
                 SELECT snap.xmin, f.* FROM snap LEFT JOIN LATERAL ( \
                   SELECT l.tx, l.global_position, l.kind, l.tenant, l.category, l.stream_id, {EVENT_COLUMNS} \
                   FROM {s}.log l \
                   WHERE (l.tx, l.global_position) > ($1, $2) AND l.tx < snap.xmin{filter} \
                     AND (SELECT l.kind <> 0 OR l.version > st.hidden_upto FROM {s}.streams st \
                       WHERE st.tenant = l.tenant AND st.category = l.category AND st.stream_id = l.stream_id) \
                   ORDER BY l.tx, l.global_position LIMIT $3) f ON true"
            )
        };
        let delete = |hard: bool| {
            let (erase, kind, del) = if hard {
                (
                    ", erased = true",
                    LogKind::Deleted(DeleteMode::Hard).code(),
                    format!(
                        ", del AS (DELETE FROM {s}.log WHERE {KEY} AND kind = 0 AND EXISTS (SELECT 1 FROM upd))"
                    ),
                )
            } else {
                (
                    ", hidden_upto = st.version",
                    LogKind::Deleted(DeleteMode::Soft).code(),
                    String::new(),
                )
            };
            format!(
                "WITH old AS (SELECT version, erased, {POINTER_COLUMNS} FROM {s}.streams WHERE {KEY} FOR UPDATE), \
                 upd AS (UPDATE {s}.streams st SET snapshot_version = NULL, snapshot_type = NULL, snapshot_schema = NULL, \
                   snapshot_state = NULL, snapshot_blob = NULL, last_tx = greatest(st.last_tx, pg_current_xact_id()::text::bigint){erase} \
                   FROM old WHERE st.tenant = $1 AND st.category = $2 AND st.stream_id = $3 AND NOT old.erased \
                   RETURNING st.version, st.last_tx){del}, \
                 mark AS (INSERT INTO {s}.log (tx, kind, tenant, category, stream_id, version) \
                   SELECT last_tx, {kind}, $1, $2, $3, version FROM upd RETURNING 1) \
                 SELECT old.erased, {POINTER_COLUMNS}, (SELECT count(*) FROM mark) FROM old"
            )
        };
        Statements {
            // Any, NoStream, Exact(0): the head row is inserted, or updated under `Any`.
            append_new: format!(
                "WITH head AS ( \
                   INSERT INTO {s}.streams AS st (tenant, category, stream_id, version, last_tx) \
                   VALUES ($1, $2, $3, $4::bigint, pg_current_xact_id()::text::bigint) \
                   ON CONFLICT (tenant, category, stream_id) DO UPDATE \
                     SET version = st.version + $4::bigint, \
                         last_tx = greatest(st.last_tx, pg_current_xact_id()::text::bigint) \
                     WHERE $5::bool AND NOT st.erased \
                   RETURNING st.version, st.last_tx), \
                 ins AS ( \
                   INSERT INTO {s}.log (tx, kind, tenant, category, stream_id, version, event_id, event_type, \
                     schema_version, data, metadata, append_first, append_last) \
                   SELECT head.last_tx, 0, $1, $2, $3, head.version - $4::bigint + e.n, e.id, e.typ, e.sv, e.data, \
                     e.meta::jsonb, head.version - $4::bigint + 1, head.version \
                   FROM head, unnest($6::uuid[], $7::text[], $8::int[], $9::bytea[], $10::text[]) \
                     WITH ORDINALITY AS e(id, typ, sv, data, meta, n)) \
                 SELECT version FROM head"
            ),
            // Exact(v > 0), StreamExists (v = -1): the existing head row is updated, or nothing.
            append_existing: format!(
                "WITH head AS ( \
                   UPDATE {s}.streams st SET version = st.version + $4::bigint, \
                     last_tx = greatest(st.last_tx, pg_current_xact_id()::text::bigint) \
                   WHERE st.tenant = $1 AND st.category = $2 AND st.stream_id = $3 AND NOT st.erased \
                     AND (st.version = $5::bigint OR ($5::bigint < 0 AND st.version > 0)) \
                   RETURNING st.version, st.last_tx), \
                 ins AS ( \
                   INSERT INTO {s}.log (tx, kind, tenant, category, stream_id, version, event_id, event_type, \
                     schema_version, data, metadata, append_first, append_last) \
                   SELECT head.last_tx, 0, $1, $2, $3, head.version - $4::bigint + e.n, e.id, e.typ, e.sv, e.data, \
                     e.meta::jsonb, head.version - $4::bigint + 1, head.version \
                   FROM head, unnest($6::uuid[], $7::text[], $8::int[], $9::bytea[], $10::text[]) \
                     WITH ORDINALITY AS e(id, typ, sv, data, meta, n)) \
                 SELECT version FROM head"
            ),
            append_refused: format!(
                "SELECT (SELECT version FROM {s}.streams WHERE {KEY}), (SELECT erased FROM {s}.streams WHERE {KEY}), \
                   {EVENT_COLUMNS}, l.append_first, l.append_last \
                 FROM (SELECT 1) one LEFT JOIN {s}.log l ON l.tenant = $1 AND l.category = $2 AND l.stream_id = $3 \
                   AND l.kind = 0 AND l.event_id = ANY($4::uuid[])"
            ),
            version: format!("SELECT version, erased FROM {s}.streams WHERE {KEY}"),
            read_forward: read(true),
            read_backward: read(false),
            feed: [
                feed(""),
                feed(" AND l.tenant = $4"),
                feed(" AND l.category = $4"),
                feed(" AND l.tenant = $4 AND l.category = $5"),
            ],
            xmin: "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint".into(),
            save_pointer: format!(
                "WITH old AS (SELECT version, hidden_upto, erased, {POINTER_COLUMNS} FROM {s}.streams WHERE {KEY} FOR UPDATE), \
                 upd AS (UPDATE {s}.streams st SET snapshot_version = $4, snapshot_type = $5, snapshot_schema = $6, \
                   snapshot_state = $7, snapshot_blob = $8 \
                   FROM old WHERE st.tenant = $1 AND st.category = $2 AND st.stream_id = $3 AND NOT old.erased \
                     AND $4 <= old.version AND $4 > old.hidden_upto \
                     AND (old.snapshot_version IS NULL OR old.snapshot_version <= $4) RETURNING 1) \
                 SELECT old.version, old.hidden_upto, old.erased, {POINTER_COLUMNS}, (SELECT count(*) FROM upd) FROM old"
            ),
            load_pointer: format!(
                "SELECT erased, version, {POINTER_COLUMNS} FROM {s}.streams WHERE {KEY}"
            ),
            soft_delete: delete(false),
            hard_delete: delete(true),
            load_checkpoint: format!(
                "SELECT checkpoint, etag FROM {s}.checkpoints WHERE name = $1"
            ),
            // Etags start at the clock in microseconds and grow by at least one, so a name
            // deleted and saved anew never hands out an etag it handed out before.
            insert_checkpoint: format!(
                "INSERT INTO {s}.checkpoints (name, checkpoint, etag) VALUES ($1, $2, {ETAG_CLOCK}) ON CONFLICT (name) DO NOTHING RETURNING etag"
            ),
            update_checkpoint: format!(
                "UPDATE {s}.checkpoints SET checkpoint = $2, etag = greatest(etag + 1, {ETAG_CLOCK}) WHERE name = $1 AND etag = $3 RETURNING etag"
            ),
            delete_checkpoint: format!("DELETE FROM {s}.checkpoints WHERE name = $1"),
            // A page of streams starts at the key after the previous page, in the primary key:
            // one statement per shape, so a generic plan keeps every bound in its index
            // condition (an optional category in one statement would be a filter there, and a
            // listing of a small category would scan the tenant's later categories).
            list_streams: format!(
                "SELECT category, stream_id, version, hidden_upto, erased FROM {s}.streams \
                 WHERE tenant = $1 AND (category, stream_id) > ($2, $3) \
                 ORDER BY category, stream_id LIMIT $4"
            ),
            // After ($3, $4) in (category, stream_id) order, compared by the server (its
            // collation orders the key): the whole category when $3 sorts before it, after $4
            // when $3 is the category, nothing when $3 sorts after it.
            list_category: format!(
                "SELECT category, stream_id, version, hidden_upto, erased FROM {s}.streams \
                 WHERE tenant = $1 AND category = $2 AND $3::text <= $2 \
                   AND stream_id > CASE WHEN $3::text = $2 THEN $4::text ELSE '' END \
                 ORDER BY stream_id LIMIT $5"
            ),
        }
    }
}

/// The store's statements for `schema`, by name (see [`crate::statement_texts`]).
pub(crate) fn statement_texts(schema: &str) -> Vec<(&'static str, String)> {
    let sql = Statements::new(&quote(schema));
    Sql::ALL
        .into_iter()
        .map(|which| (which.name(), sql.text(which).to_string()))
        .collect()
}

/// A quoted identifier.
pub(crate) fn quote(schema: &str) -> String {
    format!("\"{}\"", schema.replace('"', "\"\""))
}

fn metadata_json(m: &Metadata) -> Result<Option<String>> {
    if m.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(m)
        .map(Some)
        .map_err(|e| StoreError::invalid(format!("metadata cannot be encoded: {e}")))
}

fn event_at(stream: StreamId, row: &Row, at: usize) -> Result<RecordedEvent> {
    let metadata = match get::<Option<String>>(row, at + 5)? {
        None => Metadata::default(),
        Some(t) => serde_json::from_str(&t).map_err(|e| decode("event metadata", e))?,
    };
    Ok(RecordedEvent {
        stream,
        version: Version(u(get(row, at)?)),
        id: EventId(get(row, at + 1)?),
        event_type: get(row, at + 2)?,
        schema_version: u32::try_from(get::<i32>(row, at + 3)?)
            .map_err(|e| decode("a schema version", e))?,
        data: Bytes::from(get::<Vec<u8>>(row, at + 4)?),
        metadata,
        recorded_at: get::<SystemTime>(row, at + 6)?,
    })
}

/// The snapshot pointer in the row's [`POINTER_COLUMNS`] from column `at` on.
fn read_pointer(row: &Row, at: usize) -> Result<Option<StoredSnapshot>> {
    PointerColumns {
        version: get(row, at)?,
        state_type: get(row, at + 1)?,
        schema_version: get::<Option<i32>>(row, at + 2)?.map(i64::from),
        inline: get(row, at + 3)?,
        blob: get(row, at + 4)?,
    }
    .into_pointer()
}

/// Where a statement runs: a pooled connection (statements prepared when it was created) or a
/// caller's transaction (prepared on the spot, counted).
#[derive(Clone, Copy)]
enum On<'a> {
    Pool(&'a Conn),
    Tx(&'a tokio_postgres::Transaction<'a>),
}

impl On<'_> {
    async fn statement(
        &self,
        db: &Db,
        kind: OpKind,
        which: Sql,
    ) -> Result<tokio_postgres::Statement> {
        match self {
            On::Pool(conn) => conn.statement(which).cloned(),
            On::Tx(tx) => {
                db.costs.record(kind, 0, 0);
                tx.prepare(db.sql.text(which))
                    .await
                    .ctx("prepare a statement")
            }
        }
    }

    async fn query(
        &self,
        stmt: &tokio_postgres::Statement,
        params: &[Param<'_>],
    ) -> std::result::Result<Vec<Row>, tokio_postgres::Error> {
        match self {
            On::Pool(conn) => conn.client.query(stmt, params).await,
            On::Tx(tx) => tx.query(stmt, params).await,
        }
    }
}

/// A feed position: after this (tx, global position).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct FeedPosition {
    pub(crate) tx: i64,
    pub(crate) position: i64,
}

/// `TX:POSITION`, as checkpoints hold it.
impl std::fmt::Display for FeedPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.tx, self.position)
    }
}

impl std::str::FromStr for FeedPosition {
    type Err = ();

    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        let (tx, position) = s.split_once(':').ok_or(())?;
        Ok(FeedPosition {
            tx: tx.parse().map_err(|_| ())?,
            position: position.parse().map_err(|_| ())?,
        })
    }
}

impl Db {
    /// A pool on `config`'s server whose connections prepare every statement of the store when
    /// they are created ([`Connector`]); nothing is opened yet.
    pub(crate) fn connect(config: &PostgresConfig, costs: Arc<CostCounter>) -> Result<Self> {
        let quoted = quote(&config.schema);
        let sql = Arc::new(Statements::new(&quoted));
        let mut server: tokio_postgres::Config = config.url.parse().map_err(|e| {
            StoreError::invalid(format!("PostgreSQL URL {}: {e}", redact(&config.url)))
        })?;
        server.connect_timeout(config.connect_timeout);
        let timeouts = Timeouts {
            wait: Some(config.connect_timeout),
            create: Some(config.connect_timeout),
            recycle: Some(config.connect_timeout),
        };
        let connector = Connector {
            server: server.clone(),
            sql: sql.clone(),
            costs: costs.clone(),
        };
        let pool = Pool::builder(connector)
            .max_size(config.pool_size)
            // The connection used last goes out first: a lightly loaded process keeps talking
            // to the same few server processes instead of waking a different one each time.
            .queue_mode(QueueMode::Lifo)
            .timeouts(timeouts)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::invalid(format!("PostgreSQL pool: {e}")))?;
        Ok(Db {
            pool,
            server,
            costs,
            sql,
            schema: quoted,
        })
    }

    async fn client(&self) -> Result<Object> {
        self.pool.get().await.map_err(pool_error)
    }

    /// A connection outside the pool, for work before the schema's statements can be prepared.
    async fn direct(&self) -> Result<tokio_postgres::Client> {
        connect(&self.server)
            .await
            .map(|(client, _)| client)
            .ctx("connect")
    }

    /// Closes the pool: later checkouts fail with `Unavailable` ("the store is closed"); the
    /// idle connections close now (each waited for until the server has been told, up to the
    /// connect timeout), a connection in use closes when it comes back.
    pub(crate) async fn close(&self) {
        let idle = self.pool.retain(|_, _| false).removed;
        self.pool.close();
        let timeout = self
            .server
            .get_connect_timeout()
            .copied()
            .unwrap_or(std::time::Duration::from_secs(5));
        futures::future::join_all(idle.into_iter().map(|c| c.close(timeout))).await;
    }

    /// Sends one of the store's statements on a pooled connection: one round trip.
    async fn query(
        &self,
        kind: OpKind,
        sent: usize,
        which: Sql,
        params: &[Param<'_>],
    ) -> Result<Vec<Row>> {
        let conn = self.client().await?;
        let stmt = conn.statement(which)?;
        self.costs.record(kind, sent as u64, 0);
        conn.client.query(stmt, params).await.ctx(which.name())
    }

    /// Sends one of the store's statements on a pooled connection and hands back its rows as
    /// they arrive, with the connection, which stays out of the pool until both are dropped.
    /// Dropping the rows early leaves the rest of the answer unread (the driver discards it).
    async fn query_rows(
        &self,
        kind: OpKind,
        which: Sql,
        params: &[Param<'_>],
    ) -> Result<(Object, tokio_postgres::RowStream)> {
        let conn = self.client().await?;
        self.costs.record(kind, 0, 0);
        let rows = conn
            .client
            .query_raw(conn.statement(which)?, params.iter().copied())
            .await
            .ctx(which.name())?;
        Ok((conn, rows))
    }

    /// Opens every connection of the pool now, so their statements are prepared at start-up and
    /// no operation later pays for a new connection.
    pub(crate) async fn fill_pool(&self) -> Result<()> {
        let size = self.pool.status().max_size;
        // Held together, so the pool opens `size` distinct connections.
        let clients = futures::future::join_all((0..size).map(|_| self.pool.get())).await;
        clients
            .into_iter()
            .try_for_each(|c| c.map(drop).map_err(pool_error))
    }

    /// Creates or upgrades the schema in one transaction under an advisory lock.
    pub(crate) async fn migrate(&self, schema: &str) -> Result<i32> {
        let mut client = self.direct().await?;
        let tx = client.transaction().await.ctx("begin the migration")?;
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
    /// the version this code needs (else a clear error naming `sekiban init`), and returns the
    /// cluster's system identifier (checkpoints name it: xids restart after a restore).
    pub(crate) async fn check_server(&self, schema: &str) -> Result<String> {
        let client = self.direct().await?;
        // An unprepared statement costs two round trips: prepare, then execute.
        let query = |sql: String, what: &'static str| {
            let client = &client;
            async move {
                self.costs.record(OpKind::Other, 0, 0);
                self.costs.record(OpKind::Other, 0, 0);
                client.query(&sql, &[]).await.ctx(what)
            }
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
        let missing = || {
            StoreError::invalid(format!(
                "schema {schema:?} has no sekiban tables; run `sekiban init --store URL` (or PostgresEventStore::migrate) first"
            ))
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
                return Err(StoreError::invalid(format!(
                    "schema {schema:?} is at version {version}, this code needs {latest}; run `sekiban init --store URL` to migrate"
                )));
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

    /// Appends in one statement; a refused append costs one more to say why (or to recognise a
    /// re-send).
    pub(crate) async fn append(
        &self,
        s: &StreamId,
        expected: ExpectedVersion,
        events: &[EventData],
    ) -> Result<AppendResult> {
        let conn = self.client().await?;
        self.append_on(On::Pool(&conn), s, expected, events).await
    }

    /// Appends inside the caller's transaction, in a savepoint (so a refusal leaves the caller's
    /// transaction usable); the events commit with it.
    pub(crate) async fn append_in(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        s: &StreamId,
        expected: ExpectedVersion,
        events: &[EventData],
    ) -> Result<AppendResult> {
        self.costs.record(OpKind::Append, 0, 0);
        tx.batch_execute("SAVEPOINT sekiban_append")
            .await
            .ctx("append")?;
        let r = self.append_on(On::Tx(tx), s, expected, events).await;
        let close = match r {
            Ok(_) => "RELEASE SAVEPOINT sekiban_append",
            Err(_) => "ROLLBACK TO SAVEPOINT sekiban_append; RELEASE SAVEPOINT sekiban_append",
        };
        self.costs.record(OpKind::Append, 0, 0);
        tx.batch_execute(close).await.ctx("append")?;
        r
    }

    async fn append_on(
        &self,
        on: On<'_>,
        s: &StreamId,
        expected: ExpectedVersion,
        events: &[EventData],
    ) -> Result<AppendResult> {
        let n = events.len() as i64;
        let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.id.0).collect();
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        let schemas: Vec<i32> = events
            .iter()
            .map(|e| i32::try_from(e.schema_version).unwrap_or(i32::MAX))
            .collect();
        let data: Vec<&[u8]> = events.iter().map(|e| e.data.as_ref()).collect();
        let meta: Vec<Option<String>> = events
            .iter()
            .map(|e| metadata_json(&e.metadata))
            .collect::<Result<_>>()?;
        let sent: usize = events.iter().map(EventData::size).sum();
        let (t, c, id) = (s.tenant(), s.category(), s.id());
        // One statement either way: a new-or-any head is upserted, an existing one updated.
        let (sql, guard): (Sql, Box<dyn ToSql + Sync + Send>) = match expected {
            ExpectedVersion::Any => (Sql::AppendNew, Box::new(true)),
            ExpectedVersion::NoStream | ExpectedVersion::Exact(Version(0)) => {
                (Sql::AppendNew, Box::new(false))
            }
            ExpectedVersion::StreamExists => (Sql::AppendExisting, Box::new(-1i64)),
            ExpectedVersion::Exact(v) => (Sql::AppendExisting, Box::new(i(v.0))),
        };
        let params: [Param<'_>; 10] = [
            &t, &c, &id, &n, &*guard, &ids, &types, &schemas, &data, &meta,
        ];
        let mut attempt = 0;
        loop {
            let stmt = on.statement(self, OpKind::Append, sql).await?;
            self.costs.record(OpKind::Append, sent as u64, 0);
            let duplicate = match on.query(&stmt, &params).await {
                Ok(rows) => {
                    if let Some(row) = rows.first() {
                        let last = Version(u(get(row, 0)?));
                        return Ok(AppendResult {
                            first: Version(last.0 + 1 - events.len() as u64),
                            last,
                            deduplicated: false,
                        });
                    }
                    false
                }
                Err(e) if is_unique_violation(&e) => true,
                Err(e) => return Err(classify("append", e)),
            };
            if let On::Tx(tx) = on
                && duplicate
            {
                self.costs.record(OpKind::Append, 0, 0);
                tx.batch_execute("ROLLBACK TO SAVEPOINT sekiban_append")
                    .await
                    .ctx("append")?;
            }
            // Refused by the head guard, or an event id already stored: find out which.
            let refused = on
                .statement(self, OpKind::Append, Sql::AppendRefused)
                .await?;
            self.costs.record(OpKind::Append, 0, 0);
            let rows = on
                .query(&refused, &[&t, &c, &id, &ids])
                .await
                .ctx("append")?;
            let head = rows
                .first()
                .map(|r| get::<Option<i64>>(r, 0))
                .transpose()?
                .flatten();
            let erased = rows
                .first()
                .map(|r| get::<Option<bool>>(r, 1))
                .transpose()?
                .flatten();
            if erased == Some(true) {
                return Err(StoreError::StreamDeleted {
                    stream: s.clone(),
                    version: Version(head.map_or(0, u)),
                });
            }
            let mut found = Vec::new();
            for row in &rows {
                if get::<Option<i64>>(row, 2)?.is_some() {
                    let e = event_at(s.clone(), row, 2)?;
                    found.push((e, Version(u(get(row, 9)?)), Version(u(get(row, 10)?))));
                }
            }
            let by_id: HashMap<EventId, &(RecordedEvent, Version, Version)> =
                found.iter().map(|f| (f.0.id, f)).collect();
            let resend = match_resend(s, events, |id| {
                by_id.get(&id).map(|(event, first, last)| PriorEvent {
                    event,
                    append_first: *first,
                    append_last: *last,
                })
            })?;
            match resend {
                Some(r) => return Ok(r),
                None if duplicate => {
                    return Err(StoreError::backend(
                        "append",
                        "a unique index refused a row no stored event explains",
                    ));
                }
                // The head is read by a second statement, after the guard refused: another
                // writer may have moved it in between to a version this expectation accepts (a
                // `StreamExists` refused before a concurrent first append committed, an
                // `Exact(v)` refused below `v`). A refusal must name a head its expectation
                // refuses, so the append is tried again; the head only grows, so one more try
                // settles it (a few at most).
                None if expected.accepts(Version(head.map_or(0, u))) && attempt < 4 => {
                    attempt += 1;
                }
                None => {
                    return Err(StoreError::WrongExpectedVersion {
                        stream: s.clone(),
                        expected,
                        actual: Version(head.map_or(0, u)),
                    });
                }
            }
        }
    }

    /// The head version (0 when missing).
    pub(crate) async fn stream_version(&self, s: &StreamId) -> Result<Version> {
        let (t, c, id) = (s.tenant(), s.category(), s.id());
        let rows = self
            .query(OpKind::Read, 0, Sql::Version, &[&t, &c, &id])
            .await?;
        match rows.first() {
            None => Ok(Version::NONE),
            Some(r) if get::<bool>(r, 1)? => Err(StoreError::StreamDeleted {
                stream: s.clone(),
                version: Version(u(get(r, 0)?)),
            }),
            Some(r) => Ok(Version(u(get(r, 0)?))),
        }
    }

    /// One page of a stream in one statement; `bool`: more may follow. Rows are decoded as they
    /// arrive and the rest of the page is dropped unread once `page_bytes` is reached, so memory
    /// stays within `page_bytes` plus one event whatever the events' sizes.
    pub(crate) async fn read_page(
        &self,
        s: &StreamId,
        page: PageRequest,
        page_bytes: usize,
    ) -> Result<Page> {
        let (sql, end) = match page.direction {
            Direction::Forward => (Sql::ReadForward, u64::MAX),
            Direction::Backward => (Sql::ReadBackward, 1),
        };
        let (t, c, id) = (s.tenant(), s.category(), s.id());
        let (from, end, limit) = (i(page.from.0), i(end), i(page.limit as u64));
        let params: [Param<'_>; 6] = [&t, &c, &id, &from, &end, &limit];
        let (_client, rows) = self.query_rows(OpKind::Read, sql, &params).await?;
        futures::pin_mut!(rows);
        let mut events: Vec<RecordedEvent> = Vec::with_capacity(page.limit.min(1024));
        let mut bytes = 0usize;
        // The stream's head and soft-deleted-up-to versions, from its row.
        let mut bounds = None;
        while let Some(row) = rows.next().await {
            let row = row.ctx("read")?;
            if let Some(hidden_upto) = get::<Option<i64>>(&row, 7)? {
                let head = u(get(&row, 0)?);
                if hidden_upto < 0 {
                    return Err(StoreError::StreamDeleted {
                        stream: s.clone(),
                        version: Version(head),
                    });
                }
                bounds = Some((head, u(hidden_upto)));
                continue;
            }
            let e = event_at(s.clone(), &row, 0)?;
            bytes += e.size();
            events.push(e);
            if bytes >= page_bytes {
                break;
            }
        }
        self.costs.record_bytes(OpKind::Read, 0, bytes as u64);
        let more = match (events.last(), bounds) {
            (None, _) => false,
            (Some(last), Some((head, hidden_upto))) => match page.direction {
                Direction::Forward => last.version.0 < head,
                Direction::Backward => last.version.0 > hidden_upto + 1,
            },
            // The stream's row comes first; were it ever cut off, ask for the next page.
            (Some(_), None) => true,
        };
        Ok((events, more))
    }

    /// The position `Now` starts after: everything below the current snapshot's xmin.
    pub(crate) async fn now(&self) -> Result<FeedPosition> {
        let rows = self.query(OpKind::Feed, 0, Sql::Xmin, &[]).await?;
        let xmin: i64 = rows.first().map(|r| get(r, 0)).transpose()?.unwrap_or(0);
        Ok(FeedPosition {
            tx: xmin - 1,
            position: i64::MAX,
        })
    }

    /// One feed poll after `after`: at most `limit` items, ending with the one that reaches
    /// `page_bytes`; rows are decoded as they arrive and the rest is left unread.
    pub(crate) async fn poll_feed(
        &self,
        after: FeedPosition,
        tenant: Option<&str>,
        category: Option<&str>,
        limit: usize,
        page_bytes: usize,
    ) -> Result<FeedPoll<FeedPosition>> {
        let lim = i(limit as u64);
        let mut params: Vec<Param<'_>> = vec![&after.tx, &after.position, &lim];
        let feed = match (&tenant, &category) {
            (None, None) => Sql::Feed,
            (Some(_), None) => Sql::FeedTenant,
            (None, Some(_)) => Sql::FeedCategory,
            (Some(_), Some(_)) => Sql::FeedTenantCategory,
        };
        if let Some(t) = &tenant {
            params.push(t);
        }
        if let Some(c) = &category {
            params.push(c);
        }
        let (_client, rows) = self.query_rows(OpKind::Feed, feed, &params).await?;
        futures::pin_mut!(rows);
        let mut items = Vec::new();
        let mut xmin = after.tx;
        let mut bytes = 0;
        let mut cut = false;
        while let Some(row) = rows.next().await {
            let row = row.ctx("read the feed")?;
            xmin = get(&row, 0)?;
            let Some(tx) = get::<Option<i64>>(&row, 1)? else {
                break;
            };
            let pos = FeedPosition {
                tx,
                position: get(&row, 2)?,
            };
            let kind: i16 = get(&row, 3)?;
            let stream = StreamId::new(
                get::<String>(&row, 4)?,
                get::<String>(&row, 5)?,
                get::<String>(&row, 6)?,
            )
            .map_err(|e| decode("a stored stream id", e))?;
            let item = match LogKind::from_code(kind.into()) {
                Some(LogKind::Event) => {
                    let e = event_at(stream, &row, 7)?;
                    bytes += e.size();
                    FeedItem::Event(e)
                }
                Some(LogKind::Deleted(mode)) => FeedItem::Deleted {
                    stream,
                    version: Version(u(get(&row, 7)?)),
                    mode,
                },
                None => return Err(decode("a log row", format!("unknown kind {kind}"))),
            };
            items.push((pos, item));
            // A batch ends with the event that reaches `page_bytes`; the rest is left unread.
            if bytes >= page_bytes {
                cut = true;
                break;
            }
        }
        self.costs.record_bytes(OpKind::Feed, 0, bytes as u64);
        // At the end: everything below the snapshot's xmin has been seen.
        let end = after.max(FeedPosition {
            tx: xmin - 1,
            position: i64::MAX,
        });
        Ok(FeedPoll::new(items, limit, cut, after, end))
    }

    /// Step 2 of a snapshot save, in one statement.
    pub(crate) async fn save_pointer(
        &self,
        snapshot: &Snapshot,
        stored: StoredSnapshot,
    ) -> Result<PointerWrite> {
        let s = &snapshot.stream;
        let (inline, blob) = stored.body.to_columns()?;
        let (t, c, id) = (s.tenant(), s.category(), s.id());
        let version = i(stored.version.0);
        let schema = i32::try_from(stored.schema_version).unwrap_or(i32::MAX);
        let sent = inline.as_ref().map_or(0, Vec::len);
        let rows = self
            .query(
                OpKind::Snapshot,
                sent,
                Sql::SavePointer,
                &[
                    &t,
                    &c,
                    &id,
                    &version,
                    &stored.state_type,
                    &schema,
                    &inline,
                    &blob,
                ],
            )
            .await?;
        let Some(row) = rows.first() else {
            check_snapshot_version(snapshot, None, Version::NONE)?;
            return Ok(PointerWrite::Refused);
        };
        let head = Version(u(get(row, 0)?));
        if get::<bool>(row, 2)? {
            return Err(StoreError::StreamDeleted {
                stream: s.clone(),
                version: head,
            });
        }
        check_snapshot_version(snapshot, Some(head), Version(u(get(row, 1)?)))?;
        let old = read_pointer(row, 3)?;
        if get::<i64>(row, 8)? > 0 {
            Ok(PointerWrite::Replaced(old))
        } else {
            Ok(PointerWrite::Refused)
        }
    }

    /// The snapshot pointer.
    pub(crate) async fn load_pointer(&self, s: &StreamId) -> Result<Option<StoredSnapshot>> {
        let (t, c, id) = (s.tenant(), s.category(), s.id());
        let rows = self
            .query(OpKind::Snapshot, 0, Sql::LoadPointer, &[&t, &c, &id])
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        if get::<bool>(row, 0)? {
            return Err(StoreError::StreamDeleted {
                stream: s.clone(),
                version: Version(u(get(row, 1)?)),
            });
        }
        let pointer = read_pointer(row, 2)?;
        let received = pointer.as_ref().map_or(0, StoredSnapshot::size);
        self.costs
            .record_bytes(OpKind::Snapshot, 0, received as u64);
        Ok(pointer)
    }

    /// Deletes a stream in one statement. `None`: nothing to delete; else the dropped pointer.
    pub(crate) async fn delete(
        &self,
        s: &StreamId,
        mode: DeleteMode,
    ) -> Result<Option<Option<StoredSnapshot>>> {
        let sql = match mode {
            DeleteMode::Soft => Sql::SoftDelete,
            DeleteMode::Hard => Sql::HardDelete,
        };
        let (t, c, id) = (s.tenant(), s.category(), s.id());
        let rows = self.query(OpKind::Delete, 0, sql, &[&t, &c, &id]).await?;
        match rows.first() {
            Some(row) if !get::<bool>(row, 0)? && get::<i64>(row, 6)? > 0 => {
                Ok(Some(read_pointer(row, 1)?))
            }
            _ => Ok(None),
        }
    }

    /// A consumer's checkpoint and etag.
    pub(crate) async fn load_checkpoint(&self, name: &str) -> Result<Option<(Checkpoint, Etag)>> {
        let rows = self
            .query(OpKind::Checkpoint, 0, Sql::LoadCheckpoint, &[&name])
            .await?;
        rows.first()
            .map(|r| {
                Ok((
                    Checkpoint::new(get::<String>(r, 0)?),
                    Etag(get::<i64>(r, 1)?.to_string()),
                ))
            })
            .transpose()
    }

    /// Saves a checkpoint if the stored etag is `expected`, in one statement.
    pub(crate) async fn save_checkpoint(
        &self,
        name: &str,
        checkpoint: &Checkpoint,
        expected: Option<&Etag>,
    ) -> Result<Etag> {
        let cp = checkpoint.as_str();
        let sent = name.len() + cp.len();
        let rows = match expected {
            None => {
                self.query(
                    OpKind::Checkpoint,
                    sent,
                    Sql::InsertCheckpoint,
                    &[&name, &cp],
                )
                .await?
            }
            Some(e) => match e.0.parse::<i64>() {
                Ok(tag) => {
                    self.query(
                        OpKind::Checkpoint,
                        sent,
                        Sql::UpdateCheckpoint,
                        &[&name, &cp, &tag],
                    )
                    .await?
                }
                Err(_) => Vec::new(),
            },
        };
        match rows.first() {
            Some(r) => Ok(Etag(get::<i64>(r, 0)?.to_string())),
            None => Err(StoreError::CheckpointConflict {
                name: name.to_string(),
            }),
        }
    }

    /// Deletes a checkpoint (nothing when there is none).
    pub(crate) async fn delete_checkpoint(&self, name: &str) -> Result<()> {
        self.query(
            OpKind::Checkpoint,
            name.len(),
            Sql::DeleteCheckpoint,
            &[&name],
        )
        .await?;
        Ok(())
    }

    /// Lists streams of a tenant.
    pub(crate) async fn list_streams(
        &self,
        tenant: &str,
        category: Option<&str>,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<StreamInfo>> {
        let (ac, aid) = listing_cursor(tenant, after);
        let lim = i(limit as u64);
        let rows = match category {
            None => {
                self.query(
                    OpKind::Other,
                    0,
                    Sql::ListStreams,
                    &[&tenant, &ac, &aid, &lim],
                )
                .await?
            }
            Some(category) => {
                self.query(
                    OpKind::Other,
                    0,
                    Sql::ListCategory,
                    &[&tenant, &category, &ac, &aid, &lim],
                )
                .await?
            }
        };
        let listed = rows
            .iter()
            .map(|r| {
                let (category, id) = (get(r, 0)?, get(r, 1)?);
                listed_stream(tenant, category, id, get(r, 2)?, get(r, 3)?, get(r, 4)?)
            })
            .collect::<Result<Vec<_>>>()?;
        let received: usize = listed.iter().map(StreamInfo::size).sum();
        self.costs.record_bytes(OpKind::Other, 0, received as u64);
        Ok(listed)
    }

    /// Sends one coalesced notification per tenant (outside any append transaction).
    pub(crate) async fn notify(&self, channel: &str, tenants: &[String]) -> Result<()> {
        self.query(OpKind::Notify, 0, Sql::Notify, &[&channel, &tenants])
            .await?;
        Ok(())
    }
}
