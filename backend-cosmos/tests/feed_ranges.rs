//! The change feed across feed-range splits and merges, and against the latest-version feed's
//! collapsing of rewritten documents: on the emulator, whose physical partitions can be split and
//! merged under a running store.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use sekiban_core::{
    ChangeFeed, Checkpoint, EventData, EventStore, ExpectedVersion, FeedItem, FeedOptions,
    FeedStart, Store, StreamId,
};

mod common;

const STREAMS: usize = 24;

fn stream(tenant: &str, i: usize) -> StreamId {
    StreamId::new(tenant, "order", format!("o{i}")).unwrap()
}

/// Appends `rounds` appends of 2 events to each stream.
async fn append_rounds(store: &impl EventStore, tenant: &str, rounds: usize) {
    for _ in 0..rounds {
        for i in 0..STREAMS {
            let events = vec![EventData::new("A", "{}"), EventData::new("B", "{}")];
            store
                .append(&stream(tenant, i), ExpectedVersion::Any, events)
                .await
                .unwrap();
        }
    }
}

/// A catch-up read from `from`: the events (stream, version) in delivery order, and the
/// checkpoint after each batch with the number of events delivered up to it.
async fn catch_up(
    store: &impl ChangeFeed,
    tenant: &str,
    from: FeedStart,
) -> (Vec<(StreamId, u64)>, Vec<(Checkpoint, usize)>) {
    let opts = FeedOptions::catch_up().tenant(tenant).max_batch(7);
    let mut feed = store.changes(from, opts);
    let (mut events, mut checkpoints) = (Vec::new(), Vec::new());
    while let Some(batch) = tokio::time::timeout(Duration::from_secs(60), feed.next())
        .await
        .expect("a catch-up read that ends")
    {
        let batch = batch.unwrap();
        for item in batch.items {
            if let FeedItem::Event(e) = item {
                events.push((e.stream, e.version.0));
            }
        }
        checkpoints.push((batch.checkpoint, events.len()));
    }
    (events, checkpoints)
}

/// Every stream's events come in version order, and every event up to `head` per stream from
/// `from` on (by stream index) is there.
fn check_complete(
    events: &[(StreamId, u64)],
    from: &BTreeMap<StreamId, u64>,
    head: u64,
    what: &str,
) {
    let mut last: BTreeMap<&StreamId, u64> = BTreeMap::new();
    for (s, v) in events {
        if let Some(prev) = last.insert(s, *v) {
            assert!(
                *v > prev || *v <= from.get(s).copied().unwrap_or(0),
                "{what}: {s} went from {prev} to {v}"
            );
        }
    }
    let got: BTreeSet<(StreamId, u64)> = events.iter().cloned().collect();
    for (s, first) in from {
        for v in first + 1..=head {
            assert!(
                got.contains(&(s.clone(), v)),
                "{what}: {s} version {v} never came"
            );
        }
    }
}

fn all_from(tenant: &str, v: u64) -> BTreeMap<StreamId, u64> {
    (0..STREAMS).map(|i| (stream(tenant, i), v)).collect()
}

