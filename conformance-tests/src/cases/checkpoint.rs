//! Checkpoints of consumers (`CheckpointStore`): saves conditional on the etag, deletes that
//! forget a name, and the rule for names.

use sekiban_core::{Checkpoint, ExpectedVersion, FeedStart, StoreError};

use crate::{
    CaseFailure, CaseResult, Harness, catch_up_settled, check, check_eq, events, expect_err,
    last_checkpoint,
};

/// Checkpoint saves are conditional on the etag: two saves from one etag, the second fails, even
/// when it is further ahead.
pub async fn checkpoint_save_is_conditional(h: &Harness) -> CaseResult {
    let name = h.checkpoint_name("projector");
    let s = h.new_stream("cp");
    check_eq!(
        h.store.load_checkpoint(&name).await?,
        None,
        "checkpoint never saved"
    );
    h.store
        .append(&s, ExpectedVersion::NoStream, events("a", 1))
        .await?;
    let one = catch_up_settled(&*h.store, FeedStart::Beginning, h.feed_opts(false), 1);
    let cp1 = last_checkpoint(&one.await?)?;
    h.store
        .append(&s, ExpectedVersion::Any, events("b", 1))
        .await?;
    let two = catch_up_settled(&*h.store, FeedStart::Beginning, h.feed_opts(false), 2);
    let cp2 = last_checkpoint(&two.await?)?;
    let e1 = h.store.save_checkpoint(&name, &cp1, None).await?;
    let r = h.store.save_checkpoint(&name, &cp2, None).await;
    expect_err(r, "a second first save", |e| {
        matches!(e, StoreError::CheckpointConflict { .. })
    })?;
    let e2 = h.store.save_checkpoint(&name, &cp1, Some(&e1)).await?;
    check!(e2 != e1, "saving again returned the same etag {e1:?}");
    let r = h.store.save_checkpoint(&name, &cp2, Some(&e1)).await;
    expect_err(r, "a save from a stale etag, further ahead", |e| {
        matches!(e, StoreError::CheckpointConflict { .. })
    })?;
    check_eq!(
        h.store.load_checkpoint(&name).await?,
        Some((cp1.clone(), e2.clone())),
        "loaded checkpoint"
    );
    let e3 = h.store.save_checkpoint(&name, &cp2, Some(&e2)).await?;
    check_eq!(
        h.store.load_checkpoint(&name).await?,
        Some((cp2, e3)),
        "after a save from the current etag"
    );
    let other = h.checkpoint_name("other");
    check_eq!(h.store.load_checkpoint(&other).await?, None, "another name");
    Ok(())
}

/// A checkpoint the feed handed out: after one event written to a new stream of this case.
async fn a_checkpoint(h: &Harness) -> Result<Checkpoint, CaseFailure> {
    let s = h.new_stream("cp");
    h.store
        .append(&s, ExpectedVersion::NoStream, events("a", 1))
        .await?;
    let one = catch_up_settled(&*h.store, FeedStart::Beginning, h.feed_opts(false), 1);
    last_checkpoint(&one.await?)
}

/// A deleted checkpoint is gone: it loads as never saved, a save from an etag handed out before
/// the delete fails, a first save works again and hands out an etag never handed out before (so
/// a consumer holding an old etag cannot overwrite the new one), and deleting a missing
/// checkpoint does nothing. Other names are untouched.
pub async fn checkpoint_delete_forgets_the_name(h: &Harness) -> CaseResult {
    let (name, kept) = (h.checkpoint_name("retired"), h.checkpoint_name("kept"));
    let cp = a_checkpoint(h).await?;
    let mut handed_out = vec![h.store.save_checkpoint(&name, &cp, None).await?];
    handed_out.push(
        h.store
            .save_checkpoint(&name, &cp, handed_out.last())
            .await?,
    );
    let kept_tag = h.store.save_checkpoint(&kept, &cp, None).await?;

    h.store.delete_checkpoint(&name).await?;
    check_eq!(
        h.store.load_checkpoint(&name).await?,
        None,
        "a deleted checkpoint"
    );
    for old in &handed_out {
        let r = h.store.save_checkpoint(&name, &cp, Some(old)).await;
        expect_err(
            r,
            &format!("a save from etag {old:?}, after the delete"),
            |e| matches!(e, StoreError::CheckpointConflict { .. }),
        )?;
    }
    let fresh = h.store.save_checkpoint(&name, &cp, None).await?;
    check!(
        !handed_out.contains(&fresh),
        "the first save after a delete handed out {fresh:?}, an etag handed out before the delete ({handed_out:?}): a consumer holding it could overwrite the new checkpoint"
    );
    for old in &handed_out {
        let r = h.store.save_checkpoint(&name, &cp, Some(old)).await;
        expect_err(r, &format!("a save from the old etag {old:?}"), |e| {
            matches!(e, StoreError::CheckpointConflict { .. })
        })?;
    }
    check_eq!(
        h.store.load_checkpoint(&name).await?,
        Some((cp.clone(), fresh)),
        "the checkpoint saved after the delete"
    );
    check_eq!(
        h.store.load_checkpoint(&kept).await?,
        Some((cp, kept_tag)),
        "another checkpoint after the delete"
    );
    let missing = h.checkpoint_name("never-saved");
    h.store.delete_checkpoint(&missing).await?;
    h.store.delete_checkpoint(&name).await?;
    h.store.delete_checkpoint(&name).await?;
    check_eq!(
        h.store.load_checkpoint(&name).await?,
        None,
        "a checkpoint deleted twice"
    );
    Ok(())
}

/// Checkpoint names are 1..=200 bytes without NUL (`MAX_CHECKPOINT_NAME_LEN`): a name of exactly
/// 200 bytes saves, loads and deletes; an empty one, one of 201 bytes and one with a NUL are
/// refused with `InvalidInput` by save, load and delete alike, and nothing is saved.
pub async fn checkpoint_names_checked(h: &Harness) -> CaseResult {
    use sekiban_core::store::MAX_CHECKPOINT_NAME_LEN as MAX;
    let cp = a_checkpoint(h).await?;
    let longest = h.checkpoint_name(&"x".repeat(MAX - h.tenant.len() - 1));
    check_eq!(longest.len(), MAX, "the longest name's length");
    let tag = h.store.save_checkpoint(&longest, &cp, None).await?;
    check_eq!(
        h.store.load_checkpoint(&longest).await?,
        Some((cp.clone(), tag)),
        "a checkpoint named with {MAX} bytes"
    );
    h.store.delete_checkpoint(&longest).await?;
    let too_long = format!("{longest}y");
    for (what, bad) in [
        ("an empty name", String::new()),
        ("a name of 201 bytes", too_long.clone()),
        ("a name with a NUL", format!("{}-a\0b", h.tenant)),
    ] {
        let invalid = |e: &StoreError| matches!(e, StoreError::InvalidInput { .. });
        expect_err(
            h.store.save_checkpoint(&bad, &cp, None).await,
            &format!("saving {what}"),
            invalid,
        )?;
        expect_err(
            h.store.load_checkpoint(&bad).await,
            &format!("loading {what}"),
            invalid,
        )?;
        expect_err(
            h.store.delete_checkpoint(&bad).await,
            &format!("deleting {what}"),
            invalid,
        )?;
    }
    // Nothing was saved under a longer name that a store might have cut to 200 bytes.
    check_eq!(
        h.store.load_checkpoint(&longest).await?,
        None,
        "the 200-byte name after refused saves of a 201-byte one"
    );
    Ok(())
}
