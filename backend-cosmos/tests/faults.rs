//! Faults on purpose through the SDK's fault injection on its in-process emulator: a reply lost
//! after the service committed (`ResponseTimeoutAfterService`: the request is carried out, its
//! answer replaced by a timeout, and the SDK tries again), and transient refusals. After each,
//! what the store answered and what it stored are checked: nothing lost, nothing twice,
//! versions contiguous, one marker per delete.

use std::sync::Arc;

use azure_data_cosmos_driver::fault_injection::{
    FaultInjectionErrorType, FaultInjectionRule, FaultOperationType,
};
use bytes::Bytes;
use futures::StreamExt;
use sekiban_conformance::Harness;
use sekiban_conformance::faults::{self, LoseReplies, Write};
use sekiban_core::{
    BlobStore, ChangeFeed, DeleteMode, EventData, EventStore, ExpectedVersion, FeedOptions,
    FeedStart, ReadOptions, StreamId, Version,
};
use sekiban_cosmos::CosmosStore;

mod common;

/// A store on an emulated account whose requests of `op` meet `error` while the rule is on
/// (once per enabling: its hits are limited by the test).
struct Faulted {
    store: CosmosStore,
    blobs: Arc<dyn BlobStore>,
    rules: Vec<(FaultOperationType, Arc<FaultInjectionRule>)>,
}

/// Rules made per test: enough for every round of the busiest test.
const ROUNDS: usize = 24;

/// A rule that faults one request of `op` with `error`, once enabled.
fn rule(
    id: &str,
    op: FaultOperationType,
    error: FaultInjectionErrorType,
) -> Arc<FaultInjectionRule> {
    common::emulator::fault_rule(id, op, error, 1.0, Some(1))
}

impl Faulted {
    /// Rules for a lost reply on every kind of write.
    async fn open() -> Faulted {
        let ops = [
            FaultOperationType::BatchItem,
            FaultOperationType::CreateItem,
            FaultOperationType::ReplaceItem,
            FaultOperationType::UpsertItem,
            FaultOperationType::DeleteItem,
        ];
        let rules: Vec<_> = ops
            .iter()
            .flat_map(|op| {
                (0..ROUNDS).map(move |i| {
                    (
                        *op,
                        rule(
                            &format!("lost-{op:?}-{i}"),
                            *op,
                            FaultInjectionErrorType::ResponseTimeoutAfterService,
                        ),
                    )
                })
            })
            .collect();
        let (store, blobs) =
            common::faulted_store(rules.iter().map(|(_, r)| r.clone()).collect()).await;
        Faulted {
            store,
            blobs,
            rules,
        }
    }

    /// The next request of `op` is carried out and its reply lost (a rule not used yet).
    fn lose_next(&self, op: FaultOperationType) -> Arc<FaultInjectionRule> {
        let (_, r) = self
            .rules
            .iter()
            .find(|(o, r)| *o == op && r.hit_count() == 0 && !r.is_enabled())
            .expect("a rule for the operation not used yet");
        r.enable();
        r.clone()
    }

    /// A conformance harness on the store (its own tenant).
    fn harness(&self) -> Harness {
        Harness::new(Arc::new(self.store.clone()), self.blobs.clone())
    }

    fn off(&self) {
        for (_, r) in &self.rules {
            if r.hit_count() > 0 {
                r.disable();
            }
        }
    }
}

impl LoseReplies for Faulted {
    fn lose_next(&self, write: Write) {
        let op = match write {
            // Appends, deletes and snapshot pointers are each one transactional batch.
            Write::AppendNew
            | Write::AppendExisting
            | Write::SoftDelete
            | Write::HardDelete
            | Write::SnapshotPointer => FaultOperationType::BatchItem,
            Write::CheckpointNew => FaultOperationType::CreateItem,
            Write::CheckpointOver => FaultOperationType::ReplaceItem,
            other => panic!("no operation for {other:?}"),
        };
        self.lose_next(op);
    }

