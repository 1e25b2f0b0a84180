#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod config;
mod doctor;
mod error;
mod notify;
mod sql;
#[cfg(feature = "testcontainers")]
pub mod testcontainer;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::stream::BoxStream;
use sekiban_core::backend::checkpoint::CheckpointCodec;
use sekiban_core::backend::checkpoint::check_name as check_checkpoint_name;
use sekiban_core::backend::feed::{FeedSource, Wait, drive};
use sekiban_core::backend::snapshots::SnapshotPointers;
use sekiban_core::backend::{CostCounter, FeedPoll, SnapshotOffload};
use sekiban_core::paging::paged;
use sekiban_core::snapshot::{PointerWrite, StoredSnapshot};
use sekiban_core::{
    AppendResult, BlobStore, Capabilities, ChangeBatch, ChangeFeed, Checkpoint, CheckpointStore,
    CostSnapshot, DeleteMode, Etag, EventData, EventStore, ExpectedVersion, FeedHistory,
    FeedOptions, FeedStart, Limits, ObjectBlobStore, OpKind, ReadOptions, RecordedEvent, Result,
    Snapshot, Store, StoreError, StreamCatalog, StreamId, StreamInfo, Version,
};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

pub use config::{
    DEFAULT_NOTIFY_INTERVAL, DRIVER_PARAMETERS, ENV_URL, PostgresConfig, SEKIBAN_PARAMETERS,
    check_schema, default_limits,
};
pub use tokio_postgres;

use crate::error::closed;
use crate::notify::{Listen, Note, wait};
use crate::sql::{Db, FeedPosition};

/// The SQL the store sends for `schema`, by name (`append_new`, `append_existing`,
/// `read_forward`, `notify`, …), for tools that replay or inspect it, such as the side-by-side
/// benchmark; the names and texts follow the code and are not a stable interface.
///
/// ```
/// let sql = sekiban_postgres::statement_texts("billing");
/// let (_, read) = sql.iter().find(|(name, _)| *name == "read_forward").unwrap();
/// assert!(read.contains("\"billing\".log"));
/// ```
/// The whole schema as one SQL script, for `schema`: what `PostgresEventStore::migrate` does to
/// an empty database, in one transaction, for DBAs who apply SQL themselves
/// (`infra/postgres/schema.sql` is this for the default schema, `sekiban`; a test keeps it so).
///
/// ```
/// let sql = sekiban_postgres::schema_sql("billing");
/// assert!(sql.starts_with("BEGIN;"));
/// assert!(sql.contains("CREATE TABLE \"billing\".streams"));
/// ```
pub fn schema_sql(schema: &str) -> String {
    sql::schema_script(&sql::quote_schema(schema))
}

#[doc(hidden)]
pub fn statement_texts(schema: &str) -> Vec<(&'static str, String)> {
    sql::statement_texts(schema)
}

/// The settings each of the store's pooled connections makes once when it opens (no bitmap
/// scans: its reads walk an index in order and stop at their LIMIT), for tools that replay or
/// inspect its statements on a connection of their own; not a stable interface.
#[doc(hidden)]
pub fn session_settings() -> &'static str {
    sql::SESSION
}

/// An event store in a PostgreSQL schema: every trait of [`Store`].
///
/// Cheap to clone; clones share the pool. [`Store::close`] closes it for every clone: writes in
/// flight finish, the pending `NOTIFY` goes out, the background tasks stop and every connection
/// closes. Dropping the last clone without closing still announces pending commits from the
/// background (while the Tokio runtime runs) and then closes the connections.
#[derive(Clone, Debug)]
pub struct PostgresEventStore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    db: Db,
    config: PostgresConfig,
    limits: Limits,
    costs: Arc<CostCounter>,
    offload: SnapshotOffload,
    blobs: Arc<dyn BlobStore>,
    /// The feed's checkpoints, of this cluster (transaction ids restart after a restore) and
    /// schema.
    checkpoints: CheckpointCodec,
    /// Tenants with new commits, for the notifier task (`None`: notifications are off).
    notify: Option<mpsc::UnboundedSender<Note>>,
    /// The notifier task, until `close` awaits it.
    notifier: Mutex<Option<JoinHandle<()>>>,
    /// The tenant of every notification the listener receives.
    wake: broadcast::Sender<Arc<str>>,
    /// The LISTEN connection's task.
    listener: Arc<Mutex<Listen>>,
    /// `true` once `close` has begun: writes are refused, waiting feed readers stop waiting.
    /// Its receivers also see the store dropped (the sender goes with the last clone).
    closed: watch::Sender<bool>,
    /// Held shared by every write in flight; `close` takes it exclusively to let them finish
    /// (and hand their commits to the notifier) before the last notification.
    writes: tokio::sync::RwLock<()>,
    /// Serialises `close` calls, so a second call returns once the first is done.
    closing: tokio::sync::Mutex<()>,
}

