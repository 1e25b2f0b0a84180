//! One `changes()` loop for every store whose feed is one ordered log: the store says how to
//! start, poll and wait ([`FeedSource`]); [`drive`] does the rest the same way for all.
//!
//! What the driver does, whatever the store:
//!
//! - resolves the start once, on the first poll of the stream (an error ends the feed after it);
//! - polls at most `max_batch` items (default `page_events`); a poll cut by bytes or count is
//!   followed by the next one at once;
//! - hands out every non-empty poll as a batch with the checkpoint after its last item;
//! - a catch-up feed ends when a poll reaches the end, after one batch at least (an empty one
//!   when nothing was new, so its caller gets a checkpoint);
//! - a following feed waits ([`FeedSource::wait`]) whenever a poll reached the end, and polls
//!   again when the wait says so, or hands out what the wait brought and waits again.

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::{self, BoxStream};

use crate::error::Result;
use crate::feed::{ChangeBatch, Checkpoint, FeedItem, FeedOptions, FeedPoll, FeedStart};

/// What a wait for news brought.
#[derive(Debug)]
pub enum Wait<P> {
    /// Poll again (news, a poll interval passed, or the store closed: the next poll says so).
    Poll,
    /// Items that came with the news (a store that hands out what it committed), all of them
    /// after the reader's position up to `reached`, at most `max_batch` of them.
    Items(Vec<FeedItem>, P),
}

/// A store's feed as one ordered log, in the store's own positions.
///
/// ```
/// use async_trait::async_trait;
/// use futures::StreamExt;
/// use sekiban_core::backend::feed::{FeedSource, Wait, drive};
/// use sekiban_core::backend::FeedPoll;
/// use sekiban_core::{Checkpoint, FeedOptions, FeedStart, Result};
///
/// /// A log that never has anything.
/// struct Empty;
///
/// #[async_trait]
/// impl FeedSource for Empty {
///     type Position = u64;
///     type Waiter = ();
///     async fn start(&self, _from: FeedStart) -> Result<u64> { Ok(0) }
///     async fn poll(&self, _w: &mut (), after: u64, _o: &FeedOptions, max: usize) -> Result<FeedPoll<u64>> {
///         Ok(FeedPoll::new(Vec::new(), max, false, after, after))
///     }
///     fn checkpoint(&self, at: u64) -> Checkpoint { Checkpoint::new(format!("empty:{at}")) }
///     fn waiter(&self, _opts: &FeedOptions) {}
///     async fn wait(&self, _w: &mut (), _at: u64, _o: &FeedOptions, _max: usize, _d: bool) -> Result<Wait<u64>> {
///         Ok(Wait::Poll)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let batches: Vec<_> = drive(Empty, FeedStart::Beginning, FeedOptions::catch_up(), 100)
///     .collect()
///     .await;
/// assert_eq!(batches.len(), 1); // one empty batch, with its checkpoint
/// assert_eq!(batches[0].as_ref().unwrap().checkpoint.as_str(), "empty:0");
/// # }
/// ```
#[async_trait]
pub trait FeedSource: Send + Sync {
    /// A place in the log: the reader is after it.
    type Position: Copy + Send + Sync + 'static;
    /// What one reader keeps to wait for news (a subscription), made before its first poll so
    /// that news published meanwhile is not missed.
    type Waiter: Send;

    /// Where a feed from `from` starts: the log's start, its end now, or a checkpoint of this
    /// store (another store's is `InvalidCheckpoint`).
    async fn start(&self, from: FeedStart) -> Result<Self::Position>;

    /// At most `max` items after `after`, filtered by `opts`, ending with the event that reaches
    /// the store's page bytes ([`FeedPoll::new`]).
    async fn poll(
        &self,
        waiter: &mut Self::Waiter,
        after: Self::Position,
        opts: &FeedOptions,
        max: usize,
    ) -> Result<FeedPoll<Self::Position>>;

    /// The checkpoint after `position`.
    fn checkpoint(&self, position: Self::Position) -> Checkpoint;

