//! An in-memory store that keeps every rule: for tests, examples and the conformance suite.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::stream::BoxStream;
use tokio::sync::watch;

use crate::backend::checkpoint::{CheckpointCodec, check_name as check_checkpoint_name};
use crate::backend::feed::{
    Held, Partition, PartitionPoll, PartitionedSource, Wait, drive_partitions, stable_hash,
};
use crate::backend::snapshots::SnapshotPointers;
use crate::blob::{BlobStore, ObjectBlobStore};
use crate::cost::{CostCounter, CostSnapshot, OpKind};
use crate::error::{Result, StoreError};
use crate::event::{
    AppendResult, DeleteMode, Direction, EventData, ExpectedVersion, ReadOptions, RecordedEvent,
};
use crate::feed::{ChangeBatch, Checkpoint, Etag, FeedItem, FeedOptions, FeedPoll, FeedStart};
use crate::id::{EventId, StreamId, Version};
use crate::idempotency::{PriorEvent, match_resend};
use crate::paging::{Page, paged};
use crate::snapshot::{
    PointerWrite, Snapshot, SnapshotOffload, StoredSnapshot, check_snapshot_version,
};
use crate::store::{
    Capabilities, ChangeFeed, CheckpointStore, EventStore, FeedHistory, Limits, Store,
    StreamCatalog, StreamInfo,
};

/// The limits of [`MemoryStore::new`]: those of a typical networked store, so code tested on memory
/// meets the same limits in production.
pub fn default_memory_limits() -> Limits {
    Limits {
        max_event_bytes: 256 * 1024,
        max_append_events: 100,
        max_append_bytes: 2 * 1024 * 1024,
        max_inline_snapshot_bytes: 16 * 1024,
        page_events: 100,
        page_bytes: 1024 * 1024,
        feed_poll_interval: Duration::from_millis(1000),
        idempotency_window: u64::MAX,
    }
}

/// Every trait of [`Store`] in one process's memory; all data is gone when the last clone drops.
///
/// It models one request per operation through a single internal function, so its [`Store::costs`]
/// count round trips the way a networked store would: an append is one, a read one per page, a
/// feed poll one, plus one per blob request of an offloaded snapshot.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use futures::StreamExt;
/// use sekiban_core::{EventData, EventStore, ExpectedVersion, MemoryStore, ReadOptions, StreamId};
///
/// let store = MemoryStore::new();
/// let stream = StreamId::new("acme", "order", "1").unwrap();
/// store
///     .append(&stream, ExpectedVersion::NoStream, vec![EventData::new("Placed", "{}")])
///     .await
///     .unwrap();
/// let events: Vec<_> = store.read(&stream, ReadOptions::forward()).collect().await;
/// assert_eq!(events.len(), 1);
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    store_id: String,
    state: Mutex<State>,
    costs: Arc<CostCounter>,
    limits: Limits,
    offload: SnapshotOffload,
    blobs: Arc<dyn BlobStore>,
    appended: watch::Sender<u64>,
    /// Partitions of the feed: a stream's items are in partition `partition_of(stream)`.
    partitions: u32,
}

#[derive(Debug, Default)]
struct State {
    streams: BTreeMap<StreamId, StreamState>,
    log: BTreeMap<u64, LogEntry>,
    last_position: u64,
    checkpoints: HashMap<String, (Checkpoint, u64)>,
    etag_seq: u64,
}

#[derive(Debug, Default)]
struct StreamState {
    events: Vec<StoredEvent>,
    ids: HashMap<EventId, Version>,
    head: Version,
    hidden_upto: Version,
    erased: bool,
    snapshot: Option<StoredSnapshot>,
}

#[derive(Debug)]
struct StoredEvent {
    event: RecordedEvent,
    append_first: Version,
    append_last: Version,
}

#[derive(Debug, Clone)]
enum LogEntry {
    Event(StreamId, Version),
    Deleted(StreamId, Version, DeleteMode),
}

