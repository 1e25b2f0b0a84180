//! Checks of what the store returned against the model: comparisons that describe a difference,
//! the outcome of a result for counting, and every sighting of an event against the earlier ones.

use std::fmt;
use std::time::{Duration, SystemTime};

use sekiban_core::RecordedEvent;

use crate::model::rules::Fault;

use super::Run;

/// A check that failed: what was done and what differed.
pub(super) type Step = Result<(), String>;

fn mismatch<T: fmt::Debug>(what: &str, store: &T, model: &T) -> String {
    format!("{what}\n      store returned {store:?}\n      model expects  {model:?}")
}

pub(super) fn compare<T: fmt::Debug + PartialEq>(what: &str, store: T, model: T) -> Step {
    if store == model {
        Ok(())
    } else {
        Err(mismatch(what, &store, &model))
    }
}

/// Compares two lists of events; a difference shows the versions of both and the first pair that
/// differs, not every event.
pub(super) fn compare_events<T: fmt::Debug + PartialEq>(
    what: &str,
    store: &[T],
    model: &[T],
    version: impl Fn(&T) -> u64,
) -> Step {
    if store == model {
        return Ok(());
    }
    let i = store
        .iter()
        .zip(model)
        .position(|(a, b)| a != b)
        .unwrap_or(store.len().min(model.len()));
    let versions = |l: &[T]| l.iter().map(&version).collect::<Vec<_>>();
    Err(format!(
        "{what}\n      store returned versions {:?}\n      model expects  versions {:?}\n      first difference at position {i}:\n      store returned {:?}\n      model expects  {:?}",
        versions(store),
        versions(model),
        store.get(i),
        model.get(i)
    ))
}

/// The variant of a result, for counting outcomes.
pub(super) fn outcome<T>(r: &Result<T, Fault>) -> &'static str {
    match r {
        Ok(_) => "Ok",
        Err(Fault::WrongExpectedVersion { .. }) => "WrongExpectedVersion",
        Err(Fault::EventTooLarge { .. }) => "EventTooLarge",
        Err(Fault::BatchTooLarge { .. }) => "BatchTooLarge",
        Err(Fault::InvalidInput) => "InvalidInput",
        Err(Fault::StreamDeleted { .. }) => "StreamDeleted",
        Err(Fault::IdempotencyConflict { .. }) => "IdempotencyConflict",
        Err(Fault::Unexpected(_)) => "unexpected error",
    }
}

impl Run<'_> {
    /// Checks an event a read, the feed or a round's read-back returned against every earlier
    /// sighting of the same (stream, version), in full: what the model compares and the store's
    /// recorded time too, which must also lie within an hour of this machine's clock.
    pub(super) fn same_event(&mut self, what: &str, e: &RecordedEvent) -> Step {
        let now = SystemTime::now();
        let skew = match e.recorded_at.duration_since(now) {
            Ok(ahead) => ahead,
            Err(behind) => behind.duration(),
        };
        if skew > Duration::from_secs(3600) {
            return Err(format!(
                "{what}: version {} of {} was recorded at {:?}, {skew:.0?} away from this machine's clock ({now:?})",
                e.version, e.stream, e.recorded_at
            ));
        }
        match self.recorded.get(&(e.stream.clone(), e.version.0)) {
            Some(before) if before != e => Err(format!(
                "{what}: version {} of {} differs from an earlier read of it\n      now     {e:?}\n      earlier {before:?}",
                e.version, e.stream
            )),
            Some(_) => Ok(()),
            None => {
                self.recorded
                    .insert((e.stream.clone(), e.version.0), e.clone());
                Ok(())
            }
        }
    }
}
