//! Rule 4, reads: order, ranges, paging, listing.

use bytes::Bytes;
use futures::StreamExt;
use sekiban_core::{
    DeleteMode, EventData, ExpectedVersion, OpKind, ReadOptions, RecordedEvent, StreamId, Version,
};

use crate::{CaseFailure, CaseResult, Harness, check, check_eq, events, read_with, versions};

async fn stream_of(h: &Harness, n: usize) -> Result<sekiban_core::StreamId, crate::CaseFailure> {
    let s = h.new_stream("read");
    let max = h.store.limits().max_append_events;
    let mut written = 0;
    while written < n {
        let k = (n - written).min(max);
        h.store
            .append(&s, ExpectedVersion::Any, events(&format!("e{written}"), k))
            .await?;
        written += k;
    }
    Ok(s)
}

/// Forward reads honour `from` and `max_count`.
pub async fn read_forward_from_and_max_count(h: &Harness) -> CaseResult {
    let s = stream_of(h, 20).await?;
    let st = &*h.store;
    let all = read_with(st, &s, ReadOptions::forward()).await?;
    check_eq!(versions(&all), (1..=20).collect::<Vec<_>>(), "all");
    let r = read_with(st, &s, ReadOptions::forward().from(Version(15))).await?;
    check_eq!(versions(&r), (15..=20).collect::<Vec<_>>(), "from 15");
    let r = read_with(st, &s, ReadOptions::forward().from(Version(5)).max_count(3)).await?;
    check_eq!(versions(&r), vec![5, 6, 7], "from 5, 3 events");
    let r = read_with(st, &s, ReadOptions::forward().max_count(2)).await?;
    check_eq!(versions(&r), vec![1, 2], "first 2");
    let r = read_with(st, &s, ReadOptions::forward().from(Version(21))).await?;
    check_eq!(versions(&r), Vec::<u64>::new(), "from past the head");
    let r = read_with(st, &s, ReadOptions::forward().max_count(0)).await?;
    check_eq!(versions(&r), Vec::<u64>::new(), "max_count 0");
    check_eq!(
        all[9].data.clone(),
        events("e0", 10)[9].data.clone(),
        "data of version 10"
    );
    Ok(())
}

/// Backward reads return newest first and honour `from` and `max_count`.
pub async fn read_backward(h: &Harness) -> CaseResult {
    let s = stream_of(h, 12).await?;
    let st = &*h.store;
    let r = read_with(st, &s, ReadOptions::backward()).await?;
    check_eq!(
        versions(&r),
        (1..=12).rev().collect::<Vec<_>>(),
        "all backward"
    );
    let r = read_with(st, &s, ReadOptions::backward().max_count(3)).await?;
    check_eq!(versions(&r), vec![12, 11, 10], "last 3");
    let r = read_with(st, &s, ReadOptions::backward().from(Version(4))).await?;
    check_eq!(versions(&r), vec![4, 3, 2, 1], "backward from 4");
    let r = read_with(
        st,
        &s,
        ReadOptions::backward().from(Version(50)).max_count(2),
    )
    .await?;
    check_eq!(versions(&r), vec![12, 11], "backward from past the head");
    Ok(())
}

/// A stream never written reads as empty, forward and backward.
pub async fn read_missing_stream_is_empty(h: &Harness) -> CaseResult {
    let s = h.new_stream("ghost");
    check_eq!(
        read_with(&*h.store, &s, ReadOptions::forward())
            .await?
            .len(),
        0,
        "forward"
    );
    check_eq!(
        read_with(&*h.store, &s, ReadOptions::backward())
            .await?
            .len(),
        0,
        "backward"
    );
    check_eq!(h.store.stream_version(&s).await?, Version(0), "version");
    Ok(())
}

