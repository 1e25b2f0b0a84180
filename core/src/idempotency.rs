//! Rule 3 in one place: is an append a re-send of an earlier one?

use crate::error::{Result, StoreError};
use crate::event::{AppendResult, EventData, RecordedEvent};
use crate::id::{EventId, StreamId, Version};

/// An event already stored under an id of the incoming append, with the versions of the append
/// that wrote it.
#[derive(Debug, Clone, Copy)]
pub struct PriorEvent<'a> {
    /// The stored event.
    pub event: &'a RecordedEvent,
    /// First version of the append that wrote it.
    pub append_first: Version,
    /// Last version of that append.
    pub append_last: Version,
}

/// Decides whether `events` re-send an earlier append, given `lookup` of the stream's stored
/// events by id (within the store's idempotency window):
///
/// * no id known → `Ok(None)`: a new append;
/// * every event stored with the same content, in order, as exactly one earlier append →
///   `Ok(Some(result))` with the original versions and `deduplicated: true`;
/// * anything else (other content, a part of an append, extra events) →
///   [`StoreError::IdempotencyConflict`] naming the first event that does not match.
pub fn match_resend<'a>(
    stream: &StreamId,
    events: &[EventData],
    lookup: impl Fn(EventId) -> Option<PriorEvent<'a>>,
) -> Result<Option<AppendResult>> {
    let found: Vec<Option<PriorEvent<'a>>> = events.iter().map(|e| lookup(e.id)).collect();
    let conflict = |id| StoreError::IdempotencyConflict {
        stream: stream.clone(),
        event_id: id,
    };
    let Some(first) = found.first().copied().flatten() else {
        return match events.iter().zip(&found).find(|(_, f)| f.is_some()) {
            Some((e, _)) => Err(conflict(e.id)),
            None => Ok(None),
        };
    };
    let start = first.event.version;
    let last = start.plus(events.len() as u64 - 1);
    for (i, (e, prior)) in events.iter().zip(&found).enumerate() {
        let matches = prior.is_some_and(|p| {
            p.event.version == start.plus(i as u64)
                && p.append_first == start
                && p.append_last == last
                && e.same_content(p.event)
        });
        if !matches {
            return Err(conflict(e.id));
        }
    }
    Ok(Some(AppendResult {
        first: start,
        last,
        deduplicated: true,
    }))
}
