//! The one error type every store returns.

use crate::event::ExpectedVersion;
use crate::id::{EventId, StreamId, Version};

/// The error source boxed inside transient and backend errors.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong, in terms a caller acts on. Messages say what to do next.
///
/// Backends classify service errors by code (a unique violation, a conditional-check failure, a
/// 409/412) into these variants; the message text of a service is never matched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The stream was not at the version the caller expected. Reload the stream and decide again
    /// (the aggregate layer's repository does this); the store never retries it.
    #[error(
        "stream {stream}: expected version {expected}, but the stream is at version {actual}; reload it and retry the command"
    )]
    WrongExpectedVersion {
        /// The stream.
        stream: StreamId,
        /// What the caller expected.
        expected: ExpectedVersion,
        /// The stream's version when the append was refused.
        actual: Version,
    },
    /// One event is larger than the store takes.
    #[error(
        "stream {stream}: event {index} is {size} bytes, over this store's limit of {limit}; store large payloads elsewhere and reference them"
    )]
    EventTooLarge {
        /// The stream.
        stream: StreamId,
        /// Index of the event inside the append.
        index: usize,
        /// Its size in bytes (data, type and metadata).
        size: usize,
        /// The store's limit (`Limits::max_event_bytes`).
        limit: usize,
    },
    /// An append has more events or bytes than one atomic append may carry.
    #[error(
        "stream {stream}: an append of {count} events and {bytes} bytes is over this store's limit of {max_count} events and {max_bytes} bytes; split it into several appends if they need not be atomic"
    )]
    BatchTooLarge {
        /// The stream.
        stream: StreamId,
        /// Events in the append.
        count: usize,
        /// Bytes in the append.
        bytes: usize,
        /// `Limits::max_append_events`.
        max_count: usize,
        /// `Limits::max_append_bytes`.
        max_bytes: usize,
    },
    /// A stream id, tenant or category breaks the naming rule.
    #[error("invalid stream id: {reason}")]
    InvalidStreamId {
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// Other bad input (empty batch, empty event type, NUL in metadata, ...). Nothing was written.
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The stream was hard-deleted (erased); it can never be written again.
    #[error(
        "stream {stream} was erased at version {version}; it cannot be written or read again, use a new stream id"
    )]
    StreamDeleted {
        /// The stream.
        stream: StreamId,
        /// Its last version before erasure.
        version: Version,
    },
    /// Event ids of this append are already stored with other content, or only some of them are.
    #[error(
        "stream {stream}: this append matches stored events only in part or with other content (first mismatch at event id {event_id}); give new events fresh ids, and re-send a lost append unchanged"
    )]
    IdempotencyConflict {
        /// The stream.
        stream: StreamId,
        /// The first event of the append that does not match a stored one.
        event_id: EventId,
    },
    /// A checkpoint save was based on a stale etag: another consumer saved under this name.
    #[error(
        "checkpoint {name:?} was saved by someone else since you loaded it; load it again and decide which consumer owns the name"
    )]
    CheckpointConflict {
        /// The consumer name.
        name: String,
    },
    /// A feed position is older than the service keeps.
    #[error(
        "change feed position expired: {detail}; rebuild the consumer from a snapshot or start from the beginning"
    )]
    FeedPositionExpired {
        /// What expired.
        detail: String,
    },
    /// A checkpoint is malformed or belongs to another store.
    #[error("checkpoint not usable here: {reason}")]
    InvalidCheckpoint {
        /// Why.
        reason: String,
    },
    /// The store's tables, schema, bucket or container are missing, or older than this code:
    /// create or migrate them first (`sekiban init`, the backend's create/migrate call, or the
    /// templates in `infra/`).
    #[error("the store is not set up: {what}")]
    NotInitialized {
        /// What is missing or out of date, and where.
        what: String,
    },
    /// The store lacks a capability.
    #[error("not supported by this store: {what}")]
    Unsupported {
        /// What was asked for.
        what: String,
    },
    /// The service throttled the request past the SDK's retries; back off and retry.
    #[error(
        "throttled by the service after retries; back off and retry: {}",
        Chain(&**source)
    )]
    Throttled {
        /// The service's error.
        #[source]
        source: BoxError,
    },
    /// The service could not be reached or timed out; retry later.
    #[error(
        "service unavailable; check it is running and reachable, then retry: {}",
        Chain(&**source)
    )]
    Unavailable {
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// Bytes read back are not what was written (hash mismatch, undecodable record).
    #[error("corrupt data: {what}")]
    Corrupt {
        /// What is corrupt and where.
        what: String,
    },
    /// Any other backend error, with its source.
    #[error("backend error: {context}: {}", Chain(&**source))]
    Backend {
        /// What the store was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
}

impl StoreError {
    /// Whether retrying the same request later may succeed (throttling, unavailability).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Throttled { .. } | StoreError::Unavailable { .. }
        )
    }

    /// Shorthand for [`StoreError::InvalidInput`].
    pub fn invalid(reason: impl Into<String>) -> Self {
        StoreError::InvalidInput {
            reason: reason.into(),
        }
    }

    /// Shorthand for [`StoreError::Backend`]: what the store was doing, and the driver's error,
    /// kept as the source (its message and its own sources show in the error's message).
    pub fn backend(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        StoreError::Backend {
            context: context.into(),
            source: source.into(),
        }
    }

    /// A [`StoreError::Unavailable`] of what the store was doing (`context`) over the driver's
    /// error, which stays in the source chain for a caller to inspect.
    ///
    /// ```
    /// use std::error::Error;
    /// use sekiban_core::StoreError;
    ///
    /// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    /// let e = StoreError::unavailable("open a connection", io);
    /// assert!(e.to_string().contains("open a connection: refused"), "{e}");
    /// let driver = e.source().and_then(|c| c.source()).unwrap();
    /// assert!(driver.downcast_ref::<std::io::Error>().is_some());
    /// ```
    pub fn unavailable(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        StoreError::Unavailable {
            source: Box::new(InContext {
                context: context.into(),
                source: source.into(),
            }),
        }
    }

    /// A [`StoreError::Unavailable`] that says the store was closed (`why`): transient for
    /// the caller, who may open the store again, but never retried by the store itself
    /// ([`StoreError::is_closed`]).
    ///
    /// ```
    /// use sekiban_core::StoreError;
    ///
    /// let e = StoreError::closed("the store is closed (close() was called)");
    /// assert!(e.is_transient() && e.is_closed());
    /// assert!(!StoreError::unavailable("read", "reset").is_closed());
    /// ```
    pub fn closed(why: impl Into<String>) -> Self {
        StoreError::Unavailable {
            source: Box::new(Closed(why.into())),
        }
    }

    /// Whether this is the error of a closed store ([`StoreError::closed`]).
    pub fn is_closed(&self) -> bool {
        matches!(self, StoreError::Unavailable { source } if source.is::<Closed>())
    }

    /// A [`StoreError::Throttled`] of what the store was doing over the service's error.
    pub fn throttled(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        StoreError::Throttled {
            source: Box::new(InContext {
                context: context.into(),
                source: source.into(),
            }),
        }
    }
}

/// Why a store refuses work after it was closed.
#[derive(Debug)]
struct Closed(String);

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Closed {}

/// What the store was doing, over the error it met: shown as `context: error: its sources` on
/// one line; its `source()` is that error.
#[derive(Debug)]
struct InContext {
    context: String,
    source: BoxError,
}

impl std::fmt::Display for InContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.context, Chain(&*self.source))
    }
}

impl std::error::Error for InContext {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// An error and its sources on one line, each once (a source whose message its error already
/// shows is not repeated).
struct Chain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut shown = self.0.to_string();
        f.write_str(&shown)?;
        let mut next = self.0.source();
        while let Some(s) = next {
            let text = s.to_string();
            if !shown.contains(&text) {
                write!(f, ": {text}")?;
                shown = text;
            }
            next = s.source();
        }
        Ok(())
    }
}

/// Result with [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
