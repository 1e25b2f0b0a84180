//! Faults on purpose, through HTTP proxies (`sekiban-faults`) in front of DynamoDB Local and
//! moto's S3: replies lost after the service did the work, throttling and transaction conflicts,
//! 5xx answers, replies cut mid-body (a paged read, a feed read, a blob download), batches
//! answered unprocessed, and faults that outlast the budget. After each, what the store answered
//! and what it stored are checked: nothing lost, nothing twice, versions contiguous, one marker
//! per delete, the feed complete and nothing before a checkpoint again.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use sekiban_conformance::Harness;
use sekiban_conformance::faults::{self, BlobFault, BlobRequest, FaultBlobs, LoseReplies, Write};
use sekiban_core::snapshot::stream_blob_prefix;
use sekiban_core::{
    BlobStore, Checkpoint, CheckpointStore, DeleteMode, EventData, EventStore, ExpectedVersion,
    FeedItem, FeedOptions, FeedStart, ObjectBlobStore, OpKind, ReadOptions, StoreError, StreamId,
    Version,
};
use sekiban_dynamodb::{DynamoDbConfig, DynamoDbTable};
use sekiban_faults::{Fault, Faults, HttpProxy, Rule};

/// A table reached through a fault proxy (and, when opened with one, its bucket on the S3
/// emulator through a second proxy).
struct Proxied {
    proxy: HttpProxy,
    s3: Option<HttpProxy>,
    table: DynamoDbTable,
    blobs: Arc<dyn BlobStore>,
    tenant: String,
}

impl Proxied {
    /// Snapshot blobs in memory.
    async fn open(attempts: u32) -> Proxied {
        Self::open_with(attempts, false).await
    }

    /// Snapshot blobs in a bucket of their own on the S3 emulator.
    async fn open_with_s3(attempts: u32) -> Proxied {
        Self::open_with(attempts, true).await
    }

    async fn open_with(attempts: u32, with_s3: bool) -> Proxied {
        let proxy = HttpProxy::start(&common::endpoint(), Faults::new(Faults::seed_from_env()))
            .await
            .expect("start the proxy");
        let name = format!(
            "sekiban-faults-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let mut url = format!(
            "dynamodb://{name}?endpoint={}&retries={attempts}",
            proxy.endpoint()
        );
        let s3 = if with_s3 {
            let s3 = HttpProxy::start(&common::s3_endpoint(), Faults::new(Faults::seed_from_env()))
                .await
                .expect("start the S3 proxy");
            url.push_str(&format!(
                "&bucket={}&s3_endpoint={}",
                common::fresh_bucket(),
                s3.endpoint()
            ));
            Some(s3)
        } else {
            None
        };
        let config = DynamoDbConfig::from_url(&url).expect("a URL");
        let table = if with_s3 {
            DynamoDbTable::connect(config).await
        } else {
            DynamoDbTable::connect_with_blobs(config, Arc::new(ObjectBlobStore::memory())).await
        };
        table.init().await.expect("init");
        table.init_bucket().await.expect("init the bucket");
        Proxied {
            proxy,
            s3,
            blobs: table.blobs(),
            table,
            tenant: format!("f{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
        }
    }

    /// The S3 proxy.
    fn s3(&self) -> &HttpProxy {
        self.s3.as_ref().expect("opened with S3")
    }

    fn stream(&self) -> StreamId {
        let id = uuid::Uuid::new_v4().simple().to_string();
        StreamId::new(&self.tenant, "lost", &id).expect("a stream id")
    }

    fn rules(&self, rules: Vec<Rule>) {
        self.proxy.faults().set(rules);
    }

    fn seen(&self, op: &str) -> usize {
        self.proxy.faults().seen_exactly(op)
    }

    /// Catching up with the feed of the test's tenant.
    fn feed(&self) -> FeedOptions {
        FeedOptions::catch_up().tenant(&self.tenant)
    }

    /// A checkpoint at the feed's end now (read from `Now`): what comes after it is read from
    /// DynamoDB Streams.
    async fn now(&self) -> Checkpoint {
        let now = sekiban_conformance::catch_up(&self.table, FeedStart::Now, self.feed())
            .await
            .expect("a checkpoint from Now");
        sekiban_conformance::last_checkpoint(&now).expect("a checkpoint")
    }

    /// A conformance harness on the proxied table (its own tenant).
    fn harness(&self) -> Harness {
        Harness::new(Arc::new(self.table.clone()), self.blobs.clone())
    }

    async fn drop(self) {
        self.proxy.faults().clear();
        if let Some(s3) = &self.s3 {
            s3.faults().clear();
        }
        common::drop_table(&self.table).await;
    }
}

impl LoseReplies for Proxied {
    fn lose_next(&self, write: Write) {
        let op = match write {
            Write::AppendNew | Write::AppendExisting => "TransactWriteItems",
            Write::CheckpointNew | Write::CheckpointOver => "PutItem",
            // A snapshot pointer is one transaction with a check of the head.
            Write::SnapshotPointer => "TransactWriteItems",
            other => panic!("no operation for {other:?}"),
        };
        self.rules(vec![lost(op)]);
    }

