//! Rule 5: the change feed delivers every committed event, per stream in order, resumably.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use std::time::{Duration, Instant};

use futures::StreamExt;
use sekiban_core::{
    DeleteMode, EventData, ExpectedVersion, FeedItem, FeedStart, Metadata, OpKind, RecordedEvent,
    StoreError, StreamId, Version,
};

use super::read::LargeStream;
use crate::{
    CaseFailure, CaseResult, Harness, catch_up, catch_up_settled, check, check_eq,
    check_feed_matches_reads, events, feed_events, follow_until, last_checkpoint, versions,
};

/// Checks each stream's events arrive in version order, each once, starting at `from`.
fn check_per_stream_order(
    got: &[RecordedEvent],
    from: &BTreeMap<StreamId, u64>,
) -> Result<BTreeMap<StreamId, u64>, CaseFailure> {
    let mut next: BTreeMap<StreamId, u64> = from.clone();
    for e in got {
        let n = next.entry(e.stream.clone()).or_insert(1);
        check_eq!(e.version.0, *n, "feed order of {}", e.stream);
        *n += 1;
    }
    Ok(next)
}

pub(super) async fn write_interleaved(
    h: &Harness,
    streams: usize,
    appends: usize,
) -> Result<usize, CaseFailure> {
    let ids: Vec<StreamId> = (0..streams)
        .map(|i| h.stream("feed", &format!("s{i}")))
        .collect();
    let mut total = 0;
    for round in 0..appends {
        for (i, s) in ids.iter().enumerate() {
            let n = 1 + (round + i) % 3;
            h.store
                .append(s, ExpectedVersion::Any, events(&format!("r{round}"), n))
                .await?;
            total += n;
        }
    }
    Ok(total)
}

/// From `Beginning`, in small batches: every event of the tenant once, per stream in order.
pub async fn feed_from_beginning_delivers_all(h: &Harness) -> CaseResult {
    let total = write_interleaved(h, 3, 4).await?;
    let batches = catch_up_settled(
        &*h.store,
        FeedStart::Beginning,
        h.feed_opts(false).max_batch(3),
        total,
    )
    .await?;
    check!(
        batches.iter().all(|b| b.items.len() <= 3),
        "a batch exceeded max_batch 3"
    );
    let got = feed_events(&batches);
    check_eq!(got.len(), total, "events delivered");
    let ends = check_per_stream_order(&got, &BTreeMap::new())?;
    check_eq!(ends.len(), 3, "streams delivered");
    check_feed_matches_reads(&*h.store, &got).await
}

/// Events as the feed delivers them, catching up and following, are whole: the same id, type,
/// schema version, data bytes, metadata and recorded time as a read returns.
pub async fn feed_events_match_reads(h: &Harness) -> CaseResult {
    let mut extra = BTreeMap::new();
    extra.insert("Trace".to_string(), "On".to_string());
    extra.insert("trace".to_string(), "off".to_string());
    extra.insert("ключ".to_string(), "значение ✓".to_string());
    extra.insert("empty".to_string(), String::new());
    let meta = Metadata {
        correlation_id: Some("Corr-Ü".into()),
        causation_id: Some(String::new()),
        actor: Some("user:Ada".into()),
        extra,
    };
    let written = |tag: &str| -> Vec<EventData> {
        vec![
            EventData::new(format!("Typed-{tag}"), "{ \"b\" : 2 , \"a\":1 }")
                .with_schema_version(3)
                .with_metadata(meta.clone()),
            EventData::new("Binary", Bytes::from(vec![0u8, 255, 0xC3, 0x28, 0])),
            EventData::new("Plain", "{}").with_schema_version(0),
        ]
    };
    let (a, b) = (h.new_stream("whole"), h.new_stream("whole"));
    h.store
        .append(&a, ExpectedVersion::NoStream, written("a"))
        .await?;
    h.store
        .append(&b, ExpectedVersion::NoStream, written("b"))
        .await?;
    let batches = catch_up_settled(&*h.store, FeedStart::Beginning, h.feed_opts(false), 6).await?;
    let caught = feed_events(&batches);
    check_eq!(caught.len(), 6, "events caught up");
    check_feed_matches_reads(&*h.store, &caught).await?;
    let cp = last_checkpoint(&batches)?;
    // Following: the events appended after the checkpoint.
    h.store
        .append(&a, ExpectedVersion::Exact(Version(3)), written("c"))
        .await?;
    let deadline = h.store.limits().feed_poll_interval * 3 + Duration::from_secs(10);
    let followed = follow_until(
        &*h.store,
        FeedStart::After(cp),
        h.feed_opts(true),
        3,
        deadline,
    )
    .await?;
    check_eq!(
        crate::versions(&followed),
        vec![4, 5, 6],
        "events followed after the checkpoint"
    );
    check_feed_matches_reads(&*h.store, &followed).await
}

