//! Appends and reads against DynamoDB Local (or the account `SEKIBAN_DYNAMODB_ENDPOINT` points
//! at): versions, the expected-version rule for every `Exact` a caller can pass, one round trip
//! per append, concurrent writers, and reads in pages.

use std::sync::Arc;

use futures::StreamExt;
use sekiban_core::{
    DeleteMode, EventData, EventStore, ExpectedVersion, OpKind, ReadOptions, RecordedEvent, Store,
    StoreError, StreamId, Version,
};
use sekiban_dynamodb::DynamoDbTable;

mod common;

async fn table() -> DynamoDbTable {
    // One table for this test binary's tests; each test writes streams of its own.
    common::table("sekiban-test-events", None).await
}

fn stream() -> StreamId {
    StreamId::new("acme", "order", uuid::Uuid::new_v4().simple().to_string()).expect("an id")
}

fn events(tag: &str, n: usize) -> Vec<EventData> {
    (0..n)
        .map(|i| EventData::new("Tick", format!(r#"{{"tag":"{tag}","n":{i}}}"#)))
        .collect()
}

async fn read(t: &DynamoDbTable, s: &StreamId, opts: ReadOptions) -> Vec<RecordedEvent> {
    let mut out = Vec::new();
    let mut r = t.read(s, opts);
    while let Some(e) = r.next().await {
        out.push(e.expect("a read"));
    }
    out
}

fn versions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.version.0).collect()
}

fn refused_at(r: sekiban_core::Result<sekiban_core::AppendResult>, actual: u64) {
    match r {
        Err(StoreError::WrongExpectedVersion { actual: a, .. }) => assert_eq!(a, Version(actual)),
        other => panic!("expected WrongExpectedVersion at {actual}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_expected_version_is_checked_in_one_request() {
    let t = table().await;
    let s = stream();
    let written = events("a", 3);
    let before = t.costs();
    let r = t
        .append(&s, ExpectedVersion::NoStream, written.clone())
        .await
        .expect("first append");
    let spent = t.costs() - before;
    assert_eq!((r.first, r.last), (Version(1), Version(3)));
    assert_eq!(spent.round_trips(OpKind::Append), 1, "{spent}");
    assert_eq!(spent.operation_round_trips(), 1, "{spent}");
    assert!(spent.get(OpKind::Append).capacity_units > 0.0, "{spent}");

    let before = t.costs();
    let r = t
        .append(&s, ExpectedVersion::Exact(Version(3)), events("b", 2))
        .await
        .expect("append at the head");
    assert_eq!((r.first, r.last), (Version(4), Version(5)));
    assert_eq!((t.costs() - before).operation_round_trips(), 1);

    // Below the head, inside an earlier multi-event append, above the head, and no-stream on an
    // existing stream: each refused with the actual version the refusal carried; a refusal the
    // window could explain as a re-send reads the latest appends once more.
    for at in [3, 2, 0, 9] {
        let before = t.costs();
        let expected = if at == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(Version(at))
        };
        refused_at(t.append(&s, expected, events("x", 1)).await, 5);
        let spent = (t.costs() - before).operation_round_trips();
        assert!(spent <= 2, "{expected}: {spent} round trips");
    }
    refused_at(
        t.append(
            &stream(),
            ExpectedVersion::Exact(Version(1)),
            events("y", 1),
        )
        .await,
        0,
    );
    refused_at(
        t.append(&stream(), ExpectedVersion::StreamExists, events("y", 1))
            .await,
        0,
    );

    let before = t.costs();
    let r = t
        .append(&s, ExpectedVersion::Any, events("c", 1))
        .await
        .expect("any");
    assert_eq!(r.last, Version(6));
    assert_eq!((t.costs() - before).operation_round_trips(), 2);
    assert_eq!(t.stream_version(&s).await.expect("version"), Version(6));

    let all = read(&t, &s, ReadOptions::forward()).await;
    assert_eq!(versions(&all), vec![1, 2, 3, 4, 5, 6]);
    for (e, w) in all.iter().zip(&written) {
        assert_eq!(
            (&e.id, &e.data, &e.event_type),
            (&w.id, &w.data, &w.event_type)
        );
    }
    let tail = read(&t, &s, ReadOptions::forward().from(Version(2)).max_count(3)).await;
    assert_eq!(versions(&tail), vec![2, 3, 4]);
    let back = read(&t, &s, ReadOptions::backward()).await;
    assert_eq!(versions(&back), vec![6, 5, 4, 3, 2, 1]);
    let back = read(
        &t,
        &s,
        ReadOptions::backward().from(Version(4)).max_count(2),
    )
    .await;
    assert_eq!(versions(&back), vec![4, 3]);
    assert!(read(&t, &stream(), ReadOptions::forward()).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_concurrent_writers_at_one_version_exactly_one_wins() {
    let t = Arc::new(table().await);
    let s = stream();
    t.append(&s, ExpectedVersion::NoStream, events("seed", 1))
        .await
        .expect("seed");
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (t, s) = (t.clone(), s.clone());
            tokio::spawn(async move {
                t.append(
                    &s,
                    ExpectedVersion::Exact(Version(1)),
                    events(&format!("w{i}"), 2),
                )
                .await
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.expect("a task") {
            Ok(r) => {
                won += 1;
                assert_eq!(r.last, Version(3));
            }
            Err(e) => assert!(
                matches!(
                    e,
                    StoreError::WrongExpectedVersion {
                        actual: Version(3),
                        ..
                    }
                ),
                "{e:?}"
            ),
        }
    }
    assert_eq!(won, 1);

    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let (t, s) = (t.clone(), s.clone());
            tokio::spawn(async move {
                t.append(&s, ExpectedVersion::Any, events(&format!("any{i}"), 3))
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a task").expect("an Any append");
    }
    let all = read(&t, &s, ReadOptions::forward()).await;
    assert_eq!(versions(&all), (1..=21).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_streams_read_in_pages() {
    let t = table().await;
    let s = stream();
    let max = t.limits().max_append_events;
    let mut at = 0;
    for k in [max, max, max / 2, 1, 7] {
        t.append(&s, ExpectedVersion::Exact(Version(at)), events("p", k))
            .await
            .expect("append");
        at += k as u64;
    }
    let before = t.costs();
    let all = read(&t, &s, ReadOptions::forward()).await;
    assert_eq!(versions(&all), (1..=at).collect::<Vec<_>>());
    let pages = (t.costs() - before).round_trips(OpKind::Read);
    let page_events = t.limits().page_events as u64;
    assert!(
        pages <= at.div_ceil(page_events) + 1,
        "{pages} pages for {at} events"
    );
    let back = read(&t, &s, ReadOptions::backward()).await;
    assert_eq!(versions(&back), (1..=at).rev().collect::<Vec<_>>());
    let middle = read(
        &t,
        &s,
        ReadOptions::forward().from(Version(150)).max_count(100),
    )
    .await;
    assert_eq!(versions(&middle), (150..250).collect::<Vec<_>>());
    let end = read(
        &t,
        &s,
        ReadOptions::forward().from(Version(240)).max_count(100),
    )
    .await;
    assert_eq!(versions(&end), (240..=at).collect::<Vec<_>>());
    let back = read(
        &t,
        &s,
        ReadOptions::backward().from(Version(201)).max_count(3),
    )
    .await;
    assert_eq!(versions(&back), vec![201, 200, 199]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_over_the_limits_is_refused_before_a_request() {
    let t = table().await;
    let s = stream();
    let before = t.costs();
    let too_many = events("n", t.limits().max_append_events + 1);
    let r = t.append(&s, ExpectedVersion::NoStream, too_many).await;
    assert!(matches!(r, Err(StoreError::BatchTooLarge { .. })), "{r:?}");
    let big = vec![EventData::new(
        "Big",
        vec![b'x'; t.limits().max_event_bytes],
    )];
    let r = t.append(&s, ExpectedVersion::NoStream, big).await;
    assert!(matches!(r, Err(StoreError::EventTooLarge { .. })), "{r:?}");
    assert_eq!((t.costs() - before).operation_round_trips(), 0);
    // The largest event the limits allow fits one item.
    let largest = t.limits().max_event_bytes - "Big".len();
    let r = t
        .append(
            &s,
            ExpectedVersion::NoStream,
            vec![EventData::new("Big", vec![b'x'; largest])],
        )
        .await
        .expect("an event at the limit");
    assert_eq!(r.last, Version(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resends_within_the_window_are_recognised_by_event_id() {
    let t = table().await;
    let s = stream();
    let first = events("first", 3);
    t.append(&s, ExpectedVersion::NoStream, first.clone())
        .await
        .expect("first");
    let second = events("second", 2);
    t.append(&s, ExpectedVersion::Exact(Version(3)), second.clone())
        .await
        .expect("second");
    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Any,
        ExpectedVersion::StreamExists,
    ] {
        let before = t.costs();
        let r = t
            .append(&s, expected, first.clone())
            .await
            .expect("a re-send");
        assert_eq!(
            (r.first, r.last, r.deduplicated),
            (Version(1), Version(3), true)
        );
        assert!(
            (t.costs() - before).operation_round_trips() <= 2,
            "{expected}"
        );
    }
    let r = t
        .append(&s, ExpectedVersion::Exact(Version(3)), second.clone())
        .await
        .expect("a re-send of the second");
    assert_eq!(
        (r.first, r.last, r.deduplicated),
        (Version(4), Version(5), true)
    );

    let mut changed = first.clone();
    changed[1].data = "{}".into();
    let r = t.append(&s, ExpectedVersion::NoStream, changed).await;
    assert!(
        matches!(r, Err(StoreError::IdempotencyConflict { .. })),
        "{r:?}"
    );
    let r = t
        .append(&s, ExpectedVersion::Any, first[1..].to_vec())
        .await;
    assert!(
        matches!(r, Err(StoreError::IdempotencyConflict { .. })),
        "{r:?}"
    );
    assert_eq!(t.stream_version(&s).await.expect("version"), Version(5));

    // Pushed out of the window, a re-send is an ordinary append.
    let window = t.limits().idempotency_window as usize;
    t.append(&s, ExpectedVersion::Any, events("filler", window))
        .await
        .expect("filler");
    refused_at(
        t.append(&s, ExpectedVersion::NoStream, first.clone()).await,
        5 + window as u64,
    );
    let r = t
        .append(&s, ExpectedVersion::Any, first.clone())
        .await
        .expect("again");
    assert!(!r.deduplicated);
    assert_eq!(r.first, Version(6 + window as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_delete_hides_and_versions_go_on() {
    let t = table().await;
    let s = stream();
    t.append(&s, ExpectedVersion::NoStream, events("a", 3))
        .await
        .expect("append");
    t.append(&s, ExpectedVersion::Exact(Version(3)), events("b", 30))
        .await
        .expect("append");
    let before = t.costs();
    t.delete_stream(&s, DeleteMode::Soft)
        .await
        .expect("soft delete");
    assert!((t.costs() - before).round_trips(OpKind::Delete) >= 3);
    assert!(read(&t, &s, ReadOptions::forward()).await.is_empty());
    assert!(read(&t, &s, ReadOptions::backward()).await.is_empty());
    assert_eq!(t.stream_version(&s).await.expect("version"), Version(33));
    refused_at(
        t.append(&s, ExpectedVersion::NoStream, events("c", 1))
            .await,
        33,
    );
    let r = t
        .append(&s, ExpectedVersion::Exact(Version(33)), events("d", 2))
        .await
        .expect("an append after the soft delete");
    assert_eq!((r.first, r.last), (Version(34), Version(35)));
    assert_eq!(
        versions(&read(&t, &s, ReadOptions::forward()).await),
        vec![34, 35]
    );
    t.delete_stream(&stream(), DeleteMode::Soft)
        .await
        .expect("deleting a missing stream does nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_delete_erases_for_good() {
    let t = table().await;
    let s = stream();
    t.append(&s, ExpectedVersion::NoStream, events("a", 4))
        .await
        .expect("append");
    t.delete_stream(&s, DeleteMode::Hard)
        .await
        .expect("hard delete");
    fn erased<T>(r: &sekiban_core::Result<T>) -> bool {
        matches!(
            r,
            Err(StoreError::StreamDeleted {
                version: Version(4),
                ..
            })
        )
    }
    let mut reads = t.read(&s, ReadOptions::forward());
    let first = reads.next().await;
    assert!(
        matches!(
            first,
            Some(Err(StoreError::StreamDeleted {
                version: Version(4),
                ..
            }))
        ),
        "{first:?}"
    );
    drop(reads);
    let v = t.stream_version(&s).await;
    assert!(erased(&v), "{v:?}");
    for expected in [
        ExpectedVersion::Exact(Version(4)),
        ExpectedVersion::NoStream,
        ExpectedVersion::Any,
        ExpectedVersion::StreamExists,
    ] {
        let r = t.append(&s, expected, events("after", 1)).await;
        assert!(erased(&r), "{expected}: {r:?}");
    }
    t.delete_stream(&s, DeleteMode::Hard)
        .await
        .expect("a second hard delete does nothing");
    t.delete_stream(&s, DeleteMode::Soft)
        .await
        .expect("a soft delete of an erased stream does nothing");
    // Only the tombstones are left: the head and the one below every version.
    let items = t
        .client()
        .query()
        .table_name(&t.config().table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(sekiban_dynamodb::stream_key(&s)),
        )
        .send()
        .await
        .expect("query");
    assert_eq!(items.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_soft_delete_that_hides_events_is_a_marker_on_the_feed() {
    let t = table().await;
    let s = stream();
    t.append(&s, ExpectedVersion::NoStream, events("a", 20))
        .await
        .expect("append");
    t.delete_stream(&s, DeleteMode::Soft)
        .await
        .expect("soft delete");
    // Nothing new to hide: no second marker (a retried delete has one effect).
    t.delete_stream(&s, DeleteMode::Soft)
        .await
        .expect("soft delete again");
    t.append(&s, ExpectedVersion::Exact(Version(20)), events("b", 1))
        .await
        .expect("append after");
    t.delete_stream(&s, DeleteMode::Soft)
        .await
        .expect("soft delete of the new event");
    let opts = sekiban_core::FeedOptions::catch_up().tenant(s.tenant());
    let mut feed = sekiban_core::ChangeFeed::changes(&t, sekiban_core::FeedStart::Beginning, opts);
    let mut markers = Vec::new();
    while let Some(batch) = feed.next().await {
        for item in batch.expect("a batch").items {
            if let sekiban_core::FeedItem::Deleted {
                stream,
                version,
                mode,
            } = item
                && stream == s
            {
                markers.push((version, mode));
            }
        }
    }
    assert_eq!(
        markers,
        vec![
            (Version(20), DeleteMode::Soft),
            (Version(21), DeleteMode::Soft)
        ]
    );
}

/// A forward read after a soft delete skips the hidden appends even when they fill a whole
/// `Query` (a read of 3 events asks for few items), and a stream of many-event appends is read
/// without reading its items several times over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_skip_hidden_appends_and_do_not_reread_items() {
    let t = table().await;
    let s = stream();
    for i in 0..20 {
        t.append(&s, ExpectedVersion::Any, events(&format!("a{i}"), 1))
            .await
            .expect("append");
    }
    t.delete_stream(&s, DeleteMode::Soft)
        .await
        .expect("soft delete");
    t.append(&s, ExpectedVersion::Exact(Version(20)), events("after", 2))
        .await
        .expect("append after the soft delete");
    let got = read(&t, &s, ReadOptions::forward().max_count(3)).await;
    assert_eq!(versions(&got), vec![21, 22]);

    let long = stream();
    for i in 0..100 {
        t.append(&long, ExpectedVersion::Any, events(&format!("l{i}"), 10))
            .await
            .expect("append");
    }
    let before = t.costs();
    let got = read(&t, &long, ReadOptions::forward()).await;
    assert_eq!(versions(&got), (1..=1000).collect::<Vec<_>>());
    let reads = (t.costs() - before).get(OpKind::Read);
    assert_eq!(reads.round_trips, 10, "{reads:?}");
    // 100 items of about 550 bytes read about once: well under the 569 items (81 units) of
    // asking for 101 items a page.
    assert!(reads.capacity_units <= 30.0, "{reads:?}");
}
