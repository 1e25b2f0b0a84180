//! Waking feed readers: commits are announced with a throttled NOTIFY, or not at all.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use sekiban_conformance::events;
use sekiban_core::{
    ChangeFeed, EventStore, ExpectedVersion, FeedItem, FeedOptions, FeedStart, ObjectBlobStore,
    OpKind, Store, StreamId,
};
use sekiban_postgres::{DEFAULT_NOTIFY_INTERVAL, PostgresConfig, PostgresEventStore};

fn tenant() -> String {
    format!("notify{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

async fn store(config: PostgresConfig) -> PostgresEventStore {
    common::open(config, Arc::new(ObjectBlobStore::memory())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_commits_shares_notifications() {
    let store = store(common::config()).await;
    let t = tenant();
    let before = store.costs();
    let started = Instant::now();
    let n = 150;
    for i in 0..n {
        let s = StreamId::new(&t, "burst", format!("s{i}")).expect("stream id");
        store
            .append(&s, ExpectedVersion::NoStream, events("b", 1))
            .await
            .unwrap_or_else(|e| panic!("append: {e}"));
    }
    let took = started.elapsed();
    // Let the last announcement go out.
    tokio::time::sleep(DEFAULT_NOTIFY_INTERVAL * 4).await;
    let notifies = (store.costs() - before).round_trips(OpKind::Notify);
    let most = (took.as_micros() / DEFAULT_NOTIFY_INTERVAL.as_micros()) as u64 + 2;
    assert!(notifies >= 1, "{n} commits were never announced");
    assert!(
        notifies <= most,
        "{notifies} NOTIFY statements for {n} commits in {took:?}: more than one per {DEFAULT_NOTIFY_INTERVAL:?} (at most {most})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_notifications_readers_poll() {
    let mut config = common::config();
    config.notify_interval = None;
    config.limits.feed_poll_interval = Duration::from_millis(100);
    let store = store(config).await;
    assert!(
        !store.capabilities().feed_notification,
        "a store that sends no NOTIFY must not declare notification"
    );
    let t = tenant();
    let mut follow = store.changes(FeedStart::Now, FeedOptions::follow().tenant(&t));
    let settled = tokio::time::timeout(Duration::from_millis(300), follow.next()).await;
    assert!(settled.is_err(), "delivered before any append: {settled:?}");
    let before = store.costs();
    let s = StreamId::new(&t, "quiet", "1").expect("stream id");
    store
        .append(&s, ExpectedVersion::NoStream, events("q", 1))
        .await
        .unwrap_or_else(|e| panic!("append: {e}"));
    let batch = tokio::time::timeout(Duration::from_secs(10), follow.next())
        .await
        .expect("the polling reader sees the commit")
        .expect("the feed goes on")
        .unwrap_or_else(|e| panic!("feed: {e}"));
    assert!(
        matches!(batch.items.as_slice(), [FeedItem::Event(e)] if e.stream == s),
        "{:?}",
        batch.items
    );
    assert_eq!(
        (store.costs() - before).round_trips(OpKind::Notify),
        0,
        "notify_ms=off sends no NOTIFY"
    );
}
