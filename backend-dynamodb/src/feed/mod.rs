//! The change feed, from DynamoDB Streams, through the shared feed driver
//! ([`sekiban_core::backend::feed::drive_partitions`]): each shard is a partition.
//!
//! - Every shard of the table's stream is read, parents before their children (the driver
//!   reads a child once its parent ended); the checkpoint holds the stream ARN and, per shard,
//!   the sequence number of the last record handed out, or the time a `Now` feed started.
//! - Order: AWS orders stream records per item only, so events are delivered from the records
//!   of the **head** item, which every append modifies: its new image says which versions the
//!   append wrote (`f`..`v`), and the append's own item (from its record in the same page, else
//!   one `GetItem`) holds them. A stream's events come in version order whatever items they were
//!   written to.
//! - A head that became a tombstone (`x`) is a hard-delete marker; one whose `h` reached its
//!   version, a soft-delete marker. Checkpoint items (`~…` keys), snapshot pointers and removals
//!   produce nothing.
//! - Erased data is never delivered: before a read's items are queued, the heads of the streams
//!   with events in it are read (one `BatchGetItem`) and an erased stream's events are dropped.
//! - A `Now` checkpoint taken before anything arrived records the time; resuming from it reads
//!   from the trim horizon and skips records older than a minute before it (DynamoDB Local
//!   rounds record times down to the minute), so it may repeat events, never lose one.
//! - The shards are read through the store's shared shard poller ([`crate::poller`]): the feeds
//!   of one store do not each read every shard.
//! - A `Beginning` replay is one more partition before the shards: the table scan
//!   ([`crate::replay`]), which ends by handing over to the shards.
//! - A split of workers gives each shard to the worker its lineage root hashes to.

mod checkpoint;
mod lineage;
mod read;

use std::collections::VecDeque;
use std::time::Instant;

use async_trait::async_trait;
use futures::stream::BoxStream;
use sekiban_core::backend::FeedPoll;
use sekiban_core::backend::feed::{
    Held, Partition, PartitionPoll, PartitionedSource, Wait, drive_partitions, stable_hash,
};
use sekiban_core::{
    ChangeBatch, Checkpoint, FeedItem, FeedOptions, FeedSplit, FeedStart, Result, StreamId,
};

use crate::DynamoDbTable;
use crate::poller::SharedLog;
use crate::replay::{Phase, Scan};

/// Where a shard is read from, as a checkpoint keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Pos {
    /// Its oldest retained record.
    Trim,
    /// After this sequence number.
    After(String),
    /// A `Now` feed's start: its first read is from the latest record on; resumed, records
    /// from this time (µs since the epoch) on.
    Since(u64),
    /// Record `record` handed out in part: its first `skip` items; `after` is the record before
    /// it (`None`: it was the shard's first).
    Part {
        after: Option<String>,
        record: String,
        skip: usize,
    },
}

#[derive(Debug)]
struct Shard {
    id: String,
    parent: Option<String>,
    /// Its lineage's root: a split of workers gives the shard to the worker it hashes to.
    root: String,
    /// Where the reader starts (what a checkpoint says before anything was read).
    start: Pos,
    /// The last record read.
    last: Option<String>,
    /// Items of one record already handed out before a resume.
    skip: Option<(String, usize)>,
    iterator: Option<String>,
    closed: bool,
    /// A `Now` feed's first iterator starts at the latest record.
    latest: bool,
    /// Where it reads in the store's shared log of the shard, when it does.
    shared: Option<(SharedLog, u64)>,
    /// Reading alone, when it last found itself at the shard's latest record (see
    /// [`crate::poller::At::quiet`]); taken by its next try to join the shared log.
    quiet: Option<(Instant, Instant)>,
    /// Its iterator was refused as trimmed and opened again (a second refusal is final).
    reopened: bool,
    /// Its last read says more may be waiting now: a follower's read was a full page, a
    /// catch-up's brought records.
    more: bool,
}

