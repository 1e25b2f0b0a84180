//! Rules 1 and 2: atomic appends and optimistic concurrency.

use std::sync::Arc;

use sekiban_core::{ExpectedVersion, StoreError, Version};
use tokio::sync::Barrier;

use crate::{CaseResult, Harness, check, check_eq, check_events, events, expect_err, read_all};

fn is_wrong_version(actual: u64) -> impl FnOnce(&StoreError) -> bool {
    move |e| matches!(e, StoreError::WrongExpectedVersion { actual: a, .. } if a.0 == actual)
}

/// A first append gets versions 1..=n and reads back exactly.
pub async fn append_to_new_stream_starts_at_one(h: &Harness) -> CaseResult {
    let s = h.new_stream("order");
    let sent = events("a", 3);
    let r = h
        .store
        .append(&s, ExpectedVersion::NoStream, sent.clone())
        .await?;
    // Under faults an append whose reply was lost is answered by its re-send, which may say so.
    check_eq!(
        (r.first, r.last, r.deduplicated && !h.under_faults),
        (Version(1), Version(3), false),
        "append result"
    );
    check_events(
        &read_all(&*h.store, &s).await?,
        &sent,
        Version(1),
        "read back",
    )
}

/// Several appends of several events: versions contiguous, no gaps, no duplicates.
pub async fn append_is_atomic_and_contiguous(h: &Harness) -> CaseResult {
    let s = h.new_stream("order");
    let mut all = Vec::new();
    let mut expected = Version(0);
    for n in [1usize, 5, 2, 10] {
        let batch = events(&format!("b{n}"), n);
        let r = h
            .store
            .append(&s, ExpectedVersion::Exact(expected), batch.clone())
            .await?;
        check_eq!(
            r.first,
            expected.plus(1),
            "first version of a {n}-event append"
        );
        check_eq!(
            r.last,
            expected.plus(n as u64),
            "last version of a {n}-event append"
        );
        expected = r.last;
        all.extend(batch);
    }
    check_events(
        &read_all(&*h.store, &s).await?,
        &all,
        Version(1),
        "all appends",
    )?;
    check_eq!(
        h.store.stream_version(&s).await?,
        Version(18),
        "stream version"
    );
    Ok(())
}

/// A refused multi-event append leaves no trace: no events, no version change.
pub async fn failed_append_writes_nothing(h: &Harness) -> CaseResult {
    let s = h.new_stream("order");
    h.store
        .append(&s, ExpectedVersion::NoStream, events("a", 2))
        .await?;
    let r = h
        .store
        .append(&s, ExpectedVersion::Exact(Version(1)), events("b", 5))
        .await;
    expect_err(r, "stale multi-event append", is_wrong_version(2))?;
    check_eq!(
        read_all(&*h.store, &s).await?.len(),
        2,
        "events after a refused append"
    );
    check_eq!(
        h.store.stream_version(&s).await?,
        Version(2),
        "version after a refused append"
    );
    Ok(())
}

/// `NoStream` succeeds once, then fails with the actual version.
pub async fn expected_no_stream(h: &Harness) -> CaseResult {
    let s = h.new_stream("order");
    h.store
        .append(&s, ExpectedVersion::NoStream, events("a", 2))
        .await?;
    let r = h
        .store
        .append(&s, ExpectedVersion::NoStream, events("b", 1))
        .await;
    expect_err(r, "NoStream on an existing stream", is_wrong_version(2))?;
    let r = h
        .store
        .append(&s, ExpectedVersion::Exact(Version(0)), events("c", 1))
        .await;
    expect_err(r, "Exact(0) on an existing stream", is_wrong_version(2))?;
    check_eq!(read_all(&*h.store, &s).await?.len(), 2, "events");
    Ok(())
}

/// `StreamExists` fails on a missing stream and succeeds on an existing one.
pub async fn expected_stream_exists(h: &Harness) -> CaseResult {
    let s = h.new_stream("order");
    let r = h
        .store
        .append(&s, ExpectedVersion::StreamExists, events("a", 1))
        .await;
    expect_err(r, "StreamExists on a missing stream", is_wrong_version(0))?;
    check_eq!(
        h.store.stream_version(&s).await?,
        Version(0),
        "version of the missing stream"
    );
    h.store
        .append(&s, ExpectedVersion::NoStream, events("b", 1))
        .await?;
    let r = h
        .store
        .append(&s, ExpectedVersion::StreamExists, events("c", 2))
        .await?;
    check_eq!(
        (r.first, r.last),
        (Version(2), Version(3)),
        "StreamExists append"
    );
    Ok(())
}

/// `Any` appends to a missing and to an existing stream.
pub async fn expected_any(h: &Harness) -> CaseResult {
    let s = h.new_stream("order");
    let r = h
        .store
        .append(&s, ExpectedVersion::Any, events("a", 2))
        .await?;
    check_eq!(
        (r.first, r.last),
        (Version(1), Version(2)),
        "Any on a missing stream"
    );
    let r = h
        .store
        .append(&s, ExpectedVersion::Any, events("b", 3))
        .await?;
    check_eq!(
        (r.first, r.last),
        (Version(3), Version(5)),
        "Any on an existing stream"
    );
    Ok(())
}

/// `Exact(head)` succeeds.
pub async fn expected_exact_at_head(h: &Harness) -> CaseResult {
    let s = h.new_stream("order");
    h.store
        .append(&s, ExpectedVersion::Exact(Version(0)), events("a", 3))
        .await?;
    let r = h
        .store
        .append(&s, ExpectedVersion::Exact(Version(3)), events("b", 1))
        .await?;
    check_eq!(
        (r.first, r.last),
        (Version(4), Version(4)),
        "Exact(3) on a 3-event stream"
    );
    Ok(())
}