/// A feed filtered by category delivers every event of that category and nothing of others,
/// catching up and following; deletion markers of other categories stay out too.
pub async fn feed_category_filter(h: &Harness) -> CaseResult {
    let (wanted, other) = ("alpha", "beta");
    let mut want = Vec::new();
    for i in 0..3 {
        let w = h.stream(wanted, &format!("w{i}"));
        let o = h.stream(other, &format!("o{i}"));
        h.store
            .append(&o, ExpectedVersion::NoStream, events("other", 2))
            .await?;
        h.store
            .append(&w, ExpectedVersion::NoStream, events("wanted", 1 + i))
            .await?;
        want.push(w);
    }
    h.store
        .delete_stream(&h.stream(other, "o0"), DeleteMode::Soft)
        .await?;
    let total_wanted = 1 + 2 + 3;
    let opts = h.feed_opts(false).category(wanted);
    // Everything of the tenant is visible first (both categories, the marker included).
    // (A soft-deleted stream's events may or may not come: 11 or 13 items.)
    catch_up_settled(&*h.store, FeedStart::Beginning, h.feed_opts(false), 11).await?;
    let batches = catch_up(&*h.store, FeedStart::Beginning, opts.clone()).await?;
    for item in batches.iter().flat_map(|b| &b.items) {
        check_eq!(
            item.stream().category(),
            wanted,
            "a category-filtered feed delivered {item:?}"
        );
    }
    let got = feed_events(&batches);
    check_eq!(got.len(), total_wanted, "events of the wanted category");
    let ends = check_per_stream_order(&got, &BTreeMap::new())?;
    check_eq!(
        ends.keys().cloned().collect::<Vec<_>>(),
        want.clone(),
        "streams of the wanted category"
    );
    // Following: another category's append, then the wanted one's, arrive as the wanted only.
    let cp = last_checkpoint(&batches)?;
    h.store
        .append(
            &h.stream(other, "o1"),
            ExpectedVersion::Any,
            events("later", 2),
        )
        .await?;
    h.store
        .append(
            &want[0],
            ExpectedVersion::Exact(Version(1)),
            events("later", 1),
        )
        .await?;
    let deadline = h.store.limits().feed_poll_interval * 3 + Duration::from_secs(10);
    let followed = follow_until(&*h.store, FeedStart::After(cp), opts.clone(), 1, deadline).await?;
    check!(
        followed.iter().all(|e| e.stream.category() == wanted),
        "following a category-filtered feed delivered {followed:?}"
    );
    check_eq!(
        followed
            .iter()
            .map(|e| (e.stream.clone(), e.version))
            .collect::<Vec<_>>(),
        vec![(want[0].clone(), Version(2))],
        "events followed"
    );
    Ok(())
}

