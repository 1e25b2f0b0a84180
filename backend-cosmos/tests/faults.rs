//! Faults on purpose through the SDK's fault injection on its in-process emulator: a reply lost
//! after the service committed (`ResponseTimeoutAfterService`: the request is carried out, its
//! answer replaced by a timeout, and the SDK tries again), a reply lost with the outcome unknown
//! in the middle of a paged read and a feed read, transient refusals within and past the budget;
//! and, through an HTTP proxy (`sekiban-faults`) in front of Azurite, faults on every kind of
//! snapshot blob request. After each, what the store answered and what it stored are checked:
//! nothing lost, nothing twice, versions contiguous, one marker per delete.

use std::sync::Arc;

use azure_data_cosmos_driver::fault_injection::{
    FaultInjectionErrorType, FaultInjectionRule, FaultOperationType,
};
use bytes::Bytes;
use futures::StreamExt;
use sekiban_conformance::Harness;
use sekiban_conformance::faults::{self, BlobFault, BlobRequest, FaultBlobs, LoseReplies, Write};
use sekiban_core::{
    BlobStore, ChangeFeed, DeleteMode, EventData, EventStore, ExpectedVersion, FeedOptions,
    FeedStart, OpKind, ReadOptions, StoreError, StreamId, Version,
};
use sekiban_cosmos::CosmosStore;
use sekiban_faults::{Fault, Faults, HttpProxy, Rule};

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
            common::faulted_store(rules.iter().map(|(_, r)| r.clone()).collect(), None).await;
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
    let (store, _blobs) = common::faulted_store(rules.clone(), None).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_beyond_the_budget_is_transient_after_exactly_the_budget() {
    const ATTEMPTS: u32 = 3;
    // (fault, throttled, requests per attempt): a connection lost is sent once more on another
    // connection within each attempt (the driver's fixed local connectivity retry).
    let errors = [
        (FaultInjectionErrorType::TooManyRequests, true, 1),
        (FaultInjectionErrorType::ServiceUnavailable, false, 1),
        (FaultInjectionErrorType::Timeout, false, 1),
        (FaultInjectionErrorType::ResponseTimeout, false, 2),
        (FaultInjectionErrorType::ConnectionError, false, 2),
    ];
    let ops = [FaultOperationType::BatchItem, FaultOperationType::ReadItem];
    let mut rules = Vec::new();
    for op in ops {
        for (error, _, _) in errors {
            rules.push((
                op,
                error,
                common::emulator::fault_rule(&format!("{op:?}-{error:?}"), op, error, 1.0, None),
            ));
        }
    }
    let (store, _blobs) = common::faulted_store(
        rules.iter().map(|(_, _, r)| r.clone()).collect(),
        Some(ATTEMPTS),
    )
    .await;
    let s = StreamId::new("budget", "order", "1").expect("a stream id");
    store
        .append(&s, ExpectedVersion::NoStream, events("b", 1))
        .await
        .expect("append");
    for (op, error, rule) in &rules {
        let (_, throttled, per_attempt) = *errors
            .iter()
            .find(|(e, _, _)| e == error)
            .expect("a fault of the list");
        let before = sekiban_core::Store::costs(&store);
        rule.enable();
        let e = match op {
            FaultOperationType::BatchItem => store
                .append(&s, ExpectedVersion::Exact(Version(1)), events("c", 1))
                .await
                .map(drop),
            _ => store.stream_version(&s).await.map(drop),
        }
        .expect_err("every attempt faulted");
        rule.disable();
        assert!(e.is_transient(), "{op:?} {error:?}: {e:?}");
        assert_eq!(
            matches!(e, StoreError::Throttled { .. }),
            throttled,
            "{op:?} {error:?}: {e:?}"
        );
        assert_eq!(
            rule.hit_count(),
            ATTEMPTS * per_attempt,
            "{op:?} {error:?}: the SDK's attempts"
        );
        let spent = sekiban_core::Store::costs(&store) - before;
        let kind = match op {
            FaultOperationType::BatchItem => OpKind::Append,
            _ => OpKind::Read,
        };
        assert_eq!(
            spent.retries(kind),
            u64::from(ATTEMPTS * per_attempt - 1),
            "{op:?} {error:?}: {spent}"
        );
    }
    assert_eq!(
        store.stream_version(&s).await.expect("version"),
        Version(1),
        "nothing written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_lost_in_a_paged_read_or_a_feed_read_loses_and_repeats_nothing() {
    // A request of each kind sent and its answer lost (a response timeout: the outcome
    // unknown), once enabled in the middle of a read.
    let lost = |id: &str, op| rule(id, op, FaultInjectionErrorType::ResponseTimeout);
    let (read, feed, resumed) = (
        lost("read-cut", FaultOperationType::QueryItem),
        lost("feed-cut", FaultOperationType::ChangeFeedItem),
        lost("resume-cut", FaultOperationType::ChangeFeedItem),
    );
    let (store, _blobs) =
        common::faulted_store(vec![read.clone(), feed.clone(), resumed.clone()], None).await;
    let s = StreamId::new("cut", "order", "1").expect("a stream id");
    let mut sent = Vec::new();
    for i in 0..40 {
        let batch = events(&format!("c{i}"), 50);
        store
            .append(&s, ExpectedVersion::Any, batch.clone())
            .await
            .expect("append");
        sent.extend(batch);
    }
    let before = sekiban_core::Store::costs(&store);
    let mut reader = store.read(&s, ReadOptions::forward());
    let mut got = vec![reader.next().await.expect("an event").expect("read")];
    read.enable();
    while let Some(e) = reader.next().await {
        got.push(e.expect("a read through a lost reply"));
    }
    drop(reader);
    assert_eq!(read.hit_count(), 1, "a later page's query lost its reply");
    sekiban_conformance::check_events(&got, &sent, Version(1), "read")
        .unwrap_or_else(|f| panic!("{f}"));
    let spent = sekiban_core::Store::costs(&store) - before;
    assert!(spent.retries(OpKind::Read) >= 1, "{spent}");

    let opts = || FeedOptions::catch_up().tenant("cut");
    let mut changes = store.changes(FeedStart::Beginning, opts());
    let mut batches = Vec::new();
    while let Some(b) = changes.next().await {
        batches.push(b.expect("a feed read through a lost reply"));
        if feed.hit_count() == 0 {
            feed.enable();
        }
    }
    drop(changes);
    assert_eq!(feed.hit_count(), 1, "a later feed page lost its reply");
    sekiban_conformance::check_events(
        &sekiban_conformance::feed_events(&batches),
        &sent,
        Version(1),
        "feed",
    )
    .unwrap_or_else(|f| panic!("{f}"));

    // From a checkpoint in the middle, a page's reply lost again: nothing before the
    // checkpoint again, nothing lost.
    faults::resumes_from_a_checkpoint(&store, &s, &batches, batches.len() / 2, opts(), || {
        resumed.enable()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resumed.hit_count(), 1, "the resume lost a reply");
}

/// A harness on a store whose snapshot blobs go to a new Azurite container through a fault
/// proxy, within a budget of `attempts`; the proxy, and the container's blob path
/// (`/ACCOUNT/CONTAINER`).
async fn through_a_blob_proxy(attempts: u32) -> (Harness, HttpProxy, String) {
    let azurite = common::azurite::endpoint();
    let upstream = azurite
        .strip_suffix(&format!("/{}", common::azurite::ACCOUNT))
        .expect("an Azurite endpoint ends with its account");
    let proxy = HttpProxy::start(upstream, Faults::new(Faults::seed_from_env()))
        .await
        .expect("start the proxy");
    let (blobs, container) = common::azurite::blobs_through(&format!(
        "{}/{}",
        proxy.endpoint(),
        common::azurite::ACCOUNT
    ))
    .await;
    let store = common::store_with(blobs.clone(), |c| c.retry_attempts = Some(attempts)).await;
    let path = format!("/{}/{container}", common::azurite::ACCOUNT);
    (Harness::new(Arc::new(store), blobs), proxy, path)
}

/// The blob proxy, as the shared blob-fault cases drive it: Azure Blob's own codes.
struct AzureFaults<'a> {
    proxy: &'a HttpProxy,
    /// The container's blob path, `/ACCOUNT/CONTAINER`.
    path: String,
}

impl AzureFaults<'_> {
    fn on(&self, request: BlobRequest) -> String {
        let path = &self.path;
        match request {
            BlobRequest::Put => format!("PUT {path}/snapshots/"),
            BlobRequest::Get => format!("GET {path}/snapshots/"),
            // A delete is one blob batch (`POST ...?comp=batch`).
            BlobRequest::Delete => format!("POST {path}"),
            other => panic!("no request for {other:?}"),
        }
    }
}

