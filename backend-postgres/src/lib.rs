#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod config;
mod error;
mod sql;
#[cfg(feature = "testcontainers")]
pub mod testcontainer;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use sekiban_core::memory::check_checkpoint_name;
use sekiban_core::paging::paged;
use sekiban_core::{
    AppendResult, BlobStore, Capabilities, ChangeBatch, ChangeFeed, Checkpoint, CheckpointStore,
    CostCounter, CostSnapshot, CountingBlobStore, DeleteMode, Etag, EventData, EventStore,
    ExpectedVersion, FeedHistory, FeedOptions, FeedPoll, FeedStart, Limits, ObjectBlobStore,
    OpKind, ReadOptions, RecordedEvent, Result, Snapshot, SnapshotOffload, SnapshotStore, Store,
    StoreError, StreamCatalog, StreamId, StreamInfo, Version,
};
use tokio::sync::{broadcast, mpsc};

pub use config::{DEFAULT_NOTIFY_INTERVAL, ENV_URL, PostgresConfig, check_schema, default_limits};
pub use tokio_postgres;

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
#[doc(hidden)]
pub fn statement_texts(schema: &str) -> Vec<(&'static str, String)> {
    sql::statement_texts(schema)
}

/// An event store in a PostgreSQL schema: every trait of [`Store`].
///
/// Cheap to clone; clones share the pool.
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
    system_id: String,
    /// Tenants with new commits, for the notifier task (`None`: notifications are off).
    notify: Option<mpsc::UnboundedSender<String>>,
    /// The tenant of every notification the listener receives.
    wake: broadcast::Sender<Arc<str>>,
    listening: Mutex<bool>,
}

fn channel(schema: &str) -> String {
    format!("{schema}.feed")
}

