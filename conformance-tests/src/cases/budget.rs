//! Rule 7: round-trip budgets, the same for every networked store and for memory.
//!
//! Budgets: an append within limits under `Exact`/`NoStream` = 1 round trip (`Any` and
//! `StreamExists` may add one head read); a load of an inline snapshot and a one-page tail ≤ 2, plus
//! 1 blob GET when the snapshot is offloaded; a read of n events of b bytes ≤
//! max(ceil(n / page events), ceil(b / page bytes)) + 1 (no + 1 when `max_count` bounds it). The idle feed budget is
//! `feed_idle_round_trip_budget`. Notifications a store sends after commits (`OpKind::Notify`)
//! and what a connection costs once (`OpKind::Connect`: connecting, its settings, a statement
//! prepared on its first use there) are outside every operation and not budgeted.
//!
//! A store whose capabilities say `cost_budgets: false` (an embedded store) must still count its
//! statements; only the bounds are not applied to it. Nor are they under a fault profile
//! ([`Harness::with_faults`]): retries spend round trips no budget can know of.

use bytes::Bytes;
use futures::StreamExt;
use sekiban_core::{
    CostSnapshot, DeleteMode, EventData, ExpectedVersion, FeedStart, OpKind, ReadOptions, Snapshot,
    Store, Version,
};

use crate::{CaseResult, Harness, check, check_eq, events};

fn spent(store: &dyn Store, before: CostSnapshot) -> CostSnapshot {
    store.costs() - before
}

/// Checks `used <= budget` where the store is budgeted, and that something was counted at all.
fn within(h: &Harness, what: &str, used: u64, budget: u64, costs: &CostSnapshot) -> CaseResult {
    check!(
        used >= 1,
        "{what}: no request was counted ({costs}); count requests where they happen"
    );
    if h.budgets_apply() {
        check!(
            used <= budget,
            "{what}: {used} round trips, budget {budget} ({costs})"
        );
    }
    Ok(())
}

/// Appends cost one round trip under `Exact`/`NoStream`, at most two under `Any`/`StreamExists`.
pub async fn budget_append_round_trips(h: &Harness) -> CaseResult {
    let st = &*h.store;
    let s = h.new_stream("budget");
    let max = st.limits().max_append_events;
    let cases = [
        ("NoStream, 1 event", ExpectedVersion::NoStream, 1usize, 1u64),
        ("Exact, 5 events", ExpectedVersion::Exact(Version(1)), 5, 1),
        (
            "Exact, max events",
            ExpectedVersion::Exact(Version(6)),
            max,
            1,
        ),
        ("Any, 1 event", ExpectedVersion::Any, 1, 2),
        (
            "StreamExists, 3 events",
            ExpectedVersion::StreamExists,
            3,
            2,
        ),
    ];
    for (what, expected, n, budget) in cases {
        let before = st.costs();
        st.append(&s, expected, events(what, n)).await?;
        let c = spent(st, before);
        within(
            h,
            &format!("append {what}"),
            c.operation_round_trips(),
            budget,
            &c,
        )?;
        check!(
            c.round_trips(OpKind::Append) >= 1,
            "append {what} was not counted as an append ({c})"
        );
    }
    let head = st.stream_version(&s).await?;
    let before = st.costs();
    let r = st
        .append(&s, ExpectedVersion::Exact(Version(1)), events("stale", 1))
        .await;
    check!(r.is_err(), "stale append succeeded");
    let c = spent(st, before);
    within(h, "a refused append", c.operation_round_trips(), 2, &c)?;
    check_eq!(st.stream_version(&s).await?, head, "version");
    Ok(())
}

async fn load(
    h: &Harness,
    s: &sekiban_core::StreamId,
) -> Result<(usize, CostSnapshot), crate::CaseFailure> {
    let before = h.store.costs();
    let loaded = h.store.load_snapshot_and_tail(s).await?;
    let tail: Vec<_> = loaded.tail.collect().await;
    for e in &tail {
        if let Err(e) = e {
            return Err(crate::CaseFailure {
                message: format!("the tail of a load of {s} failed: {e}"),
            });
        }
    }
    Ok((tail.len(), spent(&*h.store, before)))
}

