//! Cases for a store whose replies a test can lose on purpose: the service carries a write out
//! and its answer never arrives, so the store's retry (its SDK's or the kit's loop) meets the
//! write's own effect. The store must answer the write's true result, and have stored it once.
//!
//! A backend's fault tests implement [`LoseReplies`] over what injects its faults (a proxy in
//! front of its server, or its SDK's fault injection) and call these cases. A store whose delete
//! takes several requests loses each of them in a test of its own with [`stream_to_delete`] and
//! [`deleted_once`]. A store that offloads snapshots to a blob service implements
//! [`FaultBlobs`] over what faults its blob requests and calls [`blob_faults_within_the_budget`]
//! and [`blob_faults_past_the_budget`].
//!
//! ```no_run
//! use std::sync::Arc;
//! use sekiban_conformance::Harness;
//! use sekiban_conformance::faults::{LoseReplies, Write, lost_append_replies};
//!
//! struct MyFaults; // e.g. a proxy's rules
//! impl LoseReplies for MyFaults {
//!     fn lose_next(&self, _write: Write) { /* drop the reply of the next such request */ }
//!     fn injected(&self) -> usize { 0 }
//!     fn clear(&self) {}
//! }
//!
//! # async fn run(h: Harness) {
//! lost_append_replies(&h, &MyFaults).await.unwrap();
//! # }
//! ```

use bytes::Bytes;
use sekiban_core::snapshot::stream_blob_prefix;
use sekiban_core::{
    ChangeBatch, Checkpoint, DeleteMode, EventData, ExpectedVersion, FeedOptions, FeedStart,
    OpKind, Snapshot, Store, StoreError, StreamId, Version,
};

use crate::{
    CaseFailure, CaseResult, Harness, catch_up, check, check_eq, check_events, deletion_markers,
    events, feed_events, read_all, versions,
};

/// The writes whose replies the cases lose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Write {
    /// An append to a stream with no events yet (`NoStream`, or `Any` on a new stream).
    AppendNew,
    /// An append to a stream with events (`StreamExists`, `Exact`).
    AppendExisting,
    /// A checkpoint saved under a name not saved before.
    CheckpointNew,
    /// A checkpoint saved over one, on its etag.
    CheckpointOver,
    /// A soft delete's write that hides the stream (and writes its marker).
    SoftDelete,
    /// A hard delete's write that makes the stream a tombstone.
    HardDelete,
    /// A snapshot pointer's write (after its blob was put).
    SnapshotPointer,
}

/// Loses replies on purpose.
pub trait LoseReplies: Send + Sync {
    /// The next request that carries `write` is carried out by the service and its reply
    /// lost.
    fn lose_next(&self, write: Write);
    /// How many faults were injected so far.
    fn injected(&self) -> usize;
    /// No more faults from here on.
    fn clear(&self);
}

/// An append whose reply was lost, of 1, 16, 17 and the store's most events, under each kind of
/// expected version, is answered with its versions (never `WrongExpectedVersion` or
/// `IdempotencyConflict`), counted as retried, and stored once: versions contiguous, the events
/// as sent.
pub async fn lost_append_replies(h: &Harness, f: &dyn LoseReplies) -> CaseResult {
    let max = h.store.limits().max_append_events;
    for n in [1, 16, 17, max] {
        for kind in ["NoStream", "Any", "StreamExists", "Exact"] {
            let s = h.new_stream("lost");
            let mut sent: Vec<EventData> = Vec::new();
            let (expected, write) = match kind {
                "NoStream" => (ExpectedVersion::NoStream, Write::AppendNew),
                "Any" => (ExpectedVersion::Any, Write::AppendNew),
                _ => {
                    let first = events("first", 1);
                    h.store
                        .append(&s, ExpectedVersion::NoStream, first.clone())
                        .await?;
                    sent.extend(first);
                    let e = if kind == "Exact" {
                        ExpectedVersion::Exact(Version(1))
                    } else {
                        ExpectedVersion::StreamExists
                    };
                    (e, Write::AppendExisting)
                }
            };
            let what = format!("{n} events under {kind}, the reply lost");
            let batch = events(&format!("{kind}-{n}"), n);
            let (before, injected) = (h.store.costs(), f.injected());
            f.lose_next(write);
            let r = h.store.append(&s, expected, batch.clone()).await;
            f.clear();
            let spent = h.store.costs() - before;
            check_eq!(f.injected(), injected + 1, "{what}: faults injected");
            let r = r.map_err(|e| crate::CaseFailure {
                message: format!("{what}: {e}"),
            })?;
            let first = sent.len() as u64 + 1;
            check_eq!(
                (r.first, r.last),
                (Version(first), Version(first + n as u64 - 1)),
                "{what}: the versions answered"
            );
            check!(
                spent.retries(OpKind::Append) >= 1,
                "{what}: the retry was not counted ({spent})"
            );
            sent.extend(batch);
            check_events(&read_all(&*h.store, &s).await?, &sent, Version(1), &what)?;
        }
    }
    Ok(())
}

