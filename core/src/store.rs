//! The traits every backend implements, and what a store declares about itself.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::cost::CostSnapshot;
use crate::error::{Result, StoreError};
use crate::event::{
    AppendResult, DeleteMode, EventData, ExpectedVersion, ReadOptions, RecordedEvent,
};
use crate::feed::{ChangeBatch, Checkpoint, Etag, FeedOptions, FeedStart};
use crate::id::{StreamId, Version};
use crate::snapshot::Snapshot;

/// What a store takes, stated up front. Inputs over a limit get a typed error before anything is
/// written; the conformance suite reads these numbers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest event (data + type + metadata), in bytes.
    pub max_event_bytes: usize,
    /// Most events in one atomic append.
    pub max_append_events: usize,
    /// Most bytes in one atomic append.
    pub max_append_bytes: usize,
    /// Largest snapshot kept inline; larger ones go to the blob store.
    pub max_inline_snapshot_bytes: usize,
    /// Most events one read request returns.
    pub page_events: usize,
    /// Bytes after which a read page ends: a page holds events until their data, types and
    /// metadata reach this many bytes, so it returns at most this much plus the one event that
    /// crosses it (a single larger event still comes alone).
    pub page_bytes: usize,
    /// How often an idle change-feed reader polls.
    pub feed_poll_interval: Duration,
    /// How many of a stream's latest events an idempotent re-send is recognised within
    /// (`u64::MAX`: unbounded). Outside the window a re-send is an ordinary append: under
    /// `Exact` or `NoStream` it fails with `WrongExpectedVersion`, under `Any` or `StreamExists`
    /// its events are appended again at new versions.
    pub idempotency_window: u64,
}

impl Limits {
    /// Checks an append against these limits and the rules that do not depend on a store: a
    /// non-empty batch, valid event types and metadata, no id twice. Every backend calls this first.
    pub fn check_append(&self, stream: &StreamId, events: &[EventData]) -> Result<()> {
        if events.is_empty() {
            return Err(StoreError::invalid(format!(
                "append to {stream} has no events; pass at least one"
            )));
        }
        let mut bytes = 0usize;
        let mut ids = std::collections::HashSet::with_capacity(events.len());
        for (index, e) in events.iter().enumerate() {
            e.validate()?;
            let size = e.size();
            if size > self.max_event_bytes {
                return Err(StoreError::EventTooLarge {
                    stream: stream.clone(),
                    index,
                    size,
                    limit: self.max_event_bytes,
                });
            }
            bytes += size;
            if !ids.insert(e.id) {
                return Err(StoreError::invalid(format!(
                    "append to {stream} carries event id {} twice; give each event its own id",
                    e.id
                )));
            }
        }
        if events.len() > self.max_append_events || bytes > self.max_append_bytes {
            return Err(StoreError::BatchTooLarge {
                stream: stream.clone(),
                count: events.len(),
                bytes,
                max_count: self.max_append_events,
                max_bytes: self.max_append_bytes,
            });
        }
        Ok(())
    }
}

/// How far back [`FeedStart::Beginning`] reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FeedHistory {
    /// Every event still stored.
    Unbounded,
    /// Only events younger than this (e.g. DynamoDB Streams: 24 hours).
    Retained(Duration),
}

/// What a store can do, as data: the conformance suite and tools branch on this, never on the
/// backend's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Capabilities {
    /// A same-process feed reader is woken by appends well inside one poll interval.
    pub feed_notification: bool,
    /// Partitions the feed is read from (shards, feed ranges; 1 for SQL and memory).
    pub feed_partitions: u32,
    /// How far back the feed reaches.
    pub feed_history: FeedHistory,
    /// Streams can be listed ([`StreamCatalog`]).
    pub stream_catalog: bool,
    /// The store's round trips are held to the suite's fixed budgets (networked stores and the
    /// memory store). An embedded store counts its statements but is not budgeted.
    pub cost_budgets: bool,
    /// Every request reports the capacity units (or request units) the service charged, so
    /// each operation's [`crate::OpCosts::capacity_units`] is above zero.
    pub reports_capacity_units: bool,
}