impl PostgresEventStore {
    /// Creates or upgrades the store's schema (embedded, versioned migrations, in one
    /// transaction under an advisory lock; safe to run concurrently and again, so a migration
    /// that meets a transient fault is tried again within [`PostgresConfig::retry`]).
    pub async fn migrate(config: &PostgresConfig) -> Result<()> {
        check_schema(&config.schema)?;
        let costs = Arc::new(CostCounter::new());
        let db = Db::connect(config, costs.clone())?;
        config
            .retry
            .run(&costs, OpKind::Other, || db.migrate(&config.schema))
            .await
            .map(|_| ())
    }

    /// Connects to a migrated schema, with snapshots offloaded to `config.blob_dir` (or memory).
    pub async fn connect(config: PostgresConfig) -> Result<Self> {
        let blobs: Arc<dyn BlobStore> = match &config.blob_dir {
            Some(dir) => Arc::new(ObjectBlobStore::create_dir(&dir.to_string_lossy())?),
            None => Arc::new(ObjectBlobStore::memory()),
        };
        Self::connect_with_blobs(config, blobs).await
    }

    /// Opens the store a `postgres://` URL names ([`PostgresConfig::from_url`]).
    pub async fn from_url(url: &str) -> Result<Self> {
        Self::connect(PostgresConfig::from_url(url)?).await
    }

    /// Connects to a migrated schema, offloading large snapshots to `blobs`. A missing or older
    /// schema is `StoreError::NotInitialized`.
    pub async fn connect_with_blobs(
        config: PostgresConfig,
        blobs: Arc<dyn BlobStore>,
    ) -> Result<Self> {
        check_schema(&config.schema)?;
        let costs = Arc::new(CostCounter::new());
        let db = Db::connect(&config, costs.clone())?;
        // Opening reads and connects only: tried again on a transient fault, like any read.
        let retry = &config.retry;
        let system_id = retry
            .run(&costs, OpKind::Other, || db.check_server(&config.schema))
            .await?;
        let offload = SnapshotOffload::counted(
            blobs.clone(),
            costs.clone(),
            config.limits.max_inline_snapshot_bytes,
        );
        let (closed, _) = watch::channel(false);
        if let Some(idle) = config.idle_timeout {
            db.reap_idle(idle, closed.subscribe());
        }
        let (notify, notifier) = notify::start_notifier(&db, &config, &closed);
        let checkpoints = CheckpointCodec::new(
            "pg",
            "PostgreSQL cluster or schema (transaction ids restart after a restore)",
            format!("{system_id}:{}", config.schema),
        );
        let shared = Arc::new(Shared {
            db,
            limits: config.limits.clone(),
            config,
            costs,
            offload,
            blobs,
            checkpoints,
            notify,
            notifier: Mutex::new(notifier),
            wake: broadcast::channel(1024).0,
            listener: Arc::new(Mutex::new(Listen::Idle)),
            closed,
            writes: tokio::sync::RwLock::new(()),
            closing: tokio::sync::Mutex::new(()),
        });
        Ok(PostgresEventStore { shared })
    }