/// A checkpoint save whose reply was lost, under a new name and over an etag, is answered with
/// the etag it wrote (never a conflict with itself), which the next load hands out and the next
/// save accepts; the etags before it still conflict.
pub async fn lost_checkpoint_replies(h: &Harness, f: &dyn LoseReplies) -> CaseResult {
    let st = &*h.store;
    let name = h.checkpoint_name("lost");
    let mut etags = Vec::new();
    for (write, value) in [
        (Write::CheckpointNew, "one"),
        (Write::CheckpointOver, "two"),
    ] {
        let cp = Checkpoint::new(value);
        let (before, injected) = (st.costs(), f.injected());
        f.lose_next(write);
        let saved = st.save_checkpoint(&name, &cp, etags.last()).await;
        f.clear();
        let spent = st.costs() - before;
        check_eq!(f.injected(), injected + 1, "{write:?}: faults injected");
        let etag = saved.map_err(|e| crate::CaseFailure {
            message: format!("{write:?} whose reply was lost: {e}"),
        })?;
        check!(
            spent.retries(OpKind::Checkpoint) >= 1,
            "{write:?}: the retry was not counted ({spent})"
        );
        check_eq!(
            st.load_checkpoint(&name).await?,
            Some((cp, etag.clone())),
            "{write:?}: the checkpoint loaded"
        );
        etags.push(etag);
    }
    for (expected, what) in [(etags.first(), "from a stale etag"), (None, "as new")] {
        let r = st
            .save_checkpoint(&name, &Checkpoint::new("three"), expected)
            .await;
        check!(
            matches!(r, Err(StoreError::CheckpointConflict { .. })),
            "a save {what} after a recognised one: {r:?}"
        );
    }
    st.save_checkpoint(&name, &Checkpoint::new("three"), etags.last())
        .await?;
    Ok(())
}

/// A snapshot of `stream` at `version` too large to be stored inline: its state is offloaded
/// to the blob store, every byte `byte`.
fn offloaded(h: &Harness, stream: &StreamId, version: u64, byte: u8) -> Snapshot {
    Snapshot {
        stream: stream.clone(),
        version: Version(version),
        state_type: "State".into(),
        schema_version: 1,
        state: Bytes::from(vec![
            byte;
            h.store.limits().max_inline_snapshot_bytes + 1024
        ]),
    }
}

/// A stream to delete: three events, and an offloaded snapshot at version 3.
pub async fn stream_to_delete(h: &Harness) -> Result<StreamId, CaseFailure> {
    let s = h.new_stream("deleted");
    h.store
        .append(&s, ExpectedVersion::NoStream, events("d", 3))
        .await?;
    h.store.save_snapshot(offloaded(h, &s, 3, 7)).await?;
    Ok(s)
}

/// After a delete of a [`stream_to_delete`] whose reply was lost: one deletion marker on the
/// feed; after a hard delete no blob of the stream and no append; after a soft delete nothing
/// visible, and the next append at version 4.
pub async fn deleted_once(h: &Harness, s: &StreamId, mode: DeleteMode) -> CaseResult {
    check_eq!(
        deletion_markers(h, s, 1).await?.len(),
        1,
        "{mode:?}: deletion markers on the feed"
    );
    match mode {
        DeleteMode::Soft => {
            check_eq!(
                read_all(&*h.store, s).await?.len(),
                0,
                "{mode:?}: events visible"
            );
            // The snapshot of a hidden version is dropped, its blob with it.
            let left = h.blobs.list(&stream_blob_prefix(s)).await?;
            check!(left.is_empty(), "{mode:?}: blobs left: {left:?}");
            let r = h
                .store
                .append(s, ExpectedVersion::Exact(Version(3)), events("after", 1))
                .await?;
            check_eq!(r.first, Version(4), "{mode:?}: the next append");
            check_eq!(
                read_all(&*h.store, s).await?.len(),
                1,
                "{mode:?}: events visible after the next append"
            );
        }
        DeleteMode::Hard => {
            let left = h.blobs.list(&stream_blob_prefix(s)).await?;
            check!(left.is_empty(), "{mode:?}: blobs left: {left:?}");
            let r = h
                .store
                .append(s, ExpectedVersion::Any, events("again", 1))
                .await;
            check!(
                matches!(r, Err(StoreError::StreamDeleted { .. })),
                "{mode:?}: an append to the erased stream: {r:?}"
            );
        }
    }
    Ok(())
}