impl Capabilities {
    /// Capabilities of a networked store with one feed partition, full history, no notification,
    /// no catalog, held to the cost budgets, without capacity units.
    pub fn basic() -> Self {
        Capabilities {
            feed_notification: false,
            feed_partitions: 1,
            feed_history: FeedHistory::Unbounded,
            stream_catalog: false,
            cost_budgets: true,
            reports_capacity_units: false,
        }
    }
}

/// Appending and reading streams.
///
/// The contract (each rule is a conformance case):
/// 1. an append is atomic: all its events or none, versions contiguous;
/// 2. of two appenders at one expected version exactly one wins, the other gets
///    [`StoreError::WrongExpectedVersion`] with the actual version; `Exact(v)` succeeds only at the head;
/// 3. re-sending an earlier append unchanged (same event ids and content) succeeds with the original
///    versions and writes nothing, whatever its expected version, within `Limits::idempotency_window`;
///    the same ids with other content or a partial overlap give [`StoreError::IdempotencyConflict`];
/// 4. reads return exactly what was written, in order, lazily in pages;
/// 6. inputs over [`Limits`] are refused before anything is written.
#[async_trait]
pub trait EventStore: Send + Sync + Debug + 'static {
    /// Appends `events` atomically if the stream is at `expected`.
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<EventData>,
    ) -> Result<AppendResult>;

    /// Reads a stream lazily, one page per request. A missing stream reads as empty; an erased one
    /// yields [`StoreError::StreamDeleted`].
    fn read(&self, stream: &StreamId, opts: ReadOptions) -> BoxStream<'_, Result<RecordedEvent>>;

    /// The stream's head version (0 when it does not exist; the last version when soft-deleted).
    async fn stream_version(&self, stream: &StreamId) -> Result<Version>;

    /// Deletes a stream ([`DeleteMode`]). Deleting a missing stream does nothing.
    async fn delete_stream(&self, stream: &StreamId, mode: DeleteMode) -> Result<()>;
}

/// Saving and loading the latest snapshot of a stream.
///
/// A snapshot at or below [`Limits::max_inline_snapshot_bytes`] is stored inline; a larger one goes
/// to the blob store first (key from [`crate::snapshot::blob_key`]) and the store keeps a pointer
/// with its hash, checked on load ([`StoreError::Corrupt`] on a mismatch). An older version never
/// replaces a newer one; a replaced snapshot's blob is deleted.
#[async_trait]
pub trait SnapshotStore: Send + Sync + Debug + 'static {
    /// Saves a snapshot (ignored when a newer one is stored).
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()>;
    /// The latest snapshot, if any.
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>>;
}

/// The stream of committed changes across all streams.
///
/// Every committed event is delivered, per stream in version order, never before its append is
/// committed, and resumable from any checkpoint the feed handed out (at-least-once after a restart).
///
/// - Order is promised per stream only. A feed read from several partitions
///   ([`Capabilities::feed_partitions`] > 1: shards, feed ranges) gives no order across streams;
///   one partition gives commit order.
/// - A following feed may hand out batches without items that only advance the checkpoint
///   (progress through quiet partitions); consumers save those checkpoints like any other.
/// - Resuming from a checkpoint (one a catch-up or following reader handed out, or one kept in a
///   [`CheckpointStore`]) loses nothing after it; it may repeat events at or before it, never
///   others. A checkpoint of a `Now` feed that has delivered nothing yet resumes the same way.
/// - Deletions come as [`crate::FeedItem::Deleted`] markers after the stream's events. A
///   soft-deleted stream's earlier events may still come (they were committed), before its
///   marker. After a hard delete completes, no feed read, from any start, delivers an erased
///   event's data.
pub trait ChangeFeed: Send + Sync + Debug + 'static {
    /// Changes from `from`; with `opts.follow` the stream waits for new events and never ends.
    fn changes(&self, from: FeedStart, opts: FeedOptions) -> BoxStream<'_, Result<ChangeBatch>>;
}

