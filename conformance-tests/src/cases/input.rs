//! Rule 6: bad input gets a typed error before anything is written (no request is even sent).

use bytes::Bytes;
use sekiban_core::{
    EventData, EventId, ExpectedVersion, Metadata, OpKind, StoreError, StreamId, Version,
};

use crate::{CaseResult, Harness, check, check_eq, events, expect_err};

/// Stream ids breaking the naming rule are refused on construction, with a reason.
pub async fn invalid_stream_ids_rejected(h: &Harness) -> CaseResult {
    let long = "x".repeat(300);
    let bad = [
        ("", "order", "1"),
        (h.tenant.as_str(), "", "1"),
        (h.tenant.as_str(), "order", ""),
        (h.tenant.as_str(), "order", "a/b"),
        (h.tenant.as_str(), "order", "a|b"),
        (h.tenant.as_str(), "order", "a#b"),
        (h.tenant.as_str(), "order", ".."),
        (h.tenant.as_str(), "order", "space here"),
        (h.tenant.as_str(), "order", "nul\0"),
        (h.tenant.as_str(), "ord.er", "1"),
        (h.tenant.as_str(), "order", long.as_str()),
        ("tenant/x", "order", "1"),
        (h.tenant.as_str(), "order", "ünï"),
    ];
    for (t, c, i) in bad {
        let r = StreamId::new(t, c, i);
        expect_err(
            r,
            &format!("stream id {t:?}/{c:?}/{i:?}"),
            |e| matches!(e, StoreError::InvalidStreamId { reason } if !reason.is_empty()),
        )?;
    }
    let ok = StreamId::new(&h.tenant, "order-line_2", "A.b-c_d@e=f+g")?;
    check_eq!(ok.to_string().parse::<StreamId>()?, ok, "display and parse");
    Ok(())
}

async fn refused(
    h: &Harness,
    what: &str,
    batch: Vec<EventData>,
    matches: impl FnOnce(&StoreError) -> bool,
) -> CaseResult {
    let s = h.new_stream("input");
    let before = h.store.costs();
    let r = h.store.append(&s, ExpectedVersion::Any, batch).await;
    expect_err(r, what, matches)?;
    let spent = (h.store.costs() - before).operation_round_trips();
    check_eq!(spent, 0, "requests sent for refused input ({what})");
    check_eq!(
        h.store.stream_version(&s).await?,
        Version(0),
        "version after refused input ({what})"
    );
    Ok(())
}

fn invalid(e: &StoreError) -> bool {
    matches!(e, StoreError::InvalidInput { .. })
}

/// Empty batch, empty or oversized type, NUL in metadata, an id twice: refused, nothing written.
pub async fn bad_events_rejected_nothing_written(h: &Harness) -> CaseResult {
    refused(h, "empty batch", vec![], invalid).await?;
    refused(
        h,
        "empty event type",
        vec![EventData::new("", "{}")],
        invalid,
    )
    .await?;
    refused(
        h,
        "event type of 300 bytes",
        vec![EventData::new("T".repeat(300), "{}")],
        invalid,
    )
    .await?;
    let nul = Metadata {
        actor: Some("a\0b".into()),
        ..Metadata::default()
    };
    refused(
        h,
        "NUL in metadata",
        vec![EventData::new("T", "{}").with_metadata(nul)],
        invalid,
    )
    .await?;
    let mut extra = Metadata::default();
    extra.extra.insert("k\0".into(), "v".into());
    refused(
        h,
        "NUL in a metadata key",
        vec![EventData::new("T", "{}").with_metadata(extra)],
        invalid,
    )
    .await?;
    let id = EventId::new();
    let twice = vec![
        EventData::new("T", "1").with_id(id),
        EventData::new("T", "2").with_id(id),
    ];
    refused(h, "one id twice in a batch", twice, invalid).await?;
    let mut good_then_bad = events("g", 3);
    good_then_bad[2].event_type.clear();
    refused(h, "a bad last event", good_then_bad, invalid).await
}

/// Over the event size, the events per append, or the bytes per append: typed errors, nothing
/// written; exactly at the limits: accepted.
pub async fn limits_enforced_before_write(h: &Harness) -> CaseResult {
    let l = h.store.limits().clone();
    let sized = |size: usize| EventData::new("T", Bytes::from(vec![b'x'; size - 1]));
    refused(h, "event one byte over the limit", vec![sized(l.max_event_bytes + 1)], |e| {
        matches!(e, StoreError::EventTooLarge { size, limit, .. } if *size == l.max_event_bytes + 1 && *limit == l.max_event_bytes)
    })
    .await?;
    refused(h, "one event too many", events("n", l.max_append_events + 1), |e| {
        matches!(e, StoreError::BatchTooLarge { count, .. } if *count == l.max_append_events + 1)
    })
    .await?;
    let per = l.max_event_bytes.min(l.max_append_bytes);
    let n = l.max_append_bytes / per + 1;
    // When max events of max size fit in max bytes, the byte limit cannot be exceeded alone.
    if n <= l.max_append_events {
        let batch: Vec<_> = (0..n).map(|_| sized(per)).collect();
        refused(h, "an append over the byte limit", batch, |e| {
            matches!(e, StoreError::BatchTooLarge { .. })
        })
        .await?;
    }
    let s = h.new_stream("input");
    let r = h
        .store
        .append(
            &s,
            ExpectedVersion::NoStream,
            vec![sized(l.max_event_bytes)],
        )
        .await?;
    check_eq!(r.last, Version(1), "an event exactly at the size limit");
    let r = h
        .store
        .append(
            &s,
            ExpectedVersion::Any,
            events("full", l.max_append_events),
        )
        .await?;
    check_eq!(
        r.last,
        Version(1 + l.max_append_events as u64),
        "an append of exactly max events"
    );
    let mut stored = 1 + l.max_append_events;
    // An append of exactly the byte limit is accepted (when the count limit lets it be made).
    let (full, rest) = (l.max_append_bytes / per, l.max_append_bytes % per);
    let mut batch: Vec<_> = (0..full).map(|_| sized(per)).collect();
    if rest > 0 {
        batch.push(sized(rest));
    }
    if batch.len() <= l.max_append_events {
        let k = batch.len();
        let r = h.store.append(&s, ExpectedVersion::Any, batch).await?;
        stored += k;
        check_eq!(
            r.last,
            Version(stored as u64),
            "an append of exactly {} bytes in {k} events",
            l.max_append_bytes
        );
    }
    let read = crate::read_all(&*h.store, &s).await?;
    check_eq!(read.len(), stored, "events stored");
    let kind_costs = h.store.costs().get(OpKind::Append);
    check!(
        kind_costs.round_trips >= 2,
        "appends were not counted: {kind_costs:?}"
    );
    Ok(())
}
