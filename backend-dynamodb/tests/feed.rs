//! The change feed against DynamoDB Local (or the account `SEKIBAN_DYNAMODB_ENDPOINT` points
//! at): a `Beginning` replay of events Streams no longer holds, a replay whose table scan
//! outlasts the stream's retention, and a consumer restarted from its stored checkpoints while
//! writers go on.
//!
//! DynamoDB Local keeps stream records for ever; a table with a retention of a few seconds
//! (`DynamoDbConfig::stream_retention`) makes the feed treat older records as trimmed, as AWS
//! does after 24 hours, so these tests see what a reader sees on AWS a day later.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use sekiban_core::{
    ChangeFeed, Checkpoint, CheckpointStore, DeleteMode, EventData, EventStore, ExpectedVersion,
    FeedItem, FeedOptions, FeedStart, StreamId, Version,
};
use sekiban_dynamodb::{DynamoDbConfig, DynamoDbTable};

mod common;

/// A fresh table whose stream keeps records for `retention`.
async fn table_with(retention: Duration) -> DynamoDbTable {
    let name = format!("sekiban-test-feed-{}", uuid::Uuid::new_v4().simple());
    let url = format!("dynamodb://{name}?endpoint={}", common::endpoint());
    let mut config = DynamoDbConfig::from_url(&url).expect("a valid URL");
    config.stream_retention = retention;
    let t = DynamoDbTable::connect(config).await;
    t.init().await.expect("init");
    t
}

fn stream(tenant: &str, id: &str) -> StreamId {
    StreamId::new(tenant, "order", id).expect("an id")
}