impl PostgresEventStore {
    /// Creates or upgrades the store's schema (embedded, versioned migrations, in one
    /// transaction under an advisory lock; safe to run concurrently and again).
    pub async fn migrate(config: &PostgresConfig) -> Result<()> {
        check_schema(&config.schema)?;
        let db = Db::connect(config, Arc::new(CostCounter::new()))?;
        db.migrate(&config.schema).await.map(|_| ())
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
    /// schema is a clear error naming `sekiban init`.
    pub async fn connect_with_blobs(
        config: PostgresConfig,
        blobs: Arc<dyn BlobStore>,
    ) -> Result<Self> {
        check_schema(&config.schema)?;
        let costs = Arc::new(CostCounter::new());
        let db = Db::connect(&config, costs.clone())?;
        let system_id = db.check_server(&config.schema).await?;
        db.fill_pool().await?;
        let offload = SnapshotOffload::new(
            Arc::new(CountingBlobStore::new(blobs.clone(), costs.clone())),
            config.limits.max_inline_snapshot_bytes,
        );
        let (notify, notifier_rx) = match config.notify_interval {
            Some(interval) => {
                let (tx, rx) = mpsc::unbounded_channel();
                (Some(tx), Some((rx, interval)))
            }
            None => (None, None),
        };
        let shared = Arc::new(Shared {
            db,
            limits: config.limits.clone(),
            config,
            costs,
            offload,
            blobs,
            system_id,
            notify,
            wake: broadcast::channel(1024).0,
            listening: Mutex::new(false),
        });
        if let Some((rx, interval)) = notifier_rx {
            tokio::spawn(notifier(Arc::downgrade(&shared), rx, interval));
        }
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

    fn checkpoint(&self, p: FeedPosition) -> Checkpoint {
        Checkpoint::new(format!(
            "pg:{}:{}:{}:{}",
            self.shared.system_id, self.shared.config.schema, p.tx, p.position
        ))
    }

    fn parse_checkpoint(&self, c: &Checkpoint) -> Result<FeedPosition> {
        let bad = |reason: String| StoreError::InvalidCheckpoint { reason };
        let parts: Vec<&str> = c.as_str().split(':').collect();
        let [kind, sys, schema, tx, pos] = parts.as_slice() else {
            return Err(bad(format!("{c} is not a PostgreSQL-store checkpoint")));
        };
        if *kind != "pg" {
            return Err(bad(format!("{c} is not a PostgreSQL-store checkpoint")));
        }
        if *sys != self.shared.system_id || *schema != self.shared.config.schema {
            return Err(bad(format!(
                "{c} was handed out by another cluster or schema (this is cluster {} schema {}); \
                 transaction ids restart after a restore, so it cannot be resumed here: start from the beginning",
                self.shared.system_id, self.shared.config.schema
            )));
        }
        match (tx.parse(), pos.parse()) {
            (Ok(tx), Ok(position)) => Ok(FeedPosition { tx, position }),
            _ => Err(bad(format!("{c} has no numeric position"))),
        }
    }

    /// Hands a commit of `stream`'s tenant to the notifier (when notifications are on).
    fn announce(&self, stream: &StreamId) {
        if let Some(n) = &self.shared.notify {
            let _ = n.send(stream.tenant().to_string());
        }
    }

    /// Starts the LISTEN connection once; readers fall back to polling when it fails.
    fn listen(&self) {
        let mut listening = self
            .shared
            .listening
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if *listening {
            return;
        }
        *listening = true;
        tokio::spawn(listener(Arc::downgrade(&self.shared)));
    }
}

/// Sends one coalesced NOTIFY per tenant after commits, outside the append's statement: a NOTIFY
/// inside an append would take a cluster-wide lock until commit and serialise every writer.
/// The first commit after a quiet spell is announced at once; later ones wait until `interval`
/// has passed since the previous announcement, and share it.
async fn notifier(
    shared: std::sync::Weak<Shared>,
    mut rx: mpsc::UnboundedReceiver<String>,
    interval: std::time::Duration,
) {
    let mut last: Option<tokio::time::Instant> = None;
    while let Some(first) = rx.recv().await {
        if let Some(last) = last {
            tokio::time::sleep_until(last + interval).await;
        }
        let mut tenants = vec![first];
        while let Ok(t) = rx.try_recv() {
            if !tenants.contains(&t) {
                tenants.push(t);
            }
        }
        last = Some(tokio::time::Instant::now());
        let Some(s) = shared.upgrade() else { return };
        // A lost notification only delays readers until their next poll.
        let _ = s.db.notify(&channel(&s.config.schema), &tenants).await;
    }
}

/// Holds a connection that LISTENs for the schema's channel and wakes waiting readers.
async fn listener(shared: std::sync::Weak<Shared>) {
    let Some(s) = shared.upgrade() else { return };
    let url = s.config.url.clone();
    let chan = channel(&s.config.schema);
    drop(s);
    let Ok((client, mut connection)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await
    else {
        if let Some(s) = shared.upgrade() {
            *s.listening.lock().unwrap_or_else(|p| p.into_inner()) = false;
        }
        return;
    };
    let messages = stream::poll_fn(move |cx| connection.poll_message(cx));
    let forward = {
        let shared = shared.clone();
        messages.for_each(move |m| {
            if let (Ok(tokio_postgres::AsyncMessage::Notification(n)), Some(s)) =
                (m, shared.upgrade())
            {
                let _ = s.wake.send(Arc::from(n.payload()));
            }
            futures::future::ready(())
        })
    };
    let sql = format!("LISTEN \"{}\"", chan.replace('"', "\"\""));
    let listen = async {
        if let Some(s) = shared.upgrade() {
            s.costs.record(OpKind::Feed, 0, 0);
        }
        client.batch_execute(&sql).await
    };
    let (_, listened) = tokio::join!(
        async {
            // Keeps the connection (and so the LISTEN) until the store is dropped or it breaks.
            let watch_store = async {
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    if shared.strong_count() == 0 {
                        return;
                    }
                }
            };
            tokio::select! { _ = forward => {}, _ = watch_store => {} }
        },
        listen
    );
    let _ = listened;
    if let Some(s) = shared.upgrade() {
        *s.listening.lock().unwrap_or_else(|p| p.into_inner()) = false;
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
        let r = self.shared.db.append(stream, expected, &events).await?;
        if !r.deduplicated {
            self.announce(stream);
        }
        Ok(r)
    }

    fn read(&self, stream: &StreamId, opts: ReadOptions) -> BoxStream<'_, Result<RecordedEvent>> {
        let stream = stream.clone();
        let page_bytes = self.shared.limits.page_bytes;
        paged(opts, self.shared.limits.page_events, move |page| {
            let s = stream.clone();
            async move { self.shared.db.read_page(&s, page, page_bytes).await }
        })
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Version> {
        self.shared.db.stream_version(stream).await
    }

    async fn delete_stream(&self, stream: &StreamId, mode: DeleteMode) -> Result<()> {
        match self.shared.db.delete(stream, mode).await? {
            Some(dropped) => {
                self.announce(stream);
                self.shared
                    .offload
                    .after_delete(stream, mode, dropped)
                    .await
            }
            None => Ok(()),
        }
    }
}

#[async_trait]
impl SnapshotStore for PostgresEventStore {
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        let write = |stored| self.shared.db.save_pointer(&snapshot, stored);
        self.shared.offload.save(&snapshot, write).await
    }

    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>> {
        let read = || self.shared.db.load_pointer(stream);
        self.shared.offload.load(stream, read).await
    }
}

impl ChangeFeed for PostgresEventStore {
    fn changes(&self, from: FeedStart, opts: FeedOptions) -> BoxStream<'_, Result<ChangeBatch>> {
        struct Reader {
            from: Option<FeedStart>,
            position: FeedPosition,
            delivered: bool,
            done: bool,
            /// Just started at `Now`: nothing can be deliverable yet, wait before polling.
            wait_first: bool,
            /// Polls since an announcement found nothing deliverable yet (0: not announced).
            announced: u32,
            wake: Option<broadcast::Receiver<Arc<str>>>,
        }
        let max = opts
            .max_batch
            .unwrap_or(self.shared.limits.page_events)
            .max(1);
        let poll = self.shared.limits.feed_poll_interval;
        let opts = Arc::new(opts);
        let reader = Reader {
            from: Some(from),
            position: FeedPosition { tx: 0, position: 0 },
            delivered: false,
            done: false,
            wait_first: false,
            announced: 0,
            wake: None,
        };
        stream::unfold(reader, move |mut r| {
            let opts = opts.clone();
            async move {
                if r.done {
                    return None;
                }
                if let Some(from) = r.from.take() {
                    let start = match from {
                        FeedStart::Beginning => Ok(FeedPosition { tx: 0, position: 0 }),
                        FeedStart::Now => {
                            r.wait_first = opts.follow;
                            self.shared.db.now().await
                        }
                        FeedStart::After(c) => self.parse_checkpoint(&c),
                    };
                    match start {
                        Ok(p) => r.position = p,
                        Err(e) => {
                            r.done = true;
                            return Some((Err(e), r));
                        }
                    }
                }
                loop {
                    if opts.follow && r.wake.is_none() {
                        self.listen();
                        r.wake = Some(self.shared.wake.subscribe());
                    }
                    if std::mem::take(&mut r.wait_first) {
                        let woken = wait(r.wake.as_mut(), opts.tenant.as_deref(), poll).await;
                        r.announced = u32::from(woken);
                        continue;
                    }
                    // Announcements made so far are all covered by the poll below.
                    if let Some(w) = r.wake.as_mut() {
                        while !matches!(
                            w.try_recv(),
                            Err(broadcast::error::TryRecvError::Empty
                                | broadcast::error::TryRecvError::Closed)
                        ) {}
                    }
                    let polled = self
                        .shared
                        .db
                        .poll_feed(
                            r.position,
                            opts.tenant.as_deref(),
                            opts.category.as_deref(),
                            max,
                            self.shared.limits.page_bytes,
                        )
                        .await;
                    let FeedPoll {
                        items,
                        reached,
                        at_end,
                    } = match polled {
                        Ok(x) => x,
                        Err(e) => {
                            r.done = true;
                            return Some((Err(e), r));
                        }
                    };
                    r.position = reached;
                    if !items.is_empty() || (!opts.follow && at_end && !r.delivered) {
                        r.delivered = true;
                        r.announced = 0;
                        r.done = !opts.follow && at_end;
                        let batch = ChangeBatch {
                            items: items.into_iter().map(|(_, i)| i).collect(),
                            checkpoint: self.checkpoint(reached),
                        };
                        return Some((Ok(batch), r));
                    }
                    if !opts.follow {
                        return None;
                    }
                    // Announced but not deliverable yet: an older transaction elsewhere still
                    // holds the xmin back. Look again shortly (a few times) instead of sleeping a
                    // whole poll interval.
                    if r.announced > 0 && r.announced <= 4 {
                        tokio::time::sleep(std::time::Duration::from_millis(10 << r.announced))
                            .await;
                        r.announced += 1;
                        continue;
                    }
                    let woken = wait(r.wake.as_mut(), opts.tenant.as_deref(), poll).await;
                    r.announced = u32::from(woken);
                }
            }
        })
        .boxed()
    }
}

