//! One `changes()` driver for every store: the store says how its feed's partitions start, how
//! one is polled and how to wait for news ([`PartitionedSource`]); [`drive_partitions`] does the
//! rest the same way for all. A store whose feed is one ordered log (SQL, memory) implements the
//! smaller [`FeedSource`] and calls [`drive`], which runs the same driver over one partition.
//!
//! What the driver does, whatever the store:
//!
//! - resolves the start once, on the first poll of the stream (an error ends the feed after it);
//! - reads only the partitions a [`crate::FeedSplit`] gives this reader, when one is set: a
//!   partition whose parents are known goes where its first parent went, any other where the
//!   source's [`PartitionedSource::owner`] says;
//! - polls the partitions in turn, at most `max_batch` items a poll (default `page_events`); a
//!   child partition only once every parent it has in the reader is read to its end, so a
//!   stream's events keep their order across a split;
//! - hands out every non-empty poll as a batch with the checkpoint after it (every partition's
//!   position);
//! - a partition is at rest for the round once a poll reaches its end (for a follower, a poll
//!   that also found nothing new, unless [`PartitionedSource::rests_at_end`]); when every
//!   partition is at rest a catch-up feed ends with the checkpoint after everything it read (an
//!   empty batch carries it when the last batch does not: nothing was new, or polls after the
//!   last item moved on), and a follower waits ([`PartitionedSource::wait`]) and starts a new round when the wait says
//!   so, or hands out what the wait brought and waits again. An idle follower so makes one
//!   request per partition per poll interval.

mod driver;
mod log;

pub use driver::drive_partitions;
pub use log::{FeedSource, drive};

use async_trait::async_trait;

use crate::error::Result;
use crate::feed::{Checkpoint, FeedItem, FeedOptions, FeedPoll, FeedStart};