/// Longest checkpoint name, in bytes.
pub const MAX_CHECKPOINT_NAME_LEN: usize = 200;

/// Named consumers' checkpoints, saved conditionally on the etag of the previous load or save.
/// Every request is counted as [`crate::OpKind::Checkpoint`]. A name is 1 to
/// [`MAX_CHECKPOINT_NAME_LEN`] (200) bytes without NUL; any other is refused
/// with [`StoreError::InvalidInput`] by every method.
#[async_trait]
pub trait CheckpointStore: Send + Sync + Debug + 'static {
    /// The saved checkpoint and its etag.
    async fn load_checkpoint(&self, name: &str) -> Result<Option<(Checkpoint, Etag)>>;
    /// Saves a checkpoint if the stored etag is `expected` (`None`: nothing saved yet); else
    /// [`StoreError::CheckpointConflict`], even when `checkpoint` is further ahead.
    async fn save_checkpoint(
        &self,
        name: &str,
        checkpoint: &Checkpoint,
        expected: Option<&Etag>,
    ) -> Result<Etag>;
    /// Deletes a checkpoint (a consumer retired, a test's leftovers); deleting a missing one does
    /// nothing. The next save of the name is a first save again (`expected` = `None`).
    async fn delete_checkpoint(&self, name: &str) -> Result<()>;
}

/// A stream as listed by a [`StreamCatalog`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamInfo {
    /// The stream.
    pub stream: StreamId,
    /// Its head version.
    pub version: Version,
    /// Whether it is deleted (soft or hard).
    pub deleted: bool,
}

impl StreamInfo {
    /// A stream as its head row stores it: deleted when erased, or soft-deleted up to its head.
    ///
    /// ```
    /// use sekiban_core::{StreamId, StreamInfo, Version};
    /// let s = StreamId::new("t", "c", "1").unwrap();
    /// assert!(!StreamInfo::of_head(s.clone(), Version(3), Version(2), false).deleted);
    /// assert!(StreamInfo::of_head(s.clone(), Version(3), Version(3), false).deleted);
    /// assert!(StreamInfo::of_head(s, Version(3), Version(0), true).deleted);
    /// ```
    pub fn of_head(stream: StreamId, head: Version, hidden_upto: Version, erased: bool) -> Self {
        StreamInfo {
            stream,
            version: head,
            deleted: erased || (hidden_upto == head && head > Version::NONE),
        }
    }

    /// The bytes a listing moves for this entry, as cost counters count them: the category and
    /// id, and 24 for the version and flags (the tenant was sent, not received).
    pub fn size(&self) -> usize {
        self.stream.category().len() + self.stream.id().len() + 24
    }
}

/// Listing streams, where a store has an index for it.
#[async_trait]
pub trait StreamCatalog: Send + Sync + Debug {
    /// Streams of a tenant (optionally one category) in id order, after `after`, at most `limit`.
    async fn list_streams(
        &self,
        tenant: &str,
        category: Option<&str>,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<StreamInfo>>;
}

/// A stream's latest snapshot and the events after it, loaded together
/// ([`Store::load_snapshot_and_tail`]).
pub struct SnapshotAndTail<'a> {
    /// The latest snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// The events after it (all of them when there is none), in version order, read lazily.
    pub tail: BoxStream<'a, Result<RecordedEvent>>,
}

impl Debug for SnapshotAndTail<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotAndTail")
            .field("snapshot", &self.snapshot)
            .finish_non_exhaustive()
    }
}

/// [`Store::load_snapshot_and_tail`] as two requests: [`SnapshotStore::load_snapshot`], then a
/// lazy [`EventStore::read`] from the version after it. The default, and the fallback of a store
/// whose one-request load did not find everything.
pub async fn load_snapshot_then_read<'a, S: SnapshotStore + EventStore + ?Sized>(
    store: &'a S,
    stream: &StreamId,
) -> Result<SnapshotAndTail<'a>> {
    let snapshot = store.load_snapshot(stream).await?;
    let from = snapshot
        .as_ref()
        .map_or(Version::NONE, |s| s.version)
        .plus(1);
    let tail = store.read(stream, ReadOptions::forward().from(from));
    Ok(SnapshotAndTail { snapshot, tail })
}