/// A shard's reader starting at `pos` (`latest`: a `Now` feed's first iterator is the latest
/// record).
fn shard(id: String, parent: Option<String>, root: String, pos: Pos, latest: bool) -> Shard {
    let (start, last, skip) = match pos {
        Pos::After(seq) => (Pos::Trim, Some(seq), None),
        Pos::Part {
            after,
            record,
            skip,
        } => (Pos::Trim, after, Some((record, skip))),
        other => (other, None, None),
    };
    Shard {
        id,
        parent,
        root,
        start,
        last,
        skip,
        iterator: None,
        closed: false,
        latest,
        shared: None,
        quiet: None,
        reopened: false,
        more: false,
    }
}

/// Where a unit comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The shard at this index.
    Shard(usize),
    /// The table scan of a `Beginning` replay.
    Scan,
}

/// One record's (or, in the scan, one item's) items, waiting to be handed out.
#[derive(Debug)]
struct Unit {
    /// In the scan: the phase of its stream before it.
    phase: Phase,
    source: Source,
    /// The record (item) before it in its shard (the scan).
    after: Option<String>,
    record: String,
    /// Items handed out already (before a resume, or in an earlier batch).
    done: usize,
    items: VecDeque<FeedItem>,
}

/// One reader's state: the stream, its shards (only ever added to: a unit names a shard by
/// index), what was read and not handed out yet, and the replay's scan while it lasts.
struct State {
    arn: String,
    shards: Vec<Shard>,
    queue: VecDeque<Unit>,
    /// The table scan of a `Beginning` replay, before the shards are read.
    scan: Option<Scan>,
    /// The last scan's cut (0: none): records of writes before it are the scan's.
    cut: u64,
    split: Option<FeedSplit>,
}

impl State {
    fn new(split: Option<FeedSplit>) -> Self {
        State {
            arn: String::new(),
            shards: Vec::new(),
            queue: VecDeque::new(),
            scan: None,
            cut: 0,
            split,
        }
    }
}

/// A partition of the feed: the replay's scan, or a shard (with its lineage root).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Scan,
    Shard { id: String, root: String },
}

fn key(sh: &Shard) -> Part {
    Part::Shard {
        id: sh.id.clone(),
        root: sh.root.clone(),
    }
}

/// Shard `i` as a partition: its parent, when the reader holds it, goes before it.
fn partition(st: &State, i: usize, after_scan: bool) -> Partition<Part, ()> {
    let sh = &st.shards[i];
    let mut parents: Vec<Part> = Vec::new();
    if after_scan {
        parents.push(Part::Scan);
    }
    if let Some(p) = st.shards.iter().find(|p| Some(&p.id) == sh.parent.as_ref()) {
        parents.push(key(p));
    }
    Partition {
        key: key(sh),
        parents,
        position: (),
    }
}

/// A stream id from a partition key, if it is one (checkpoints are `~…`).
pub(crate) fn stream_of(pk: &str) -> Option<StreamId> {
    let mut p = pk.splitn(3, '|');
    let (t, c, i) = (p.next()?, p.next()?, p.next()?);
    StreamId::new(t, c, i).ok()
}

/// The table's feed as the driver reads it. Positions live in the reader's [`State`] (the
/// driver's are `()`): the queue of what was read and not handed out says where each shard is.
struct Shards<'a>(&'a DynamoDbTable);