/// `Now` delivers only events committed after the feed starts, catch-up and following; resumed
/// from a `Now` checkpoint it delivers everything after it (and at most repeats, once, events
/// from before it).
pub async fn feed_from_now_sees_only_new(h: &Harness) -> CaseResult {
    let s = h.new_stream("feed");
    h.store
        .append(&s, ExpectedVersion::NoStream, events("old", 2))
        .await?;
    // The old events are deliverable before `Now` is taken (see `FeedStart::Now`).
    catch_up_settled(&*h.store, FeedStart::Beginning, h.feed_opts(false), 2).await?;
    let start = catch_up(&*h.store, FeedStart::Now, h.feed_opts(false)).await?;
    check_eq!(
        feed_events(&start).len(),
        0,
        "events from Now before new appends"
    );
    let cp = last_checkpoint(&start)?;
    let mut follow = h.store.changes(FeedStart::Now, h.feed_opts(true));
    let wait = h
        .store
        .limits()
        .feed_poll_interval
        .min(Duration::from_millis(300));
    let early = tokio::time::timeout(wait, follow.next()).await;
    check!(
        early.is_err(),
        "a feed from Now delivered {early:?} before anything new was appended"
    );
    let new = events("new", 3);
    h.store
        .append(&s, ExpectedVersion::Exact(Version(2)), new.clone())
        .await?;
    let after = catch_up_settled(&*h.store, FeedStart::After(cp), h.feed_opts(false), 3).await?;
    // Resumed, a `Now` checkpoint may repeat events committed before it (a store that re-reads
    // and skips by time), each at most once; it never loses one after it.
    let (repeated, after): (Vec<RecordedEvent>, Vec<RecordedEvent>) = feed_events(&after)
        .into_iter()
        .partition(|e| e.version <= Version(2));
    check_eq!(
        crate::versions(&after),
        vec![3, 4, 5],
        "events after the Now checkpoint"
    );
    let mut again = crate::versions(&repeated);
    again.dedup();
    check!(
        again.len() == repeated.len(),
        "events before the Now checkpoint came more than once: {:?}",
        crate::versions(&repeated)
    );
    let deadline = h.store.limits().feed_poll_interval * 3 + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < 3 {
        match tokio::time::timeout(deadline, follow.next()).await {
            Ok(Some(b)) => got.extend(b?.items.iter().filter_map(FeedItem::as_event).cloned()),
            other => check!(
                false,
                "following from Now: {other:?} after {} events",
                got.len()
            ),
        }
    }
    check_eq!(
        crate::versions(&got),
        vec![3, 4, 5],
        "events following from Now"
    );
    Ok(())
}

/// A follower sees every event of 8 concurrent writers exactly once, per stream in order.
pub async fn feed_complete_under_concurrent_writers(h: &Harness) -> CaseResult {
    const WRITERS: usize = 8;
    const APPENDS: usize = 10;
    let start = last_checkpoint(&catch_up(&*h.store, FeedStart::Now, h.feed_opts(false)).await?)?;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (store, own, shared) = (
            h.store.clone(),
            h.stream("feed", &format!("w{w}")),
            h.stream("feed", "shared"),
        );
        tasks.push(tokio::spawn(async move {
            for a in 0..APPENDS {
                store
                    .append(&own, ExpectedVersion::Any, events(&format!("a{a}"), 2))
                    .await?;
                store
                    .append(
                        &shared,
                        ExpectedVersion::Any,
                        events(&format!("w{w}a{a}"), 1),
                    )
                    .await?;
            }
            Ok::<_, StoreError>(())
        }));
    }
    let total = WRITERS * APPENDS * 3;
    let deadline = h.store.limits().feed_poll_interval * 10 + Duration::from_secs(60);
    let (store, opts) = (h.store.clone(), h.feed_opts(true));
    let follower_start = FeedStart::After(start.clone());
    let follower =
        tokio::spawn(
            async move { follow_until(&*store, follower_start, opts, total, deadline).await },
        );
    let mut writers_failed = None;
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => writers_failed = Some(e.to_string()),
            Err(e) => writers_failed = Some(e.to_string()),
        }
    }
    // Fail fast when the writes themselves went missing, instead of waiting out the deadline.
    let committed = catch_up_settled(
        &*h.store,
        FeedStart::After(start),
        h.feed_opts(false),
        total,
    );
    let committed = feed_events(&committed.await?);
    if writers_failed.is_some() || committed.len() != total {
        follower.abort();
        check!(
            false,
            "writers failed: {writers_failed:?}; {} of {total} events on the feed after all writers finished",
            committed.len()
        );
    }
    let got = match follower.await {
        Ok(r) => r?,
        Err(e) => {
            return Err(CaseFailure {
                message: format!("follower failed: {e}"),
            });
        }
    };
    let ids: HashSet<_> = got.iter().map(|e| e.id).collect();
    check_eq!(ids.len(), total, "distinct events delivered");
    check_eq!(got.len(), total, "events delivered");
    check_per_stream_order(&got, &BTreeMap::new())?;
    Ok(())
}

