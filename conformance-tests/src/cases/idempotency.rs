//! Rule 3: an unchanged re-send of an earlier append writes nothing and returns its versions.

use bytes::Bytes;
use sekiban_core::{AppendResult, EventData, ExpectedVersion, StoreError, Version};

use crate::{CaseResult, Harness, check, check_eq, events, expect_err, read_all};

fn original(first: u64, last: u64) -> AppendResult {
    AppendResult {
        first: Version(first),
        last: Version(last),
        deduplicated: true,
    }
}

async fn check_untouched(h: &Harness, s: &sekiban_core::StreamId, count: usize) -> CaseResult {
    check_eq!(
        read_all(&*h.store, s).await?.len(),
        count,
        "events stored after a re-send"
    );
    check_eq!(
        h.store.stream_version(s).await?,
        Version(count as u64),
        "stream version after a re-send"
    );
    Ok(())
}

fn is_idempotency_conflict(e: &StoreError) -> bool {
    matches!(e, StoreError::IdempotencyConflict { .. })
}

/// Re-sending under `Exact` (its original expectation, and the current head) writes nothing.
pub async fn resend_under_exact(h: &Harness) -> CaseResult {
    let s = h.new_stream("order");
    let a = events("a", 3);
    h.store
        .append(&s, ExpectedVersion::Exact(Version(0)), a.clone())
        .await?;
    for expected in [Version(0), Version(3), Version(7)] {
        let r = h
            .store
            .append(&s, ExpectedVersion::Exact(expected), a.clone())
            .await?;
        check_eq!(r, original(1, 3), "re-send under Exact({expected})");
    }
    check_untouched(h, &s, 3).await
}

/// Re-sending a stream's first append under `NoStream` writes nothing.
pub async fn resend_under_no_stream(h: &Harness) -> CaseResult {
    let s = h.new_stream("order");
    let a = events("a", 2);
    h.store
        .append(&s, ExpectedVersion::NoStream, a.clone())
        .await?;
    let r = h.store.append(&s, ExpectedVersion::NoStream, a).await?;
    check_eq!(r, original(1, 2), "re-send under NoStream");
    check_untouched(h, &s, 2).await
}

/// Re-sending under `StreamExists` and `Any` writes nothing.
pub async fn resend_under_stream_exists_and_any(h: &Harness) -> CaseResult {
    let s = h.new_stream("order");
    h.store
        .append(&s, ExpectedVersion::NoStream, events("a", 1))
        .await?;
    let b = events("b", 2);
    h.store
        .append(&s, ExpectedVersion::StreamExists, b.clone())
        .await?;
    let r = h.store.append(&s, ExpectedVersion::StreamExists, b).await?;
    check_eq!(r, original(2, 3), "re-send under StreamExists");
    let c = events("c", 3);
    h.store.append(&s, ExpectedVersion::Any, c.clone()).await?;
    let r = h.store.append(&s, ExpectedVersion::Any, c.clone()).await?;
    check_eq!(r, original(4, 6), "re-send under Any");
    let r = h.store.append(&s, ExpectedVersion::Any, c).await?;
    check_eq!(r, original(4, 6), "second re-send under Any");
    check_untouched(h, &s, 6).await
}

/// A re-send after other appends landed still returns the original versions.
pub async fn resend_after_other_appends(h: &Harness) -> CaseResult {
    let s = h.new_stream("order");
    let a = events("a", 2);
    h.store
        .append(&s, ExpectedVersion::NoStream, a.clone())
        .await?;
    h.store
        .append(&s, ExpectedVersion::Any, events("b", 3))
        .await?;
    h.store
        .append(&s, ExpectedVersion::Any, events("c", 1))
        .await?;
    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Any,
        ExpectedVersion::StreamExists,
        ExpectedVersion::Exact(Version(6)),
    ] {
        let r = h.store.append(&s, expected, a.clone()).await?;
        check_eq!(
            r,
            original(1, 2),
            "re-send under {expected} after other appends"
        );
    }
    check_untouched(h, &s, 6).await
}

/// A re-send whose events are the oldest inside the declared idempotency window (capped at 1 000
/// events when the window is unbounded) is still recognised.
pub async fn resend_at_window_edge(h: &Harness) -> CaseResult {
    let limits = h.store.limits().clone();
    let window = limits.idempotency_window.min(1000) as usize;
    if window == 0 {
        // No earlier append is inside a window of none (`resend_outside_window` checks that).
        return Ok(());
    }
    let s = h.new_stream("order");
    let a = events("a", 2.min(window));
    h.store
        .append(&s, ExpectedVersion::NoStream, a.clone())
        .await?;
    let mut written = a.len();
    while written < window {
        let n = (window - written).min(limits.max_append_events);
        h.store
            .append(
                &s,
                ExpectedVersion::Any,
                events(&format!("fill{written}"), n),
            )
            .await?;
        written += n;
    }
    let r = h.store.append(&s, ExpectedVersion::Any, a.clone()).await?;
    check_eq!(
        r,
        original(1, a.len() as u64),
        "re-send at the far edge of a {window}-event window"
    );
    check_eq!(
        h.store.stream_version(&s).await?,
        Version(window as u64),
        "stream version"
    );
    Ok(())
}

