#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod config;
mod error;
mod feed;
mod sql;
mod worker;

use std::sync::Arc;

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
    CostSnapshot, DeleteMode, Etag, EventData, EventStore, ExpectedVersion, FeedHistory, FeedItem,
    FeedOptions, FeedStart, Limits, ObjectBlobStore, OpKind, ReadOptions, RecordedEvent, Result,
    Snapshot, Store, StoreError, StreamCatalog, StreamId, StreamInfo, Version,
};
use tokio::sync::watch;

pub use config::{
    DEFAULT_WAL_LIMIT, DEFAULT_WATCH_INTERVAL, ENV_URL, SqliteConfig, SqlitePath, Synchronous,
    default_limits,
};

use crate::feed::{Hub, TailPage};
use crate::sql::{Conn, Role};
use crate::worker::{OPEN_CHECKPOINT_WAIT, Upkeep, Workers};

/// The file or directory beside `db` named `db` + `suffix` (`-wal`, `.blobs`).
fn beside(db: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(suffix);
    p.into()
}

/// The `-wal` file of a file database.
fn wal_path(config: &SqliteConfig) -> Option<std::path::PathBuf> {
    match &config.path {
        SqlitePath::Memory => None,
        SqlitePath::File(p) => Some(beside(p, "-wal")),
    }
}

/// An event store in one SQLite file (or in memory): every trait of [`Store`].
///
/// Cheap to clone; all clones share the connections. Dropping the last clone closes them.
#[derive(Clone, Debug)]
pub struct SqliteEventStore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) workers: Workers,
    pub(crate) limits: Limits,
    pub(crate) committed: watch::Sender<u64>,
    pub(crate) hub: Hub,
    costs: Arc<CostCounter>,
    offload: SnapshotOffload,
    blobs: Arc<dyn BlobStore>,
    /// The feed's checkpoints, of this database (its `store_id`).
    checkpoints: CheckpointCodec,
    config: SqliteConfig,
}

impl feed::Host for Shared {
    fn hub(&self) -> &Hub {
        &self.hub
    }
    fn workers(&self) -> &Workers {
        &self.workers
    }
    fn limits(&self) -> &Limits {
        &self.limits
    }
    fn committed(&self) -> watch::Receiver<u64> {
        self.committed.subscribe()
    }
}

impl SqliteEventStore {
    /// Opens (creating and migrating when needed) the database of `config`, with snapshots
    /// offloaded to `config.blob_dir`, or `<file>.blobs/` next to a file database, or memory.
    pub async fn open(config: SqliteConfig) -> Result<Self> {
        let blobs: Arc<dyn BlobStore> = match (&config.blob_dir, &config.path) {
            (Some(dir), _) => Arc::new(ObjectBlobStore::create_dir(&dir.to_string_lossy())?),
            (None, SqlitePath::File(p)) => {
                let dir = beside(p, ".blobs");
                if p.parent()
                    .is_some_and(|d| !d.as_os_str().is_empty() && !d.is_dir())
                {
                    return Err(StoreError::invalid(format!(
                        "cannot create {}: its directory does not exist; create it first",
                        p.display()
                    )));
                }
                Arc::new(ObjectBlobStore::create_dir(&dir.to_string_lossy())?)
            }
            (None, SqlitePath::Memory) => Arc::new(ObjectBlobStore::memory()),
        };
        Self::open_with_blobs(config, blobs).await
    }

    /// Opens the database of `config`, offloading large snapshots to `blobs`.
    pub async fn open_with_blobs(config: SqliteConfig, blobs: Arc<dyn BlobStore>) -> Result<Self> {
        let costs = Arc::new(CostCounter::new());
        let offload = SnapshotOffload::counted(
            blobs.clone(),
            costs.clone(),
            config.limits.max_inline_snapshot_bytes,
        );
        let cfg = config.clone();
        let open_costs = costs.clone();
        let (writer, readers, store_id) = tokio::task::spawn_blocking(move || {
            let what = match &cfg.path {
                SqlitePath::Memory => "the in-memory database".to_string(),
                SqlitePath::File(p) => p.display().to_string(),
            };
            let writer = Conn::open(&cfg, Role::Writer, open_costs.clone())?;
            let store_id = sql::migrate(&writer, &what)?;
            // A WAL left past its bound (a process killed mid-way, or an older version that
            // never closed) is emptied now rather than carried along.
            if let Some(wal) = wal_path(&cfg)
                && std::fs::metadata(&wal).is_ok_and(|m| m.len() > cfg.wal_limit)
            {
                writer.checkpoint_truncate(OPEN_CHECKPOINT_WAIT, cfg.busy_timeout)?;
            }
            let readers = match cfg.path {
                SqlitePath::Memory => Vec::new(),
                SqlitePath::File(_) => (0..cfg.readers.max(1))
                    .map(|_| Conn::open(&cfg, Role::Reader, open_costs.clone()))
                    .collect::<Result<Vec<_>>>()?,
            };
            Ok::<_, StoreError>((writer, readers, store_id))
        })
        .await
        .map_err(|e| StoreError::backend("open the SQLite database", e))??;
        let committed = watch::channel(0).0;
        let upkeep = Upkeep {
            wal: wal_path(&config),
            wal_limit: config.wal_limit,
            watch: config.watch_interval,
            busy_timeout: config.busy_timeout,
        };
        let workers = Workers::start(writer, readers, committed.clone(), upkeep)?;
        Ok(SqliteEventStore {
            shared: Arc::new(Shared {
                workers,
                limits: config.limits.clone(),
                committed,
                hub: Hub::new(),
                costs,
                offload,
                blobs,
                checkpoints: CheckpointCodec::new("sqlite", "SQLite database", store_id),
                config,
            }),
        })
    }

