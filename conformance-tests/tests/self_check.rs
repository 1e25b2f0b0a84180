//! The suite must be able to fail: deliberately broken stores, each caught by the cases meant to
//! catch it.

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use sekiban_conformance::{Harness, PartitionedFeed, Placement, Report, run_all, run_selected};
use sekiban_core::backend::CostCounter;
use sekiban_core::snapshot::stream_blob_prefix;
use sekiban_core::{
    AppendResult, BlobStore, Capabilities, ChangeBatch, ChangeFeed, Checkpoint, CheckpointStore,
    CostSnapshot, DeleteMode, EventData, EventStore, ExpectedVersion, FeedItem, FeedOptions,
    FeedStart, Limits, MemoryStore, ObjectBlobStore, OpKind, ReadOptions, RecordedEvent, Result,
    Snapshot, SnapshotStore, Store, StoreError, StreamCatalog, StreamId, Version,
    memory::default_memory_limits,
};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    IgnoresExpectedVersion,
    AcceptsExactAboveHead,
    DropsLastEventOfBatch,
    DuplicatesResend,
    ReordersFeed,
    LosesPageBoundaryEvent,
    IgnoresPageBytes,
    SkipsHashCheck,
    LeaksAcrossTenants,
    ExtraRoundTripPerAppend,
    FeedIgnoresCategory,
    FeedLosesMetadata,
    FeedLosesSchemaVersion,
    CountsOnlyAppendsAndReads,
    CountsNoBytes,
    ResumeSkipsAnEvent,
    ProgressRunsAhead,
    FeedKeepsErasedEvents,
}

/// A memory store with one fault.
#[derive(Debug)]
struct Broken {
    inner: MemoryStore,
    /// The limits it declares (a store that ignores its page bytes pages by count only).
    limits: Limits,
    blobs: Arc<dyn BlobStore>,
    fault: Fault,
    /// Events of hard-deleted streams the feed still delivers (a service keeping change
    /// records for a while, unfiltered).
    retained: std::sync::Mutex<Vec<RecordedEvent>>,
}

impl Broken {
    /// The key a stream is stored under: a store that leaks across tenants forgets the tenant.
    fn key(&self, stream: &StreamId) -> StreamId {
        match self.fault {
            Fault::LeaksAcrossTenants => StreamId::new("shared", stream.category(), stream.id())
                .unwrap_or_else(|_| stream.clone()),
            _ => stream.clone(),
        }
    }
}

#[async_trait]
impl EventStore for Broken {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        mut events: Vec<EventData>,
    ) -> Result<AppendResult> {
        let mut expected = expected;
        match self.fault {
            Fault::IgnoresExpectedVersion => expected = ExpectedVersion::Any,
            Fault::AcceptsExactAboveHead => {
                if let ExpectedVersion::Exact(v) = expected
                    && v > self.inner.stream_version(stream).await?
                {
                    expected = ExpectedVersion::Any;
                }
            }
            Fault::DropsLastEventOfBatch if events.len() > 1 => {
                events.pop();
            }
            Fault::ExtraRoundTripPerAppend => {
                self.inner.stream_version(stream).await?;
            }
            _ => {}
        }
        let resend = events.clone();
        let stream = &self.key(stream);
        let r = self.inner.append(stream, expected, events).await?;
        if self.fault == Fault::DuplicatesResend && r.deduplicated {
            let copies = resend
                .into_iter()
                .map(|e| EventData {
                    id: sekiban_core::EventId::new(),
                    ..e
                })
                .collect();
            self.inner
                .append(stream, ExpectedVersion::Any, copies)
                .await?;
        }
        Ok(r)
    }

    fn read(&self, stream: &StreamId, opts: ReadOptions) -> BoxStream<'_, Result<RecordedEvent>> {
        let inner = self.inner.read(&self.key(stream), opts);
        if self.fault != Fault::LosesPageBoundaryEvent {
            return inner;
        }
        let boundary = self.inner.limits().page_events;
        inner
            .enumerate()
            .filter_map(move |(i, e)| async move { (i != boundary).then_some(e) })
            .boxed()
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Version> {
        self.inner.stream_version(&self.key(stream)).await
    }

    async fn delete_stream(&self, stream: &StreamId, mode: DeleteMode) -> Result<()> {
        if self.fault == Fault::FeedKeepsErasedEvents && mode == DeleteMode::Hard {
            let mut read = self.inner.read(stream, ReadOptions::forward());
            let mut kept = Vec::new();
            while let Some(Ok(e)) = read.next().await {
                kept.push(e);
            }
            drop(read);
            self.retained.lock().unwrap().extend(kept);
        }
        self.inner.delete_stream(&self.key(stream), mode).await
    }
}