/// `Exact(v)` below the head fails with the actual version, nothing written.
pub async fn expected_exact_below_head_fails(h: &Harness) -> CaseResult {
    let s = h.new_stream("order");
    for i in 0..3 {
        h.store
            .append(&s, ExpectedVersion::Any, events(&format!("a{i}"), 1))
            .await?;
    }
    for v in [0u64, 1, 2] {
        let r = h
            .store
            .append(&s, ExpectedVersion::Exact(Version(v)), events("late", 1))
            .await;
        expect_err(
            r,
            &format!("Exact({v}) on a 3-event stream"),
            is_wrong_version(3),
        )?;
    }
    check_eq!(read_all(&*h.store, &s).await?.len(), 3, "events");
    Ok(())
}

/// `Exact(v)` with v inside an earlier multi-event append fails.
pub async fn expected_exact_inside_multi_event_append_fails(h: &Harness) -> CaseResult {
    let s = h.new_stream("order");
    h.store
        .append(&s, ExpectedVersion::NoStream, events("a", 5))
        .await?;
    for v in 1..5u64 {
        let r = h
            .store
            .append(&s, ExpectedVersion::Exact(Version(v)), events("x", 1))
            .await;
        expect_err(
            r,
            &format!("Exact({v}) inside a 5-event append"),
            is_wrong_version(5),
        )?;
    }
    check_eq!(h.store.stream_version(&s).await?, Version(5), "version");
    check_eq!(read_all(&*h.store, &s).await?.len(), 5, "events");
    Ok(())
}

/// `Exact(v)` above the head fails: no gap is ever written.
pub async fn expected_exact_above_head_fails(h: &Harness) -> CaseResult {
    let s = h.new_stream("order");
    let r = h
        .store
        .append(&s, ExpectedVersion::Exact(Version(3)), events("a", 1))
        .await;
    expect_err(r, "Exact(3) on a missing stream", is_wrong_version(0))?;
    h.store
        .append(&s, ExpectedVersion::NoStream, events("b", 2))
        .await?;
    for v in [3u64, 4, 100] {
        let r = h
            .store
            .append(&s, ExpectedVersion::Exact(Version(v)), events("gap", 2))
            .await;
        expect_err(
            r,
            &format!("Exact({v}) on a 2-event stream"),
            is_wrong_version(2),
        )?;
    }
    let stored = read_all(&*h.store, &s).await?;
    check_eq!(crate::versions(&stored), vec![1, 2], "versions");
    Ok(())
}

/// 16 writers race at the same expected version, round after round: exactly one wins each round,
/// the others get the actual version, and the stream has no gaps.
pub async fn concurrent_writers_one_winner_per_version(h: &Harness) -> CaseResult {
    const WRITERS: usize = 16;
    const ROUNDS: u64 = 5;
    let s = h.new_stream("contended");
    for round in 0..ROUNDS {
        let barrier = Arc::new(Barrier::new(WRITERS));
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let (store, s, barrier) = (h.store.clone(), s.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                store
                    .append(
                        &s,
                        ExpectedVersion::Exact(Version(round)),
                        events(&format!("r{round}w{w}"), 1),
                    )
                    .await
            }));
        }
        let mut winners = 0;
        for t in tasks {
            match t.await {
                Ok(Ok(r)) => {
                    winners += 1;
                    check_eq!(
                        r.first,
                        Version(round + 1),
                        "winner's version in round {round}"
                    );
                }
                Ok(Err(StoreError::WrongExpectedVersion { actual, .. })) => {
                    check_eq!(
                        actual,
                        Version(round + 1),
                        "loser's actual version in round {round}"
                    );
                }
                Ok(Err(e)) => return Err(e.into()),
                Err(e) => check!(false, "writer task failed: {e}"),
            }
        }
        check_eq!(winners, 1, "winners in round {round}");
    }
    let stored = read_all(&*h.store, &s).await?;
    check_eq!(
        crate::versions(&stored),
        (1..=ROUNDS).collect::<Vec<_>>(),
        "versions"
    );
    Ok(())
}

/// 16 writers append under `Any` concurrently: every event lands once, versions contiguous.
pub async fn concurrent_writers_any_no_gaps(h: &Harness) -> CaseResult {
    const WRITERS: usize = 16;
    const APPENDS: usize = 5;
    let s = h.new_stream("contended");
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (store, s) = (h.store.clone(), s.clone());
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            for a in 0..APPENDS {
                let batch = events(&format!("w{w}a{a}"), 2);
                let ids: Vec<_> = batch.iter().map(|e| e.id).collect();
                results.push((store.append(&s, ExpectedVersion::Any, batch).await?, ids));
            }
            Ok::<_, StoreError>(results)
        }));
    }
    let mut claimed = std::collections::BTreeMap::new();
    for t in tasks {
        let results = match t.await {
            Ok(r) => r?,
            Err(e) => {
                return Err(crate::CaseFailure {
                    message: format!("writer task failed: {e}"),
                });
            }
        };
        for (r, ids) in results {
            check_eq!(r.last.0 - r.first.0 + 1, 2, "versions of a 2-event append");
            for (i, id) in ids.into_iter().enumerate() {
                check!(
                    claimed.insert(r.first.0 + i as u64, id).is_none(),
                    "version {} handed out twice",
                    r.first.0 + i as u64
                );
            }
        }
    }
    let stored = read_all(&*h.store, &s).await?;
    let total = (WRITERS * APPENDS * 2) as u64;
    check_eq!(
        crate::versions(&stored),
        (1..=total).collect::<Vec<_>>(),
        "versions"
    );
    for e in &stored {
        check_eq!(
            Some(&e.id),
            claimed.get(&e.version.0),
            "event id at version {}",
            e.version
        );
    }
    Ok(())
}