/// Sleeps until a commit of `tenant` (any, when `None`) is announced (`true`), or one poll
/// interval passes (`false`: commits of other processes without notifications, or lost ones).
async fn wait(
    wake: Option<&mut broadcast::Receiver<Arc<str>>>,
    tenant: Option<&str>,
    poll: std::time::Duration,
) -> bool {
    let Some(w) = wake else {
        tokio::time::sleep(poll).await;
        return false;
    };
    let wanted = async {
        loop {
            match w.recv().await {
                Ok(t) if tenant.is_none_or(|mine| *t == *mine) => return,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => return,
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    };
    tokio::time::timeout(poll, wanted).await.is_ok()
}

#[async_trait]
impl CheckpointStore for PostgresEventStore {
    async fn load_checkpoint(&self, name: &str) -> Result<Option<(Checkpoint, Etag)>> {
        check_checkpoint_name(name)?;
        self.shared.db.load_checkpoint(name).await
    }

    async fn save_checkpoint(
        &self,
        name: &str,
        checkpoint: &Checkpoint,
        expected: Option<&Etag>,
    ) -> Result<Etag> {
        check_checkpoint_name(name)?;
        self.shared
            .db
            .save_checkpoint(name, checkpoint, expected)
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
        self.shared
            .db
            .list_streams(tenant, category, after, limit)
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
    async fn close(&self) -> Result<()> {
        Ok(())
    }
}