impl LogEntry {
    fn stream(&self) -> &StreamId {
        match self {
            LogEntry::Event(s, _) | LogEntry::Deleted(s, ..) => s,
        }
    }
}

impl StreamState {
    fn lowest_visible(&self) -> Version {
        self.hidden_upto.plus(1)
    }

    fn get(&self, v: Version) -> Option<&StoredEvent> {
        self.events.get(usize::try_from(v.0).ok()?.checked_sub(1)?)
    }

    /// Rule 3: an earlier identical append within the window, a conflict, or nothing.
    fn find_resend(
        &self,
        stream: &StreamId,
        events: &[EventData],
        window: u64,
    ) -> Result<Option<AppendResult>> {
        let oldest = Version(self.head.0.saturating_sub(window));
        match_resend(stream, events, |id| {
            let v = self.ids.get(&id).copied().filter(|v| *v > oldest)?;
            self.get(v).map(|s| PriorEvent {
                event: &s.event,
                append_first: s.append_first,
                append_last: s.append_last,
            })
        })
    }
}

impl State {
    fn live(&self, stream: &StreamId) -> Result<Option<&StreamState>> {
        match self.streams.get(stream) {
            Some(s) if s.erased => Err(StoreError::StreamDeleted {
                stream: stream.clone(),
                version: s.head,
            }),
            other => Ok(other),
        }
    }