/// 10 000 events read lazily: the first event arrives after one page request, every event comes
/// in order, and the pages fetched stay within the page budget.
pub async fn read_pages_lazily_through_10000_events(h: &Harness) -> CaseResult {
    const N: usize = 10_000;
    let s = stream_of(h, N).await?;
    let limits = h.store.limits().clone();
    let before = h.store.costs();
    let mut reader = h.store.read(&s, ReadOptions::forward());
    let first = reader.next().await;
    let after_first = h.store.costs() - before;
    check!(
        matches!(&first, Some(Ok(e)) if e.version == Version(1)),
        "first event: {first:?}"
    );
    // Under faults a page is asked again after a transient fault (a retry, which may have
    // failed before its request went out, e.g. opening a connection, whose requests count as
    // `Other`): at most one read request more than the retries.
    if h.under_faults {
        let reads = after_first.round_trips(OpKind::Read);
        check!(
            reads >= 1 && reads <= 1 + after_first.retries(OpKind::Read),
            "requests made before the first event is available: {after_first}"
        );
    } else {
        check_eq!(
            after_first.operation_round_trips(),
            1,
            "requests made before the first event is available"
        );
    }
    let mut expected = 2u64;
    let mut bytes = 0u64;
    while let Some(e) = reader.next().await {
        let e = e?;
        check_eq!(
            e.version,
            Version(expected),
            "version after {}",
            expected - 1
        );
        bytes += e.size() as u64;
        expected += 1;
    }
    check_eq!(expected - 1, N as u64, "events read");
    // Requests less retries never exceed the pages fetched; the requests themselves are at
    // least that many.
    let spent = h.store.costs() - before;
    let requests = spent.round_trips(OpKind::Read);
    let pages = requests.saturating_sub(spent.retries(OpKind::Read));
    let budget =
        (N.div_ceil(limits.page_events) as u64).max(bytes.div_ceil(limits.page_bytes as u64)) + 1;
    check!(
        pages <= budget,
        "{pages} read requests for {N} events; budget {budget}"
    );
    check!(
        requests >= (N / limits.page_events) as u64,
        "{pages} read requests for {N} events with {}-event pages: reads are not paged as declared",
        limits.page_events
    );
    Ok(())
}

/// A stream of large events written for the byte-paging cases: about 2½ times `page_bytes` in
/// events of up to a third of a page each (and within `max_event_bytes`), each filled with one
/// letter by its version.
pub(crate) struct LargeStream {
    pub(crate) stream: StreamId,
    pub(crate) n: usize,
    size: usize,
}

impl LargeStream {
    pub(crate) async fn write(h: &Harness) -> Result<LargeStream, CaseFailure> {
        let l = h.store.limits();
        let size = l
            .max_event_bytes
            .min(l.page_bytes / 3)
            .saturating_sub(64)
            .max(1);
        let n = (l.page_bytes * 5 / 2).div_ceil(size).max(3);
        let large = LargeStream {
            stream: h.new_stream("bytes"),
            n,
            size,
        };
        let per_append = (l.max_append_bytes / (size + 64)).clamp(1, l.max_append_events);
        let mut written = 0;
        while written < n {
            let k = (n - written).min(per_append);
            let batch = (written..written + k)
                .map(|i| EventData::new("Big", large.body(i as u64 + 1)))
                .collect();
            h.store
                .append(&large.stream, ExpectedVersion::Any, batch)
                .await?;
            written += k;
        }
        Ok(large)
    }

    fn body(&self, version: u64) -> Bytes {
        Bytes::from(vec![b'a' + ((version - 1) % 26) as u8; self.size])
    }

    /// One event's size as the limits count it.
    pub(crate) fn event_bytes(&self) -> u64 {
        (self.size + "Big".len()) as u64
    }

    /// All events' size.
    pub(crate) fn bytes(&self) -> u64 {
        self.event_bytes() * self.n as u64
    }

    /// Every event read back carries the data written at its version.
    pub(crate) fn check_data(&self, got: &[RecordedEvent], what: &str) -> CaseResult {
        for e in got {
            check!(
                e.stream == self.stream && e.data == self.body(e.version.0),
                "{what}: event {} of {} came back with other data ({} bytes)",
                e.version,
                e.stream,
                e.data.len()
            );
        }
        Ok(())
    }
}