impl FaultBlobs for AzureFaults<'_> {
    fn fault(&self, request: BlobRequest, fault: BlobFault, times: Option<u64>) {
        let fault = match fault {
            BlobFault::Throttle => Fault::Refuse { code: "429".into() },
            BlobFault::Fail => Fault::Refuse {
                code: "ServerBusy".into(),
            },
            BlobFault::LoseReply => Fault::DropReply,
            BlobFault::Cut => Fault::CutReply { after: 100 },
            other => panic!("no fault for {other:?}"),
        };
        let rule = Rule::on(self.on(request), fault);
        self.proxy.faults().add(match times {
            Some(n) => rule.times(n),
            None => rule,
        });
    }

    fn injected(&self) -> usize {
        self.proxy.faults().log().len()
    }

    fn seen(&self, request: BlobRequest) -> usize {
        self.proxy.faults().seen(&self.on(request))
    }

    fn clear(&self) {
        self.proxy.faults().clear();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_on_azure_blob_are_retried_within_the_budget_and_counted() {
    let (h, proxy, path) = through_a_blob_proxy(4).await;
    faults::blob_faults_within_the_budget(
        &h,
        &AzureFaults {
            proxy: &proxy,
            path,
        },
    )
    .await
    .unwrap_or_else(|f| panic!("{f}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_on_azure_blob_beyond_the_budget_is_transient_and_points_at_nothing() {
    let (h, proxy, path) = through_a_blob_proxy(3).await;
    faults::blob_faults_past_the_budget(
        &h,
        &AzureFaults {
            proxy: &proxy,
            path,
        },
        3,
    )
    .await
    .unwrap_or_else(|f| panic!("{f}"));
}