#[async_trait]
impl SnapshotStore for Broken {
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        self.inner.save_snapshot(snapshot).await
    }

    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>> {
        match self.inner.load_snapshot(stream).await {
            Err(StoreError::Corrupt { .. }) if self.fault == Fault::SkipsHashCheck => {
                let keys = self.blobs.list(&stream_blob_prefix(stream)).await?;
                let Some(key) = keys.last() else {
                    return Ok(None);
                };
                let version = key
                    .rsplit('/')
                    .next()
                    .and_then(|name| name.split('-').next())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                Ok(Some(Snapshot {
                    stream: stream.clone(),
                    version: Version(version),
                    state_type: "unchecked".into(),
                    schema_version: 1,
                    state: self.blobs.get(key).await?.unwrap_or_default(),
                }))
            }
            other => other,
        }
    }
}

impl ChangeFeed for Broken {
    fn changes(
        &self,
        from: FeedStart,
        mut opts: FeedOptions,
    ) -> BoxStream<'_, Result<ChangeBatch>> {
        match self.fault {
            Fault::LeaksAcrossTenants => {
                opts.tenant = None;
                self.inner.changes(from, opts)
            }
            Fault::ReordersFeed => self
                .inner
                .changes(from, opts)
                .map(|b| {
                    b.map(|mut b| {
                        b.items.reverse();
                        b
                    })
                })
                .boxed(),
            // Resuming from a checkpoint loses the first event after it.
            Fault::ResumeSkipsAnEvent if matches!(from, FeedStart::After(_)) => {
                let mut first = true;
                self.inner
                    .changes(from, opts)
                    .map(move |b| {
                        b.map(|mut b| {
                            if let Some(at) = b.items.iter().position(|i| i.as_event().is_some())
                                && std::mem::take(&mut first)
                            {
                                b.items.remove(at);
                            }
                            b
                        })
                    })
                    .boxed()
            }
            Fault::FeedIgnoresCategory => {
                opts.category = None;
                self.inner.changes(from, opts)
            }
            // A following feed hands out a progress batch that carries the checkpoint of the
            // batch after it, before that batch: a reader that saves it and restarts loses
            // that batch.
            Fault::ProgressRunsAhead if opts.follow => self
                .inner
                .changes(from, opts)
                .flat_map(|b| {
                    let ahead = b.as_ref().ok().map(|b| {
                        Ok(ChangeBatch {
                            items: Vec::new(),
                            checkpoint: b.checkpoint.clone(),
                        })
                    });
                    futures::stream::iter(ahead.into_iter().chain([b]))
                })
                .boxed(),
            // A read resumed from a checkpoint (served from the service's change records, not
            // the table) starts with the retained events of erased streams.
            Fault::FeedKeepsErasedEvents if matches!(from, FeedStart::After(_)) => {
                let retained: Vec<FeedItem> = self
                    .retained
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|e| opts.matches(&e.stream))
                    .cloned()
                    .map(FeedItem::Event)
                    .collect();
                let mut first = Some(retained);
                self.inner
                    .changes(from, opts)
                    .map(move |b| {
                        b.map(|mut b| {
                            if let Some(mut kept) = first.take() {
                                kept.append(&mut b.items);
                                b.items = kept;
                            }
                            b
                        })
                    })
                    .boxed()
            }
            Fault::FeedLosesMetadata | Fault::FeedLosesSchemaVersion => {
                let fault = self.fault;
                self.inner
                    .changes(from, opts)
                    .map(move |b| {
                        b.map(|mut b| {
                            for item in &mut b.items {
                                if let FeedItem::Event(e) = item {
                                    if fault == Fault::FeedLosesMetadata {
                                        e.metadata = Default::default();
                                    } else {
                                        e.schema_version = 1;
                                    }
                                }
                            }
                            b
                        })
                    })
                    .boxed()
            }
            _ => self.inner.changes(from, opts),
        }
    }
}

