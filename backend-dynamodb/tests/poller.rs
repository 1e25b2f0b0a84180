//! The shard poller one store shares among its feeds, against DynamoDB Local (or the account
//! `SEKIBAN_DYNAMODB_ENDPOINT` points at): many followers cost about one reader's shard reads,
//! and each still gets every event once, per stream in order, also a feed that falls behind
//! what the shared log keeps.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use sekiban_core::{
    ChangeBatch, ChangeFeed, Checkpoint, EventData, EventStore, ExpectedVersion, FeedItem,
    FeedOptions, FeedStart, OpKind, Result, Store, StreamId,
};
use sekiban_dynamodb::{DynamoDbConfig, DynamoDbTable};

mod common;

/// A fresh table whose store's shard poller keeps `buffer` bytes per shard.
async fn table_with(buffer: usize) -> DynamoDbTable {
    let name = format!("sekiban-test-poller-{}", uuid::Uuid::new_v4().simple());
    let url = format!("dynamodb://{name}?endpoint={}", common::endpoint());
    let mut config = DynamoDbConfig::from_url(&url).expect("a valid URL");
    config.feed_buffer_bytes = buffer;
    let t = DynamoDbTable::connect(config).await;
    t.init().await.expect("init");
    t
}

fn stream(id: &str) -> StreamId {
    StreamId::new("poller", "order", id).expect("an id")
}

