//! Cases for a store whose replies a test can lose on purpose: the service carries a write out
//! and its answer never arrives, so the store's retry (its SDK's or the kit's loop) meets the
//! write's own effect. The store must answer the write's true result, and have stored it once.
//!
//! A backend's fault tests implement [`LoseReplies`] over what injects its faults (a proxy in
//! front of its server, or its SDK's fault injection) and call these cases; deletes and snapshot
//! saves take requests of their own on each store, so their cases stay with the backends.
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

use sekiban_core::{Checkpoint, EventData, ExpectedVersion, OpKind, StoreError, Version};

use crate::{CaseResult, Harness, check, check_eq, check_events, events, read_all};

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
