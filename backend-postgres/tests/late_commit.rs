//! The change feed never skips a transaction that commits late, and never reorders a stream.
//!
//! These tests hold transactions open, which holds back the cluster-wide xmin; `scripts/test.sh`
//! runs them serially, after the parallel run of everything else.

mod common;

use futures::StreamExt;
use sekiban_conformance::{catch_up, events, feed_events, versions};
use sekiban_core::{
    ChangeFeed, Checkpoint, EventStore, ExpectedVersion, FeedOptions, FeedStart, RecordedEvent,
    StreamId,
};
use sekiban_postgres::PostgresEventStore;
use sekiban_postgres::tokio_postgres::{self, Client};

async fn store() -> PostgresEventStore {
    common::store_with(std::sync::Arc::new(sekiban_core::ObjectBlobStore::memory())).await
}

fn tenant() -> String {
    format!("late{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

fn opts(tenant: &str) -> FeedOptions {
    FeedOptions::catch_up().tenant(tenant)
}

async fn feed_after(
    store: &PostgresEventStore,
    from: FeedStart,
    tenant: &str,
) -> (Vec<RecordedEvent>, Checkpoint) {
    let batches = catch_up(store, from, opts(tenant)).await.expect("feed");
    let cp = batches
        .last()
        .expect("a catch-up ends with a batch")
        .checkpoint
        .clone();
    (feed_events(&batches), cp)
}

async fn begin_with_xid(client: &mut Client) -> (tokio_postgres::Transaction<'_>, i64) {
    let tx = client.transaction().await.expect("begin");
    let row = tx
        .query_one("SELECT pg_current_xact_id()::text::bigint", &[])
        .await
        .expect("xid");
    let xid = row.get(0);
    (tx, xid)
}

fn ids(events: &[RecordedEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| format!("{}@{}", e.stream.id(), e.version))
        .collect()
}

/// (a) An append held open while a later one commits is delivered once it commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_commit_is_delivered() {
    let store = store().await;
    let t = tenant();
    let (_, start) = feed_after(&store, FeedStart::Now, &t).await;
    let mut c1 = common::raw().await;
    let (tx1, _) = begin_with_xid(&mut c1).await;
    let early = StreamId::new(&t, "acc", "early").expect("id");
    let late = StreamId::new(&t, "acc", "late").expect("id");
    store
        .append_in_transaction(&tx1, &early, ExpectedVersion::NoStream, events("held", 1))
        .await
        .expect("append in the held transaction");
    store
        .append(&late, ExpectedVersion::NoStream, events("later", 1))
        .await
        .expect("append");
    let (seen, mid) = feed_after(&store, FeedStart::After(start.clone()), &t).await;
    assert!(
        seen.is_empty(),
        "nothing may pass an open transaction: {:?}",
        ids(&seen)
    );
    tx1.commit().await.expect("commit the held transaction");
    let (seen, _) = feed_after(&store, FeedStart::After(mid), &t).await;
    assert_eq!(
        ids(&seen),
        vec!["early@1", "late@1"],
        "both, in commit-safe order"
    );
}

/// (b) A transaction that drew a lower position but got a higher xid is not lost across a
/// checkpoint and a resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lower_position_higher_xid_is_not_lost() {
    let store = store().await;
    let t = tenant();
    let (_, start) = feed_after(&store, FeedStart::Now, &t).await;
    let (mut c1, mut c2) = (common::raw().await, common::raw().await);
    let (tx1, x1) = begin_with_xid(&mut c1).await;
    let (tx2, x2) = begin_with_xid(&mut c2).await;
    assert!(x1 < x2);
    let s2 = StreamId::new(&t, "acc", "second-xid").expect("id");
    let s1 = StreamId::new(&t, "acc", "first-xid").expect("id");
    // The higher xid appends first: it draws the lower global position.
    store
        .append_in_transaction(&tx2, &s2, ExpectedVersion::NoStream, events("x2", 1))
        .await
        .expect("append");
    store
        .append_in_transaction(&tx1, &s1, ExpectedVersion::NoStream, events("x1", 1))
        .await
        .expect("append");
    tx1.commit().await.expect("commit 1");
    let (seen, cp) = feed_after(&store, FeedStart::After(start), &t).await;
    assert_eq!(ids(&seen), vec!["first-xid@1"]);
    tx2.commit().await.expect("commit 2");
    let (seen, _) = feed_after(&store, FeedStart::After(cp), &t).await;
    assert_eq!(
        ids(&seen),
        vec!["second-xid@1"],
        "the lower position committed later, after the checkpoint"
    );
}