    fn injected(&self) -> usize {
        self.proxy.faults().log().len()
    }

    fn clear(&self) {
        self.proxy.faults().clear();
    }
}

fn lost(op: &str) -> Rule {
    Rule::exactly(op, Fault::DropReply).times(1)
}

fn events(tag: &str, n: usize) -> Vec<EventData> {
    (0..n)
        .map(|i| EventData::new("Tick", Bytes::from(format!(r#"{{"tag":"{tag}","n":{i}}}"#))))
        .collect()
}

async fn read_all(t: &DynamoDbTable, s: &StreamId) -> Vec<sekiban_core::RecordedEvent> {
    t.read(s, ReadOptions::forward())
        .map(|e| e.expect("read"))
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_append_reply_is_answered_with_its_versions_under_every_expectation() {
    let p = Proxied::open(4).await;
    faults::lost_append_replies(&p.harness(), &p)
        .await
        .unwrap_or_else(|f| panic!("{f}"));
    p.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_checkpoint_save_reply_is_answered_with_its_etag() {
    let p = Proxied::open(4).await;
    faults::lost_checkpoint_replies(&p.harness(), &p)
        .await
        .unwrap_or_else(|f| panic!("{f}"));
    p.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_delete_reply_has_one_effect_and_one_marker() {
    let p = Proxied::open(4).await;
    let h = p.harness();
    // Each request of each delete in turn: a soft delete hides the append's item (an
    // `UpdateItem`), drops the snapshot pointer (`DeleteItem`) and marks the head (the second
    // `UpdateItem`); a hard delete writes the tombstone and drops the pointer in one
    // `TransactWriteItems`, then removes the items (`BatchWriteItem`).
    for (mode, ops) in [
        (
            DeleteMode::Soft,
            vec![("UpdateItem", 0), ("UpdateItem", 1), ("DeleteItem", 0)],
        ),
        (
            DeleteMode::Hard,
            vec![("TransactWriteItems", 0), ("BatchWriteItem", 0)],
        ),
    ] {
        for (op, skip) in ops {
            let s = faults::stream_to_delete(&h)
                .await
                .unwrap_or_else(|f| panic!("{f}"));
            p.rules(vec![lost(op).skip(skip)]);
            let logged = p.proxy.faults().log().len();
            p.table
                .delete_stream(&s, mode)
                .await
                .unwrap_or_else(|e| panic!("{mode:?} delete, {op} reply lost: {e}"));
            assert_eq!(
                p.proxy.faults().log().len(),
                logged + 1,
                "{mode:?}: the reply of {op} #{} was lost",
                skip + 1
            );
            p.proxy.faults().clear();
            // On this store a soft delete's dropped snapshot blob goes too, whatever was lost.
            let left = p
                .blobs
                .list(&stream_blob_prefix(&s))
                .await
                .expect("list blobs");
            assert!(left.is_empty(), "{mode:?}, {op}: blobs left: {left:?}");
            faults::deleted_once(&h, &s, mode)
                .await
                .unwrap_or_else(|f| panic!("{mode:?}, {op} reply lost: {f}"));
        }
    }
    p.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_server_errors_on_every_request_are_retried_and_counted() {
    let p = Proxied::open(4).await;
    let ops = [
        (
            "TransactWriteItems",
            "ProvisionedThroughputExceededException",
        ),
        ("Query", "ThrottlingException"),
        ("GetItem", "RequestLimitExceeded"),
        ("PutItem", "500"),
        ("UpdateItem", "503"),
        ("BatchWriteItem", "InternalServerError"),
        // The feed's reads: the replay's scan, then DynamoDB Streams.
        ("Scan", "ThrottlingException"),
        ("DescribeStream", "500"),
        ("GetShardIterator", "503"),
        ("GetRecords", "InternalServerError"),
    ];
    p.rules(
        ops.iter()
            .map(|(op, code)| {
                Rule::exactly(
                    *op,
                    Fault::Refuse {
                        code: code.to_string(),
                    },
                )
                .times(1)
            })
            .collect(),
    );
    let s = p.stream();
    let sent = events("t", 3);
    p.table
        .append(&s, ExpectedVersion::NoStream, sent.clone())
        .await
        .expect("append");
    sekiban_conformance::check_events(&read_all(&p.table, &s).await, &sent, Version(1), "read")
        .unwrap_or_else(|f| panic!("{f}"));
    // From the beginning: the scan hands over to Streams.
    let fed = sekiban_conformance::feed_events(
        &sekiban_conformance::catch_up(&p.table, FeedStart::Beginning, p.feed())
            .await
            .expect("the feed"),
    );
    sekiban_conformance::check_events(&fed, &sent, Version(1), "the feed")
        .unwrap_or_else(|f| panic!("{f}"));
    let name = format!("{}-c", p.tenant);
    let etag = p
        .table
        .save_checkpoint(&name, &Checkpoint::new("a"), None)
        .await
        .expect("save");
    assert_eq!(
        p.table.load_checkpoint(&name).await.expect("load"),
        Some((Checkpoint::new("a"), etag))
    );
    p.table
        .delete_stream(&s, DeleteMode::Soft)
        .await
        .expect("soft delete");
    p.table
        .delete_stream(&s, DeleteMode::Hard)
        .await
        .expect("hard delete");
    let log = p.proxy.faults().log();
    let faulted: std::collections::BTreeSet<usize> = log.iter().map(|i| i.rule).collect();
    assert_eq!(faulted.len(), ops.len(), "every rule fired: {log:?}");
    let c = p.table.costs();
    assert!(
        c.total().retries >= ops.len() as u64,
        "retries counted: {c}"
    );
    p.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_beyond_the_budget_is_transient_after_exactly_the_budget() {
    let p = Proxied::open(3).await;
    let s = p.stream();
    for (fault, throttled) in [
        (
            Fault::Refuse {
                code: "ThrottlingException".into(),
            },
            true,
        ),
        (Fault::Refuse { code: "503".into() }, false),
        (Fault::Close, false),
    ] {
        let (before, seen) = (p.table.costs(), p.seen("TransactWriteItems"));
        p.rules(vec![Rule::exactly("TransactWriteItems", fault.clone())]);
        let e = p
            .table
            .append(&s, ExpectedVersion::Any, events("b", 1))
            .await
            .expect_err("every attempt faulted");
        p.proxy.faults().clear();
        assert!(e.is_transient(), "{fault}: {e:?}");
        assert_eq!(
            matches!(e, StoreError::Throttled { .. }),
            throttled,
            "{fault}: {e:?}"
        );
        assert_eq!(p.seen("TransactWriteItems") - seen, 3, "{fault}: attempts");
        let spent = p.table.costs() - before;
        assert_eq!(spent.retries(OpKind::Append), 2, "{fault}: {spent}");
    }
    assert_eq!(read_all(&p.table, &s).await.len(), 0, "nothing written");
    // A read whose every reply is cut.
    let seen = p.seen("Query");
    p.rules(vec![Rule::exactly("Query", Fault::CutReply { after: 10 })]);
    let e = p
        .table
        .read(&s, ReadOptions::forward())
        .next()
        .await
        .expect("an item")
        .expect_err("every reply cut");
    p.proxy.faults().clear();
    assert!(matches!(e, StoreError::Unavailable { .. }), "{e:?}");
    assert_eq!(p.seen("Query") - seen, 3, "attempts at the cut read");
    p.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_cut_in_a_paged_read_loses_and_repeats_nothing() {
    let p = Proxied::open(4).await;
    let s = p.stream();
    let mut sent = Vec::new();
    for i in 0..3 {
        let batch = events(&format!("c{i}"), 100);
        p.table
            .append(&s, ExpectedVersion::Any, batch.clone())
            .await
            .expect("append");
        sent.extend(batch);
    }
    p.rules(vec![
        Rule::exactly("Query", Fault::CutReply { after: 200 }).times(1),
    ]);
    sekiban_conformance::check_events(
        &read_all(&p.table, &s).await,
        &sent,
        Version(1),
        "a cut page",
    )
    .unwrap_or_else(|f| panic!("{f}"));
    assert_eq!(p.proxy.faults().log().len(), 1);
    assert!(p.table.costs().retries(OpKind::Read) >= 1);
    p.drop().await;
}

/// Items left in a stream's partition (the head and the tombstone below every version remain
/// after a hard delete).
async fn items_of(t: &DynamoDbTable, s: &StreamId) -> i32 {
    t.client()
        .query()
        .table_name(&t.config().table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(sekiban_dynamodb::stream_key(s)),
        )
        .consistent_read(true)
        .send()
        .await
        .expect("query")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_answered_in_part_are_sent_again_for_their_rest_within_the_budget() {
    let p = Proxied::open(3).await;
    // A hard delete whose first batch of removals comes back unprocessed.
    let s = p.stream();
    for i in 0..30 {
        p.table
            .append(&s, ExpectedVersion::Any, events(&format!("u{i}"), 1))
            .await
            .expect("append");
    }
    p.rules(vec![
        Rule::exactly("BatchWriteItem", Fault::Unprocessed).times(1),
    ]);
    let before = p.table.costs();
    p.table
        .delete_stream(&s, DeleteMode::Hard)
        .await
        .expect("a hard delete answered in part");
    assert_eq!(p.proxy.faults().log().len(), 1);
    assert_eq!(
        items_of(&p.table, &s).await,
        2,
        "only the tombstones are left"
    );
    assert!((p.table.costs() - before).retries(OpKind::Delete) >= 1);

    // Answered unprocessed every time: throttled after exactly the budget.
    let s2 = p.stream();
    p.table
        .append(&s2, ExpectedVersion::NoStream, events("v", 3))
        .await
        .expect("append");
    let seen = p.seen("BatchWriteItem");
    p.rules(vec![Rule::exactly("BatchWriteItem", Fault::Unprocessed)]);
    let e = p
        .table
        .delete_stream(&s2, DeleteMode::Hard)
        .await
        .expect_err("never processed");
    p.proxy.faults().clear();
    assert!(matches!(e, StoreError::Throttled { .. }), "{e:?}");
    assert_eq!(p.seen("BatchWriteItem") - seen, 3, "requests for the batch");

    p.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_snapshot_pointer_reply_keeps_one_pointer_and_deletes_the_replaced_blob() {
    let p = Proxied::open(4).await;
    faults::lost_snapshot_pointer_replies(&p.harness(), &p)
        .await
        .unwrap_or_else(|f| panic!("{f}"));
    p.drop().await;
}

/// The bucket's proxy, as the shared blob-fault cases drive it: S3's own codes.
struct S3Faults<'a> {
    proxy: &'a HttpProxy,
    bucket: String,
}

impl S3Faults<'_> {
    fn on(&self, request: BlobRequest) -> String {
        let method = match request {
            BlobRequest::Put => "PUT",
            BlobRequest::Get => "GET",
            BlobRequest::Delete => "DELETE",
            other => panic!("no request for {other:?}"),
        };
        format!("{method} /{}/snapshots/", self.bucket)
    }
}

impl FaultBlobs for S3Faults<'_> {
    fn fault(&self, request: BlobRequest, fault: BlobFault, times: Option<u64>) {
        let fault = match fault {
            BlobFault::Throttle => Fault::Refuse {
                code: "SlowDown".into(),
            },
            BlobFault::Fail => Fault::Refuse {
                code: "InternalError".into(),
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

impl Proxied {
    /// The S3 proxy, as the shared blob-fault cases drive it.
    fn s3_faults(&self) -> S3Faults<'_> {
        S3Faults {
            proxy: self.s3(),
            bucket: self.table.config().bucket.clone().expect("a bucket"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_on_s3_are_retried_within_the_budget_and_counted() {
    let p = Proxied::open_with_s3(4).await;
    faults::blob_faults_within_the_budget(&p.harness(), &p.s3_faults())
        .await
        .unwrap_or_else(|f| panic!("{f}"));
    p.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_on_s3_beyond_the_budget_is_transient_and_points_at_nothing() {
    let p = Proxied::open_with_s3(5).await;
    faults::blob_faults_past_the_budget(&p.harness(), &p.s3_faults(), 5)
        .await
        .unwrap_or_else(|f| panic!("{f}"));
    p.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_cut_in_a_feed_read_loses_and_repeats_nothing() {
    let p = Proxied::open(4).await;
    let feed = || p.feed();
    let from = p.now().await;
    let s = p.stream();
    let mut sent = Vec::new();
    for i in 0..3 {
        let batch = events(&format!("f{i}"), 100);
        p.table
            .append(&s, ExpectedVersion::Any, batch.clone())
            .await
            .expect("append");
        sent.extend(batch);
    }
    // The stream's records come from DynamoDB Streams; the first answer is cut mid-body.
    p.rules(vec![
        Rule::exactly("GetRecords", Fault::CutReply { after: 200 }).times(1),
    ]);
    let before = p.table.costs();
    let batches = sekiban_conformance::catch_up(&p.table, FeedStart::After(from), feed())
        .await
        .expect("a feed read through a cut reply");
    assert_eq!(p.proxy.faults().log().len(), 1, "the feed's read was cut");
    p.proxy.faults().clear();
    assert!((p.table.costs() - before).total().retries >= 1);
    sekiban_conformance::check_events(
        &sekiban_conformance::feed_events(&batches),
        &sent,
        Version(1),
        "the feed through a cut reply",
    )
    .unwrap_or_else(|f| panic!("{f}"));

    // From a checkpoint in the middle, through another cut.
    let middle = batches
        .iter()
        .position(|b| !b.items.is_empty())
        .expect("a batch with events");
    faults::resumes_from_a_checkpoint(&p.table, &s, &batches, middle, feed(), || {
        p.rules(vec![
            Rule::exactly("GetRecords", Fault::CutReply { after: 200 }).times(1),
        ])
    })
    .await
    .unwrap_or_else(|f| panic!("{f}"));
    p.proxy.faults().clear();
    p.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_stream_read_in_an_earlier_page_than_its_removal_stays_off_the_feed() {
    let p = Proxied::open(3).await;
    let from = p.now().await;
    let erased = p.stream();
    p.table
        .append(&erased, ExpectedVersion::NoStream, events("secret", 2))
        .await
        .expect("append");
    // A page of stream records (`GetRecords` reads at most 1 000) between the appends and the
    // removal: 1 000 checkpoint saves, one record each. The feed then reads the erased stream's
    // events without the records of its removal, and only the look-up of heads keeps them off.
    futures::stream::iter(0..1000)
        .for_each_concurrent(16, |i| {
            let (table, name) = (&p.table, format!("{}-filler-{i}", p.tenant));
            async move {
                table
                    .save_checkpoint(&name, &Checkpoint::new("x"), None)
                    .await
                    .expect("save a checkpoint");
            }
        })
        .await;
    p.table
        .delete_stream(&erased, DeleteMode::Hard)
        .await
        .expect("hard delete");
    p.rules(vec![
        Rule::exactly("BatchGetItem", Fault::Unprocessed).times(1),
    ]);
    let batches = sekiban_conformance::catch_up(&p.table, FeedStart::After(from), p.feed())
        .await
        .expect("the feed");
    p.proxy.faults().clear();
    let mut leaked = Vec::new();
    let mut marked = false;
    for item in batches.iter().flat_map(|b| &b.items) {
        match item {
            FeedItem::Event(e) if e.stream == erased => leaked.push(e.version),
            FeedItem::Deleted { stream, .. } if stream == &erased => marked = true,
            _ => {}
        }
    }
    assert!(leaked.is_empty(), "erased events on the feed: {leaked:?}");
    assert!(marked, "the deletion's marker on the feed");
    assert_eq!(
        p.proxy.faults().log().len(),
        1,
        "the look-up of heads answered in part"
    );
    assert!(
        p.seen("GetRecords") >= 2,
        "the removal read in a later page"
    );
    p.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_conflict_is_retried_and_counted_then_throttled_past_the_budget() {
    let p = Proxied::open(4).await;
    let s = p.stream();
    p.table
        .append(&s, ExpectedVersion::NoStream, events("a", 1))
        .await
        .expect("append");
    let conflict = || {
        Rule::exactly(
            "TransactWriteItems",
            Fault::Cancel {
                reason: "TransactionConflict".into(),
            },
        )
    };
    // Another transaction touching the head twice: the SDK's retries get the append through.
    p.rules(vec![conflict().times(2)]);
    let before = p.table.costs();
    let r = p
        .table
        .append(&s, ExpectedVersion::Exact(Version(1)), events("b", 1))
        .await
        .expect("an append through two conflicts");
    assert_eq!(r.last, Version(2));
    assert_eq!(p.proxy.faults().log().len(), 2);
    let spent = p.table.costs() - before;
    assert_eq!(spent.retries(OpKind::Append), 2, "{spent}");

    // Conflicting throughout: throttled after exactly the budget, nothing written.
    let (before, seen) = (p.table.costs(), p.seen("TransactWriteItems"));
    p.rules(vec![conflict()]);
    let e = p
        .table
        .append(&s, ExpectedVersion::Exact(Version(2)), events("c", 1))
        .await
        .expect_err("every attempt cancelled");
    p.proxy.faults().clear();
    assert!(matches!(e, StoreError::Throttled { .. }), "{e:?}");
    assert_eq!(p.seen("TransactWriteItems") - seen, 4, "attempts");
    let spent = p.table.costs() - before;
    assert_eq!(spent.retries(OpKind::Append), 3, "{spent}");
    assert_eq!(read_all(&p.table, &s).await.len(), 2, "nothing written");
    p.drop().await;
}
