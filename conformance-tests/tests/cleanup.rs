//! `Harness::clean_up` removes everything the suite wrote: the whole suite runs on one memory
//! store that records every stream written to and every checkpoint saved, each case's harness
//! cleans up after it, and then no recorded stream reads an event, no recorded checkpoint loads
//! and no snapshot blob is left. A store whose checkpoint delete does nothing is reported.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::stream::BoxStream;
use sekiban_conformance::{Cleanup, Harness, read_all, run_all};
use sekiban_core::{
    AppendResult, BlobStore, Capabilities, ChangeBatch, ChangeFeed, Checkpoint, CheckpointStore,
    CostSnapshot, DeleteMode, Etag, EventData, EventStore, ExpectedVersion, FeedOptions, FeedStart,
    Limits, MemoryStore, ObjectBlobStore, ReadOptions, RecordedEvent, Result, Snapshot,
    SnapshotStore, Store, StoreError, StreamCatalog, StreamId, Version,
    memory::default_memory_limits,
};

/// A memory store that records the names written under, and may forget to delete checkpoints.
#[derive(Debug)]
struct Recording {
    inner: MemoryStore,
    streams: Mutex<BTreeSet<StreamId>>,
    checkpoints: Mutex<BTreeSet<String>>,
    deletes_checkpoints: bool,
}

#[async_trait]
impl EventStore for Recording {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<EventData>,
    ) -> Result<AppendResult> {
        self.streams.lock().unwrap().insert(stream.clone());
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

#[async_trait]
impl SnapshotStore for Recording {
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        self.streams.lock().unwrap().insert(snapshot.stream.clone());
        self.inner.save_snapshot(snapshot).await
    }
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>> {
        self.inner.load_snapshot(stream).await
    }
}

impl ChangeFeed for Recording {
    fn changes(&self, from: FeedStart, opts: FeedOptions) -> BoxStream<'_, Result<ChangeBatch>> {
        self.inner.changes(from, opts)
    }
}

#[async_trait]
impl CheckpointStore for Recording {
    async fn load_checkpoint(&self, name: &str) -> Result<Option<(Checkpoint, Etag)>> {
        self.inner.load_checkpoint(name).await
    }
    async fn save_checkpoint(
        &self,
        name: &str,
        checkpoint: &Checkpoint,
        expected: Option<&Etag>,
    ) -> Result<Etag> {
        let saved = self
            .inner
            .save_checkpoint(name, checkpoint, expected)
            .await?;
        self.checkpoints.lock().unwrap().insert(name.to_string());
        Ok(saved)
    }
    async fn delete_checkpoint(&self, name: &str) -> Result<()> {
        if self.deletes_checkpoints {
            self.inner.delete_checkpoint(name).await
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Store for Recording {
    fn limits(&self) -> &Limits {
        self.inner.limits()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn costs(&self) -> CostSnapshot {
        self.inner.costs()
    }
    fn catalog(&self) -> Option<&dyn StreamCatalog> {
        self.inner.catalog()
    }
    async fn close(&self) -> Result<()> {
        self.inner.close().await
    }
}

fn recording(deletes_checkpoints: bool) -> (Arc<Recording>, Arc<dyn BlobStore>) {
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::memory());
    let store = Recording {
        inner: MemoryStore::with_config(default_memory_limits(), blobs.clone()),
        streams: Mutex::default(),
        checkpoints: Mutex::default(),
        deletes_checkpoints,
    };
    (Arc::new(store), blobs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_leaves_nothing_behind() {
    let (store, blobs) = recording(true);
    let harnesses = Mutex::new(Vec::new());
    let report = run_all(|| async {
        let h = Harness::new(store.clone(), blobs.clone());
        harnesses.lock().unwrap().push(h.clone());
        h
    })
    .await;
    assert!(report.all_passed(), "{report}");
    let mut total = Cleanup::default();
    for h in harnesses.into_inner().unwrap() {
        total.add(h.clean_up().await);
    }
    assert!(total.left.is_empty(), "{total}: {:#?}", total.left);

    let streams = store.streams.lock().unwrap().clone();
    let checkpoints = store.checkpoints.lock().unwrap().clone();
    assert!(
        streams.len() > 50 && checkpoints.len() >= 5,
        "{} streams, {} checkpoints written; {total}",
        streams.len(),
        checkpoints.len()
    );
    assert!(
        total.streams >= streams.len() && total.checkpoints >= checkpoints.len(),
        "{} streams and {} checkpoints were written; {total}",
        streams.len(),
        checkpoints.len()
    );
    for s in &streams {
        match read_all(&*store, s).await {
            Ok(events) => assert!(events.is_empty(), "{s} still reads {} events", events.len()),
            Err(e) => assert!(matches!(e, StoreError::StreamDeleted { .. }), "{s}: {e}"),
        }
        match store.load_snapshot(s).await {
            Ok(snapshot) => assert_eq!(snapshot, None, "{s}"),
            Err(e) => assert!(matches!(e, StoreError::StreamDeleted { .. }), "{s}: {e}"),
        }
    }
    for name in &checkpoints {
        assert_eq!(store.load_checkpoint(name).await.unwrap(), None, "{name}");
    }
    assert_eq!(
        blobs.list("snapshots/").await.unwrap(),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_could_not_be_removed_is_reported() {
    let (store, blobs) = recording(false);
    let h = Harness::new(store.clone(), blobs);
    let report = sekiban_conformance::run_selected(
        || async { h.clone() },
        |n| n == "checkpoint_save_is_conditional",
    )
    .await;
    assert!(report.all_passed(), "{report}");
    let c = h.clean_up().await;
    assert!(c.streams >= 1, "{c}");
    assert!(
        c.left
            .iter()
            .any(|l| l.contains("projector") && l.contains("still loads")),
        "{c}: {:#?}",
        c.left
    );
}