    /// Opens the store a `sqlite:` URL names ([`SqliteConfig::from_url`]).
    pub async fn from_url(url: &str) -> Result<Self> {
        Self::open(SqliteConfig::from_url(url)?).await
    }

    /// The blob store large snapshots are offloaded to.
    pub fn blobs(&self) -> Arc<dyn BlobStore> {
        self.shared.blobs.clone()
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &SqliteConfig {
        &self.shared.config
    }

    async fn poll(&self, after: u64, opts: &FeedOptions, max: usize) -> Result<FeedPoll<u64>> {
        let (tenant, category) = (opts.tenant.clone(), opts.category.clone());
        let page_bytes = self.shared.limits.page_bytes;
        self.shared
            .workers
            .read(move |c| {
                sql::poll_feed(
                    c,
                    after,
                    tenant.as_deref(),
                    category.as_deref(),
                    max,
                    page_bytes,
                )
            })
            .await
    }
}

#[async_trait]
impl EventStore for SqliteEventStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<EventData>,
    ) -> Result<AppendResult> {
        self.shared.limits.check_append(stream, &events)?;
        let stream = stream.clone();
        self.shared
            .workers
            .write(OpKind::Append, move |c| {
                sql::append(c, &stream, expected, &events)
            })
            .await
    }

    fn read(&self, stream: &StreamId, opts: ReadOptions) -> BoxStream<'_, Result<RecordedEvent>> {
        let stream = stream.clone();
        let page_bytes = self.shared.limits.page_bytes;
        paged(opts, self.shared.limits.page_events, move |page| {
            let s = stream.clone();
            self.shared
                .workers
                .read(move |c| sql::read_page(c, &s, page, page_bytes))
        })
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Version> {
        let s = stream.clone();
        self.shared
            .workers
            .read(move |c| sql::stream_version(c, &s))
            .await
    }

    async fn delete_stream(&self, stream: &StreamId, mode: DeleteMode) -> Result<()> {
        let s = stream.clone();
        let removed = self
            .shared
            .workers
            .write(OpKind::Delete, move |c| sql::delete(c, &s, mode))
            .await?;
        self.shared
            .offload
            .after_delete(stream, mode, removed)
            .await
    }
}

#[async_trait]
impl SnapshotPointers for SqliteEventStore {
    fn offload(&self) -> &SnapshotOffload {
        &self.shared.offload
    }

    async fn write_pointer(
        &self,
        snapshot: &Snapshot,
        stored: StoredSnapshot,
    ) -> Result<PointerWrite> {
        let snap = Snapshot {
            state: bytes::Bytes::new(),
            ..snapshot.clone()
        };
        self.shared
            .workers
            .write(OpKind::Snapshot, move |c| {
                sql::save_pointer(c, &snap, stored)
            })
            .await
    }

    async fn read_pointer(&self, stream: &StreamId) -> Result<Option<StoredSnapshot>> {
        let s = stream.clone();
        self.shared
            .workers
            .read(move |c| sql::load_pointer(c, &s))
            .await
    }
}

impl ChangeFeed for SqliteEventStore {
    fn changes(&self, from: FeedStart, opts: FeedOptions) -> BoxStream<'_, Result<ChangeBatch>> {
        drive(Log(self), from, opts, self.shared.limits.page_events)
    }
}

/// The store's log, as the feed driver reads it. A follower waits for the hub's pages, which
/// carry the items of the commits they announce: one that covers a follower's position and
/// fits its batch is handed out without a read of its own.
struct Log<'a>(&'a SqliteEventStore);