/// A soft and a hard delete whose replies were lost have one effect and one marker each
/// ([`deleted_once`]).
pub async fn lost_delete_replies(h: &Harness, f: &dyn LoseReplies) -> CaseResult {
    for (mode, write) in [
        (DeleteMode::Soft, Write::SoftDelete),
        (DeleteMode::Hard, Write::HardDelete),
    ] {
        let s = stream_to_delete(h).await?;
        let injected = f.injected();
        f.lose_next(write);
        let r = h.store.delete_stream(&s, mode).await;
        f.clear();
        check_eq!(f.injected(), injected + 1, "{mode:?}: faults injected");
        r.map_err(|e| CaseFailure {
            message: format!("{mode:?} delete whose reply was lost: {e}"),
        })?;
        deleted_once(h, &s, mode).await?;
    }
    Ok(())
}

/// A snapshot save whose pointer's reply was lost, over an earlier offloaded snapshot, leaves
/// one pointer (the new snapshot loads) and one blob: the one the lost write replaced is
/// deleted.
pub async fn lost_snapshot_pointer_replies(h: &Harness, f: &dyn LoseReplies) -> CaseResult {
    let s = h.new_stream("snap");
    h.store
        .append(&s, ExpectedVersion::NoStream, events("s", 5))
        .await?;
    h.store.save_snapshot(offloaded(h, &s, 3, 8)).await?;
    let newer = offloaded(h, &s, 5, 9);
    let injected = f.injected();
    f.lose_next(Write::SnapshotPointer);
    let r = h.store.save_snapshot(newer.clone()).await;
    f.clear();
    check_eq!(f.injected(), injected + 1, "faults injected");
    r.map_err(|e| CaseFailure {
        message: format!("a snapshot save whose pointer's reply was lost: {e}"),
    })?;
    let loaded = h.store.load_snapshot(&s).await?;
    check!(
        loaded
            .as_ref()
            .is_some_and(|l| l.version == newer.version && l.state == newer.state),
        "the snapshot loaded after the save: {:?}",
        loaded.map(|l| l.version)
    );
    let blobs = h.blobs.list(&stream_blob_prefix(&s)).await?;
    check_eq!(
        blobs.len(),
        1,
        "blobs of the stream (the replaced one deleted): {blobs:?}"
    );
    Ok(())
}

/// The kinds of blob request a snapshot's offload sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlobRequest {
    /// A blob written (a snapshot's state).
    Put,
    /// A blob read (a snapshot loaded).
    Get,
    /// A blob deleted (a replaced snapshot's).
    Delete,
}

/// What a blob request meets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlobFault {
    /// Throttled by the service (429, S3's `SlowDown`): the answer past the budget is
    /// `Throttled`.
    Throttle,
    /// A failure the service calls transient (500, 503): past the budget, `Unavailable`.
    Fail,
    /// Carried out, and the reply lost.
    LoseReply,
    /// The answer cut in the middle of its body.
    Cut,
}

/// Faults blob requests on purpose (e.g. a proxy in front of the blob service).
pub trait FaultBlobs: Send + Sync {
    /// Each of the next `times` requests of the kind meets the fault (`None`: every one),
    /// added to the faults set before.
    fn fault(&self, request: BlobRequest, fault: BlobFault, times: Option<u64>);
    /// How many faults were injected so far.
    fn injected(&self) -> usize;
    /// How many requests of the kind were sent so far, faulted or not.
    fn seen(&self, request: BlobRequest) -> usize;
    /// No more faults from here on.
    fn clear(&self);
}