/// Multi-event appends to two streams, interleaved: each stream's events arrive in version order.
pub async fn feed_per_stream_order(h: &Harness) -> CaseResult {
    let a = h.stream("feed", "a");
    let b = h.stream("feed", "b");
    for i in 0..4 {
        h.store
            .append(&a, ExpectedVersion::Any, events(&format!("a{i}"), 3))
            .await?;
        h.store
            .append(&b, ExpectedVersion::Any, events(&format!("b{i}"), 2))
            .await?;
    }
    for max in [1usize, 4, 100] {
        let opts = h.feed_opts(false).max_batch(max);
        let got = feed_events(&catch_up_settled(&*h.store, FeedStart::Beginning, opts, 20).await?);
        check_eq!(got.len(), 20, "events with max_batch {max}");
        let ends = check_per_stream_order(&got, &BTreeMap::new())?;
        check_eq!(ends.get(&a), Some(&13), "next version of a");
        check_eq!(ends.get(&b), Some(&9), "next version of b");
    }
    Ok(())
}

/// A waiting reader receives a new event within a generous deadline; where the store declares
/// notification, well inside one poll interval (when no faults are injected).
pub async fn feed_waiting_reader_wakes(h: &Harness) -> CaseResult {
    let poll = h.store.limits().feed_poll_interval;
    let notifies = h.store.capabilities().feed_notification;
    let mut follow = h.store.changes(FeedStart::Now, h.feed_opts(true));
    let settle = tokio::time::timeout(Duration::from_millis(200), follow.next()).await;
    check!(
        settle.is_err(),
        "the feed delivered {settle:?} before anything was appended"
    );
    let s = h.new_stream("wake");
    let sent = Instant::now();
    h.store
        .append(&s, ExpectedVersion::NoStream, events("wake", 1))
        .await?;
    // Under faults a lost notification (a LISTEN connection cut) may leave the reader to its
    // next poll: it must still wake by then.
    let deadline = if notifies && !h.under_faults {
        poll / 2
    } else {
        poll * 2 + Duration::from_secs(5)
    };
    let generous = deadline.max(poll * 2 + Duration::from_secs(5));
    match tokio::time::timeout(generous, follow.next()).await {
        Ok(Some(Ok(b))) => {
            check_eq!(b.items.len(), 1, "items delivered");
            let took = sent.elapsed();
            check!(
                took <= deadline,
                "the reader woke after {took:?}; the store declares notification = {notifies} with a {poll:?} poll interval, so it must wake within {deadline:?}"
            );
        }
        other => check!(false, "no event within {generous:?}: {other:?}"),
    }
    Ok(())
}