#[async_trait]
impl CheckpointStore for Broken {
    async fn load_checkpoint(
        &self,
        name: &str,
    ) -> Result<Option<(Checkpoint, sekiban_core::Etag)>> {
        self.inner.load_checkpoint(name).await
    }
    async fn save_checkpoint(
        &self,
        name: &str,
        checkpoint: &Checkpoint,
        expected: Option<&sekiban_core::Etag>,
    ) -> Result<sekiban_core::Etag> {
        self.inner.save_checkpoint(name, checkpoint, expected).await
    }
    async fn delete_checkpoint(&self, name: &str) -> Result<()> {
        self.inner.delete_checkpoint(name).await
    }
}

#[async_trait]
impl Store for Broken {
    fn limits(&self) -> &Limits {
        &self.limits
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn costs(&self) -> CostSnapshot {
        let real = self.inner.costs();
        let (kind_of, bytes): (fn(OpKind) -> OpKind, bool) = match self.fault {
            // Requests of every other operation land under `Read` (a store that counts in one
            // place without telling operations apart).
            Fault::CountsOnlyAppendsAndReads => (
                |k| match k {
                    OpKind::Append | OpKind::Blob | OpKind::Notify => k,
                    _ => OpKind::Read,
                },
                true,
            ),
            Fault::CountsNoBytes => (|k| k, false),
            _ => return real,
        };
        let counted = CostCounter::new();
        for kind in OpKind::ALL {
            let c = real.get(kind);
            for _ in 0..c.round_trips {
                counted.record(kind_of(kind), 0, 0);
            }
            if bytes {
                counted.record_bytes(kind_of(kind), c.bytes_sent, c.bytes_received);
            }
        }
        counted.snapshot()
    }
    fn catalog(&self) -> Option<&dyn StreamCatalog> {
        self.inner.catalog()
    }
    async fn close(&self) -> Result<()> {
        self.inner.close().await
    }
}

async fn run_broken(fault: Fault, cases: &[&str]) -> Report {
    run_selected(
        || async move {
            let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::memory());
            let limits = default_memory_limits();
            let mut actual = limits.clone();
            if fault == Fault::IgnoresPageBytes {
                actual.page_bytes = usize::MAX;
            }
            let inner = MemoryStore::with_config(actual, blobs.clone());
            let store = Broken {
                inner,
                limits,
                blobs: blobs.clone(),
                fault,
                retained: Default::default(),
            };
            Harness::new(Arc::new(store), blobs)
        },
        |name| cases.contains(&name),
    )
    .await
}

/// Runs the cases in `must_fail` against a store with `fault` and asserts that each failed
/// (other cases may fail too: a fault often breaks more than one rule).
async fn caught(fault: Fault, must_fail: &[&str]) {
    let report = run_broken(fault, must_fail).await;
    let failed = report.failed();
    println!("{fault:?}: caught by {failed:?}");
    let missed: Vec<_> = must_fail.iter().filter(|c| !failed.contains(c)).collect();
    assert!(
        missed.is_empty(),
        "a store that {fault:?} passed {missed:?}, which must catch it\n{report}"
    );
}