    /// A new reader's waiter.
    fn waiter(&self, opts: &FeedOptions) -> Self::Waiter;

    /// Waits, after a poll of a following reader reached the end, until there may be news or
    /// a poll interval passed. `delivered`: the reader handed out items since its last wait.
    async fn wait(
        &self,
        waiter: &mut Self::Waiter,
        position: Self::Position,
        opts: &FeedOptions,
        max: usize,
        delivered: bool,
    ) -> Result<Wait<Self::Position>>;

    /// Whether a following reader from `Now` waits before its first poll (nothing can be new
    /// yet; a store whose polls cost a request saves one).
    fn waits_after_now(&self) -> bool {
        false
    }
}

/// Where a reader is: still to start, or after a position.
enum Place<P> {
    Start(FeedStart),
    At(P),
}

struct Reader<S: FeedSource> {
    source: S,
    place: Place<S::Position>,
    waiter: S::Waiter,
    /// A batch was handed out.
    delivered: bool,
    /// Items were handed out since the last wait.
    since_wait: bool,
    /// Wait before the next poll (a follower from `Now`, one that reached the end, or one whose
    /// last batch a wait brought).
    wait_next: bool,
    done: bool,
}

/// The change feed of `source` from `from`: batches of at most `max_batch` items (default
/// `page_events`), each with the checkpoint after it.
pub fn drive<'a, S: FeedSource + 'a>(
    source: S,
    from: FeedStart,
    opts: FeedOptions,
    page_events: usize,
) -> BoxStream<'a, Result<ChangeBatch>> {
    let max = opts.max_batch.unwrap_or(page_events).max(1);
    let waiter = source.waiter(&opts);
    let reader = Reader {
        wait_next: opts.follow && from == FeedStart::Now && source.waits_after_now(),
        source,
        place: Place::Start(from),
        waiter,
        delivered: false,
        since_wait: false,
        done: false,
    };
    stream::unfold((reader, opts), move |(mut r, opts)| async move {
        if r.done {
            return None;
        }
        let mut position = match &r.place {
            Place::At(p) => *p,
            Place::Start(from) => match r.source.start(from.clone()).await {
                Ok(p) => p,
                Err(e) => {
                    r.done = true;
                    return Some((Err(e), (r, opts)));
                }
            },
        };
        r.place = Place::At(position);
        loop {
            if std::mem::take(&mut r.wait_next) {
                let delivered = std::mem::take(&mut r.since_wait);
                match r
                    .source
                    .wait(&mut r.waiter, position, &opts, max, delivered)
                    .await
                {
                    Ok(Wait::Poll) => {}
                    Ok(Wait::Items(items, reached)) => {
                        // What the wait brought; the next call waits again.
                        position = reached;
                        r.place = Place::At(position);
                        r.wait_next = true;
                        if items.is_empty() {
                            continue;
                        }
                        r.delivered = true;
                        r.since_wait = true;
                        let batch = ChangeBatch {
                            items,
                            checkpoint: r.source.checkpoint(reached),
                        };
                        return Some((Ok(batch), (r, opts)));
                    }
                    Err(e) => {
                        r.done = true;
                        return Some((Err(e), (r, opts)));
                    }
                }
            }
            let FeedPoll {
                items,
                reached,
                at_end,
            } = match r.source.poll(&mut r.waiter, position, &opts, max).await {
                Ok(p) => p,
                Err(e) => {
                    r.done = true;
                    return Some((Err(e), (r, opts)));
                }
            };
            position = reached;
            r.place = Place::At(position);
            if !items.is_empty() || (!opts.follow && at_end && !r.delivered) {
                r.delivered = true;
                r.since_wait |= !items.is_empty();
                r.done = !opts.follow && at_end;
                let batch = ChangeBatch {
                    items: items.into_iter().map(|(_, i)| i).collect(),
                    checkpoint: r.source.checkpoint(reached),
                };
                return Some((Ok(batch), (r, opts)));
            }
            if !at_end {
                continue;
            }
            if !opts.follow {
                return None;
            }
            r.wait_next = true;
        }
    })
    .boxed()
}