/// An idle follower makes at most (t / poll interval + 2) × partitions feed requests in t, the
/// partitions being those open during t: the most of the declared `feed_partitions` (before and
/// after) and the partitions the reader opened (`CostSnapshot::partitions_opened`; shards and
/// feed ranges come and go). Listing the partitions has a budget of its own: one listing when the
/// reader starts, in pages of 100, and one more (a refresh), so 1 + ceil(partitions / 100).
pub async fn feed_idle_round_trip_budget(h: &Harness) -> CaseResult {
    let poll = h.store.limits().feed_poll_interval;
    let declared_before = h.store.capabilities().feed_partitions;
    let idle = poll * 2 + poll / 2;
    let mut follow = h.store.changes(FeedStart::Now, h.feed_opts(true));
    let before = h.store.costs();
    let r = tokio::time::timeout(idle, follow.next()).await;
    check!(r.is_err(), "an idle feed delivered {r:?}");
    let c = h.store.costs() - before;
    let partitions = u64::from(declared_before.max(h.store.capabilities().feed_partitions))
        .max(c.partitions_opened())
        .max(1);
    let spent = c.round_trips(OpKind::Feed);
    let budget = (idle.as_secs_f64() / poll.as_secs_f64() + 2.0).floor() as u64 * partitions;
    let budgeted = h.budgets_apply();
    check!(
        !budgeted || spent <= budget,
        "an idle reader made {spent} feed requests in {idle:?}; the budget with a {poll:?} poll interval and {partitions} partitions is {budget} ({c})"
    );
    let listings = c.round_trips(OpKind::Partitions);
    let listing_budget = 1 + partitions.div_ceil(100);
    check!(
        !budgeted || listings <= listing_budget,
        "an idle reader listed the feed's partitions {listings} times in {idle:?}; the budget for {partitions} partitions is {listing_budget} (list when starting and when a partition ends, not every poll) ({c})"
    );
    check!(
        spent >= 1,
        "an idle reader made no feed request at all in {idle:?}"
    );
    Ok(())
}

/// Deletions travel on the feed as markers, after the stream's events; across streams in no
/// particular order on a partitioned feed. A soft-deleted stream's earlier events may come again
/// on a feed resumed from before the marker (they were committed), always before it; no feed
/// read delivers an erased event after a hard delete.
pub async fn feed_carries_deletion_markers(h: &Harness) -> CaseResult {
    let soft = h.stream("feed", "soft");
    let hard = h.stream("feed", "hard");
    let before_all =
        last_checkpoint(&catch_up(&*h.store, FeedStart::Now, h.feed_opts(false)).await?)?;
    h.store
        .append(&soft, ExpectedVersion::NoStream, events("s", 2))
        .await?;
    let written = catch_up_settled(&*h.store, FeedStart::Beginning, h.feed_opts(false), 2);
    let before_hard = last_checkpoint(&written.await?)?;
    h.store
        .append(&hard, ExpectedVersion::NoStream, events("h", 3))
        .await?;
    let written = catch_up_settled(&*h.store, FeedStart::Beginning, h.feed_opts(false), 5);
    let cp = last_checkpoint(&written.await?)?;
    h.store.delete_stream(&soft, DeleteMode::Soft).await?;
    h.store.delete_stream(&hard, DeleteMode::Hard).await?;
    let after = catch_up_settled(&*h.store, FeedStart::After(cp), h.feed_opts(false), 2).await?;
    let items: Vec<FeedItem> = after.into_iter().flat_map(|b| b.items).collect();
    let mut markers: Vec<FeedItem> = items
        .iter()
        .filter(|i| i.as_event().is_none())
        .cloned()
        .collect();
    markers.sort_by_key(|m| m.stream().clone());
    let mut want = vec![
        FeedItem::Deleted {
            stream: soft.clone(),
            version: Version(2),
            mode: DeleteMode::Soft,
        },
        FeedItem::Deleted {
            stream: hard.clone(),
            version: Version(3),
            mode: DeleteMode::Hard,
        },
    ];
    want.sort_by_key(|m| m.stream().clone());
    check_eq!(markers, want, "deletion markers after the deletions");
    let soft_marker = items
        .iter()
        .position(|i| i.as_event().is_none() && *i.stream() == soft);
    for (at, item) in items.iter().enumerate() {
        if let Some(e) = item.as_event() {
            check!(
                e.stream == soft && soft_marker.is_some_and(|m| at < m),
                "after the deletions the feed delivered {e:?}: only a soft-deleted stream's events may come again, before its marker"
            );
        }
    }
    // After a hard delete completes, no read delivers the erased events, from any start (a
    // service that keeps change records for a while must filter them).
    for (what, from) in [
        ("the beginning", FeedStart::Beginning),
        (
            "a checkpoint taken before anything was written",
            FeedStart::After(before_all),
        ),
        (
            "a checkpoint taken before the erased stream was written",
            FeedStart::After(before_hard),
        ),
    ] {
        let items: Vec<FeedItem> = catch_up(&*h.store, from, h.feed_opts(false))
            .await?
            .into_iter()
            .flat_map(|b| b.items)
            .collect();
        let erased = items
            .iter()
            .filter_map(FeedItem::as_event)
            .filter(|e| e.stream == hard)
            .count();
        check!(
            erased == 0,
            "read from {what} after the hard delete, the feed delivered {erased} erased events of {hard}"
        );
        check!(
            items.iter().any(|i| matches!(i, FeedItem::Deleted { stream, mode: DeleteMode::Hard, .. } if *stream == hard)),
            "read from {what}, the feed has no hard-delete marker of {hard}"
        );
    }
    Ok(())
}

