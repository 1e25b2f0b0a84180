//! A wrapper that makes any store's change feed behave as a feed read from several partitions
//! (DynamoDB Streams shards, Cosmos DB feed ranges) does: per stream in version order, but in no
//! order across streams. The suite runs on it, so no case relies on an order across streams that
//! a partitioned store rightly does not give.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use sekiban_core::backend::CostCounter;
use sekiban_core::{
    AppendResult, Capabilities, ChangeBatch, ChangeFeed, Checkpoint, CheckpointStore, CostSnapshot,
    DeleteMode, Etag, EventData, EventStore, ExpectedVersion, FeedItem, FeedOptions, FeedStart,
    Limits, OpKind, ReadOptions, RecordedEvent, Result, Snapshot, SnapshotAndTail, SnapshotStore,
    Store, StreamCatalog, StreamId, Version,
};

/// How the wrapper places feed items into partitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// By stream, as a correct partitioned store does: a stream's items stay in one partition
    /// and in order.
    ByStream,
    /// By stream and version: one stream's events spread over partitions and come out of order.
    /// A broken store, for the suite's self-check.
    ByEvent,
}

/// A store whose feed declares `partitions` partitions and hands out each batch's items
/// partition by partition, the partitions in an order that turns from batch to batch; within a
/// partition, items keep the inner feed's order. A following feed adds batches without items
/// (progress through quiet partitions). Everything else is the inner store's.
///
/// Its costs are the inner store's plus, for every feed read, one listing of the partitions
/// ([`OpKind::Partitions`]) and `partitions` partitions opened, as a reader of a partitioned
/// feed spends them.
#[derive(Debug)]
pub struct PartitionedFeed<S> {
    inner: S,
    partitions: u32,
    placement: Placement,
    lists_every_poll: bool,
    own: CostCounter,
}

impl<S: Store> PartitionedFeed<S> {
    /// Wraps `inner`, declaring `partitions` feed partitions (at least 1), items placed by
    /// stream.
    pub fn new(inner: S, partitions: u32) -> Self {
        Self::with_placement(inner, partitions, Placement::ByStream)
    }

    /// Wraps `inner` with the given placement of feed items.
    pub fn with_placement(inner: S, partitions: u32, placement: Placement) -> Self {
        PartitionedFeed {
            inner,
            partitions: partitions.max(1),
            placement,
            lists_every_poll: false,
            own: CostCounter::new(),
        }
    }

    /// A broken store, for the suite's self-check: its readers list the partitions again
    /// before every poll instead of once.
    pub fn listing_every_poll(mut self) -> Self {
        self.lists_every_poll = true;
        self
    }
}

fn partition_of(item: &FeedItem, partitions: u32, placement: Placement) -> u32 {
    let mut h = DefaultHasher::new();
    item.stream().hash(&mut h);
    if placement == Placement::ByEvent
        && let FeedItem::Event(e) = item
    {
        e.version.hash(&mut h);
    }
    // `partitions` ≥ 1, and the remainder fits a u32.
    u32::try_from(h.finish() % u64::from(partitions)).unwrap_or(0)
}

/// Reorders a batch: partition by partition, starting at `turn`.
fn reorder(batch: ChangeBatch, partitions: u32, placement: Placement, turn: u32) -> ChangeBatch {
    let mut by_partition: Vec<Vec<FeedItem>> = vec![Vec::new(); partitions as usize];
    for item in batch.items {
        let p = partition_of(&item, partitions, placement);
        by_partition[((p + turn) % partitions) as usize].push(item);
    }
    ChangeBatch {
        items: by_partition.into_iter().flatten().collect(),
        checkpoint: batch.checkpoint,
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<S: Store> EventStore for PartitionedFeed<S> {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<EventData>,
    ) -> Result<AppendResult> {
        self.inner.append(stream, expected, events).await
    }
    fn read(&self, stream: &StreamId, opts: ReadOptions) -> BoxStream<'_, Result<RecordedEvent>> {
        self.inner.read(stream, opts)
    }
    async fn stream_version(&self, stream: &StreamId) -> Result<Version> {
        self.inner.stream_version(stream).await
    }
    async fn delete_stream(&self, stream: &StreamId, mode: DeleteMode) -> Result<()> {
        self.inner.delete_stream(stream, mode).await
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<S: Store> SnapshotStore for PartitionedFeed<S> {
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        self.inner.save_snapshot(snapshot).await
    }
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>> {
        self.inner.load_snapshot(stream).await
    }
}

/// A following feed also hands out, after every batch with items, a batch without items that
/// carries the same checkpoint: the progress a multi-partition reader records while it goes
/// through partitions that had nothing new.
#[deny(clippy::missing_trait_methods)]
impl<S: Store> ChangeFeed for PartitionedFeed<S> {
    fn changes(&self, from: FeedStart, opts: FeedOptions) -> BoxStream<'_, Result<ChangeBatch>> {
        let (partitions, placement, follow) = (self.partitions, self.placement, opts.follow);
        let mut turn = 0u32;
        let own = &self.own;
        // A reader lists the partitions and opens each when it is first polled.
        let start = futures::stream::once(async move {
            own.record(OpKind::Partitions, 64, 64 * u64::from(partitions));
            own.record_partitions_opened(u64::from(partitions));
        })
        .filter_map(|()| async { None });
        start
            .chain(self.inner.changes(from, opts))
            .flat_map(move |b| {
                turn = turn.wrapping_add(1);
                let b = b.map(|b| reorder(b, partitions, placement, turn));
                let progress = match &b {
                    Ok(b) if follow && !b.items.is_empty() => Some(Ok(ChangeBatch {
                        items: Vec::new(),
                        checkpoint: b.checkpoint.clone(),
                    })),
                    _ => None,
                };
                futures::stream::iter(std::iter::once(b).chain(progress))
            })
            .boxed()
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<S: Store> CheckpointStore for PartitionedFeed<S> {
    async fn load_checkpoint(&self, name: &str) -> Result<Option<(Checkpoint, Etag)>> {
        self.inner.load_checkpoint(name).await
    }
    async fn save_checkpoint(
        &self,
        name: &str,
        checkpoint: &Checkpoint,
        expected: Option<&Etag>,
    ) -> Result<Etag> {
        self.inner.save_checkpoint(name, checkpoint, expected).await
    }
    async fn delete_checkpoint(&self, name: &str) -> Result<()> {
        self.inner.delete_checkpoint(name).await
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<S: Store> Store for PartitionedFeed<S> {
    fn limits(&self) -> &Limits {
        self.inner.limits()
    }
    fn capabilities(&self) -> Capabilities {
        let mut c = self.inner.capabilities();
        c.feed_partitions = self.partitions;
        c
    }
    fn costs(&self) -> CostSnapshot {
        let inner = self.inner.costs();
        let own = self.own.snapshot();
        if !self.lists_every_poll {
            return inner + own;
        }
        let again = CostCounter::new();
        for _ in 0..inner.round_trips(OpKind::Feed) {
            again.record(OpKind::Partitions, 64, 64 * u64::from(self.partitions));
        }
        inner + own + again.snapshot()
    }
    fn catalog(&self) -> Option<&dyn StreamCatalog> {
        self.inner.catalog()
    }
    async fn load_snapshot_and_tail(&self, stream: &StreamId) -> Result<SnapshotAndTail<'_>> {
        self.inner.load_snapshot_and_tail(stream).await
    }
    async fn close(&self) -> Result<()> {
        self.inner.close().await
    }
}