#[async_trait]
impl PartitionedSource for Shards<'_> {
    type Key = Part;
    type Position = ();
    type Reader = State;

    async fn start(&self, st: &mut State, from: FeedStart) -> Result<Vec<Partition<Part, ()>>> {
        self.0.start_state(st, &from).await?;
        if st.scan.is_some() {
            return Ok(vec![Partition::new(Part::Scan, ())]);
        }
        Ok((0..st.shards.len())
            .map(|i| partition(st, i, false))
            .collect())
    }

    async fn poll(
        &self,
        st: &mut State,
        part: &Part,
        _after: (),
        opts: &FeedOptions,
        max: usize,
    ) -> Result<PartitionPoll<Part, ()>> {
        match part {
            Part::Scan => self.poll_scan(st, opts, max).await,
            Part::Shard { id, .. } => match st.shards.iter().position(|s| &s.id == id) {
                Some(i) => self.poll_shard(st, i, opts, max).await,
                // Never: the reader keeps every shard it handed the driver.
                None => Ok(PartitionPoll::open(FeedPoll::new(
                    Vec::new(),
                    max,
                    false,
                    (),
                    (),
                ))),
            },
        }
    }

    fn checkpoint(&self, st: &State, parts: &[Held<Part, ()>]) -> Checkpoint {
        checkpoint::checkpoint(st, |id| {
            parts.iter().any(|h| {
                h.mine && matches!(&h.part.key, Part::Shard { id: shard, .. } if shard == id)
            })
        })
    }

    fn owner(&self, part: &Part) -> u64 {
        match part {
            Part::Scan => stable_hash(&["scan"]),
            Part::Shard { root, .. } => stable_hash(&[root]),
        }
    }

    fn reader(&self, opts: &FeedOptions) -> State {
        State::new(opts.split)
    }

    /// A poll interval: Streams has no notification.
    async fn wait(
        &self,
        _st: &mut State,
        _parts: &[Held<Part, ()>],
        _opts: &FeedOptions,
        _max: usize,
        _delivered: bool,
    ) -> Result<Wait<(Part, ())>> {
        tokio::time::sleep(self.0.limits.feed_poll_interval).await;
        Ok(Wait::Poll)
    }

    /// A `GetRecords` that reached the shard's end found everything there is now.
    fn rests_at_end(&self) -> bool {
        true
    }
}

impl Shards<'_> {
    /// The replay's scan: a page's items, until it hands over to the shards (its successors).
    async fn poll_scan(
        &self,
        st: &mut State,
        opts: &FeedOptions,
        max: usize,
    ) -> Result<PartitionPoll<Part, ()>> {
        let table = self.0;
        if !st.queue.iter().any(|u| u.source == Source::Scan) {
            match &st.scan {
                Some(scan) if scan.done => table.hand_over(st).await?,
                Some(_) => table.scan_units(st, opts).await?,
                None => {}
            }
        }
        if st.scan.is_none() {
            // Handed over: the shards from the scan's cut on.
            let shards = (0..st.shards.len()).map(|i| partition(st, i, true));
            return Ok(PartitionPoll {
                poll: FeedPoll::new(Vec::new(), max, false, (), ()),
                ended: Some(shards.collect()),
            });
        }
        // A scan reads on until it hands over: never at its end.
        Ok(PartitionPoll::open(take(table, st, Source::Scan, max)))
    }

    /// Shard `i`: what the last read queued, else a new read; once a closed shard is handed
    /// out, the shards listed since (its children) follow it.
    async fn poll_shard(
        &self,
        st: &mut State,
        i: usize,
        opts: &FeedOptions,
        max: usize,
    ) -> Result<PartitionPoll<Part, ()>> {
        let table = self.0;
        let queued = |st: &State| st.queue.iter().any(|u| u.source == Source::Shard(i));
        if !queued(st) && !st.shards[i].closed {
            let read = table.shard_units(st, i, opts).await?;
            st.shards[i].more = if opts.follow {
                read.full
            } else {
                !read.records.is_empty()
            };
        }
        let mut poll = take(table, st, Source::Shard(i), max);
        let rest = !queued(st);
        poll.at_end = rest && !st.shards[i].more;
        if !(rest && st.shards[i].closed) {
            return Ok(PartitionPoll::open(poll));
        }
        // A shard ends when it splits or rolls over: its children are read next, from their
        // oldest records.
        let added = table.new_shards(st).await?;
        let next = added.into_iter().map(|k| partition(st, k, false));
        Ok(PartitionPoll {
            poll,
            ended: Some(next.collect()),
        })
    }
}

/// The next batch of `source`'s queued items as a poll not at its end (positions live in the
/// reader).
fn take(table: &DynamoDbTable, st: &mut State, source: Source, max: usize) -> FeedPoll<()> {
    let items = table.take_batch(st, source, max);
    FeedPoll {
        items: items.into_iter().map(|item| ((), item)).collect(),
        reached: (),
        at_end: false,
    }
}

impl DynamoDbTable {
    /// The change feed.
    pub(crate) fn feed(
        &self,
        from: FeedStart,
        opts: FeedOptions,
    ) -> BoxStream<'_, Result<ChangeBatch>> {
        let page_events = self.limits.page_events;
        drive_partitions(Shards(self), from, opts, page_events)
    }
}