/// (c) On one stream, a later version written by a lower xid still comes after the earlier one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stream_stays_in_version_order() {
    let store = store().await;
    let t = tenant();
    let (_, start) = feed_after(&store, FeedStart::Now, &t).await;
    let (mut c1, mut c2) = (common::raw().await, common::raw().await);
    let (tx1, x1) = begin_with_xid(&mut c1).await;
    let (tx2, x2) = begin_with_xid(&mut c2).await;
    assert!(x1 < x2);
    let s = StreamId::new(&t, "acc", "shared").expect("id");
    let r = store
        .append_in_transaction(&tx2, &s, ExpectedVersion::NoStream, events("v1", 1))
        .await
        .expect("append");
    assert_eq!(r.last.0, 1);
    tx2.commit().await.expect("commit 2");
    let r = store
        .append_in_transaction(&tx1, &s, ExpectedVersion::Any, events("v2", 1))
        .await
        .expect("append");
    assert_eq!(r.last.0, 2, "the lower xid writes version 2");
    tx1.commit().await.expect("commit 1");
    let (seen, _) = feed_after(&store, FeedStart::After(start), &t).await;
    assert_eq!(versions(&seen), vec![1, 2], "one stream in version order");
}

/// (d) `Now` starts at the snapshot's xmin: what committed before is not delivered, what an open
/// transaction commits afterwards is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn now_starts_at_the_snapshot_xmin() {
    let store = store().await;
    let t = tenant();
    let before = StreamId::new(&t, "acc", "before").expect("id");
    let open = StreamId::new(&t, "acc", "open").expect("id");
    store
        .append(&before, ExpectedVersion::NoStream, events("b", 1))
        .await
        .expect("append");
    let mut c1 = common::raw().await;
    let (tx1, _) = begin_with_xid(&mut c1).await;
    store
        .append_in_transaction(&tx1, &open, ExpectedVersion::NoStream, events("o", 1))
        .await
        .expect("append");
    let (seen, now) = feed_after(&store, FeedStart::Now, &t).await;
    assert!(seen.is_empty());
    tx1.commit().await.expect("commit");
    store
        .append(&before, ExpectedVersion::Any, events("b2", 1))
        .await
        .expect("append");
    let (seen, _) = feed_after(&store, FeedStart::After(now), &t).await;
    assert_eq!(ids(&seen), vec!["open@1", "before@2"]);
    // A follower from Now sees new commits too.
    let mut follow = store.changes(FeedStart::Now, FeedOptions::follow().tenant(&t));
    let idle = tokio::time::timeout(std::time::Duration::from_millis(200), follow.next()).await;
    assert!(idle.is_err());
    store
        .append(&open, ExpectedVersion::Any, events("o2", 1))
        .await
        .expect("append");
    let b = tokio::time::timeout(std::time::Duration::from_secs(10), follow.next())
        .await
        .expect("woken")
        .expect("batch")
        .expect("ok");
    assert_eq!(b.items.len(), 1);
}

/// A refused append inside a caller's transaction leaves the transaction usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_append_keeps_the_callers_transaction() {
    let store = store().await;
    let t = tenant();
    let s = StreamId::new(&t, "acc", "tx").expect("id");
    let first = events("a", 2);
    store
        .append(&s, ExpectedVersion::NoStream, first.clone())
        .await
        .expect("append");
    let mut c = common::raw().await;
    let tx = c.transaction().await.expect("begin");
    let resent = store
        .append_in_transaction(&tx, &s, ExpectedVersion::Any, first)
        .await
        .expect("re-send");
    assert!(resent.deduplicated);
    let stale = store
        .append_in_transaction(&tx, &s, ExpectedVersion::NoStream, events("b", 1))
        .await;
    assert!(
        matches!(
            stale,
            Err(sekiban_core::StoreError::WrongExpectedVersion { .. })
        ),
        "{stale:?}"
    );
    let r = store
        .append_in_transaction(
            &tx,
            &s,
            ExpectedVersion::Exact(sekiban_core::Version(2)),
            events("c", 1),
        )
        .await;
    assert_eq!(r.expect("the transaction is still usable").last.0, 3);
    tx.commit().await.expect("commit");
    assert_eq!(store.stream_version(&s).await.expect("version").0, 3);
}