    /// Appends inside the caller's transaction, so the events commit (or roll back) together with
    /// the caller's own changes — e.g. a read model updated in the same transaction. Same rules
    /// as [`EventStore::append`]; it runs in a savepoint, so a refused append leaves the
    /// transaction usable. Waiting feed readers notice the events at their next poll (no NOTIFY is
    /// sent for a transaction the store does not commit).
    pub async fn append_in_transaction(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<EventData>,
    ) -> Result<AppendResult> {
        if self.is_closed() {
            return Err(closed());
        }
        self.shared.limits.check_append(stream, &events)?;
        self.shared
            .db
            .append_in(tx, stream, expected, &events)
            .await
    }

    /// The blob store large snapshots are offloaded to.
    pub fn blobs(&self) -> Arc<dyn BlobStore> {
        self.shared.blobs.clone()
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &PostgresConfig {
        &self.shared.config
    }

    /// The pool's connections open now, idle or in use (the feed listener's is not among
    /// them). They are opened when work needs them, up to [`PostgresConfig::pool_size`], and an
    /// idle one is closed after [`PostgresConfig::idle_timeout`].
    pub fn open_connections(&self) -> usize {
        self.shared.db.open_connections()
    }

    /// Runs one operation of `kind` under the configured [`PostgresConfig::retry`] budget: the
    /// one place this store retries (the driver retries nothing).
    async fn retried<T, F, Fut>(&self, kind: OpKind, attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let s = &self.shared;
        s.config.retry.run(&s.costs, kind, attempt).await
    }

    /// Whether `close` has begun.
    fn is_closed(&self) -> bool {
        *self.shared.closed.borrow()
    }

    /// Admits a write: the guard keeps `close` waiting until the write (and its announcement)
    /// is done; once `close` has begun, writes are refused.
    async fn admit_write(&self) -> Result<tokio::sync::RwLockReadGuard<'_, ()>> {
        let guard = self.shared.writes.read().await;
        if self.is_closed() {
            return Err(closed());
        }
        Ok(guard)
    }
}

#[async_trait]
impl EventStore for PostgresEventStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<EventData>,
    ) -> Result<AppendResult> {
        self.shared.limits.check_append(stream, &events)?;
        let _write = self.admit_write().await?;
        let mut attempts = 0;
        let r = self
            .retried(OpKind::Append, || {
                attempts += 1;
                self.shared.db.append(stream, expected, &events)
            })
            .await?;
        // A re-send answered after a retry may be this call's own first attempt, whose commit
        // nobody announced.
        if !r.deduplicated || attempts > 1 {
            self.announce(stream);
        }
        Ok(r)
    }

    fn read(&self, stream: &StreamId, opts: ReadOptions) -> BoxStream<'_, Result<RecordedEvent>> {
        let stream = stream.clone();
        let page_bytes = self.shared.limits.page_bytes;
        paged(opts, self.shared.limits.page_events, move |page| {
            let s = stream.clone();
            async move {
                self.retried(OpKind::Read, || {
                    self.shared.db.read_page(&s, page, page_bytes)
                })
                .await
            }
        })
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Version> {
        self.retried(OpKind::Read, || self.shared.db.stream_version(stream))
            .await
    }

    async fn delete_stream(&self, stream: &StreamId, mode: DeleteMode) -> Result<()> {
        let _write = self.admit_write().await?;
        let mut attempts = 0;
        let (mut removed, hidden) = self
            .retried(OpKind::Delete, || {
                attempts += 1;
                self.shared.db.delete(stream, mode)
            })
            .await?;
        if attempts > 1 && removed.is_none() {
            // An earlier attempt may have committed: its marker is announced, and its blobs go
            // as that attempt's would have: a hard delete erases the stream's, a soft delete
            // those of the versions it hid (no pointer can name one again: a snapshot of a
            // hidden version is refused), among them its dropped snapshot's.
            self.announce(stream);
            match mode {
                DeleteMode::Hard => removed = Some(None),
                DeleteMode::Soft if hidden > 0 => {
                    self.shared
                        .offload
                        .discard_older(stream, Version(hidden + 1))
                        .await?;
                }
                DeleteMode::Soft => {}
            }
        } else if removed.is_some() {
            self.announce(stream);
        }
        self.shared
            .offload
            .after_delete(stream, mode, removed)
            .await
    }
}