/// Same ids with other data (or another type) → `IdempotencyConflict`, nothing written.
pub async fn resend_with_other_data_conflicts(h: &Harness) -> CaseResult {
    let s = h.new_stream("order");
    let a = events("a", 2);
    h.store
        .append(&s, ExpectedVersion::NoStream, a.clone())
        .await?;
    let mut changed = a.clone();
    changed[1].data = Bytes::from_static(br#"{"tag":"other"}"#);
    for expected in [
        ExpectedVersion::Any,
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(Version(2)),
    ] {
        let r = h.store.append(&s, expected, changed.clone()).await;
        expect_err(
            r,
            &format!("same ids, other data, under {expected}"),
            is_idempotency_conflict,
        )?;
    }
    let mut retyped = a.clone();
    retyped[0].event_type = "Other".into();
    let r = h.store.append(&s, ExpectedVersion::Any, retyped).await;
    expect_err(r, "same ids, other type", is_idempotency_conflict)?;
    let mut reschema = a;
    reschema[0].schema_version = 9;
    let r = h.store.append(&s, ExpectedVersion::Any, reschema).await;
    expect_err(r, "same ids, other schema version", is_idempotency_conflict)?;
    check_untouched(h, &s, 2).await
}

/// Same ids with other metadata only → `IdempotencyConflict`, nothing written.
pub async fn resend_with_other_metadata_conflicts(h: &Harness) -> CaseResult {
    let s = h.new_stream("order");
    let a = events("a", 2);
    h.store
        .append(&s, ExpectedVersion::NoStream, a.clone())
        .await?;
    let mut changed = a;
    changed[0].metadata.actor = Some("mallory".into());
    for expected in [ExpectedVersion::Any, ExpectedVersion::NoStream] {
        let r = h.store.append(&s, expected, changed.clone()).await;
        expect_err(
            r,
            &format!("same ids, other metadata, under {expected}"),
            is_idempotency_conflict,
        )?;
    }
    check_untouched(h, &s, 2).await
}

/// A batch that overlaps an earlier append only in part → `IdempotencyConflict`, nothing written.
pub async fn resend_partial_overlap_conflicts(h: &Harness) -> CaseResult {
    let s = h.new_stream("order");
    let a = events("a", 3);
    h.store
        .append(&s, ExpectedVersion::NoStream, a.clone())
        .await?;
    let fresh = || EventData::new("Tick", Bytes::from_static(b"{}"));
    let cases: Vec<(&str, Vec<EventData>)> = vec![
        (
            "first two and a new one",
            vec![a[0].clone(), a[1].clone(), fresh()],
        ),
        ("a new one and the last", vec![fresh(), a[2].clone()]),
        ("the last two only", vec![a[1].clone(), a[2].clone()]),
        (
            "all three and a new one",
            vec![a[0].clone(), a[1].clone(), a[2].clone(), fresh()],
        ),
        (
            "all three reordered",
            vec![a[1].clone(), a[0].clone(), a[2].clone()],
        ),
    ];
    for (what, batch) in cases {
        for expected in [ExpectedVersion::Any, ExpectedVersion::Exact(Version(3))] {
            let r = h.store.append(&s, expected, batch.clone()).await;
            expect_err(
                r,
                &format!("{what} under {expected}"),
                is_idempotency_conflict,
            )?;
        }
    }
    check_untouched(h, &s, 3).await
}

/// Outside a finite idempotency window (the stream's last `W` events) a re-send is an ordinary
/// append: under `Exact` or `NoStream` it fails with `WrongExpectedVersion`, under `Any` it
/// appends the events again at new versions. A store with an unbounded window (or one above
/// 1 000 events) has no outside this case can reach.
pub async fn resend_outside_window(h: &Harness) -> CaseResult {
    let limits = h.store.limits().clone();
    let window = limits.idempotency_window;
    if window > 1000 {
        return Ok(());
    }
    let s = h.new_stream("order");
    let a = events("a", 2);
    h.store
        .append(&s, ExpectedVersion::NoStream, a.clone())
        .await?;
    // Push `a` out of the window: `window` more events after it.
    let mut head = a.len() as u64;
    while head < a.len() as u64 + window {
        let n = (a.len() as u64 + window - head).min(limits.max_append_events as u64);
        h.store
            .append(
                &s,
                ExpectedVersion::Exact(Version(head)),
                events(&format!("fill{head}"), n as usize),
            )
            .await?;
        head += n;
    }
    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(Version(0)),
    ] {
        let r = h.store.append(&s, expected, a.clone()).await;
        check!(
            matches!(
                r,
                Err(StoreError::WrongExpectedVersion { actual, .. }) if actual == Version(head)
            ),
            "a re-send under {expected} from outside a {window}-event window: {r:?}"
        );
    }
    let r = h.store.append(&s, ExpectedVersion::Any, a.clone()).await?;
    // (Under faults the new append's own re-send may answer it, and say so.)
    check_eq!(
        (r.first, r.last, r.deduplicated && !h.under_faults),
        (Version(head + 1), Version(head + 2), false),
        "a re-send under Any from outside a {window}-event window appends again"
    );
    check_untouched(h, &s, head as usize + 2).await
}