/// Checkpoints taken before a split and a merge resume after them without loss or reordering,
/// and a new read sees the new ranges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_survive_split_and_merge() {
    let (store, emulator, db) = common::emulated_store().await;
    let tenant = "acme";
    append_rounds(&store, tenant, 2).await;
    let (first, checkpoints) = catch_up(&store, tenant, FeedStart::Beginning).await;
    check_complete(&first, &all_from(tenant, 0), 4, "before the split");
    assert!(checkpoints.len() > 4, "a read in several batches");
    assert_eq!(store.capabilities().feed_partitions, 4);

    let emulated = emulator.store();
    emulated.split_partition(&db, "events", 0, Duration::ZERO);
    emulated.split_partition(&db, "events", 1, Duration::ZERO);
    emulated.drain_pending_control_plane().await;
    emulated.merge_partitions(&db, "events", 2, 3, Duration::ZERO);
    emulated.drain_pending_control_plane().await;
    append_rounds(&store, tenant, 2).await;

    // From the end of the first read: the events of the last two rounds.
    let end = checkpoints.last().unwrap().0.clone();
    let (after_end, _) = catch_up(&store, tenant, FeedStart::After(end)).await;
    check_complete(
        &after_end,
        &all_from(tenant, 4),
        8,
        "from the last checkpoint",
    );
    assert!(
        after_end.iter().all(|(_, v)| *v > 4),
        "nothing before the checkpoint came again"
    );

    // From the middle of the first read: what it had not covered, and the rest.
    let (mid, delivered) = checkpoints[checkpoints.len() / 2].clone();
    let covered: BTreeSet<_> = first[..delivered].iter().cloned().collect();
    let (after_mid, _) = catch_up(&store, tenant, FeedStart::After(mid)).await;
    let got: BTreeSet<_> = after_mid.iter().cloned().collect();
    for e in &first {
        assert!(
            covered.contains(e) || got.contains(e),
            "{e:?} was lost after the middle checkpoint"
        );
    }
    check_complete(
        &after_mid,
        &all_from(tenant, 4),
        8,
        "from the middle checkpoint",
    );

    // A new read lists the new ranges: 4 - 2 + 4 after the splits, - 2 + 1 after the merge.
    let (all, _) = catch_up(&store, tenant, FeedStart::Beginning).await;
    check_complete(&all, &all_from(tenant, 0), 8, "a new read");
    assert_eq!(store.capabilities().feed_partitions, 5);
}

/// A following reader goes on through a split of the range it is reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_reads_on_through_a_split() {
    let (store, emulator, db) = common::emulated_store().await;
    let tenant = "acme";
    append_rounds(&store, tenant, 1).await;
    let mut feed = store.changes(
        FeedStart::Beginning,
        FeedOptions::follow().tenant(tenant).max_batch(5),
    );
    let mut events = Vec::new();
    let mut want = 2 * STREAMS;
    let mut split = false;
    while events.len() < want {
        let batch = tokio::time::timeout(Duration::from_secs(60), feed.next())
            .await
            .expect("the follower gets the events")
            .unwrap()
            .unwrap();
        for item in batch.items {
            if let FeedItem::Event(e) = item {
                events.push((e.stream, e.version.0));
            }
        }
        if !split && events.len() >= STREAMS {
            split = true;
            let emulated = emulator.store();
            for p in 0..4 {
                emulated.split_partition(&db, "events", p, Duration::ZERO);
            }
            emulated.drain_pending_control_plane().await;
            append_rounds(&store, tenant, 1).await;
            want = 4 * STREAMS;
        }
    }
    check_complete(&events, &all_from(tenant, 0), 4, "the follower");
}

/// The latest-version change feed keeps only a document's latest version: appends far faster
/// than the feed is read (each stream's head rewritten every time) still reach it, every event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_faster_than_the_feed_is_read_all_arrive() {
    let (store, _emulator, _db) = common::emulated_store().await;
    let tenant = "acme";
    // Three writers append to the same streams, each head rewritten 12 times, before a follower
    // reads a first batch; it then reads five items at a time.
    let mut feed = store.changes(
        FeedStart::Beginning,
        FeedOptions::follow().tenant(tenant).max_batch(5),
    );
    let writers = (0..3).map(|_| append_rounds(&store, tenant, 4));
    futures::future::join_all(writers).await;
    let head = 3 * 4 * 2;
    let mut events = Vec::new();
    while events.len() < STREAMS * head as usize {
        let batch = tokio::time::timeout(Duration::from_secs(60), feed.next())
            .await
            .unwrap_or_else(|_| panic!("every event arrives: {} came", events.len()))
            .unwrap()
            .unwrap();
        for item in batch.items {
            if let FeedItem::Event(e) = item {
                events.push((e.stream, e.version.0));
            }
        }
    }
    check_complete(&events, &all_from(tenant, 0), head, "the slow follower");
    let distinct: BTreeSet<_> = events.iter().collect();
    assert_eq!(distinct.len(), events.len(), "no event twice");
}