/// Each kind of blob request faulted once — the upload throttled and then its reply lost (the
/// blob stored), the download cut mid-body, the replaced blob's delete failed — is retried
/// within the budget: the snapshot saves and loads, the replaced blob is gone, and the four
/// retries are counted as `Blob` retries.
pub async fn blob_faults_within_the_budget(h: &Harness, f: &dyn FaultBlobs) -> CaseResult {
    let s = h.new_stream("blobs");
    h.store
        .append(&s, ExpectedVersion::NoStream, events("b", 5))
        .await?;
    let injected = f.injected();
    f.fault(BlobRequest::Put, BlobFault::Throttle, Some(1));
    f.fault(BlobRequest::Put, BlobFault::LoseReply, Some(1));
    f.fault(BlobRequest::Get, BlobFault::Cut, Some(1));
    f.fault(BlobRequest::Delete, BlobFault::Fail, Some(1));
    let before = h.store.costs();
    let answers = async {
        h.store.save_snapshot(offloaded(h, &s, 3, 1)).await?;
        let loaded = h.store.load_snapshot(&s).await?;
        h.store.save_snapshot(offloaded(h, &s, 5, 2)).await?;
        Ok::<_, StoreError>(loaded)
    }
    .await;
    f.clear();
    let loaded = answers.map_err(|e| CaseFailure {
        message: format!("a snapshot saved, loaded and replaced through blob faults: {e}"),
    })?;
    check_eq!(f.injected() - injected, 4, "faults injected");
    check!(
        loaded
            .as_ref()
            .is_some_and(|l| l.version == Version(3) && l.state.first() == Some(&1)),
        "the snapshot loaded through a cut reply: {:?}",
        loaded.map(|l| l.version)
    );
    let newer = h.store.load_snapshot(&s).await?;
    check!(
        newer
            .as_ref()
            .is_some_and(|l| l.version == Version(5) && l.state.first() == Some(&2)),
        "the newer snapshot: {:?}",
        newer.map(|l| l.version)
    );
    let blobs = h.blobs.list(&stream_blob_prefix(&s)).await?;
    check_eq!(
        blobs.len(),
        1,
        "blobs of the stream (the replaced one deleted): {blobs:?}"
    );
    let spent = h.store.costs() - before;
    check_eq!(
        spent.retries(OpKind::Blob),
        4,
        "blob retries counted: {spent}"
    );
    Ok(())
}

/// An upload that meets a fault on every attempt is tried exactly `attempts` times, its retries
/// counted, and answered `Throttled` (throttling) or `Unavailable` (failures, lost replies),
/// with no pointer left to the blob.
pub async fn blob_faults_past_the_budget(
    h: &Harness,
    f: &dyn FaultBlobs,
    attempts: u32,
) -> CaseResult {
    let s = h.new_stream("blobs");
    h.store
        .append(&s, ExpectedVersion::NoStream, events("b", 3))
        .await?;
    for fault in [BlobFault::Throttle, BlobFault::Fail, BlobFault::LoseReply] {
        let (before, seen) = (h.store.costs(), f.seen(BlobRequest::Put));
        f.fault(BlobRequest::Put, fault, None);
        let r = h.store.save_snapshot(offloaded(h, &s, 3, 1)).await;
        f.clear();
        let e = match r {
            Ok(()) => {
                return Err(CaseFailure {
                    message: format!("{fault:?} on every upload: the save succeeded"),
                });
            }
            Err(e) => e,
        };
        check!(e.is_transient(), "{fault:?}: {e}");
        check_eq!(
            matches!(e, StoreError::Throttled { .. }),
            fault == BlobFault::Throttle,
            "{fault:?} answered Throttled: {e}"
        );
        check_eq!(
            f.seen(BlobRequest::Put) - seen,
            attempts as usize,
            "{fault:?}: uploads tried"
        );
        let spent = h.store.costs() - before;
        check_eq!(
            spent.retries(OpKind::Blob),
            u64::from(attempts - 1),
            "{fault:?}: {spent}"
        );
        check!(
            h.store.load_snapshot(&s).await?.is_none(),
            "{fault:?}: a pointer to a blob that failed"
        );
    }
    Ok(())
}

/// A feed read resumed from a checkpoint it handed out: `batches` are a read of `stream` (the only
/// stream `opts` selects, read from before its first event), and the read resumes from the
/// checkpoint of `batches[at]` after two more events are appended to `stream` and `arm` has set
/// whatever fault the resumed read should meet. It must deliver exactly the stream's versions
/// after those handed out up to that batch, the new ones included: nothing before the
/// checkpoint again, nothing lost.
pub async fn resumes_from_a_checkpoint(
    store: &dyn Store,
    stream: &StreamId,
    batches: &[ChangeBatch],
    at: usize,
    opts: FeedOptions,
    arm: impl FnOnce(),
) -> CaseResult {
    let Some(from) = batches.get(at) else {
        return Err(CaseFailure {
            message: format!("no batch {at} to resume from ({} batches)", batches.len()),
        });
    };
    let upto = feed_events(&batches[..=at])
        .last()
        .map_or(0, |e| e.version.0);
    let later = store
        .append(stream, ExpectedVersion::Any, events("later", 2))
        .await?;
    arm();
    let resumed = catch_up(store, FeedStart::After(from.checkpoint.clone()), opts).await?;
    check_eq!(
        versions(&feed_events(&resumed)),
        (upto + 1..=later.last.0).collect::<Vec<_>>(),
        "nothing before the checkpoint again, nothing lost"
    );
    Ok(())
}