/// Everything a tool or the conformance suite needs, as one object: `Arc<dyn Store>`.
#[async_trait]
pub trait Store: EventStore + SnapshotStore + ChangeFeed + CheckpointStore {
    /// The store's limits.
    fn limits(&self) -> &Limits;
    /// The store's capabilities.
    fn capabilities(&self) -> Capabilities;
    /// Costs counted so far.
    fn costs(&self) -> CostSnapshot;
    /// Stream listing, if the store has it.
    fn catalog(&self) -> Option<&dyn StreamCatalog>;
    /// The latest snapshot and the events after it, as one load: what the aggregate
    /// `Repository` reads. A store that keeps its snapshot beside its recent events answers
    /// with one request; by default this is [`SnapshotStore::load_snapshot`] and then a lazy
    /// [`EventStore::read`] from the version after it.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use futures::StreamExt;
    /// use sekiban_core::{EventData, EventStore, ExpectedVersion, MemoryStore, Store, StreamId};
    ///
    /// let store = MemoryStore::new();
    /// let stream = StreamId::new("acme", "order", "1").unwrap();
    /// let two = vec![EventData::new("Placed", "{}"), EventData::new("Paid", "{}")];
    /// store.append(&stream, ExpectedVersion::NoStream, two).await.unwrap();
    /// let loaded = store.load_snapshot_and_tail(&stream).await.unwrap();
    /// assert!(loaded.snapshot.is_none());
    /// assert_eq!(loaded.tail.count().await, 2);
    /// # });
    /// ```
    async fn load_snapshot_and_tail(&self, stream: &StreamId) -> Result<SnapshotAndTail<'_>> {
        load_snapshot_then_read(self, stream).await
    }
    /// Closes the store gracefully, for every clone: writes already handed to the store finish,
    /// what a background task still owes goes out (a pending feed notification), background
    /// tasks stop and every connection closes. Returns once that is done; a second call does
    /// nothing. Operations after a close fail with [`StoreError::Unavailable`] (or, for a store
    /// with nothing to release, keep working).
    ///
    /// A process should close its stores before it exits: a thread or task still running at
    /// exit is cut off, so a database may be left with work to redo on the next open (SQLite's
    /// WAL) or a reader in another process may wait for a notification that never comes.
    /// Dropping the last clone without closing releases the same resources in the background
    /// where the backend can do so safely; a store killed without closing recovers on the next
    /// open.
    async fn close(&self) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::default_memory_limits;

    #[test]
    fn append_checks() {
        let l = Limits {
            max_event_bytes: 10,
            max_append_events: 3,
            max_append_bytes: 20,
            ..default_memory_limits()
        };
        let s = StreamId::new("t", "c", "i").unwrap();
        let e = |n: usize| EventData::new("T", vec![b'x'; n]);
        assert!(
            l.check_append(&s, &[e(9)]).is_ok(),
            "type + data = 10 bytes"
        );
        assert!(matches!(
            l.check_append(&s, &[e(10)]),
            Err(StoreError::EventTooLarge {
                index: 0,
                size: 11,
                ..
            })
        ));
        assert!(matches!(
            l.check_append(&s, &[e(1), e(1), e(1), e(1)]),
            Err(StoreError::BatchTooLarge { count: 4, .. })
        ));
        assert!(matches!(
            l.check_append(&s, &[e(9), e(9), e(9)]),
            Err(StoreError::BatchTooLarge { bytes: 30, .. })
        ));
        assert!(matches!(
            l.check_append(&s, &[]),
            Err(StoreError::InvalidInput { .. })
        ));
        let dup = e(1);
        assert!(matches!(
            l.check_append(&s, &[dup.clone(), dup]),
            Err(StoreError::InvalidInput { .. })
        ));
    }
}
