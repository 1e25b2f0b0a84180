//! The aggregate layer over the memory store: repository, upcasting, snapshots, time travel,
//! projector.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use sekiban_core::aggregate::{
    Aggregate, CheckpointMode, CodecError, DomainEvent, ExecuteError, Projection, Projector,
    Repository, SnapshotPolicy,
};
use sekiban_core::{
    BoxError, Checkpoint, EventData, EventStore, ExpectedVersion, FeedItem, FeedOptions,
    MemoryStore, SnapshotStore, Store, StoreError, StreamId, Version,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum TallyEvent {
    /// Schema 2: `by` was called `amount` in schema 1.
    Added {
        by: i64,
    },
    Reset,
}

impl DomainEvent for TallyEvent {
    const SCHEMA_VERSION: u32 = 2;
    fn upcast(
        event_type: &str,
        v: u32,
        mut data: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        match (event_type, v) {
            ("Added", 1) => {
                let amount = data.get("amount").cloned().ok_or("no amount")?;
                data = serde_json::json!({ "by": amount });
                Ok(data)
            }
            (_, 1) => Ok(data),
            _ => Err(format!("no upcaster for {event_type} v{v}")),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Tally {
    total: i64,
    adds: u32,
}

#[derive(Debug, PartialEq, thiserror::Error)]
enum TallyError {
    #[error("negative")]
    Negative,
}

enum TallyCommand {
    Add(i64),
    Reset,
    Nothing,
}

impl Aggregate for Tally {
    const CATEGORY: &'static str = "tally";
    type Event = TallyEvent;
    type Command = TallyCommand;
    type Error = TallyError;
    fn apply(&mut self, e: &TallyEvent) {
        match e {
            TallyEvent::Added { by } => {
                self.total += by;
                self.adds += 1;
            }
            TallyEvent::Reset => self.total = 0,
        }
    }
    fn handle(&self, c: &TallyCommand) -> Result<Vec<TallyEvent>, TallyError> {
        match c {
            TallyCommand::Add(by) if self.total + by < 0 => Err(TallyError::Negative),
            TallyCommand::Add(by) => Ok(vec![TallyEvent::Added { by: *by }]),
            TallyCommand::Reset => Ok(vec![TallyEvent::Reset]),
            TallyCommand::Nothing => Ok(vec![]),
        }
    }
}

fn repo(store: &Arc<MemoryStore>) -> Repository<Tally> {
    let store: Arc<dyn Store> = store.clone();
    Repository::new(store, "acme")
}

#[tokio::test]
async fn commands_append_and_refusals_write_nothing() {
    let store = Arc::new(MemoryStore::new());
    let r = repo(&store).with_snapshots(SnapshotPolicy::NEVER);
    assert_eq!(
        r.execute("a", &TallyCommand::Add(5)).await.unwrap().version,
        Version(1)
    );
    let e = r.execute("a", &TallyCommand::Add(-9)).await.unwrap_err();
    assert!(
        matches!(e, ExecuteError::Rejected(TallyError::Negative)),
        "{e:?}"
    );
    let done = r.execute("a", &TallyCommand::Nothing).await.unwrap();
    assert_eq!((done.version, done.events), (Version(1), 0));
    let stream = r.stream("a").unwrap();
    assert_eq!(store.stream_version(&stream).await.unwrap(), Version(1));
    let loaded = r.load("a").await.unwrap();
    assert_eq!((loaded.state.total, loaded.version), (5, Version(1)));
    r.execute("a", &TallyCommand::Reset).await.unwrap();
    let loaded = r.load("a").await.unwrap();
    assert_eq!((loaded.state.total, loaded.version), (0, Version(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commands_retry_conflicts_and_lose_nothing() {
    let store = Arc::new(MemoryStore::new());
    let r = repo(&store).with_snapshots(SnapshotPolicy::every(7));
    let mut tasks = Vec::new();
    for t in 0..8 {
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            let mut retries = 0;
            for _ in 0..10 {
                retries += r
                    .execute("shared", &TallyCommand::Add(t + 1))
                    .await
                    .unwrap()
                    .retries;
            }
            retries
        }));
    }
    let mut retries = 0;
    for t in tasks {
        retries += t.await.unwrap();
    }
    let loaded = r.load("shared").await.unwrap();
    assert_eq!(loaded.state.total, 10 * (1..=8).sum::<i64>());
    assert_eq!(loaded.state.adds, 80);
    assert_eq!(loaded.version, Version(80));
    println!("{retries} conflicts retried");
}

#[tokio::test]
async fn snapshots_by_policy_and_loads_from_them() {
    let store = Arc::new(MemoryStore::new());
    let r = repo(&store).with_snapshots(SnapshotPolicy::every(3));
    let mut written = Vec::new();
    for i in 1..=7 {
        written.push(
            r.execute("s", &TallyCommand::Add(i))
                .await
                .unwrap()
                .snapshot_written,
        );
    }
    assert_eq!(written, [false, false, true, false, false, true, false]);
    let loaded = r.load("s").await.unwrap();
    assert_eq!(loaded.snapshot_version, Some(Version(6)));
    assert_eq!((loaded.state.total, loaded.version), (28, Version(7)));
    let plain = repo(&store).with_snapshots(SnapshotPolicy::NEVER);
    let stream = plain.stream("s").unwrap();
    // A snapshot of another state schema is ignored: the state is folded from the events.
    store
        .save_snapshot(sekiban_core::Snapshot {
            stream,
            version: Version(7),
            state_type: "tally".into(),
            schema_version: 99,
            state: Bytes::from_static(b"{}"),
        })
        .await
        .unwrap();
    let loaded = plain.load("s").await.unwrap();
    assert_eq!((loaded.snapshot_version, loaded.state.total), (None, 28));
}

#[tokio::test]
async fn old_schema_versions_are_upcast_and_unknown_types_are_clear_errors() {
    let store = Arc::new(MemoryStore::new());
    let r = repo(&store);
    let stream = r.stream("old").unwrap();
    let v1 = EventData::new("Added", r#"{"amount": 4}"#).with_schema_version(1);
    let v2 = EventData::new("Added", r#"{"by": 3}"#).with_schema_version(2);
    let reset = EventData::new("Reset", "null").with_schema_version(1);
    let again = EventData::new("Added", r#"{"amount": 2}"#).with_schema_version(1);
    store
        .append(
            &stream,
            ExpectedVersion::NoStream,
            vec![v1, v2, reset, again],
        )
        .await
        .unwrap();
    assert_eq!(r.load("old").await.unwrap().state.total, 2);

    let odd = r.stream("odd").unwrap();
    store
        .append(
            &odd,
            ExpectedVersion::NoStream,
            vec![EventData::new("Multiplied", "{}")],
        )
        .await
        .unwrap();
    match r.load("odd").await.unwrap_err() {
        ExecuteError::Codec(CodecError::UnknownEventType {
            event_type, known, ..
        }) => {
            assert_eq!(event_type, "Multiplied");
            assert_eq!(known, vec!["Added", "Reset"]);
        }
        other => panic!("expected UnknownEventType, got {other:?}"),
    }
    let newer = r.stream("newer").unwrap();
    store
        .append(
            &newer,
            ExpectedVersion::NoStream,
            vec![EventData::new("Reset", "null").with_schema_version(3)],
        )
        .await
        .unwrap();
    let e = r.load("newer").await.unwrap_err();
    assert!(
        matches!(
            e,
            ExecuteError::Codec(CodecError::NewerSchema {
                found: 3,
                current: 2,
                ..
            })
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn time_travel_by_version_and_by_time() {
    let store = Arc::new(MemoryStore::new());
    let r = repo(&store).with_snapshots(SnapshotPolicy::every(2));
    let mut times = Vec::new();
    let before_all = std::time::SystemTime::now() - Duration::from_millis(1);
    for i in 1..=5 {
        r.execute("tt", &TallyCommand::Add(i)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        times.push(std::time::SystemTime::now());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let totals = [1, 3, 6, 10, 15];
    for v in 1..=5u64 {
        let at = r.load_at_version("tt", Version(v)).await.unwrap();
        assert_eq!(
            (at.version, at.state.total),
            (Version(v), totals[v as usize - 1]),
            "as of version {v}"
        );
        let at = r.load_at_time("tt", times[v as usize - 1]).await.unwrap();
        assert_eq!(
            (at.version, at.state.total),
            (Version(v), totals[v as usize - 1]),
            "as of the time after version {v}"
        );
    }
    // Before the first event (a time taken from the event's own sleep could fall after it on a
    // loaded machine).
    let before = r.load_at_time("tt", before_all).await.unwrap();
    assert_eq!((before.version, before.state.total), (Version(0), 0));
}

/// Sums every `Added` of the tenant; with `CheckpointMode::ReadModel` it keeps the checkpoint
/// beside the total, as a database transaction would.
#[derive(Default)]
struct Sum {
    total: i64,
    seen: usize,
    checkpoint: Option<Checkpoint>,
}

#[async_trait]
impl Projection for Sum {
    async fn apply(&mut self, items: &[FeedItem], checkpoint: &Checkpoint) -> Result<(), BoxError> {
        for item in items {
            if let FeedItem::Event(e) = item {
                let ev: TallyEvent = sekiban_core::aggregate::decode(e)?;
                if let TallyEvent::Added { by } = ev {
                    self.total += by;
                }
                self.seen += 1;
            }
        }
        self.checkpoint = Some(checkpoint.clone());
        Ok(())
    }
    async fn stored_checkpoint(&mut self) -> Result<Option<Checkpoint>, BoxError> {
        Ok(self.checkpoint.clone())
    }
}

#[tokio::test]
async fn projector_resumes_from_its_checkpoint_and_refuses_a_twin() {
    let store = Arc::new(MemoryStore::new());
    let dyn_store: Arc<dyn Store> = store.clone();
    let r = repo(&store);
    for (id, by) in [("p1", 1), ("p2", 2), ("p1", 3)] {
        r.execute(id, &TallyCommand::Add(by)).await.unwrap();
    }
    let opts = FeedOptions::follow().tenant("acme");
    let mut p = Projector::new(dyn_store.clone(), "sum", opts.clone(), Sum::default());
    assert_eq!(p.catch_up().await.unwrap(), 3);
    assert_eq!(p.projection().total, 6);
    r.execute("p2", &TallyCommand::Add(10)).await.unwrap();
    // A restarted projector sees only what came after its saved checkpoint.
    let mut restarted = Projector::new(dyn_store.clone(), "sum", opts.clone(), Sum::default());
    assert_eq!(restarted.catch_up().await.unwrap(), 1);
    assert_eq!(restarted.projection().total, 10);
    // The first instance's etag is stale now: it must not overwrite the newer checkpoint.
    r.execute("p1", &TallyCommand::Add(1)).await.unwrap();
    let e = p.catch_up().await.unwrap_err();
    assert!(
        matches!(
            e,
            sekiban_core::aggregate::ProjectorError::Store(StoreError::CheckpointConflict { .. })
        ),
        "{e:?}"
    );
    // Following: items arrive as they commit, until stopped.
    let mut follower = Projector::new(
        dyn_store.clone(),
        "sum-follow",
        opts.clone(),
        Sum::default(),
    )
    .with_checkpoints(CheckpointMode::ReadModel);
    let writer = {
        let r = r.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            r.execute("p3", &TallyCommand::Add(100)).await.unwrap();
        })
    };
    let applied = follower
        .run(tokio::time::sleep(Duration::from_millis(400)))
        .await
        .unwrap();
    writer.await.unwrap();
    assert_eq!(applied, 6);
    assert_eq!(follower.projection().total, 117);
    let stream = StreamId::new("acme", "tally", "p3").unwrap();
    assert_eq!(store.stream_version(&stream).await.unwrap(), Version(1));
}