/// Loading an aggregate (`load_snapshot_and_tail`: snapshot + a one-page tail) costs ≤ 2 round trips, plus exactly 1 blob
/// GET when the snapshot is offloaded.
pub async fn budget_load_with_snapshot(h: &Harness) -> CaseResult {
    let l = h.store.limits().clone();
    let tail_len = (l.page_events / 2).clamp(1, 20);
    for (what, size) in [
        ("inline", l.max_inline_snapshot_bytes / 2),
        ("offloaded", l.max_inline_snapshot_bytes + 100),
    ] {
        let s = h.new_stream("budget");
        h.store
            .append(&s, ExpectedVersion::NoStream, events("a", 10))
            .await?;
        h.store
            .save_snapshot(Snapshot {
                stream: s.clone(),
                version: Version(10),
                state_type: "State".into(),
                schema_version: 1,
                state: Bytes::from(vec![b's'; size.max(1)]),
            })
            .await?;
        h.store
            .append(
                &s,
                ExpectedVersion::Exact(Version(10)),
                events("tail", tail_len),
            )
            .await?;
        let (n, c) = load(h, &s).await?;
        check_eq!(n, tail_len, "tail events after the {what} snapshot");
        let blob_gets = c.round_trips(OpKind::Blob);
        let others = c.operation_round_trips() - blob_gets;
        within(h, &format!("load with an {what} snapshot"), others, 2, &c)?;
        let want_blobs = u64::from(what == "offloaded");
        check_eq!(
            blob_gets,
            want_blobs,
            "blob requests for a load with an {what} snapshot ({c})"
        );
    }
    Ok(())
}

/// Reads cost at most max(ceil(n / page events), ceil(b / page bytes)) + 1 round trips, without
/// the + 1 when `max_count` bounds the read (it needs no request to find the end).
pub async fn budget_read_pages(h: &Harness) -> CaseResult {
    let l = h.store.limits().clone();
    let s = h.new_stream("budget");
    let n = l.page_events * 2 + l.page_events / 2;
    let mut written = 0;
    while written < n {
        let k = (n - written).min(l.max_append_events);
        h.store
            .append(&s, ExpectedVersion::Any, events("r", k))
            .await?;
        written += k;
    }
    for (what, opts, count) in [
        ("forward", ReadOptions::forward(), n),
        ("backward", ReadOptions::backward(), n),
        (
            "10 from 5",
            ReadOptions::forward().from(Version(5)).max_count(10),
            10,
        ),
        ("last 3", ReadOptions::backward().max_count(3), 3),
    ] {
        let before = h.store.costs();
        let mut bytes = 0u64;
        let mut got = 0;
        // A read bounded by max_count knows where it ends: no request to find the end.
        let bounded = opts.max_count.is_some_and(|m| m < n as u64);
        let mut r = h.store.read(&s, opts);
        while let Some(e) = r.next().await {
            let e = e?;
            bytes += e.size() as u64;
            got += 1;
        }
        check_eq!(got, count, "events read {what}");
        let c = spent(&*h.store, before);
        let budget = (count.div_ceil(l.page_events) as u64)
            .max(bytes.div_ceil(l.page_bytes as u64))
            + u64::from(!bounded);
        let what = format!("read {what} of {count} events, {bytes} bytes");
        within(h, &what, c.operation_round_trips(), budget, &c)?;
    }
    Ok(())
}

/// Checks one operation was counted under its own kind: at least one round trip of `kind` in
/// the window (requests of other kinds do not count), and capacity units above zero when the
/// store reports them. (These operations have no round-trip budget of their own.)
fn counted_as(store: &dyn Store, what: &str, kind: OpKind, c: &CostSnapshot) -> CaseResult {
    let mine = c.get(kind);
    check!(
        mine.round_trips >= 1,
        "{what} was not counted as {kind:?} ({c}); count each request under its operation's kind"
    );
    // A request retried after its reply was lost was charged in a reply nobody read.
    if store.capabilities().reports_capacity_units && mine.retries == 0 {
        let charged = mine.capacity_units > 0.0;
        check!(
            charged,
            "{what}: the store reports capacity units, but none were counted ({c})"
        );
    }
    Ok(())
}