#[async_trait]
impl FeedSource for Log<'_> {
    type Position = u64;
    /// The hub's pages, for a follower (subscribed before its first poll, so a page published
    /// meanwhile is seen).
    type Waiter = Option<watch::Receiver<Arc<TailPage>>>;

    async fn start(&self, from: FeedStart) -> Result<u64> {
        match from {
            FeedStart::Beginning => Ok(0),
            FeedStart::Now => self.0.shared.workers.read(sql::last_position).await,
            FeedStart::After(c) => self.0.shared.checkpoints.decode(&c),
        }
    }

    async fn poll(
        &self,
        tail: &mut Self::Waiter,
        after: u64,
        opts: &FeedOptions,
        max: usize,
    ) -> Result<FeedPoll<u64>> {
        if opts.follow && tail.is_none() {
            let mut rx = Hub::subscribe(&self.0.shared);
            rx.borrow_and_update();
            *tail = Some(rx);
        }
        self.0.poll(after, opts, max).await
    }

    fn checkpoint(&self, position: u64) -> Checkpoint {
        self.0.shared.checkpoints.encode(position)
    }

    fn waiter(&self, _opts: &FeedOptions) -> Self::Waiter {
        None
    }

    async fn wait(
        &self,
        tail: &mut Self::Waiter,
        position: u64,
        opts: &FeedOptions,
        max: usize,
        _delivered: bool,
    ) -> Result<Wait<u64>> {
        let Some(rx) = tail.as_mut() else {
            return Ok(Wait::Poll);
        };
        // No page for a while: poll, for commits the hub did not see.
        let fallback = self.0.shared.limits.feed_poll_interval * 3;
        loop {
            let page = match tokio::time::timeout(fallback, rx.changed()).await {
                Ok(Ok(())) => rx.borrow_and_update().clone(),
                _ => return Ok(Wait::Poll),
            };
            if page.to <= position {
                continue;
            }
            if page.from > position {
                return Ok(Wait::Poll);
            }
            let mine: Vec<FeedItem> = page
                .items
                .iter()
                .filter(|(p, item)| *p > position && opts.matches(item.stream()))
                .map(|(_, item)| item.clone())
                .collect();
            // The hub's pages end at `page_bytes` as a batch does, so what is ours of one fits
            // a batch by bytes; by count it may not (a smaller `max_batch`).
            if mine.len() > max {
                return Ok(Wait::Poll);
            }
            return Ok(Wait::Items(mine, page.to));
        }
    }
}

#[async_trait]
impl CheckpointStore for SqliteEventStore {
    async fn load_checkpoint(&self, name: &str) -> Result<Option<(Checkpoint, Etag)>> {
        check_checkpoint_name(name)?;
        let name = name.to_string();
        self.shared
            .workers
            .read(move |c| sql::load_checkpoint(c, &name))
            .await
    }

    async fn save_checkpoint(
        &self,
        name: &str,
        checkpoint: &Checkpoint,
        expected: Option<&Etag>,
    ) -> Result<Etag> {
        check_checkpoint_name(name)?;
        let (name, checkpoint, expected) =
            (name.to_string(), checkpoint.clone(), expected.cloned());
        self.shared
            .workers
            .write(OpKind::Checkpoint, move |c| {
                sql::save_checkpoint(c, &name, &checkpoint, expected.as_ref())
            })
            .await
    }

    async fn delete_checkpoint(&self, name: &str) -> Result<()> {
        check_checkpoint_name(name)?;
        let name = name.to_string();
        self.shared
            .workers
            .write(OpKind::Checkpoint, move |c| {
                sql::delete_checkpoint(c, &name)
            })
            .await
    }
}

#[async_trait]
impl StreamCatalog for SqliteEventStore {
    async fn list_streams(
        &self,
        tenant: &str,
        category: Option<&str>,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<StreamInfo>> {
        StreamId::check_tenant(tenant)?;
        let (tenant, category, after) = (
            tenant.to_string(),
            category.map(str::to_string),
            after.cloned(),
        );
        self.shared
            .workers
            .read(move |c| {
                sql::list_streams(c, &tenant, category.as_deref(), after.as_ref(), limit)
            })
            .await
    }
}

#[async_trait]
impl Store for SqliteEventStore {
    fn limits(&self) -> &Limits {
        &self.shared.limits
    }
    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::basic();
        c.feed_notification = true;
        c.feed_history = FeedHistory::Unbounded;
        c.stream_catalog = true;
        // Statements of an embedded database are counted, not budgeted like network round trips.
        c.cost_budgets = false;
        c
    }
    fn costs(&self) -> CostSnapshot {
        self.shared.costs.snapshot()
    }
    fn catalog(&self) -> Option<&dyn StreamCatalog> {
        Some(self)
    }
    /// Finishes the writes already queued, stops the feed notifier, closes the reader
    /// connections and then the writer's: the last connection to the file (when no other
    /// process has it open) checkpoints it and removes the `-wal` and `-shm` files. Later
    /// operations on any clone fail with [`StoreError::Unavailable`].
    async fn close(&self) -> Result<()> {
        let closed = self.shared.workers.close().await;
        // Wakes the notifier, which sees the store closed and stops.
        self.shared.committed.send_modify(|g| *g += 1);
        closed
    }
}