/// A hash of `parts` that stays the same across processes, machines and releases (64-bit
/// FNV-1a, each part followed by a 0 byte): for [`PartitionedSource::owner`] and for placing a
/// stream in a partition.
///
/// ```
/// use sekiban_core::backend::feed::stable_hash;
/// assert_eq!(stable_hash(&["shard-1"]), stable_hash(&["shard-1"]));
/// assert_ne!(stable_hash(&["a", "b"]), stable_hash(&["ab"]));
/// ```
pub fn stable_hash(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain([0]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// What a wait for news brought.
#[derive(Debug)]
pub enum Wait<P> {
    /// Poll again (news, a poll interval passed, or the store closed: the next poll says so).
    Poll,
    /// Items that came with the news (a store that hands out what it committed), all of them
    /// after the reader's position up to `reached`, at most `max_batch` of them.
    Items(Vec<FeedItem>, P),
}

/// One partition of a feed and where a reader is in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition<K, P> {
    /// The partition's id (a shard id, a feed range, an index).
    pub key: K,
    /// The partitions it was split or merged from; it is read once every one of them the reader
    /// holds is read to its end.
    pub parents: Vec<K>,
    /// The reader is after this position.
    pub position: P,
}

impl<K, P> Partition<K, P> {
    /// A partition without parents, the reader after `position`.
    pub fn new(key: K, position: P) -> Self {
        Partition {
            key,
            parents: Vec::new(),
            position,
        }
    }
}

/// A partition as one reader holds it: its place, and whether this reader reads it (with a
/// split, the others are other workers'; their positions are where the reader started).
#[derive(Clone, Debug)]
pub struct Held<K, P> {
    /// The partition and the reader's position in it.
    pub part: Partition<K, P>,
    /// This reader reads it.
    pub mine: bool,
    /// Read to its end, for ever.
    pub(super) ended: bool,
    /// At rest for this round: a poll reached its end.
    pub(super) rest: bool,
}

/// One poll of one partition.
#[derive(Clone, Debug)]
pub struct PartitionPoll<K, P> {
    /// The items, the position reached, and whether the poll got to the end of what is
    /// deliverable now.
    pub poll: FeedPoll<P>,
    /// `Some` when the partition has nothing after this poll's items, ever (a closed shard, a
    /// range that split): the partitions that follow it, if known now. It leaves the reader
    /// once another partition names it as a parent.
    pub ended: Option<Vec<Partition<K, P>>>,
}

impl<K, P> PartitionPoll<K, P> {
    /// A poll of a partition that stays open.
    pub fn open(poll: FeedPoll<P>) -> Self {
        PartitionPoll { poll, ended: None }
    }
}

/// A store's feed as partitions, each one ordered log in the store's own positions.
///
/// ```
/// use async_trait::async_trait;
/// use futures::StreamExt;
/// use sekiban_core::backend::feed::{
///     Held, Partition, PartitionPoll, PartitionedSource, Wait, drive_partitions,
/// };
/// use sekiban_core::backend::FeedPoll;
/// use sekiban_core::{Checkpoint, FeedOptions, FeedStart, Result};
///
/// /// Three partitions that never have anything.
/// struct Empty;
///
/// #[async_trait]
/// impl PartitionedSource for Empty {
///     type Key = u32;
///     type Position = u64;
///     type Reader = ();
///     async fn start(&self, _r: &mut (), _from: FeedStart) -> Result<Vec<Partition<u32, u64>>> {
///         Ok((0..3).map(|k| Partition::new(k, 0)).collect())
///     }
///     async fn poll(&self, _w: &mut (), _k: &u32, after: u64, _o: &FeedOptions, max: usize)
///         -> Result<PartitionPoll<u32, u64>> {
///         Ok(PartitionPoll::open(FeedPoll::new(Vec::new(), max, false, after, after)))
///     }
///     fn checkpoint(&self, _r: &(), parts: &[Held<u32, u64>]) -> Checkpoint {
///         Checkpoint::new(format!("empty:{}", parts.iter().filter(|h| h.mine).count()))
///     }
///     fn owner(&self, key: &u32) -> u64 { u64::from(*key) }
///     fn reader(&self, _opts: &FeedOptions) {}
///     async fn wait(&self, _w: &mut (), _p: &[Held<u32, u64>], _o: &FeedOptions, _max: usize, _d: bool)
///         -> Result<Wait<(u32, u64)>> {
///         Ok(Wait::Poll)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let all: Vec<_> = drive_partitions(Empty, FeedStart::Beginning, FeedOptions::catch_up(), 100)
///     .collect()
///     .await;
/// assert_eq!(all[0].as_ref().unwrap().checkpoint.as_str(), "empty:3");
/// // The second of two workers reads partition 1 only.
/// let split = FeedOptions::catch_up().split(1, 2);
/// let one: Vec<_> = drive_partitions(Empty, FeedStart::Beginning, split, 100).collect().await;
/// assert_eq!(one[0].as_ref().unwrap().checkpoint.as_str(), "empty:1");
/// # }
/// ```
#[async_trait]
pub trait PartitionedSource: Send + Sync {
    /// A partition's id.
    type Key: Clone + PartialEq + Send + Sync + std::fmt::Debug + 'static;
    /// A place in one partition: the reader is after it.
    type Position: Clone + Send + Sync + 'static;
    /// What one reader keeps between polls: a subscription to news (made before its first poll,
    /// so news published meanwhile is not missed), iterators, records read but not handed out.
    type Reader: Send;

    /// The partitions a feed from `from` reads and where it starts in each: the start of each,
    /// its end now, or a checkpoint of this store (another store's is `InvalidCheckpoint`, one
    /// the service no longer keeps `FeedPositionExpired`). Parents before their children.
    async fn start(
        &self,
        reader: &mut Self::Reader,
        from: FeedStart,
    ) -> Result<Vec<Partition<Self::Key, Self::Position>>>;

    /// At most `max` items of partition `key` after `after`, filtered by `opts` (a source
    /// that cannot filter on the server filters here), ending with the event that reaches the
    /// store's page bytes ([`FeedPoll::new`]).
    async fn poll(
        &self,
        reader: &mut Self::Reader,
        key: &Self::Key,
        after: Self::Position,
        opts: &FeedOptions,
        max: usize,
    ) -> Result<PartitionPoll<Self::Key, Self::Position>>;

    /// The checkpoint after what the reader handed out: its positions in `parts`, those it
    /// reads ([`Held::mine`]) and, with a split, the other workers' partitions it knows of.
    fn checkpoint(
        &self,
        reader: &Self::Reader,
        parts: &[Held<Self::Key, Self::Position>],
    ) -> Checkpoint;

    /// Which worker of a split reads a partition without parents: the one numbered this modulo
    /// the workers. Stable across processes and restarts (not a per-process hash).
    fn owner(&self, key: &Self::Key) -> u64;

    /// A new reader.
    fn reader(&self, opts: &FeedOptions) -> Self::Reader;

    /// Waits, after every partition of a following reader is at rest, until there may be news
    /// or a poll interval passed. `parts`: the partitions the reader holds; `delivered`: the
    /// reader handed out items since its last wait.
    async fn wait(
        &self,
        reader: &mut Self::Reader,
        parts: &[Held<Self::Key, Self::Position>],
        opts: &FeedOptions,
        max: usize,
        delivered: bool,
    ) -> Result<Wait<(Self::Key, Self::Position)>>;

    /// Whether a following reader from `Now` waits before its first poll (nothing can be new
    /// yet; a store whose polls cost a request saves one).
    fn waits_after_now(&self) -> bool {
        false
    }

    /// Whether a partition is at rest once a poll reached its end, even for a follower that got
    /// items from that poll. By default a follower polls once more (a store whose commits become
    /// deliverable late finds them so); a store whose poll costs a service read with its own
    /// rate limit says `true`.
    fn rests_at_end(&self) -> bool {
        false
    }
}