/// Every operation's requests are counted under its own `OpKind`, each checked on its own:
/// `stream_version` as `Read`, snapshot pointer saves and loads as `Snapshot`, checkpoint saves,
/// loads and deletes as `Checkpoint`, a feed poll as `Feed`, a delete as `Delete`.
pub async fn costs_counted_by_kind(h: &Harness) -> CaseResult {
    let st = &*h.store;
    let s = h.new_stream("kinds");
    st.append(&s, ExpectedVersion::NoStream, events("k", 3))
        .await?;
    let before = st.costs();
    st.stream_version(&s).await?;
    counted_as(st, "stream_version", OpKind::Read, &spent(st, before))?;

    let snap = Snapshot {
        stream: s.clone(),
        version: Version(3),
        state_type: "State".into(),
        schema_version: 1,
        state: Bytes::from_static(b"{\"n\":3}"),
    };
    let before = st.costs();
    st.save_snapshot(snap).await?;
    counted_as(
        st,
        "save_snapshot (inline)",
        OpKind::Snapshot,
        &spent(st, before),
    )?;
    let before = st.costs();
    let loaded = st.load_snapshot(&s).await?;
    check!(loaded.is_some(), "the snapshot was not loaded back");
    counted_as(
        st,
        "load_snapshot (inline)",
        OpKind::Snapshot,
        &spent(st, before),
    )?;

    let name = h.checkpoint_name("kinds");
    let cp = crate::last_checkpoint(
        &crate::catch_up(st, FeedStart::Beginning, h.feed_opts(false)).await?,
    )?;
    let before = st.costs();
    let etag = st.save_checkpoint(&name, &cp, None).await?;
    counted_as(
        st,
        "save_checkpoint",
        OpKind::Checkpoint,
        &spent(st, before),
    )?;
    let before = st.costs();
    let back = st.load_checkpoint(&name).await?;
    check_eq!(back.map(|(_, e)| e), Some(etag), "the checkpoint's etag");
    counted_as(
        st,
        "load_checkpoint",
        OpKind::Checkpoint,
        &spent(st, before),
    )?;
    let before = st.costs();
    st.delete_checkpoint(&name).await?;
    counted_as(
        st,
        "delete_checkpoint",
        OpKind::Checkpoint,
        &spent(st, before),
    )?;

    let before = st.costs();
    let mut feed = st.changes(FeedStart::Beginning, h.feed_opts(false));
    while let Some(b) = feed.next().await {
        b?;
    }
    drop(feed);
    counted_as(st, "a catch-up feed read", OpKind::Feed, &spent(st, before))?;

    let before = st.costs();
    st.delete_stream(&s, DeleteMode::Soft).await?;
    counted_as(st, "delete_stream", OpKind::Delete, &spent(st, before))?;
    Ok(())
}

/// `n` bytes no compressor shrinks (a xorshift sequence), so bytes counted on the wire grow
/// with them whatever a store does to its requests.
fn incompressible(n: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Bytes are counted and grow with the data: an append of a 64 KiB event of incompressible bytes
/// sends at least that much more than an append of a small one, and reading or following it back receives it; an
/// inline snapshot's save sends it and its load receives it.
pub async fn costs_count_bytes(h: &Harness) -> CaseResult {
    const BIG: usize = 64 * 1024;
    let st = &*h.store;
    let (small, big) = (h.new_stream("bytes"), h.new_stream("bytes"));
    let cost_of_append = async |s: &sekiban_core::StreamId, data: Bytes| {
        let before = st.costs();
        st.append(
            s,
            ExpectedVersion::NoStream,
            vec![EventData::new("Sized", data)],
        )
        .await
        .map(|_| spent(st, before))
    };
    let a_small = cost_of_append(&small, Bytes::from_static(b"{}")).await?;
    // Bytes that do not compress: a store may compress what it sends, and should.
    let a_big = cost_of_append(&big, Bytes::from(incompressible(BIG))).await?;
    // Per attempt: an append tried again after a transient fault sends its events again.
    let per_attempt =
        |c: &CostSnapshot| c.get(OpKind::Append).bytes_sent / (1 + c.retries(OpKind::Append));
    let (sent_small, sent_big) = (per_attempt(&a_small), per_attempt(&a_big));
    // The two events differ by BIG - 2 bytes of data ("{}" against BIG bytes).
    check!(
        sent_big >= sent_small + (BIG - 2) as u64,
        "an append of {BIG} more bytes counted {sent_big} bytes sent against {sent_small} ({a_big})"
    );
    for (what, s) in [("small", &small), ("big", &big)] {
        let before = st.costs();
        crate::read_all(st, s).await?;
        let c = spent(st, before);
        let received = c.get(OpKind::Read).bytes_received;
        let want = if what == "big" { BIG as u64 } else { 1 };
        check!(
            received >= want,
            "reading the {what} event back counted {received} bytes received ({c})"
        );
    }
    // An inline snapshot of a few KiB: its save sends it, its load receives it.
    let size = (st.limits().max_inline_snapshot_bytes / 2).clamp(1, 4096);
    let before = st.costs();
    st.save_snapshot(Snapshot {
        stream: small.clone(),
        version: Version(1),
        state_type: "State".into(),
        schema_version: 1,
        state: Bytes::from(vec![b's'; size]),
    })
    .await?;
    let c = spent(st, before);
    let sent = c.get(OpKind::Snapshot).bytes_sent;
    check!(
        sent >= size as u64,
        "saving a {size}-byte inline snapshot counted {sent} bytes sent ({c})"
    );
    let before = st.costs();
    st.load_snapshot(&small).await?;
    let c = spent(st, before);
    let received = c.get(OpKind::Snapshot).bytes_received;
    check!(
        received >= size as u64,
        "loading a {size}-byte inline snapshot counted {received} bytes received ({c})"
    );
    let before = st.costs();
    crate::catch_up_settled(st, FeedStart::Beginning, h.feed_opts(false), 2).await?;
    let c = spent(st, before);
    let received = c.get(OpKind::Feed).bytes_received;
    check!(
        received >= BIG as u64,
        "the feed delivered a {BIG}-byte event and counted {received} bytes received ({c})"
    );
    Ok(())
}
