//! Change-feed vocabulary: where to start, what comes back, and checkpoints.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::event::{DeleteMode, RecordedEvent};
use crate::id::{StreamId, Version};

/// An opaque, serialisable resume token of a change feed.
///
/// Its inside is the backend's (a global position, a map of shard positions, continuation tokens)
/// and names the store it came from, so a checkpoint used on another store fails loudly.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Checkpoint(String);

impl Checkpoint {
    /// Wraps a backend's encoded position.
    pub fn new(encoded: impl Into<String>) -> Self {
        Checkpoint(encoded.into())
    }
    /// The encoded position.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Checkpoint({})", self.0)
    }
}

/// An opaque version tag of a saved checkpoint; saves are conditional on it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Etag(pub String);

/// Where a change feed starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedStart {
    /// The oldest position the store keeps (see `Capabilities::feed_history`).
    Beginning,
    /// Only events committed after the feed is first polled. A store whose feed delivers a commit
    /// only once every older transaction has finished (PostgreSQL) starts where everything before
    /// is deliverable, so an event committed just before, while an older transaction was still
    /// open elsewhere, may come too: at-least-once, never fewer.
    Now,
    /// Right after a checkpoint the feed handed out.
    After(Checkpoint),
}

/// How to read a change feed.
///
/// ```
/// use sekiban_core::FeedOptions;
/// let opts = FeedOptions::follow().tenant("acme").max_batch(50);
/// assert!(opts.follow);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FeedOptions {
    /// Only this tenant's streams (filtered by the service where it can, else on the client).
    pub tenant: Option<String>,
    /// Only this category's streams.
    pub category: Option<String>,
    /// Most events in one batch; `None`: the store's page size.
    pub max_batch: Option<usize>,
    /// `true`: wait for new events forever. `false`: deliver what is committed and end; the last
    /// batch (empty when there was nothing to deliver) carries the checkpoint to resume from.
    pub follow: bool,
    /// Read only one worker's share of the feed's partitions (see [`FeedSplit`]).
    pub split: Option<FeedSplit>,
}

/// One of several workers that split a feed between them: each partition of the feed (a shard,
/// a feed range; SQL and memory stores have one) is read by exactly one worker, so each
/// stream's events reach one worker, in order. Each worker keeps its own checkpoint; together
/// they hold every partition's position once.
///
/// ```
/// use sekiban_core::FeedOptions;
/// let second_of_three = FeedOptions::follow().split(1, 3);
/// assert_eq!(second_of_three.split.map(|s| (s.worker, s.workers)), Some((1, 3)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FeedSplit {
    /// This worker's number, below `workers`.
    pub worker: u32,
    /// How many workers split the feed.
    pub workers: u32,
}

impl FeedOptions {
    /// Follow the feed forever.
    pub fn follow() -> Self {
        FeedOptions {
            tenant: None,
            category: None,
            max_batch: None,
            follow: true,
            split: None,
        }
    }
    /// Deliver what is committed now, then end.
    pub fn catch_up() -> Self {
        FeedOptions {
            follow: false,
            ..Self::follow()
        }
    }
    /// Only one tenant.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }
    /// Only one category.
    pub fn category(mut self, category: impl Into<String>) -> Self {
        self.category = Some(category.into());
        self
    }
    /// Read only the partitions of worker `worker` of `workers` (numbered from 0); a worker
    /// number not below `workers` fails the feed's first poll.
    pub fn split(mut self, worker: u32, workers: u32) -> Self {
        self.split = Some(FeedSplit { worker, workers });
        self
    }
    /// At most `n` events a batch.
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = Some(n.max(1));
        self
    }

    /// Whether a stream passes the tenant and category filters.
    pub fn matches(&self, stream: &StreamId) -> bool {
        self.tenant.as_deref().is_none_or(|t| t == stream.tenant())
            && self
                .category
                .as_deref()
                .is_none_or(|c| c == stream.category())
    }
}

impl Default for FeedOptions {
    fn default() -> Self {
        Self::follow()
    }
}

/// One entry of the change feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedItem {
    /// An appended event.
    Event(RecordedEvent),
    /// A stream was deleted; a projection erases what it derived from it.
    Deleted {
        /// The stream.
        stream: StreamId,
        /// Its last version when deleted.
        version: Version,
        /// Soft or hard.
        mode: DeleteMode,
    },
}

impl FeedItem {
    /// The stream the item is about.
    pub fn stream(&self) -> &StreamId {
        match self {
            FeedItem::Event(e) => &e.stream,
            FeedItem::Deleted { stream, .. } => stream,
        }
    }
    /// The event, if this is one.
    pub fn as_event(&self) -> Option<&RecordedEvent> {
        match self {
            FeedItem::Event(e) => Some(e),
            FeedItem::Deleted { .. } => None,
        }
    }
    /// Its size as the limits count it: an event's [`RecordedEvent::size`], 0 for a marker.
    pub fn size(&self) -> usize {
        self.as_event().map_or(0, RecordedEvent::size)
    }
}

/// Items delivered together and the checkpoint to resume after them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeBatch {
    /// Events and deletion markers, per stream in version order.
    pub items: Vec<FeedItem>,
    /// Resume after the last item of this batch.
    pub checkpoint: Checkpoint,
}

/// One poll of a store's log for a change feed, in the store's own positions `P`: the items in
/// order with their positions, the position reached, and whether the poll got to the end of what
/// is deliverable now. Backends that read their log in batches share the rule of where a batch
/// stops and where the next one starts ([`FeedPoll::new`]).
#[derive(Clone, Debug)]
pub struct FeedPoll<P> {
    /// The items, with the log position of each.
    pub items: Vec<(P, FeedItem)>,
    /// Where the next poll starts after.
    pub reached: P,
    /// The poll was not stopped by the batch's count or bytes: nothing more is deliverable yet.
    pub at_end: bool,
}

impl<P: Copy> FeedPoll<P> {
    /// A poll after `after` that read `items`, asked for at most `limit`, and was `cut` short at
    /// the batch's byte limit. Stopped by count or bytes, it has reached its last item; otherwise
    /// it has reached `end`, everything the store can deliver now (so the rows the poll's filter
    /// skipped are not read again).
    ///
    /// ```
    /// use sekiban_core::feed::FeedPoll;
    /// let full: FeedPoll<u64> = FeedPoll::new(Vec::new(), 10, false, 4, 9);
    /// assert!(full.at_end);
    /// assert_eq!(full.reached, 9);
    /// let cut: FeedPoll<u64> = FeedPoll::new(Vec::new(), 10, true, 4, 9);
    /// assert!(!cut.at_end);
    /// assert_eq!(cut.reached, 4);
    /// ```
    pub fn new(items: Vec<(P, FeedItem)>, limit: usize, cut: bool, after: P, end: P) -> Self {
        let at_end = !cut && items.len() < limit;
        let reached = if at_end {
            end
        } else {
            items.last().map_or(after, |(p, _)| *p)
        };
        FeedPoll {
            items,
            reached,
            at_end,
        }
    }
}