fn events(tag: &str, n: usize) -> Vec<EventData> {
    (0..n)
        .map(|i| EventData::new("Tick", format!(r#"{{"tag":"{tag}","n":{i}}}"#)))
        .collect()
}

/// Every batch of a catch-up read (it ends by itself), with the last checkpoint.
async fn catch_up(
    t: &DynamoDbTable,
    from: FeedStart,
    opts: FeedOptions,
) -> (Vec<FeedItem>, Checkpoint) {
    let mut feed = t.changes(from, opts);
    let mut items = Vec::new();
    let mut last = None;
    while let Some(b) = feed.next().await {
        let b = b.expect("a batch");
        items.extend(b.items);
        last = Some(b.checkpoint);
    }
    (items, last.expect("a catch-up read ends with a batch"))
}

/// Each stream's event versions, in delivery order.
fn per_stream(items: &[FeedItem]) -> BTreeMap<String, Vec<u64>> {
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for e in items.iter().filter_map(FeedItem::as_event) {
        out.entry(e.stream.id().to_string())
            .or_default()
            .push(e.version.0);
    }
    out
}

fn upto(n: u64) -> Vec<u64> {
    (1..=n).collect()
}

/// Events written, erased and soft-deleted longer ago than the stream keeps come back from
/// `Beginning`, each stream's in order, with the deletion markers; nothing erased comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beginning_replays_events_streams_no_longer_holds() {
    let t = table_with(Duration::from_secs(3)).await;
    let tenant = "old";
    let (a, b, erased, soft) = (
        stream(tenant, "a"),
        stream(tenant, "b"),
        stream(tenant, "erased"),
        stream(tenant, "soft"),
    );
    for i in 0..3 {
        t.append(&a, ExpectedVersion::Any, events(&format!("a{i}"), 2))
            .await
            .expect("append a");
    }
    t.append(&b, ExpectedVersion::NoStream, events("b", 5))
        .await
        .expect("append b");
    t.append(&erased, ExpectedVersion::NoStream, events("x", 2))
        .await
        .expect("append erased");
    t.delete_stream(&erased, DeleteMode::Hard)
        .await
        .expect("erase");
    t.append(&soft, ExpectedVersion::NoStream, events("s", 2))
        .await
        .expect("append soft");
    t.delete_stream(&soft, DeleteMode::Soft)
        .await
        .expect("soft delete");
    t.append(&soft, ExpectedVersion::Exact(Version(2)), events("s2", 1))
        .await
        .expect("append after the soft delete");
    // Longer than the stream keeps: every record of the above counts as trimmed.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let opts = FeedOptions::catch_up().tenant(tenant);
    let (items, _) = catch_up(&t, FeedStart::Beginning, opts).await;
    let got = per_stream(&items);
    assert_eq!(got.get("a"), Some(&upto(6)), "{items:?}");
    assert_eq!(got.get("b"), Some(&upto(5)), "{items:?}");
    assert_eq!(got.get("soft"), Some(&vec![3]), "{items:?}");
    assert_eq!(
        got.get("erased"),
        None,
        "erased events came back: {items:?}"
    );
    let marker = |s: &StreamId, mode| {
        items.iter().position(
            |i| matches!(i, FeedItem::Deleted { stream, mode: m, .. } if stream == s && *m == mode),
        )
    };
    assert!(marker(&erased, DeleteMode::Hard).is_some(), "{items:?}");
    let soft_at = marker(&soft, DeleteMode::Soft).expect("a soft-delete marker");
    let event_at = items
        .iter()
        .position(|i| i.as_event().is_some_and(|e| e.stream == soft))
        .expect("the event after the soft delete");
    assert!(
        soft_at < event_at,
        "the marker after the later event: {items:?}"
    );
}

/// A replay whose scan outlasts the stream's retention (forced: the retention is 4 s and the
/// reader is resumed mid-scan 9 s later) scans again for what was written meanwhile, instead of
/// handing over to shard positions whose records are gone: nothing is lost, nothing repeated,
/// each stream in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_that_outlasts_the_retention_scans_again() {
    let t = table_with(Duration::from_secs(4)).await;
    let tenant = "slow";
    let names = ["s1", "s2", "s3"];
    for n in names {
        for i in 0..2 {
            t.append(
                &stream(tenant, n),
                ExpectedVersion::Any,
                events(&format!("{n}{i}"), 3),
            )
            .await
            .expect("append");
        }
    }
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let opts = FeedOptions::catch_up().tenant(tenant).max_batch(1);
    let mut feed = t.changes(FeedStart::Beginning, opts.clone());
    let first = feed.next().await.expect("a batch").expect("a batch");
    drop(feed);
    assert_eq!(first.items.len(), 1);
    assert!(
        first.checkpoint.as_str().contains(";;"),
        "the first batch comes from the scan: {}",
        first.checkpoint
    );
    // Written while the scan is paused, then kept past the retention too.
    for n in names.iter().chain(["s4"].iter()) {
        t.append(&stream(tenant, n), ExpectedVersion::Any, events("late", 2))
            .await
            .expect("append while the scan waits");
    }
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let (rest, last) = catch_up(&t, FeedStart::After(first.checkpoint), opts).await;
    let mut all = first.items;
    all.extend(rest);
    let got = per_stream(&all);
    for n in names {
        assert_eq!(got.get(n), Some(&upto(8)), "{n}: {got:?}");
    }
    assert_eq!(got.get("s4"), Some(&upto(2)), "{got:?}");
    assert!(
        last.as_str().contains(";cut="),
        "the reader handed over to Streams: {last}"
    );
}

/// A consumer that stores a checkpoint after every batch and is restarted three times while a
/// writer appends, the first time from a `Now` checkpoint taken before anything was written,
/// gets every event, each stream's in order (repeats only of events it had before a restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_consumer_loses_nothing() {
    let t = common::table("sekiban-test-feed", None).await;
    let tenant = format!("t{}", uuid::Uuid::new_v4().simple());
    let opts = FeedOptions::catch_up().tenant(&tenant).max_batch(3);
    let name = format!("consumer-{tenant}");
    let (_, now) = catch_up(&t, FeedStart::Now, opts.clone()).await;
    let mut etag = Some(t.save_checkpoint(&name, &now, None).await.expect("save"));
    let mut writer = Some({
        let t = t.clone();
        let tenant = tenant.clone();
        tokio::spawn(async move {
            for i in 0..12 {
                let s = stream(&tenant, &format!("w{}", i % 3));
                t.append(&s, ExpectedVersion::Any, events(&format!("{i}"), 2))
                    .await
                    .expect("append");
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        })
    });
    let mut delivered: Vec<FeedItem> = Vec::new();
    for life in 0..4 {
        if life == 3
            && let Some(w) = writer.take()
        {
            w.await.expect("the writer");
        }
        let (from, _) = t
            .load_checkpoint(&name)
            .await
            .expect("load")
            .expect("a stored checkpoint");
        let mut feed = t.changes(FeedStart::After(from), opts.clone());
        // Three batches a life, all of them in the last one.
        let mut batches = 0;
        while let Some(b) = feed.next().await {
            let b = b.expect("a batch");
            delivered.extend(b.items);
            etag = Some(
                t.save_checkpoint(&name, &b.checkpoint, etag.as_ref())
                    .await
                    .expect("save"),
            );
            batches += 1;
            if life < 3 && batches == 3 {
                break;
            }
        }
    }
    for (s, versions) in per_stream(&delivered) {
        let mut highest = 0;
        for v in versions {
            assert!(v <= highest + 1, "{s}: {v} after {highest}: a gap");
            highest = highest.max(v);
        }
        assert_eq!(highest, 8, "{s}: the last version delivered");
    }
}

/// A checkpoint taken inside a stream the scan delivers in part (its last append written after
/// the cut, so Streams delivers that one) resumes the scan where it was in that stream: the
/// events still due from the scan come, then the rest from Streams, none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_resumed_inside_a_stream_goes_on_with_it() {
    let name = format!("sekiban-test-feed-{}", uuid::Uuid::new_v4().simple());
    let url = format!("dynamodb://{name}?endpoint={}", common::endpoint());
    let mut config = DynamoDbConfig::from_url(&url).expect("a valid URL");
    config.replay_margin = Duration::from_secs(2);
    let t = DynamoDbTable::connect(config).await;
    t.init().await.expect("init");
    let s = stream("split", "s");
    for i in 0..2 {
        t.append(&s, ExpectedVersion::Any, events(&format!("early{i}"), 1))
            .await
            .expect("append");
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // After the cut of a feed started now: Streams', not the scan's.
    t.append(&s, ExpectedVersion::Any, events("late", 1))
        .await
        .expect("append");
    let opts = FeedOptions::catch_up().tenant("split").max_batch(1);
    let mut feed = t.changes(FeedStart::Beginning, opts.clone());
    let first = feed.next().await.expect("a batch").expect("a batch");
    drop(feed);
    assert_eq!(per_stream(&first.items).get("s"), Some(&vec![1]));
    let (rest, _) = catch_up(&t, FeedStart::After(first.checkpoint.clone()), opts).await;
    assert_eq!(
        per_stream(&rest).get("s"),
        Some(&vec![2, 3]),
        "resumed from {}: {rest:?}",
        first.checkpoint
    );
}

/// A feed resumed from inside an append that a soft delete has hidden since gives the deletion
/// marker and none of the hidden events, though the store's shared shard log still holds the
/// append's records from before the delete (found by the model test's random exploration).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_feed_skips_events_hidden_since() {
    let t = table_with(Duration::from_secs(24 * 3600)).await;
    let (_, start) = catch_up(&t, FeedStart::Beginning, FeedOptions::catch_up()).await;
    let s = stream("hide", "bulk");
    t.append(&s, ExpectedVersion::Any, events("bulk", 21))
        .await
        .expect("append");
    let mut feed = t.changes(
        FeedStart::After(start),
        FeedOptions::catch_up().max_batch(1),
    );
    let mut inside = None;
    let mut delivered = 0;
    while let Some(b) = feed.next().await {
        let b = b.expect("a batch");
        delivered += b.items.len();
        if delivered == 7 {
            inside = Some(b.checkpoint);
        }
    }
    drop(feed);
    assert_eq!(delivered, 21);
    t.delete_stream(&s, DeleteMode::Soft).await.expect("delete");
    let (items, _) = catch_up(
        &t,
        FeedStart::After(inside.expect("a checkpoint after 7 events")),
        FeedOptions::catch_up(),
    )
    .await;
    assert!(
        matches!(
            items.as_slice(),
            [FeedItem::Deleted {
                version: Version(21),
                mode: DeleteMode::Soft,
                ..
            }]
        ),
        "{items:?}"
    );
}