    fn push_log(&mut self, entry: LogEntry) -> u64 {
        self.last_position += 1;
        self.log.insert(self.last_position, entry);
        self.last_position
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// A store with [`default_memory_limits`] and in-memory blobs.
    pub fn new() -> Self {
        Self::with_config(default_memory_limits(), Arc::new(ObjectBlobStore::memory()))
    }

    /// A store with in-memory blobs and these limits.
    pub fn with_limits(limits: Limits) -> Self {
        Self::with_config(limits, Arc::new(ObjectBlobStore::memory()))
    }

    /// Opens `memory://`, optionally with `blobs=DIR` (or `blobs=file:///DIR`) to keep
    /// offloaded snapshots in a directory, which is created when missing, and `partitions=N`
    /// for a feed of N partitions ([`MemoryStore::partitioned`]).
    ///
    /// ```
    /// use sekiban_core::{MemoryStore, Store};
    /// let store = MemoryStore::from_url("memory://?partitions=3").unwrap();
    /// assert_eq!(store.capabilities().feed_partitions, 3);
    /// assert!(MemoryStore::from_url("memory://?colour=blue").is_err());
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        const KNOWN: &str = "blobs=DIR, partitions=N";
        let bad = |why: String| StoreError::invalid(format!("memory URL {url:?}: {why}"));
        let parsed = url::Url::parse(url)
            .ok()
            .filter(|u| u.scheme() == "memory")
            .ok_or_else(|| StoreError::invalid(format!("{url:?} is not a memory:// URL")))?;
        if parsed.host_str().is_some_and(|h| !h.is_empty()) || !parsed.path().is_empty() {
            return Err(bad(format!(
                "it takes no host or path; use memory:// or memory://?{KNOWN}"
            )));
        }
        let mut blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::memory());
        let mut partitions = 1;
        for (key, value) in parsed.query_pairs() {
            if value.is_empty() {
                return Err(bad(format!(
                    "parameter {key:?} has no value; known: {KNOWN}"
                )));
            }
            match &*key {
                "blobs" => blobs = Arc::new(ObjectBlobStore::create_dir(&value)?),
                "partitions" => {
                    partitions = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=1024).contains(n))
                        .ok_or_else(|| bad(format!("partitions={value} is not 1..=1024")))?;
                }
                _ => return Err(bad(format!("unknown parameter {key:?}; known: {KNOWN}"))),
            }
        }
        Ok(Self::build(default_memory_limits(), blobs, partitions))
    }

    /// The blob store large snapshots are offloaded to.
    pub fn blobs(&self) -> Arc<dyn BlobStore> {
        self.shared.blobs.clone()
    }

    /// A store whose change feed has `partitions` partitions (at least 1), as a sharded
    /// service's does: each stream's items in one partition, in order; no order across
    /// partitions. Code (and a split of workers, [`FeedOptions::split`]) tested on it meets
    /// DynamoDB's and Cosmos DB's feeds.
    ///
    /// ```
    /// use sekiban_core::{MemoryStore, Store};
    /// let store = MemoryStore::partitioned(4);
    /// assert_eq!(store.capabilities().feed_partitions, 4);
    /// ```
    pub fn partitioned(partitions: u32) -> Self {
        Self::build(
            default_memory_limits(),
            Arc::new(ObjectBlobStore::memory()),
            partitions,
        )
    }

    /// A store with these limits, offloading large snapshots to `blobs`.
    pub fn with_config(limits: Limits, blobs: Arc<dyn BlobStore>) -> Self {
        Self::build(limits, blobs, 1)
    }

    fn build(limits: Limits, blobs: Arc<dyn BlobStore>, partitions: u32) -> Self {
        let costs = Arc::new(CostCounter::new());
        let offload = SnapshotOffload::counted(
            blobs.clone(),
            costs.clone(),
            limits.max_inline_snapshot_bytes,
        );
        MemoryStore {
            shared: Arc::new(Shared {
                store_id: uuid::Uuid::new_v4().simple().to_string(),
                state: Mutex::new(State::default()),
                costs,
                limits,
                offload,
                blobs,
                appended: watch::channel(0).0,
                partitions: partitions.max(1),
            }),
        }
    }

    /// The single request function: one round trip of `kind`, `sent` bytes out, the reply's
    /// bytes counted by `reply_size`. Wakes feed readers when the request added to the log.
    fn request<R>(
        &self,
        kind: OpKind,
        sent: usize,
        f: impl FnOnce(&mut State) -> R,
        reply_size: impl FnOnce(&R) -> usize,
    ) -> R {
        let (r, position) = {
            let mut state = self.lock();
            let before = state.last_position;
            let r = f(&mut state);
            (
                r,
                (state.last_position != before).then_some(state.last_position),
            )
        };
        if let Some(position) = position {
            self.shared.appended.send_replace(position);
        }
        self.shared
            .costs
            .record(kind, sent as u64, reply_size(&r) as u64);
        r
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-written append: every mutation is
        // computed before it is applied, so the data behind a poisoned lock is still consistent.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn codec(&self) -> CheckpointCodec {
        CheckpointCodec::new("mem", "memory store", self.shared.store_id.clone())
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<EventData>,
    ) -> Result<AppendResult> {
        let limits = &self.shared.limits;
        limits.check_append(stream, &events)?;
        let sent = events.iter().map(EventData::size).sum();
        let now = SystemTime::now();
        self.request(
            OpKind::Append,
            sent,
            |st| {
                let current = st.live(stream)?;
                let head = current.map_or(Version::NONE, |s| s.head);
                if let Some(s) = current
                    && let Some(r) = s.find_resend(stream, &events, limits.idempotency_window)?
                {
                    return Ok(r);
                }
                if !expected.accepts(head) {
                    return Err(StoreError::WrongExpectedVersion {
                        stream: stream.clone(),
                        expected,
                        actual: head,
                    });
                }
                let first = head.plus(1);
                let last = head.plus(events.len() as u64);
                let mut positions = Vec::with_capacity(events.len());
                for i in 0..events.len() {
                    positions
                        .push(st.push_log(LogEntry::Event(stream.clone(), first.plus(i as u64))));
                }
                let s = st.streams.entry(stream.clone()).or_default();
                for (i, e) in events.into_iter().enumerate() {
                    let version = first.plus(i as u64);
                    s.ids.insert(e.id, version);
                    s.events.push(StoredEvent {
                        event: RecordedEvent {
                            stream: stream.clone(),
                            version,
                            id: e.id,
                            event_type: e.event_type,
                            schema_version: e.schema_version,
                            data: e.data,
                            metadata: e.metadata,
                            recorded_at: now,
                        },
                        append_first: first,
                        append_last: last,
                    });
                }
                s.head = last;
                Ok(AppendResult {
                    first,
                    last,
                    deduplicated: false,
                })
            },
            |_| 16,
        )
    }

    fn read(&self, stream: &StreamId, opts: ReadOptions) -> BoxStream<'_, Result<RecordedEvent>> {
        let stream = stream.clone();
        let limits = &self.shared.limits;
        paged(opts, limits.page_events, move |page| {
            let r = self.request(
                OpKind::Read,
                0,
                |st| -> Result<Page> {
                    let Some(s) = st.live(&stream)? else {
                        return Ok((Vec::new(), false));
                    };
                    let (lowest, head) = (s.lowest_visible(), s.head);
                    let versions: Box<dyn Iterator<Item = u64>> = match page.direction {
                        Direction::Forward => Box::new(page.from.0.max(lowest.0)..=head.0),
                        Direction::Backward => Box::new((lowest.0..=page.from.0.min(head.0)).rev()),
                    };
                    let mut out = Vec::new();
                    let mut bytes = 0;
                    for v in versions {
                        let Some(e) = s.get(Version(v)) else { break };
                        if out.len() == page.limit
                            || (!out.is_empty() && bytes >= limits.page_bytes)
                        {
                            return Ok((out, true));
                        }
                        bytes += e.event.size();
                        out.push(e.event.clone());
                    }
                    Ok((out, false))
                },
                |r| {
                    r.as_ref()
                        .map_or(0, |(p, _)| p.iter().map(RecordedEvent::size).sum())
                },
            );
            async move { r }
        })
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Version> {
        self.request(
            OpKind::Read,
            0,
            |st| Ok(st.live(stream)?.map_or(Version::NONE, |s| s.head)),
            |_| 8,
        )
    }

    async fn delete_stream(&self, stream: &StreamId, mode: DeleteMode) -> Result<()> {
        let removed = self.request(
            OpKind::Delete,
            0,
            |st| {
                let s = st.streams.get_mut(stream).filter(|s| !s.erased)?;
                // A soft delete with nothing new to hide does nothing (no second marker).
                if mode == DeleteMode::Soft && s.hidden_upto >= s.head {
                    return None;
                }
                let version = s.head;
                let snapshot = s.snapshot.take();
                match mode {
                    DeleteMode::Soft => s.hidden_upto = s.head,
                    DeleteMode::Hard => {
                        s.erased = true;
                        s.events.clear();
                        s.ids.clear();
                        st.log
                            .retain(|_, e| !matches!(e, LogEntry::Event(s2, _) if s2 == stream));
                    }
                }
                st.push_log(LogEntry::Deleted(stream.clone(), version, mode));
                Some(snapshot)
            },
            |_| 0,
        );
        self.shared
            .offload
            .after_delete(stream, mode, removed)
            .await
    }
}

