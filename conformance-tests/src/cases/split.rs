//! A feed split between workers ([`sekiban_core::FeedOptions::split`]): each stream's items
//! reach exactly one worker, in order; together the workers deliver what one reader of the
//! whole feed does; each resumes from its own checkpoint.

use std::collections::BTreeMap;

use futures::StreamExt;
use sekiban_core::{
    Checkpoint, ExpectedVersion, FeedItem, FeedStart, StoreError, StreamId, Version,
};

use crate::{
    CaseFailure, CaseResult, Harness, catch_up, catch_up_settled, check, check_eq, events,
    expect_err, last_checkpoint,
};

const WORKERS: u32 = 3;

/// Each stream's items, in the order they came.
type PerStream = BTreeMap<StreamId, Vec<(Version, bool)>>;

fn per_stream(items: impl IntoIterator<Item = FeedItem>) -> PerStream {
    let mut out = PerStream::new();
    for item in items {
        let (stream, version, marker) = match item {
            FeedItem::Event(e) => (e.stream, e.version, false),
            FeedItem::Deleted {
                stream, version, ..
            } => (stream, version, true),
        };
        out.entry(stream).or_default().push((version, marker));
    }
    out
}

/// Reads worker `w`'s share from `from` to the feed's current end.
async fn worker(
    h: &Harness,
    from: &Checkpoint,
    w: u32,
) -> Result<(PerStream, Checkpoint), CaseFailure> {
    let batches = catch_up(
        &*h.store,
        FeedStart::After(from.clone()),
        h.feed_opts(false).split(w, WORKERS),
    )
    .await?;
    let checkpoint = last_checkpoint(&batches)?;
    Ok((
        per_stream(batches.into_iter().flat_map(|b| b.items)),
        checkpoint,
    ))
}

/// Checks the workers' shares: each stream's items in exactly one of them, as `whole` has them.
fn check_shares(whole: &PerStream, shares: &[PerStream], what: &str) -> CaseResult {
    for (stream, items) in whole {
        let with: Vec<usize> = (0..shares.len())
            .filter(|w| shares[*w].contains_key(stream))
            .collect();
        check_eq!(
            with.len(),
            1,
            "{what}: the workers that got {stream} ({with:?})"
        );
        check_eq!(
            shares[with[0]][stream],
            *items,
            "{what}: worker {}'s items of {stream}",
            with[0]
        );
    }
    for (w, share) in shares.iter().enumerate() {
        let stray: Vec<_> = share.keys().filter(|s| !whole.contains_key(*s)).collect();
        check!(
            stray.is_empty(),
            "{what}: worker {w} got {stray:?}, which no unsplit reader got"
        );
    }
    Ok(())
}

/// Three workers split the feed: every stream's items reach one worker, in order, the same as
/// an unsplit reader gets them; resumed from their own checkpoints they get what came since,
/// each stream still at the same worker. A worker number not below the workers is refused.
pub async fn feed_split_between_workers(h: &Harness) -> CaseResult {
    let start = last_checkpoint(&catch_up(&*h.store, FeedStart::Now, h.feed_opts(false)).await?)?;
    let streams: Vec<StreamId> = (0..12)
        .map(|i| h.stream("split", &format!("s{i}")))
        .collect();
    for (i, s) in streams.iter().enumerate() {
        h.store
            .append(s, ExpectedVersion::NoStream, events("split", 1 + i % 3))
            .await?;
    }
    let total: usize = (0..streams.len()).map(|i| 1 + i % 3).sum();
    let whole = catch_up_settled(
        &*h.store,
        FeedStart::After(start.clone()),
        h.feed_opts(false),
        total,
    )
    .await?;
    let whole = per_stream(whole.into_iter().flat_map(|b| b.items));
    check_eq!(whole.len(), streams.len(), "streams an unsplit reader got");

    let mut shares = Vec::new();
    let mut checkpoints = Vec::new();
    for w in 0..WORKERS {
        let (share, checkpoint) = worker(h, &start, w).await?;
        shares.push(share);
        checkpoints.push(checkpoint);
    }
    check_shares(&whole, &shares, "from a checkpoint")?;

    // More of every stream: each worker resumes from its own checkpoint.
    for s in &streams {
        h.store
            .append(s, ExpectedVersion::Any, events("more", 1))
            .await?;
    }
    let before: BTreeMap<StreamId, usize> =
        whole.iter().map(|(s, i)| (s.clone(), i.len())).collect();
    let whole = catch_up_settled(
        &*h.store,
        FeedStart::After(start.clone()),
        h.feed_opts(false),
        total + streams.len(),
    )
    .await?;
    let whole = per_stream(whole.into_iter().flat_map(|b| b.items));
    let mut resumed = Vec::new();
    for (w, c) in checkpoints.iter().enumerate() {
        let (share, _) = worker(h, c, w as u32).await?;
        // What came since the worker's checkpoint: items of its own streams, after the ones it
        // had (a partitioned store may repeat some; none may be missing).
        let mut since = PerStream::new();
        for (stream, items) in share {
            let Some(owner) = shares.iter().position(|s| s.contains_key(&stream)) else {
                return Err(CaseFailure {
                    message: format!("resumed worker {w} got {stream}, which no worker had"),
                });
            };
            check_eq!(owner, w, "the worker that gets {stream} after a resume");
            since.insert(stream, items);
        }
        resumed.push(since);
    }
    for (stream, items) in &whole {
        let had = before.get(stream).copied().unwrap_or(0);
        let got = resumed
            .iter()
            .find_map(|r| r.get(stream))
            .cloned()
            .unwrap_or_default();
        check!(
            items.ends_with(&got) && got.len() >= items.len() - had,
            "{stream} after a resume: got {got:?}; all its items are {items:?}, {had} of them before the checkpoint"
        );
    }

    let mut bad = h
        .store
        .changes(FeedStart::Now, h.feed_opts(false).split(WORKERS, WORKERS));
    let first = bad.next().await.ok_or_else(|| CaseFailure {
        message: "a feed split for worker 3 of 3 ended without an error".into(),
    })?;
    expect_err(first, "a feed split for worker 3 of 3", |e| {
        matches!(e, StoreError::InvalidInput { .. })
    })?;
    Ok(())
}