/// A partitioned store whose readers list the partitions before every poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_listing_every_poll_is_caught() {
    let report = run_selected(
        || async {
            let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::memory());
            let inner = MemoryStore::with_config(default_memory_limits(), blobs.clone());
            let store = PartitionedFeed::new(inner, 4).listing_every_poll();
            Harness::new(Arc::new(store), blobs)
        },
        |name| name == "feed_idle_round_trip_budget",
    )
    .await;
    assert_eq!(report.failed(), ["feed_idle_round_trip_budget"], "{report}");
    let message = report.cases[0].failure.as_deref().unwrap_or_default();
    assert!(
        message.contains("listed the feed's partitions"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_batch_runs_ahead() {
    caught(
        Fault::ProgressRunsAhead,
        &["feed_resumes_from_following_and_stored_checkpoints"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_keeps_erased_events() {
    caught(
        Fault::FeedKeepsErasedEvents,
        &["feed_carries_deletion_markers"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignores_expected_version() {
    caught(
        Fault::IgnoresExpectedVersion,
        &[
            "failed_append_writes_nothing",
            "expected_no_stream",
            "expected_stream_exists",
            "expected_exact_below_head_fails",
            "expected_exact_inside_multi_event_append_fails",
            "expected_exact_above_head_fails",
            "concurrent_writers_one_winner_per_version",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_exact_above_head() {
    caught(
        Fault::AcceptsExactAboveHead,
        &["expected_exact_above_head_fails"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drops_last_event_of_batch() {
    caught(
        Fault::DropsLastEventOfBatch,
        &[
            "append_to_new_stream_starts_at_one",
            "append_is_atomic_and_contiguous",
            "payload_bytes_round_trip",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_resend() {
    caught(
        Fault::DuplicatesResend,
        &[
            "resend_under_exact",
            "resend_under_no_stream",
            "resend_under_stream_exists_and_any",
            "resend_after_other_appends",
            "resend_at_window_edge",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reorders_feed() {
    caught(
        Fault::ReordersFeed,
        &["feed_from_beginning_delivers_all", "feed_per_stream_order"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loses_page_boundary_event() {
    caught(
        Fault::LosesPageBoundaryEvent,
        &[
            "read_pages_lazily_through_10000_events",
            "budget_read_pages",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignores_page_bytes() {
    caught(
        Fault::IgnoresPageBytes,
        &[
            "read_pages_by_bytes_through_large_events",
            "feed_batches_end_at_page_bytes",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skips_hash_check() {
    caught(
        Fault::SkipsHashCheck,
        &["snapshot_corrupt_blob_is_an_error"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaks_across_tenants() {
    caught(
        Fault::LeaksAcrossTenants,
        &["tenant_isolation_in_reads", "tenant_isolation_in_feed"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_round_trip_per_append() {
    caught(
        Fault::ExtraRoundTripPerAppend,
        &["budget_append_round_trips"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_ignores_category() {
    caught(Fault::FeedIgnoresCategory, &["feed_category_filter"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_loses_metadata() {
    caught(
        Fault::FeedLosesMetadata,
        &["feed_events_match_reads", "metadata_round_trip"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_loses_schema_version() {
    caught(Fault::FeedLosesSchemaVersion, &["feed_events_match_reads"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_only_appends_and_reads() {
    caught(Fault::CountsOnlyAppendsAndReads, &["costs_counted_by_kind"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_no_bytes() {
    caught(Fault::CountsNoBytes, &["costs_count_bytes"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_skips_an_event() {
    caught(
        Fault::ResumeSkipsAnEvent,
        &[
            "feed_resumes_from_every_checkpoint",
            "feed_resumes_from_following_and_stored_checkpoints",
        ],
    )
    .await;
}

/// A partitioned feed that spreads one stream's events over partitions (so they come out of
/// order) is caught; placed by stream, the same feed passes everything (`tests/partitioned.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_feed_reorders_a_stream() {
    let report = run_all(|| async {
        let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::memory());
        let store = MemoryStore::with_config(default_memory_limits(), blobs.clone());
        let broken = PartitionedFeed::with_placement(store, 4, Placement::ByEvent);
        Harness::new(Arc::new(broken), blobs)
    })
    .await;
    let failed = report.failed();
    println!("partitioned by event: caught by {failed:?}");
    for must in [
        "feed_from_beginning_delivers_all",
        "feed_per_stream_order",
        "feed_resumes_from_every_checkpoint",
    ] {
        assert!(
            failed.contains(&must),
            "a feed reordering a stream across partitions passed {must}\n{report}"
        );
    }
}

/// The healthy store passes the same run, so the failures above come from the faults.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_store_passes_through_the_runner() {
    let report = run_all(|| async {
        let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::memory());
        let store = MemoryStore::with_config(default_memory_limits(), blobs.clone());
        Harness::new(Arc::new(store), blobs)
    })
    .await;
    println!("{report}");
    assert!(report.all_passed(), "{report}");
    assert_eq!(report.cases.len(), sekiban_conformance::CASES.len());
}