fn events(tag: &str, n: usize) -> Vec<EventData> {
    (0..n)
        .map(|i| EventData::new("Tick", format!(r#"{{"tag":"{tag}","n":{i}}}"#)))
        .collect()
}

type Feed<'a> = BoxStream<'a, Result<ChangeBatch>>;

/// Reads `feed` until it has delivered `n` events (failing after 60 s); its events per stream,
/// in delivery order, and its last checkpoint.
async fn take(feed: &mut Feed<'_>, n: usize) -> (BTreeMap<String, Vec<u64>>, Checkpoint) {
    let mut got: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut count = 0;
    let mut last = None;
    while count < n {
        let b = tokio::time::timeout(Duration::from_secs(60), feed.next())
            .await
            .unwrap_or_else(|_| panic!("60 s without a batch, after {count} of {n} events"))
            .expect("the feed goes on")
            .expect("a batch");
        for e in b.items.iter().filter_map(FeedItem::as_event) {
            got.entry(e.stream.id().to_string())
                .or_default()
                .push(e.version.0);
            count += 1;
        }
        last = Some(b.checkpoint);
    }
    (got, last.expect("a batch"))
}

/// Asserts nothing more arrives within `wait`.
async fn quiet(feed: &mut Feed<'_>, wait: Duration, who: &str) {
    let more = tokio::time::timeout(wait, feed.next()).await;
    assert!(
        more.is_err(),
        "{who} delivered more than was written: {more:?}"
    );
}

/// Eight followers of one store, some from `Now` and some resumed from a checkpoint, read the
/// shards about as often as one: idle, their shard reads stay within one reader's budget plus
/// one read each to find their place; then each gets every new event once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_of_one_store_share_its_shard_reads() {
    let t = table_with(8 << 20).await;
    let poll = t.limits().feed_poll_interval;
    // A first follower from `Now`, whose checkpoint then names the record it read last.
    let mut first = t.changes(FeedStart::Now, FeedOptions::follow());
    quiet(&mut first, Duration::from_millis(300), "a feed from Now").await;
    t.append(&stream("a"), ExpectedVersion::NoStream, events("old", 3))
        .await
        .expect("append");
    let (_, cp) = take(&mut first, 3).await;
    let mut feeds: Vec<Feed<'_>> = vec![first];
    for _ in 0..3 {
        feeds.push(t.changes(FeedStart::After(cp.clone()), FeedOptions::follow()));
    }
    for _ in 0..4 {
        feeds.push(t.changes(FeedStart::Now, FeedOptions::follow()));
    }
    // Idle: every follower polls.
    let before = t.costs();
    let idle = poll * 4;
    let polls = futures::future::join_all(feeds.iter_mut().map(|f| async {
        let more = tokio::time::timeout(idle, f.next()).await;
        assert!(more.is_err(), "an idle follower delivered {more:?}");
    }));
    polls.await;
    let spent = (t.costs() - before).round_trips(OpKind::Feed);
    let shards = u64::from(t.capabilities().feed_partitions);
    let one_reader = (idle.as_secs_f64() / poll.as_secs_f64() + 2.0).floor() as u64 * shards;
    let finding_places = 2 * feeds.len() as u64;
    assert!(
        spent <= one_reader + finding_places,
        "8 idle followers made {spent} shard requests in {idle:?}; one reader's budget is {one_reader}, plus {finding_places} to find their places: they do not share the store's shard poller"
    );
    // Then each gets every new event once, per stream in order.
    for (i, s) in ["a", "b", "c", "d"].iter().enumerate() {
        let expected = if i == 0 {
            ExpectedVersion::Any
        } else {
            ExpectedVersion::NoStream
        };
        t.append(&stream(s), expected, events("new", 5))
            .await
            .expect("append");
    }
    let mut want: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    want.insert("a".into(), (4..=8).collect());
    for s in ["b", "c", "d"] {
        want.insert(s.into(), (1..=5).collect());
    }
    for (i, f) in feeds.iter_mut().enumerate() {
        let (got, _) = take(f, 20).await;
        assert_eq!(got, want, "follower {i}");
        quiet(f, Duration::from_millis(200), "a follower").await;
    }
    // Busy, the followers still share: 8 alone would make 8 reads per round.
    let before = t.costs();
    for round in 0..5 {
        t.append(
            &stream("b"),
            ExpectedVersion::Any,
            events(&format!("r{round}"), 1),
        )
        .await
        .expect("append");
        for f in feeds.iter_mut() {
            take(f, 1).await;
        }
    }
    // Each follower checks its batch's streams against deletes (one `BatchGetItem`); the
    // shard reads are shared: about two a round, not eight.
    let reads = (t.costs() - before).round_trips(OpKind::Feed);
    let shared = 5 * (feeds.len() as u64 + 3 * shards);
    assert!(
        reads <= shared,
        "8 followers made {reads} feed requests for 5 appends read by all; sharing the shard reads, at most {shared}"
    );
}

/// A follower that stops reading while another goes on falls behind what the shared log keeps
/// (here: nothing beyond what its readers still need); it then reads the shard alone and still
/// gets every event once, in order, and so does a catch-up read from the same checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_behind_the_shared_log_reads_alone_and_loses_nothing() {
    let t = table_with(1).await;
    let s = stream("lag");
    let mut first = t.changes(FeedStart::Now, FeedOptions::follow());
    quiet(&mut first, Duration::from_millis(300), "a feed from Now").await;
    t.append(&s, ExpectedVersion::NoStream, events("a", 4))
        .await
        .expect("append");
    let (_, cp) = take(&mut first, 4).await;
    drop(first);
    // Both resume from the checkpoint, in the shared log.
    let mut fast = t.changes(FeedStart::After(cp.clone()), FeedOptions::follow());
    let mut slow = t.changes(FeedStart::After(cp.clone()), FeedOptions::follow());
    quiet(&mut fast, Duration::from_millis(300), "a resumed feed").await;
    quiet(&mut slow, Duration::from_millis(300), "a resumed feed").await;
    // The fast one reads on through 30 appends; the log keeps none of them after it.
    for i in 0..30 {
        t.append(&s, ExpectedVersion::Any, events(&format!("b{i}"), 2))
            .await
            .expect("append");
    }
    let (got, _) = take(&mut fast, 60).await;
    assert_eq!(got.get("lag"), Some(&(5..=64).collect::<Vec<u64>>()));
    let (got, _) = take(&mut slow, 60).await;
    assert_eq!(
        got.get("lag"),
        Some(&(5..=64).collect::<Vec<u64>>()),
        "the slow follower"
    );
    quiet(&mut slow, Duration::from_millis(200), "the slow follower").await;
    let mut resumed = t.changes(FeedStart::After(cp), FeedOptions::catch_up());
    let mut versions = Vec::new();
    while let Some(b) = resumed.next().await {
        let b = b.expect("a batch");
        versions.extend(
            b.items
                .iter()
                .filter_map(FeedItem::as_event)
                .map(|e| e.version.0),
        );
    }
    assert_eq!(versions, (5..=64).collect::<Vec<u64>>());
}

/// A `Now` feed that opened its own iterator joins the shared log at the log's end only when
/// that end is its own start: here the log read an event written after the feed started, so
/// the feed reads that event alone instead of joining after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_now_feed_joins_the_shared_log_only_at_its_own_start() {
    let t = table_with(8 << 20).await;
    let poll = t.limits().feed_poll_interval;
    let s = stream("join");
    t.append(&s, ExpectedVersion::NoStream, events("before", 1))
        .await
        .expect("append");
    // The shared log opens for the first feed.
    let mut first = t.changes(FeedStart::Now, FeedOptions::follow());
    quiet(&mut first, Duration::from_millis(300), "a feed from Now").await;
    // The second opens an iterator of its own, then an event comes, which the log reads for
    // the first feed, and then reads again and finds nothing new.
    let mut second = t.changes(FeedStart::Now, FeedOptions::follow());
    quiet(&mut second, Duration::from_millis(300), "a feed from Now").await;
    t.append(
        &s,
        ExpectedVersion::Exact(sekiban_core::Version(1)),
        events("after", 1),
    )
    .await
    .expect("append");
    let (got, _) = take(&mut first, 1).await;
    assert_eq!(got.get("join"), Some(&vec![2]));
    quiet(&mut first, poll * 2, "the first feed").await;
    let (got, _) = take(&mut second, 1).await;
    assert_eq!(got.get("join"), Some(&vec![2]), "the second feed");
}