/// Feed batches are bounded by bytes as well as by count: over a stream of large events (about
/// 2½ times `page_bytes`) every batch ends with the event that reaches `page_bytes`, and the
/// events all arrive, in order and byte-exact.
pub async fn feed_batches_end_at_page_bytes(h: &Harness) -> CaseResult {
    let page_bytes = h.store.limits().page_bytes;
    let large = LargeStream::write(h).await?;
    let batches =
        catch_up_settled(&*h.store, FeedStart::Beginning, h.feed_opts(false), large.n).await?;
    let got = feed_events(&batches);
    check_eq!(
        versions(&got),
        (1..=large.n as u64).collect::<Vec<_>>(),
        "versions delivered"
    );
    large.check_data(&got, "feed")?;
    let bounded = |b: &sekiban_core::ChangeBatch, what: &str| -> CaseResult {
        let before_last: usize = b.items.iter().rev().skip(1).map(FeedItem::size).sum();
        check!(
            before_last < page_bytes,
            "{what}: a batch of {} items carries {before_last} bytes before its last item; a \
             batch ends with the event that reaches page_bytes ({page_bytes})",
            b.items.len()
        );
        Ok(())
    };
    for b in &batches {
        bounded(b, "catching up")?;
    }
    // A waiting reader is held to the same bound, however the store hands it new commits.
    let mut follow = h.store.changes(FeedStart::Now, h.feed_opts(true));
    let _ = tokio::time::timeout(Duration::from_millis(200), follow.next()).await;
    let more = LargeStream::write(h).await?;
    let deadline = h.store.limits().feed_poll_interval * 3 + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < more.n {
        match tokio::time::timeout(deadline, follow.next()).await {
            Ok(Some(Ok(b))) => {
                bounded(&b, "following")?;
                got.extend(
                    b.items
                        .iter()
                        .filter_map(FeedItem::as_event)
                        .filter(|e| e.stream == more.stream)
                        .cloned(),
                );
            }
            other => check!(
                false,
                "following: {} of {} events within {deadline:?}, then {other:?}",
                got.len(),
                more.n
            ),
        }
    }
    check_eq!(
        versions(&got),
        (1..=more.n as u64).collect::<Vec<_>>(),
        "versions delivered to a waiting reader"
    );
    more.check_data(&got, "following")
}
