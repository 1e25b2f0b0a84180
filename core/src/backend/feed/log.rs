//! A store whose feed is one ordered log (SQL, memory): [`FeedSource`], driven by the one
//! driver as a single partition.

use async_trait::async_trait;
use futures::stream::BoxStream;

use super::{Held, Partition, PartitionPoll, PartitionedSource, Wait, drive_partitions};
use crate::error::Result;
use crate::feed::{ChangeBatch, Checkpoint, FeedOptions, FeedPoll, FeedStart};

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

/// A one-log source as a source of one partition.
struct OneLog<S>(S);

#[async_trait]
impl<S: FeedSource> PartitionedSource for OneLog<S> {
    type Key = ();
    type Position = S::Position;
    type Reader = S::Waiter;

    async fn start(
        &self,
        _waiter: &mut S::Waiter,
        from: FeedStart,
    ) -> Result<Vec<Partition<(), S::Position>>> {
        Ok(vec![Partition::new((), self.0.start(from).await?)])
    }

    async fn poll(
        &self,
        waiter: &mut S::Waiter,
        _key: &(),
        after: S::Position,
        opts: &FeedOptions,
        max: usize,
    ) -> Result<PartitionPoll<(), S::Position>> {
        Ok(PartitionPoll::open(
            self.0.poll(waiter, after, opts, max).await?,
        ))
    }

    /// The log's checkpoint, also for the workers of a split that do not read it: where they
    /// started.
    fn checkpoint(&self, _waiter: &S::Waiter, parts: &[Held<(), S::Position>]) -> Checkpoint {
        // The driver holds the log's one partition from the start on, and never drops it.
        self.0.checkpoint(parts[0].part.position)
    }

    fn owner(&self, _key: &()) -> u64 {
        0
    }

    fn reader(&self, opts: &FeedOptions) -> S::Waiter {
        self.0.waiter(opts)
    }

    async fn wait(
        &self,
        waiter: &mut S::Waiter,
        parts: &[Held<(), S::Position>],
        opts: &FeedOptions,
        max: usize,
        delivered: bool,
    ) -> Result<Wait<((), S::Position)>> {
        let Some(at) = parts.first().map(|h| h.part.position) else {
            return Ok(Wait::Poll);
        };
        Ok(match self.0.wait(waiter, at, opts, max, delivered).await? {
            Wait::Poll => Wait::Poll,
            Wait::Items(items, reached) => Wait::Items(items, ((), reached)),
        })
    }

    fn waits_after_now(&self) -> bool {
        self.0.waits_after_now()
    }
}

/// The change feed of `source` from `from`: batches of at most `max_batch` items (default
/// `page_events`), each with the checkpoint after it. With a split, the first worker reads the
/// log and the others nothing.
pub fn drive<'a, S: FeedSource + 'a>(
    source: S,
    from: FeedStart,
    opts: FeedOptions,
    page_events: usize,
) -> BoxStream<'a, Result<ChangeBatch>> {
    drive_partitions(OneLog(source), from, opts, page_events)
}