#[async_trait]
impl SnapshotPointers for MemoryStore {
    fn offload(&self) -> &SnapshotOffload {
        &self.shared.offload
    }

    async fn write_pointer(
        &self,
        snapshot: &Snapshot,
        stored: StoredSnapshot,
    ) -> Result<PointerWrite> {
        let sent = snapshot
            .state
            .len()
            .min(self.shared.limits.max_inline_snapshot_bytes);
        self.request(
            OpKind::Snapshot,
            sent,
            |st| {
                let s = st.live(&snapshot.stream)?;
                let hidden = s.map_or(Version::NONE, |s| s.hidden_upto);
                check_snapshot_version(snapshot, s.map(|s| s.head), hidden)?;
                let Some(s) = st.streams.get_mut(&snapshot.stream) else {
                    return Ok(PointerWrite::Refused);
                };
                if s.snapshot
                    .as_ref()
                    .is_some_and(|c| c.version > snapshot.version)
                {
                    return Ok(PointerWrite::Refused);
                }
                Ok(PointerWrite::Replaced(s.snapshot.replace(stored)))
            },
            |_| 0,
        )
    }

    async fn read_pointer(&self, stream: &StreamId) -> Result<Option<StoredSnapshot>> {
        self.request(
            OpKind::Snapshot,
            0,
            |st| Ok(st.live(stream)?.and_then(|s| s.snapshot.clone())),
            |r: &Result<Option<StoredSnapshot>>| match r {
                Ok(Some(s)) => s.size(),
                _ => 0,
            },
        )
    }
}