#[async_trait]
impl SnapshotPointers for PostgresEventStore {
    fn offload(&self) -> &SnapshotOffload {
        &self.shared.offload
    }

    /// Admitted as a write: refused once `close` has begun (the blob put before is deleted).
    async fn write_pointer(
        &self,
        snapshot: &Snapshot,
        stored: StoredSnapshot,
    ) -> Result<PointerWrite> {
        let _write = self.admit_write().await?;
        let mut attempts = 0;
        let written = self
            .retried(OpKind::Snapshot, || {
                attempts += 1;
                self.shared.db.save_pointer(snapshot, stored.clone())
            })
            .await?;
        if attempts > 1 && matches!(written, PointerWrite::Replaced(_)) {
            // Tried again, the pointer found itself (the offload then deletes nothing): the
            // blob of the pointer the lost attempt replaced is found by its version.
            self.shared
                .offload
                .discard_older(&snapshot.stream, stored.version)
                .await?;
        }
        Ok(written)
    }

    async fn read_pointer(&self, stream: &StreamId) -> Result<Option<StoredSnapshot>> {
        self.retried(OpKind::Snapshot, || self.shared.db.load_pointer(stream))
            .await
    }
}

impl ChangeFeed for PostgresEventStore {
    fn changes(&self, from: FeedStart, opts: FeedOptions) -> BoxStream<'_, Result<ChangeBatch>> {
        drive(Log(self), from, opts, self.shared.limits.page_events)
    }
}

/// The store's log, as the feed driver reads it.
struct Log<'a>(&'a PostgresEventStore);

/// What a reader keeps to wait for commits.
struct Waiter {
    /// The store's announcements, for a follower (subscribed before its first poll).
    wake: Option<broadcast::Receiver<Arc<str>>>,
    /// Turns `true` when the store closes: a waiting reader wakes and ends.
    closed: watch::Receiver<bool>,
    /// Polls since an announcement found nothing deliverable yet (0: not announced).
    announced: u32,
}

#[async_trait]
impl FeedSource for Log<'_> {
    type Position = FeedPosition;
    type Waiter = Waiter;

    async fn start(&self, from: FeedStart) -> Result<FeedPosition> {
        match from {
            FeedStart::Beginning => Ok(FeedPosition { tx: 0, position: 0 }),
            FeedStart::Now => {
                self.0
                    .retried(OpKind::Feed, || self.0.shared.db.now())
                    .await
            }
            FeedStart::After(c) => self.0.shared.checkpoints.decode(&c),
        }
    }

    async fn poll(
        &self,
        w: &mut Waiter,
        after: FeedPosition,
        opts: &FeedOptions,
        max: usize,
    ) -> Result<FeedPoll<FeedPosition>> {
        if *w.closed.borrow() {
            return Err(closed());
        }
        if opts.follow {
            // (Again after the LISTEN connection broke: it starts anew.)
            self.0.listen();
            if w.wake.is_none() {
                w.wake = Some(self.0.shared.wake.subscribe());
            }
        }
        // Announcements made so far are all covered by this poll.
        if let Some(wake) = w.wake.as_mut() {
            while !matches!(
                wake.try_recv(),
                Err(broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed)
            ) {}
        }
        let db = &self.0.shared.db;
        self.0
            .retried(OpKind::Feed, || {
                db.poll_feed(
                    after,
                    opts.tenant.as_deref(),
                    opts.category.as_deref(),
                    max,
                    self.0.shared.limits.page_bytes,
                )
            })
            .await
    }

    fn checkpoint(&self, position: FeedPosition) -> Checkpoint {
        self.0.shared.checkpoints.encode(position)
    }

    fn waiter(&self, _opts: &FeedOptions) -> Waiter {
        Waiter {
            wake: None,
            closed: self.0.shared.closed.subscribe(),
            announced: 0,
        }
    }

    async fn wait(
        &self,
        w: &mut Waiter,
        _position: FeedPosition,
        opts: &FeedOptions,
        _max: usize,
        delivered: bool,
    ) -> Result<Wait<FeedPosition>> {
        if delivered {
            w.announced = 0;
        }
        // Announced but not deliverable yet: an older transaction elsewhere still holds the
        // xmin back. Look again shortly (a few times) instead of sleeping a whole poll interval.
        if w.announced > 0 && w.announced <= 4 {
            tokio::time::sleep(std::time::Duration::from_millis(10 << w.announced)).await;
            w.announced += 1;
            return Ok(Wait::Poll);
        }
        if opts.follow {
            self.0.listen();
            if w.wake.is_none() {
                w.wake = Some(self.0.shared.wake.subscribe());
            }
        }
        let poll = self.0.shared.limits.feed_poll_interval;
        let woken = wait(w.wake.as_mut(), opts.tenant.as_deref(), poll, &mut w.closed).await;
        w.announced = u32::from(woken);
        Ok(Wait::Poll)
    }

    /// A follower from `Now` waits before its first poll: nothing can be deliverable yet.
    fn waits_after_now(&self) -> bool {
        true
    }
}

