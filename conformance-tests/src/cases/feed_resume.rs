//! Rule 5, resuming: a feed resumed from any checkpoint it handed out (catching up, following,
//! or stored and loaded back) loses nothing after it; a checkpoint it did not hand out is refused.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use sekiban_core::{Checkpoint, FeedItem, FeedStart, RecordedEvent, StoreError, StreamId};

use super::feed::write_interleaved;
use crate::{
    CaseFailure, CaseResult, Harness, catch_up, catch_up_settled, check, check_eq, expect_err,
    feed_events, last_checkpoint,
};

/// Resuming from each checkpoint the feed handed out delivers what came after it: on a feed of
/// one partition exactly the rest, in the same order; on a partitioned feed (no order across
/// streams) every event not delivered yet, per stream in order, each once, and nothing else but
/// repeats of events delivered before the checkpoint.
pub async fn feed_resumes_from_every_checkpoint(h: &Harness) -> CaseResult {
    let total = write_interleaved(h, 3, 3).await?;
    let batches = catch_up_settled(
        &*h.store,
        FeedStart::Beginning,
        h.feed_opts(false).max_batch(2),
        total,
    )
    .await?;
    let all = feed_events(&batches);
    check!(
        batches.len() >= 3,
        "only {} batches of at most 2 events",
        batches.len()
    );
    let mut seen = 0;
    for (i, b) in batches.iter().enumerate() {
        seen += b.items.iter().filter(|i| i.as_event().is_some()).count();
        let resumed = feed_events(
            &catch_up(
                &*h.store,
                FeedStart::After(b.checkpoint.clone()),
                h.feed_opts(false),
            )
            .await?,
        );
        let what = format!("events after checkpoint {i} ({})", b.checkpoint);
        check_resumed(h, &all, seen, &resumed, &what)?;
    }
    Ok(())
}

/// Checks a feed resumed from a checkpoint handed out after `all[..seen]`: on one partition
/// exactly `all[seen..]`, in order; on several, every event of `all[seen..]`, each once, per
/// stream in order, and nothing else but repeats of `all[..seen]`.
fn check_resumed(
    h: &Harness,
    all: &[RecordedEvent],
    seen: usize,
    resumed: &[RecordedEvent],
    what: &str,
) -> CaseResult {
    let key = |e: &RecordedEvent| (e.stream.clone(), e.version);
    let want: Vec<_> = all[seen..].iter().map(key).collect();
    let got: Vec<_> = resumed.iter().map(key).collect();
    if h.store.capabilities().feed_partitions <= 1 {
        check_eq!(got, want, "{what}");
        return Ok(());
    }
    let got_set: HashSet<_> = got.iter().cloned().collect();
    check_eq!(got_set.len(), got.len(), "{what}: an event came twice");
    let missing: Vec<_> = want.iter().filter(|k| !got_set.contains(*k)).collect();
    check!(missing.is_empty(), "{what}: lost {missing:?}");
    let before: HashSet<_> = all[..seen].iter().map(key).collect();
    let stray: Vec<_> = got
        .iter()
        .filter(|k| !want.contains(k) && !before.contains(*k))
        .collect();
    check!(
        stray.is_empty(),
        "{what}: delivered {stray:?}, neither after the checkpoint nor a repeat of an event before it"
    );
    // Per stream in order, from wherever the resumed feed starts that stream.
    let mut next: BTreeMap<StreamId, u64> = BTreeMap::new();
    for e in resumed {
        if let Some(n) = next.get(&e.stream) {
            check_eq!(e.version.0, *n, "{what}: order of {}", e.stream);
        }
        next.insert(e.stream.clone(), e.version.0 + 1);
    }
    Ok(())
}

/// Checkpoints a following reader hands out, and the same checkpoints saved and loaded through
/// the `CheckpointStore`, resume like catch-up ones: nothing after them lost, per stream in
/// order, repeats only of events before them. So does the checkpoint of a `Now` feed that has
/// delivered nothing yet.
pub async fn feed_resumes_from_following_and_stored_checkpoints(h: &Harness) -> CaseResult {
    // A `Now` checkpoint taken before anything of this case exists, saved and loaded back.
    let now = last_checkpoint(&catch_up(&*h.store, FeedStart::Now, h.feed_opts(false)).await?)?;
    let name = h.checkpoint_name("resume");
    let mut etag = Some(h.store.save_checkpoint(&name, &now, None).await?);
    let total = write_interleaved(h, 3, 3).await?;
    // A following reader from the beginning, in small batches: every checkpoint it hands out.
    let deadline = h.store.limits().feed_poll_interval * 3 + Duration::from_secs(10);
    let mut follow = h
        .store
        .changes(FeedStart::Beginning, h.feed_opts(true).max_batch(2));
    let mut all = Vec::new();
    let mut checkpoints = Vec::new();
    while all.len() < total {
        let b = match tokio::time::timeout(deadline, follow.next()).await {
            Ok(Some(b)) => b?,
            other => {
                return Err(CaseFailure {
                    message: format!("following: {other:?} after {} events", all.len()),
                });
            }
        };
        all.extend(b.items.iter().filter_map(FeedItem::as_event).cloned());
        checkpoints.push((all.len(), b.checkpoint));
    }
    drop(follow);
    let loaded = h.store.load_checkpoint(&name).await?;
    let (stored_now, _) = loaded.ok_or_else(|| CaseFailure {
        message: "the saved Now checkpoint was not loaded back".into(),
    })?;
    let resumed = feed_events(
        &catch_up_settled(
            &*h.store,
            FeedStart::After(stored_now),
            h.feed_opts(false),
            total,
        )
        .await?,
    );
    check_resumed(h, &all, 0, &resumed, "events after a stored Now checkpoint")?;
    for (i, (seen, cp)) in checkpoints.into_iter().enumerate() {
        etag = Some(h.store.save_checkpoint(&name, &cp, etag.as_ref()).await?);
        let (stored, _) = h
            .store
            .load_checkpoint(&name)
            .await?
            .ok_or_else(|| CaseFailure {
                message: "a saved checkpoint was not loaded back".into(),
            })?;
        let resumed =
            feed_events(&catch_up(&*h.store, FeedStart::After(stored), h.feed_opts(false)).await?);
        let what = format!("events after the following reader's checkpoint {i}, stored ({cp})");
        check_resumed(h, &all, seen, &resumed, &what)?;
    }
    Ok(())
}

/// A checkpoint that the store did not hand out is refused, not silently read from zero.
pub async fn feed_rejects_foreign_checkpoint(h: &Harness) -> CaseResult {
    for bad in ["", "garbage", "mem:0000:5", "{\"pos\": 1}"] {
        let mut s = h
            .store
            .changes(FeedStart::After(Checkpoint::new(bad)), h.feed_opts(false));
        let Some(r) = s.next().await else {
            return Err(CaseFailure {
                message: format!("the feed after checkpoint {bad:?} ended without an error"),
            });
        };
        expect_err(r, &format!("feed after checkpoint {bad:?}"), |e| {
            matches!(e, StoreError::InvalidCheckpoint { .. })
        })?;
    }
    Ok(())
}