#[async_trait]
impl CheckpointStore for MemoryStore {
    async fn load_checkpoint(&self, name: &str) -> Result<Option<(Checkpoint, Etag)>> {
        check_checkpoint_name(name)?;
        Ok(self.request(
            OpKind::Checkpoint,
            name.len(),
            |st| {
                st.checkpoints
                    .get(name)
                    .map(|(c, tag)| (c.clone(), Etag(tag.to_string())))
            },
            |_| 64,
        ))
    }

    async fn save_checkpoint(
        &self,
        name: &str,
        checkpoint: &Checkpoint,
        expected: Option<&Etag>,
    ) -> Result<Etag> {
        check_checkpoint_name(name)?;
        self.request(
            OpKind::Checkpoint,
            name.len() + checkpoint.as_str().len(),
            |st| {
                let current = st.checkpoints.get(name).map(|(_, t)| Etag(t.to_string()));
                if current.as_ref() != expected {
                    return Err(StoreError::CheckpointConflict {
                        name: name.to_string(),
                    });
                }
                st.etag_seq += 1;
                let tag = st.etag_seq;
                st.checkpoints
                    .insert(name.to_string(), (checkpoint.clone(), tag));
                Ok(Etag(tag.to_string()))
            },
            |_| 16,
        )
    }

    async fn delete_checkpoint(&self, name: &str) -> Result<()> {
        check_checkpoint_name(name)?;
        self.request(
            OpKind::Checkpoint,
            name.len(),
            |st| {
                st.checkpoints.remove(name);
            },
            |_| 0,
        );
        Ok(())
    }
}

#[async_trait]
impl StreamCatalog for MemoryStore {
    async fn list_streams(
        &self,
        tenant: &str,
        category: Option<&str>,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<StreamInfo>> {
        StreamId::check_tenant(tenant)?;
        Ok(self.request(
            OpKind::Other,
            0,
            |st| {
                st.streams
                    .iter()
                    .filter(|(id, _)| {
                        id.tenant() == tenant
                            && category.is_none_or(|c| c == id.category())
                            && after.is_none_or(|a| *id > a)
                    })
                    .take(limit)
                    .map(|(id, s)| StreamInfo::of_head(id.clone(), s.head, s.hidden_upto, s.erased))
                    .collect::<Vec<_>>()
            },
            |v| v.iter().map(StreamInfo::size).sum(),
        ))
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn limits(&self) -> &Limits {
        &self.shared.limits
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            feed_notification: true,
            feed_partitions: self.shared.partitions,
            feed_history: FeedHistory::Unbounded,
            stream_catalog: true,
            cost_budgets: true,
            reports_capacity_units: false,
        }
    }
    fn costs(&self) -> CostSnapshot {
        self.shared.costs.snapshot()
    }
    fn catalog(&self) -> Option<&dyn StreamCatalog> {
        Some(self)
    }
    /// Nothing to release: the data lives in this process until the last clone is dropped, and
    /// the store keeps working after a close.
    async fn close(&self) -> Result<()> {
        Ok(())
    }
}

mod feed;
#[cfg(test)]
mod tests;