/// Pages are cut by bytes as the limits declare: a stream of large events, about 2½ times
/// `page_bytes`, reads back whole and byte-exact, forward and backward, and — where the store is
/// budgeted — in about bytes / `page_bytes` requests: no more than one per `page_bytes` (or per
/// `page_events`), no fewer than one per `page_bytes` plus one event.
pub async fn read_pages_by_bytes_through_large_events(h: &Harness) -> CaseResult {
    let l = h.store.limits().clone();
    let large = LargeStream::write(h).await?;
    let (s, n, event, bytes) = (&large.stream, large.n, large.event_bytes(), large.bytes());
    for (what, opts) in [
        ("forward", ReadOptions::forward()),
        ("backward", ReadOptions::backward()),
    ] {
        let before = h.store.costs();
        let got = read_with(&*h.store, s, opts).await?;
        let spent = h.store.costs() - before;
        let requests = spent.round_trips(OpKind::Read);
        let pages = requests.saturating_sub(spent.retries(OpKind::Read));
        let mut expected: Vec<u64> = (1..=n as u64).collect();
        if what == "backward" {
            expected.reverse();
        }
        check_eq!(versions(&got), expected, "versions read {what}");
        large.check_data(&got, what)?;
        check!(requests >= 1, "{what}: no read request was counted");
        if h.store.capabilities().cost_budgets {
            let most =
                (n.div_ceil(l.page_events) as u64).max(bytes.div_ceil(l.page_bytes as u64)) + 1;
            let least = bytes.div_ceil(l.page_bytes as u64 + event);
            check!(
                pages <= most && requests >= least,
                "{what}: {requests} read requests ({pages} less retries) for {n} events of \
                 {event} bytes ({bytes} bytes) with pages of {} bytes: expected {least}..={most}",
                l.page_bytes
            );
        }
    }
    Ok(())
}

/// Where the store has a catalog, it lists a tenant's streams by category, in pages.
pub async fn catalog_lists_streams(h: &Harness) -> CaseResult {
    let caps = h.store.capabilities();
    let Some(catalog) = h.store.catalog() else {
        check!(
            !caps.stream_catalog,
            "capabilities claim a stream catalog, but catalog() is None"
        );
        return Ok(());
    };
    check!(
        caps.stream_catalog,
        "catalog() is Some, but capabilities deny a stream catalog"
    );
    let mut made = Vec::new();
    for (cat, id) in [
        ("order", "a"),
        ("order", "b"),
        ("order", "c"),
        ("invoice", "x"),
    ] {
        let s = h.stream(cat, id);
        h.store
            .append(&s, ExpectedVersion::NoStream, events(id, 2))
            .await?;
        made.push(s);
    }
    let all = catalog.list_streams(&h.tenant, None, None, 100).await?;
    check_eq!(all.len(), 4, "streams listed for the tenant");
    let orders = catalog
        .list_streams(&h.tenant, Some("order"), None, 2)
        .await?;
    let ids: Vec<_> = orders.iter().map(|i| i.stream.id().to_string()).collect();
    check_eq!(
        ids,
        vec!["a".to_string(), "b".to_string()],
        "first page of orders"
    );
    check_eq!(orders[0].version, Version(2), "listed version");
    let rest = catalog
        .list_streams(&h.tenant, Some("order"), Some(&orders[1].stream), 2)
        .await?;
    let ids: Vec<_> = rest.iter().map(|i| i.stream.id().to_string()).collect();
    check_eq!(ids, vec!["c".to_string()], "second page of orders");

    // A listing receives more bytes the more it lists.
    let before = h.store.costs();
    catalog.list_streams(&h.tenant, None, None, 1).await?;
    let one = (h.store.costs() - before).total().bytes_received;
    let before = h.store.costs();
    catalog.list_streams(&h.tenant, None, None, 100).await?;
    let four = (h.store.costs() - before).total().bytes_received;
    check!(
        four > one,
        "listing 4 streams counted {four} bytes received, listing 1 counted {one}"
    );

    // Deleted streams are listed as deleted, soft (at its last version) or hard; the others not.
    h.store.delete_stream(&made[0], DeleteMode::Soft).await?;
    h.store.delete_stream(&made[1], DeleteMode::Hard).await?;
    let listed = catalog.list_streams(&h.tenant, None, None, 100).await?;
    let flags: Vec<(String, bool)> = listed
        .iter()
        .map(|i| (i.stream.id().to_string(), i.deleted))
        .collect();
    check_eq!(
        flags,
        vec![
            ("x".to_string(), false),
            ("a".to_string(), true),
            ("b".to_string(), true),
            ("c".to_string(), false),
        ],
        "(id, deleted) listed after a soft delete of order/a and a hard delete of order/b"
    );
    check_eq!(
        listed[1].version,
        Version(2),
        "the listed version of a soft-deleted stream"
    );
    Ok(())
}