#[async_trait]
impl CheckpointStore for PostgresEventStore {
    async fn load_checkpoint(&self, name: &str) -> Result<Option<(Checkpoint, Etag)>> {
        check_checkpoint_name(name)?;
        self.retried(OpKind::Checkpoint, || self.shared.db.load_checkpoint(name))
            .await
    }

    async fn save_checkpoint(
        &self,
        name: &str,
        checkpoint: &Checkpoint,
        expected: Option<&Etag>,
    ) -> Result<Etag> {
        check_checkpoint_name(name)?;
        let _write = self.admit_write().await?;
        // One etag for every attempt of this save: a retry finds its own earlier write.
        let etag = sql::new_etag();
        self.retried(OpKind::Checkpoint, || {
            self.shared
                .db
                .save_checkpoint(name, checkpoint, expected, etag)
        })
        .await
    }

    async fn delete_checkpoint(&self, name: &str) -> Result<()> {
        check_checkpoint_name(name)?;
        let _write = self.admit_write().await?;
        self.retried(OpKind::Checkpoint, || {
            self.shared.db.delete_checkpoint(name)
        })
        .await
    }
}

#[async_trait]
impl StreamCatalog for PostgresEventStore {
    async fn list_streams(
        &self,
        tenant: &str,
        category: Option<&str>,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<StreamInfo>> {
        StreamId::check_tenant(tenant)?;
        self.retried(OpKind::Other, || {
            self.shared.db.list_streams(tenant, category, after, limit)
        })
        .await
    }
}

#[async_trait]
impl Store for PostgresEventStore {
    fn limits(&self) -> &Limits {
        &self.shared.limits
    }
    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::basic();
        c.feed_notification = self.shared.notify.is_some();
        c.feed_history = FeedHistory::Unbounded;
        c.stream_catalog = true;
        c
    }
    fn costs(&self) -> CostSnapshot {
        self.shared.costs.snapshot()
    }
    fn catalog(&self) -> Option<&dyn StreamCatalog> {
        Some(self)
    }
    /// Closes the store for every clone, in this order: writes are refused from now on (and
    /// waiting feed readers end with `Unavailable`); writes in flight finish; the notifier sends
    /// the pending `NOTIFY` at once (no throttle wait) and ends; the LISTEN connection closes;
    /// every pooled connection closes (one in use by a read in flight closes when the read
    /// gives it back). Later operations fail with [`StoreError::Unavailable`] ("the store is
    /// closed"). A second call does nothing (a concurrent one returns when the first is done).
    async fn close(&self) -> Result<()> {
        let s = &self.shared;
        let _one = s.closing.lock().await;
        s.closed.send_replace(true);
        drop(s.writes.write().await);
        let failed = self.stop_notifications().await;
        s.db.close().await;
        match failed {
            None => Ok(()),
            Some((task, panic)) => Err(StoreError::backend(
                format!(
                    "close: {task} failed; the store is closed, but pending notifications may be lost"
                ),
                panic,
            )),
        }
    }
}