    fn injected(&self) -> usize {
        self.rules.iter().map(|(_, r)| r.hit_count() as usize).sum()
    }

    fn clear(&self) {
        self.off();
    }
}

fn events(tag: &str, n: usize) -> Vec<EventData> {
    (0..n)
        .map(|i| EventData::new("Tick", Bytes::from(format!(r#"{{"tag":"{tag}","n":{i}}}"#))))
        .collect()
}

async fn read_all(store: &CosmosStore, s: &StreamId) -> Vec<sekiban_core::RecordedEvent> {
    store
        .read(s, ReadOptions::forward())
        .map(|e| e.expect("read"))
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_append_reply_is_answered_with_its_versions_under_every_expectation() {
    let f = Faulted::open().await;
    faults::lost_append_replies(&f.harness(), &f)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_checkpoint_save_reply_is_answered_with_its_etag() {
    let f = Faulted::open().await;
    faults::lost_checkpoint_replies(&f.harness(), &f)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_delete_reply_has_one_effect_and_one_marker() {
    let f = Faulted::open().await;
    faults::lost_delete_replies(&f.harness(), &f)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_snapshot_pointer_reply_keeps_one_pointer_and_deletes_the_replaced_blob() {
    let f = Faulted::open().await;
    faults::lost_snapshot_pointer_replies(&f.harness(), &f)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttle_or_an_unavailable_service_on_every_kind_of_request_is_retried_and_counted() {
    // One 429 and one 503 for the first request of each kind; the SDK retries both.
    let ops = [
        FaultOperationType::ReadItem,
        FaultOperationType::QueryItem,
        FaultOperationType::ChangeFeedItem,
        FaultOperationType::CreateItem,
        FaultOperationType::ReplaceItem,
        FaultOperationType::DeleteItem,
        FaultOperationType::BatchItem,
    ];
    let mut rules = Vec::new();
    for op in ops {
        for error in [
            FaultInjectionErrorType::TooManyRequests,
            FaultInjectionErrorType::ServiceUnavailable,
        ] {
            rules.push(rule(&format!("{op:?}-{error:?}"), op, error));
        }
    }
    let (store, _blobs) = common::faulted_store(rules.clone()).await;
    for r in &rules {
        r.enable();
    }
    let s = StreamId::new("refused", "order", "1").expect("a stream id");
    let sent = events("r", 3);
    store
        .append(&s, ExpectedVersion::NoStream, sent.clone())
        .await
        .expect("append");
    let stored = read_all(&store, &s).await;
    assert_eq!(stored.len(), 3);
    assert_eq!(store.stream_version(&s).await.expect("version"), Version(3));
    let name = "refused-consumer";
    let etag = sekiban_core::CheckpointStore::save_checkpoint(
        &store,
        name,
        &sekiban_core::Checkpoint::new("a"),
        None,
    )
    .await
    .expect("save");
    sekiban_core::CheckpointStore::save_checkpoint(
        &store,
        name,
        &sekiban_core::Checkpoint::new("b"),
        Some(&etag),
    )
    .await
    .expect("save over");
    sekiban_core::CheckpointStore::delete_checkpoint(&store, name)
        .await
        .expect("delete");
    let mut feed = store.changes(
        FeedStart::Beginning,
        FeedOptions::catch_up().tenant("refused"),
    );
    let mut fed = 0;
    while let Some(b) = feed.next().await {
        fed += b.expect("feed").items.len();
    }
    drop(feed);
    assert_eq!(fed, 3);
    store
        .delete_stream(&s, DeleteMode::Hard)
        .await
        .expect("hard delete");
    let missed: Vec<_> = rules
        .iter()
        .filter(|r| r.hit_count() == 0)
        .map(|r| r.id().to_string())
        .collect();
    assert!(missed.is_empty(), "never injected: {missed:?}");
    let c = sekiban_core::Store::costs(&store);
    assert!(
        c.total().retries >= rules.len() as u64,
        "every fault retried and counted: {c}"
    );
}
