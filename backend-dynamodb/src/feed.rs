//! The change feed, from DynamoDB Streams.
//!
//! - Every shard of the table's stream is read, in the order `DescribeStream` lists them
//!   (parents before their children); the checkpoint holds the stream ARN and, per shard, the
//!   sequence number of the last record handed out, or the time a `Now` feed started.
//! - Order: AWS orders stream records per item only, so events are delivered from the records
//!   of the **head** item, which every append modifies: its new image says which versions the
//!   append wrote (`f`..`v`), and the append's own item (from its record in the same page, else
//!   one `GetItem`) holds them. A stream's events come in version order whatever items they were
//!   written to.
//! - A head that became a tombstone (`x`) is a hard-delete marker; one whose `h` reached its
//!   version, a soft-delete marker. Checkpoint items (`~…` keys), snapshot pointers and removals
//!   produce nothing.
//! - Erased data is never delivered: before a batch goes out, the heads of the streams with
//!   events in it are read (one `BatchGetItem`) and an erased stream's events are dropped.
//! - A `Now` checkpoint taken before anything arrived records the time; resuming from it reads
//!   from the trim horizon and skips records older than a minute before it (DynamoDB Local
//!   rounds record times down to the minute), so it may repeat events, never lose one.
//! - The shards are read through the store's shared shard poller ([`crate::poller`]): the feeds
//!   of one store do not each read every shard.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue as DdbValue, KeysAndAttributes};
use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use sekiban_core::backend::feed::stable_hash;
use sekiban_core::{
    ChangeBatch, Checkpoint, DeleteMode, FeedItem, FeedOptions, FeedSplit, FeedStart, OpKind,
    RecordedEvent, Result, StoreError, StreamId, Version,
};

use crate::client::counted_as;
use crate::error::from_sdk;
use crate::events::{Item, decode_item, now_micros, number};
use crate::poller::{At, Lost, RECORDS_PER_READ, Read, SharedLog};
use crate::replay::{CLOCK_MARGIN, Phase, Scan};
use crate::{DynamoDbTable, HEAD_SK};

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
    /// [`At::quiet`]); taken by its next try to join the shared log.
    quiet: Option<(Instant, Instant)>,
    /// Its iterator was refused as trimmed and opened again (a second refusal is final).
    reopened: bool,
    /// This reader reads it (a split of workers gives the others to other workers).
    mine: bool,
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
    items: std::collections::VecDeque<FeedItem>,
}

struct State {
    arn: String,
    shards: Vec<Shard>,
    queue: std::collections::VecDeque<Unit>,
    ended: bool,
    /// The table scan of a `Beginning` replay, before the shards are read.
    scan: Option<Scan>,
    /// The last scan's cut (0: none): records of writes before it are the scan's.
    cut: u64,
}

impl State {
    fn ended() -> Self {
        State {
            arn: String::new(),
            shards: Vec::new(),
            queue: std::collections::VecDeque::new(),
            ended: true,
            scan: None,
            cut: 0,
        }
    }
}

/// A record's image as the table's item, so one decoder serves the table and its stream
/// (attribute types the store does not write are left out).
fn to_item(img: &HashMap<String, AttributeValue>) -> Item {
    img.iter()
        .filter_map(|(k, v)| {
            let v = match v {
                AttributeValue::S(s) => DdbValue::S(s.clone()),
                AttributeValue::N(n) => DdbValue::N(n.clone()),
                AttributeValue::B(b) => DdbValue::B(b.as_ref().to_vec().into()),
                AttributeValue::Bool(b) => DdbValue::Bool(*b),
                _ => return None,
            };
            Some((k.clone(), v))
        })
        .collect()
}

fn encode_pos(p: &Pos) -> String {
    match p {
        Pos::Trim => "trim".into(),
        Pos::After(seq) => format!("after:{seq}"),
        Pos::Since(t) => format!("since:{t}"),
        Pos::Part {
            after,
            record,
            skip,
        } => {
            format!("part:{}:{record}:{skip}", after.as_deref().unwrap_or(""))
        }
    }
}

/// The position before the first item of `source` not handed out yet, given where its reader
/// is (`last` read, `skip` of a record partly handed out before a resume, `start` before any).
fn position(
    st: &State,
    source: Source,
    start: &Pos,
    last: &Option<String>,
    skip: &Option<(String, usize)>,
) -> Pos {
    match st.queue.iter().find(|u| u.source == source) {
        Some(u) if u.done > 0 => Pos::Part {
            after: u.after.clone(),
            record: u.record.clone(),
            skip: u.done,
        },
        Some(u) => u.after.clone().map_or(start.clone(), Pos::After),
        None => match skip {
            // A partly handed-out record not read again yet.
            Some((record, skip)) => Pos::Part {
                after: last.clone(),
                record: record.clone(),
                skip: *skip,
            },
            None => last.clone().map_or(start.clone(), Pos::After),
        },
    }
}

/// The checkpoint after what has been handed out: per shard, before its first item not yet
/// handed out; during a scan, the pass and the item before the first not handed out.
fn checkpoint(st: &State) -> Checkpoint {
    if let Some(scan) = &st.scan {
        let pos = position(st, Source::Scan, &Pos::Trim, &scan.last, &scan.skip);
        return Checkpoint::new(format!(
            "ddb1;{};;{},{},{},{}",
            st.arn,
            scan.since,
            scan.cut,
            // Where the first item not handed out is, or the scan's place after its page.
            st.queue
                .iter()
                .find(|u| u.source == Source::Scan)
                .map_or(scan.phase, |u| u.phase) as u8,
            encode_pos(&pos)
        ));
    }
    let parts: Vec<String> = st
        .shards
        .iter()
        .enumerate()
        .filter(|(i, sh)| {
            // Another worker's shard is in its checkpoint, not this one's.
            if !sh.mine {
                return false;
            }
            // A shard read to its end and handed out leaves once its children are in.
            let done = sh.closed
                && sh.skip.is_none()
                && !st.queue.iter().any(|u| u.source == Source::Shard(*i));
            let children = st
                .shards
                .iter()
                .any(|c| c.parent.as_deref() == Some(sh.id.as_str()));
            !(done && children)
        })
        .map(|(i, sh)| {
            let pos = position(st, Source::Shard(i), &sh.start, &sh.last, &sh.skip);
            format!("{}={}", sh.id, encode_pos(&pos))
        })
        .collect();
    let cut = if st.cut > 0 {
        format!(";cut={}", st.cut)
    } else {
        String::new()
    };
    Checkpoint::new(format!("ddb1;{};{}{cut}", st.arn, parts.join(",")))
}

/// A decoded checkpoint: the stream ARN, each shard's position, the scan pass it is in, and the
/// last scan's cut.
type Decoded = (String, HashMap<String, Pos>, Option<Scan>, u64);

fn decode(c: &Checkpoint) -> Result<Decoded> {
    let bad = |why: &str| StoreError::InvalidCheckpoint {
        reason: format!("{c}: {why}; use a checkpoint this store's feed handed out"),
    };
    let mut parts = c.as_str().splitn(4, ';');
    if parts.next() != Some("ddb1") {
        return Err(bad("not a DynamoDB feed checkpoint"));
    }
    let arn = parts
        .next()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| bad("no stream"))?;
    let mut shards = HashMap::new();
    let parse_pos = |pos: &str| {
        Ok(match pos.split(':').collect::<Vec<_>>().as_slice() {
            ["trim"] => Pos::Trim,
            ["after", seq] if !seq.is_empty() => Pos::After((*seq).to_string()),
            ["since", t] => Pos::Since(t.parse().map_err(|_| bad("a malformed time"))?),
            ["part", after, record, skip] if !record.is_empty() => Pos::Part {
                after: (!after.is_empty()).then(|| (*after).to_string()),
                record: (*record).to_string(),
                skip: skip.parse().map_err(|_| bad("a malformed count"))?,
            },
            _ => return Err(bad("a malformed position")),
        })
    };
    for entry in parts
        .next()
        .unwrap_or("")
        .split(',')
        .filter(|e| !e.is_empty())
    {
        let (id, pos) = entry
            .split_once('=')
            .ok_or_else(|| bad("a malformed shard"))?;
        shards.insert(id.to_string(), parse_pos(pos)?);
    }
    let time = |t: &str| t.parse::<u64>().map_err(|_| bad("a malformed time"));
    let (scan, cut) = match parts.next() {
        None => (None, 0),
        Some(cut) if cut.starts_with("cut=") => (None, time(&cut[4..])?),
        Some(scan) => {
            let f: Vec<&str> = scan.splitn(4, ',').collect();
            let [since, cut, phase, pos] = f.as_slice() else {
                return Err(bad("a malformed scan position"));
            };
            let phase = match *phase {
                "0" => Phase::Waiting,
                "1" => Phase::Delivering,
                "2" => Phase::Stopped,
                _ => return Err(bad("a malformed scan position")),
            };
            let (last, skip) = match parse_pos(pos)? {
                Pos::Trim => (None, None),
                Pos::After(k) => (Some(k), None),
                Pos::Part {
                    after,
                    record,
                    skip,
                } => (after, Some((record, skip))),
                Pos::Since(_) => return Err(bad("a malformed scan position")),
            };
            let scan = Scan::resumed(time(since)?, time(cut)?, phase, last, skip)?;
            (Some(scan), 0)
        }
    };
    Ok((arn.to_string(), shards, scan, cut))
}

/// A shard listing (id, parent) ordered parents before their children; a parent no longer
/// listed (trimmed) counts as read.
fn parents_first(listed: Vec<(String, Option<String>)>) -> Vec<(String, Option<String>)> {
    let ids: HashSet<&String> = listed.iter().map(|(id, _)| id).collect();
    let mut ordered: Vec<(String, Option<String>)> = Vec::new();
    let mut placed: HashSet<String> = HashSet::new();
    while ordered.len() < listed.len() {
        let before = ordered.len();
        for (id, parent) in &listed {
            let ready = parent
                .as_ref()
                .is_none_or(|p| !ids.contains(p) || placed.contains(p));
            if !placed.contains(id) && ready {
                placed.insert(id.clone());
                ordered.push((id.clone(), parent.clone()));
            }
        }
        if ordered.len() == before {
            // A cycle, which the service never lists: the rest in listing order, not dropped.
            for (id, parent) in &listed {
                if placed.insert(id.clone()) {
                    ordered.push((id.clone(), parent.clone()));
                }
            }
        }
    }
    ordered
}

/// Whether a listed shard absent from a checkpoint was read to its end before: one of its
/// descendants is in the checkpoint (a drained shard leaves the checkpoint once its children
/// are in it). Otherwise it is new since, and read from its oldest record.
fn drained(
    id: &str,
    listed: &[(String, Option<String>)],
    positions: &HashMap<String, Pos>,
) -> bool {
    let mut frontier = vec![id.to_string()];
    let mut visited = HashSet::new();
    while let Some(p) = frontier.pop() {
        for (child, parent) in listed {
            if parent.as_deref() == Some(p.as_str()) && visited.insert(child.clone()) {
                if positions.contains_key(child) {
                    return true;
                }
                frontier.push(child.clone());
            }
        }
    }
    false
}

/// Whether shard `i` may be read: its parent, if still listed, is read to its end (AWS orders
/// an item's records across a split only so).
fn readable(shards: &[Shard], i: usize) -> bool {
    shards[i].parent.as_ref().is_none_or(|p| {
        shards
            .iter()
            .find(|s| &s.id == p)
            .is_none_or(|parent| parent.closed)
    })
}

/// A shard's reader starting at `pos` (`latest`: a `Now` feed's first iterator is the latest
/// record).
fn shard(id: String, parent: Option<String>, pos: Pos, latest: bool) -> Shard {
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
        start,
        last,
        skip,
        iterator: None,
        closed: false,
        latest,
        shared: None,
        quiet: None,
        reopened: false,
        mine: true,
    }
}

/// Whether a reader split as `split` reads a listed shard: the worker its lineage's root (its
/// oldest listed ancestor) hashes to, so a shard's children stay with the worker that read it.
fn owned(id: &str, listed: &[(String, Option<String>)], split: Option<FeedSplit>) -> bool {
    let Some(split) = split else {
        return true;
    };
    let mut root = id;
    let mut steps = 0;
    while let Some(parent) = listed
        .iter()
        .find(|(i, _)| i == root)
        .and_then(|(_, p)| p.as_deref())
        .filter(|p| listed.iter().any(|(i, _)| i == p))
    {
        root = parent;
        steps += 1;
        if steps > listed.len() {
            break;
        }
    }
    stable_hash(&[root]) % u64::from(split.workers.max(1)) == u64::from(split.worker)
}

/// A stream id from a partition key, if it is one (checkpoints are `~…`).
pub(crate) fn stream_of(pk: &str) -> Option<StreamId> {
    let mut p = pk.splitn(3, '|');
    let (t, c, i) = (p.next()?, p.next()?, p.next()?);
    StreamId::new(t, c, i).ok()
}

impl DynamoDbTable {
    /// The ARN of the table's stream.
    async fn stream_arn(&self) -> Result<String> {
        let table = &self.config.table;
        let described = counted_as(
            OpKind::Partitions,
            self.client.describe_table().table_name(table).send(),
        )
        .await
        .map_err(|e| from_sdk(&format!("describe table {table}"), e))?;
        let arn = described
            .table()
            .and_then(|t| t.latest_stream_arn())
            .ok_or_else(|| {
                StoreError::invalid(format!(
                    "table {table} has no stream; it is not a sekiban table"
                ))
            })?
            .to_string();
        Ok(arn)
    }

    /// The table's stream and its shards, parents first.
    async fn shards(&self) -> Result<(String, Vec<(String, Option<String>)>)> {
        let table = &self.config.table;
        let arn = self.stream_arn().await?;
        let mut shards = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let out = counted_as(
                OpKind::Partitions,
                self.streams
                    .describe_stream()
                    .stream_arn(&arn)
                    .set_exclusive_start_shard_id(start.clone())
                    .send(),
            )
            .await
            .map_err(|e| from_sdk(&format!("describe the stream of {table}"), e))?;
            let Some(d) = out.stream_description() else {
                break;
            };
            for sh in d.shards() {
                if let Some(id) = sh.shard_id() {
                    shards.push((id.to_string(), sh.parent_shard_id().map(str::to_string)));
                }
            }
            match d.last_evaluated_shard_id() {
                Some(last) => start = Some(last.to_string()),
                None => break,
            }
        }
        let ordered = parents_first(shards);
        self.costs.record_partitions_opened(ordered.len() as u64);
        self.shards_listed.store(
            u32::try_from(ordered.len()).unwrap_or(u32::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok((arn, ordered))
    }

    async fn start(&self, from: &FeedStart, split: Option<FeedSplit>) -> Result<State> {
        if let Some(s) = split {
            if s.workers == 0 || s.worker >= s.workers {
                return Err(StoreError::invalid(format!(
                    "feed split {}/{}: the worker must be below the number of workers",
                    s.worker, s.workers
                )));
            }
            if *from == FeedStart::Beginning {
                return Err(StoreError::invalid(
                    "a split DynamoDB feed starts from Now or a checkpoint: the replay from \
                     Beginning scans the whole table, which shards do not divide; replay with \
                     one reader and split the workers from its checkpoint",
                ));
            }
        }
        // A replay lists the shards when its scan hands over to them.
        let (arn, listed) = if *from == FeedStart::Beginning {
            (self.stream_arn().await?, Vec::new())
        } else {
            self.shards().await?
        };
        let (wanted_arn, positions, scan, cut) = match from {
            FeedStart::After(c) => {
                let (a, p, scan, cut) = decode(c)?;
                (Some(a), p, scan, cut)
            }
            // Everything in the table: a scan first, then the shards from its start on.
            FeedStart::Beginning => {
                let scan = self.scan_pass(0);
                (None, HashMap::new(), Some(scan), 0)
            }
            FeedStart::Now => (None, HashMap::new(), None, 0),
        };
        if let Some(a) = wanted_arn
            && a != arn
        {
            return Err(StoreError::InvalidCheckpoint {
                reason: format!(
                    "the checkpoint is of stream {a}, this table's is {arn} (a recreated table?)"
                ),
            });
        }
        let mut st = State {
            arn,
            shards: Vec::new(),
            queue: std::collections::VecDeque::new(),
            ended: false,
            scan,
            cut,
        };
        if st.scan.is_some() {
            return Ok(st);
        }
        let now = now_micros();
        let trimmed = now.saturating_sub(self.retention_micros());
        for (id, parent) in &listed {
            let pos = match from {
                FeedStart::Now => Pos::Since(now),
                _ => match positions.get(id) {
                    Some(p) => p.clone(),
                    None if drained(id, &listed, &positions) => continue,
                    None => Pos::Trim,
                },
            };
            if let Pos::Since(t) = pos
                && t + CLOCK_MARGIN < trimmed
            {
                return Err(StoreError::FeedPositionExpired {
                    detail: format!(
                        "the checkpoint reads shard {id} from {t} µs since the epoch, older than the stream keeps ({} s)",
                        self.config.stream_retention.as_secs()
                    ),
                });
            }
            let mut sh = shard(id.clone(), parent.clone(), pos, *from == FeedStart::Now);
            sh.mine = owned(id, &listed, split);
            st.shards.push(sh);
        }
        Ok(st)
    }

    /// A scan pass starting now, for what was written from `since` on (the replay margin is at
    /// most a quarter of the stream's retention).
    fn scan_pass(&self, since: u64) -> Scan {
        let margin = u64::try_from(self.config.replay_margin.as_micros())
            .unwrap_or(u64::MAX)
            .min(self.retention_micros() / 4);
        Scan::new(since, now_micros().saturating_sub(margin))
    }

    /// The stream's retention in µs.
    fn retention_micros(&self) -> u64 {
        u64::try_from(self.config.stream_retention.as_micros()).unwrap_or(u64::MAX)
    }

    /// After a scan pass: the shards from the pass's cut on, or, when records from then may be
    /// trimmed already, another pass for what was written since.
    async fn hand_over(&self, st: &mut State) -> Result<()> {
        let Some(scan) = &st.scan else {
            return Ok(());
        };
        let now = now_micros();
        let retention = self.retention_micros();
        // Streams carries what was written from the cut on: it must still hold that, with a
        // quarter of the retention (at most an hour) to spare.
        let spare = (retention / 4).min(3_600_000_000);
        if now.saturating_sub(scan.cut) + spare > retention {
            st.scan = Some(self.scan_pass(scan.cut));
            return Ok(());
        }
        let cut = scan.cut;
        let (arn, listed) = self.shards().await?;
        if arn != st.arn {
            return Err(StoreError::InvalidCheckpoint {
                reason: format!(
                    "the table's stream changed from {} to {arn} during the replay (a recreated table?)",
                    st.arn
                ),
            });
        }
        st.shards = listed
            .into_iter()
            .map(|(id, parent)| shard(id, parent, Pos::Since(cut), false))
            .collect();
        st.scan = None;
        st.cut = cut;
        Ok(())
    }

    /// One read of a shard: through the store's shared log when the feed's position is in it,
    /// else alone. A follower takes a shard read that started up to `wait` before.
    async fn read_shard(&self, arn: &str, sh: &mut Shard, wait: Duration) -> Result<Read> {
        let asked = Instant::now();
        if sh.shared.is_none() {
            let at = At {
                after: sh.last.as_deref(),
                latest: sh.latest,
                alone: sh.iterator.is_some(),
                quiet: sh.quiet.take(),
            };
            sh.shared = self.join_log(arn, &sh.id, at).await?;
        }
        if let Some((log, cursor)) = sh.shared.take() {
            if let Some((read, next)) = self.read_log(&log, cursor, asked, wait).await? {
                sh.shared = Some((log, next));
                return Ok(read);
            }
            // Out of the log: alone from the last record read (a `Now` feed that has read none
            // re-reads from its start time).
            sh.iterator = None;
            if sh.last.is_none() {
                sh.latest = false;
            }
        }
        self.read_alone(arn, sh).await
    }

    /// One `GetRecords` of a shard with the feed's own iterator.
    async fn read_alone(&self, arn: &str, sh: &mut Shard) -> Result<Read> {
        if sh.iterator.is_none() {
            let (kind, seq) = match (&sh.last, sh.latest) {
                (Some(seq), _) => (ShardIteratorType::AfterSequenceNumber, Some(seq.clone())),
                (None, true) => (ShardIteratorType::Latest, None),
                (None, false) => (ShardIteratorType::TrimHorizon, None),
            };
            let asked = Instant::now();
            sh.iterator = self.shard_iterator(arn, &sh.id, kind, seq).await?;
            if sh.latest && sh.last.is_none() {
                sh.quiet = Some((asked, Instant::now()));
            }
            if sh.iterator.is_none() {
                return Ok(Read {
                    closed: true,
                    ..Read::default()
                });
            }
        }
        let it = sh.iterator.clone().unwrap_or_default();
        let asked = Instant::now();
        let out = match self.get_records(it, &sh.id).await? {
            Ok(out) => out,
            // A new iterator from the last record read (a `Now` reader that has read none
            // re-reads from its start time); once, when refused as trimmed.
            Err(lost) => {
                let trimmed = matches!(lost, Lost::Trimmed);
                if trimmed && sh.reopened {
                    return Err(StoreError::FeedPositionExpired {
                        detail: format!(
                            "shard {} no longer holds the records after the feed's position",
                            sh.id
                        ),
                    });
                }
                sh.reopened = trimmed;
                sh.iterator = None;
                sh.latest = false;
                return Ok(Read {
                    full: true,
                    ..Read::default()
                });
            }
        };
        sh.iterator = out.next_shard_iterator().map(str::to_string);
        sh.reopened = false;
        // Nothing new: the feed is at the shard's latest record, and may join its log there.
        sh.quiet = out.records().is_empty().then(|| (asked, Instant::now()));
        Ok(Read {
            records: out.records().iter().cloned().map(Arc::new).collect(),
            full: out.records().len() >= RECORDS_PER_READ,
            closed: sh.iterator.is_none(),
        })
    }

    /// One round over the open shards: each record's items join the queue. Returns whether any
    /// shard returned records (when none did, a catch-up reader is done) and whether one
    /// returned a full page (more is waiting: a follower reads on without waiting).
    async fn round(&self, st: &mut State, opts: &FeedOptions) -> Result<(bool, bool)> {
        let mut units = Vec::new();
        if let Some(scan) = st.scan.as_mut() {
            if scan.done {
                self.hand_over(st).await?;
            } else {
                for (after, record, items, done, phase) in self.scan_page(scan, opts).await? {
                    units.push(Unit {
                        phase,
                        source: Source::Scan,
                        after,
                        record,
                        done,
                        items: items.into(),
                    });
                }
            }
            self.drop_erased(&mut units).await?;
            st.queue
                .extend(units.into_iter().filter(|u| !u.items.is_empty()));
            // A scan reads on until it hands over.
            return Ok((true, true));
        }
        let (mut any, mut full) = (false, false);
        let wait = if opts.follow {
            self.limits.feed_poll_interval
        } else {
            Duration::ZERO
        };
        // Records of writes older than the stream keeps count as trimmed (on AWS they are).
        let trimmed = now_micros().saturating_sub(self.retention_micros());
        let mut closed_now = false;
        for i in 0..st.shards.len() {
            if st.shards[i].closed || !st.shards[i].mine || !readable(&st.shards, i) {
                continue;
            }
            let read = self.read_shard(&st.arn, &mut st.shards[i], wait).await?;
            any |= !read.records.is_empty();
            full |= read.full;
            if read.closed {
                st.shards[i].closed = true;
                closed_now = true;
            }
            let since = match st.shards[i].start {
                Pos::Since(t) if !st.shards[i].latest => Some(t.saturating_sub(60_000_000)),
                _ => None,
            };
            // The appends' items this read brought, whichever comes first of an append's two
            // records (the head's or its item's): a head's events come from them, not from
            // one `GetItem` each. An item hidden (`z`) or removed later in the read is left out.
            // Each record's new image as an item, converted once for both passes.
            let images: Vec<Option<Item>> = read
                .records
                .iter()
                .map(|r| r.dynamodb().and_then(|d| d.new_image()).map(to_item))
                .collect();
            let mut batches: HashMap<(String, u64), &Item> = HashMap::new();
            for (r, img) in read.records.iter().zip(&images) {
                let keys = r.dynamodb().and_then(|d| d.keys()).map(to_item);
                let Some(keys) = keys.as_ref().or(img.as_ref()) else {
                    continue;
                };
                let (Some(DdbValue::S(pk)), Some(sk)) = (keys.get("pk"), number(keys, "sk")) else {
                    continue;
                };
                if sk == 0 || sk >= crate::SNAPSHOT_SK as u64 {
                    continue;
                }
                let key = (pk.clone(), sk);
                match img {
                    Some(img) if !img.contains_key("z") => {
                        batches.insert(key, img);
                    }
                    _ => {
                        batches.remove(&key);
                    }
                }
            }
            for (r, img) in read.records.iter().zip(&images) {
                let Some(rec) = r.dynamodb() else { continue };
                let Some(seq) = rec.sequence_number().map(str::to_string) else {
                    continue;
                };
                let after = st.shards[i].last.replace(seq.clone());
                if let (Some(limit), Some(at)) = (since, rec.approximate_creation_date_time()) {
                    let micros = u64::try_from(at.secs()).unwrap_or(0) * 1_000_000;
                    if micros < limit {
                        continue;
                    }
                }
                let Some(img) = img else {
                    continue;
                };
                if number(img, "m")
                    .or_else(|| number(img, "t"))
                    .is_some_and(|written| written < trimmed)
                {
                    continue;
                }
                let mut items = self.items_of(img, opts, &batches, st.cut).await?;
                let mut done = 0;
                if let Some((record, skip)) = &st.shards[i].skip
                    && *record == seq
                {
                    done = (*skip).min(items.len());
                    items.drain(..done);
                    st.shards[i].skip = None;
                }
                if !items.is_empty() {
                    units.push(Unit {
                        phase: Phase::Waiting,
                        source: Source::Shard(i),
                        after,
                        record: seq,
                        done,
                        items: items.into(),
                    });
                }
            }
        }
        self.drop_erased(&mut units).await?;
        st.queue
            .extend(units.into_iter().filter(|u| !u.items.is_empty()));
        if closed_now {
            // A shard ends when it splits or rolls over: its children are read next, from
            // their oldest records.
            let (_, listed) = self.shards().await?;
            for (id, parent) in &listed {
                if !st.shards.iter().any(|s| &s.id == id) {
                    // A child stays with its parent's worker.
                    let mine = match st.shards.iter().find(|s| Some(&s.id) == parent.as_ref()) {
                        Some(p) => p.mine,
                        None => owned(id, &listed, opts.split),
                    };
                    let mut sh = shard(id.clone(), parent.clone(), Pos::Trim, false);
                    sh.mine = mine;
                    full |= mine;
                    st.shards.push(sh);
                }
            }
        }
        Ok((any, full))
    }

    /// The items one record stands for: a head's events or deletion marker; nothing for the
    /// other items (`batches`: the appends' items the same read brought, by key).
    async fn items_of(
        &self,
        img: &Item,
        opts: &FeedOptions,
        batches: &HashMap<(String, u64), &Item>,
        cut: u64,
    ) -> Result<Vec<FeedItem>> {
        let (Some(DdbValue::S(pk)), Some(sk)) = (img.get("pk"), number(img, "sk")) else {
            return Ok(Vec::new());
        };
        let pk = pk.clone();
        let Some(stream) = stream_of(&pk) else {
            return Ok(Vec::new());
        };
        if !opts.matches(&stream) {
            return Ok(Vec::new());
        }
        if sk != HEAD_SK as u64 {
            // An append's item (in `batches` already), a snapshot: no news.
            return Ok(Vec::new());
        }
        let v = number(img, "v").unwrap_or(0);
        // What a `Beginning` replay's scan delivered: writes before its cut.
        let scanned = |at: &str| number(img, at).unwrap_or(0) < cut;
        if img.contains_key("x") {
            if scanned("m") {
                return Ok(Vec::new());
            }
            return Ok(vec![FeedItem::Deleted {
                stream,
                version: Version(v),
                mode: DeleteMode::Hard,
            }]);
        }
        if number(img, "h") == Some(v) {
            if scanned("hm") {
                return Ok(Vec::new());
            }
            return Ok(vec![FeedItem::Deleted {
                stream,
                version: Version(v),
                mode: DeleteMode::Soft,
            }]);
        }
        // Unless the scan stopped at an earlier item written after the cut.
        if scanned("m")
            && !self
                .written_after_cut_before(&stream, number(img, "f").unwrap_or(v), cut)
                .await?
        {
            return Ok(Vec::new());
        }
        let events = match batches.get(&(pk, v)) {
            Some(b) => decode_item(&stream, b, v, "an append on the feed")?.1,
            None => self.events_item(&stream, v).await?,
        };
        Ok(events.into_iter().map(FeedItem::Event).collect())
    }

    /// The next batch from the queue: at most `max` items, ending with the event that reaches
    /// the page bytes.
    fn take_batch(&self, st: &mut State, max: usize) -> Vec<FeedItem> {
        let mut out = Vec::new();
        let mut bytes = 0;
        while out.len() < max && bytes < self.limits.page_bytes {
            let Some(front) = st.queue.front_mut() else {
                break;
            };
            match front.items.pop_front() {
                Some(item) => {
                    bytes += item.size();
                    front.done += 1;
                    out.push(item);
                }
                None => {
                    st.queue.pop_front();
                }
            }
            if st.queue.front().is_some_and(|u| u.items.is_empty()) {
                st.queue.pop_front();
            }
        }
        out
    }

    /// The events of the append item keyed `last` (none when it is gone: deleted since).
    async fn events_item(&self, stream: &StreamId, last: u64) -> Result<Vec<RecordedEvent>> {
        let out = counted_as(
            OpKind::Feed,
            self.client
                .get_item()
                .table_name(&self.config.table)
                .set_key(Some(
                    self.key(stream, i64::try_from(last).unwrap_or(HEAD_SK - 2)),
                ))
                .consistent_read(true)
                .send(),
        )
        .await
        .map_err(|e| from_sdk(&format!("read an append of {stream}"), e))?;
        self.charge(OpKind::Feed, out.consumed_capacity());
        match out.item() {
            // Gone or hidden: soft-deleted since.
            None => Ok(Vec::new()),
            Some(item) if item.contains_key("z") => Ok(Vec::new()),
            Some(item) => Ok(decode_item(stream, item, last, "an append on the feed")?.1),
        }
    }

    /// Drops the events of streams erased by now, and those a soft delete has hidden by now
    /// (read in the same `BatchGetItem`).
    async fn drop_erased(&self, units: &mut [Unit]) -> Result<()> {
        let streams: BTreeMap<String, StreamId> = units
            .iter()
            .flat_map(|u| u.items.iter())
            .filter_map(FeedItem::as_event)
            .map(|e| (crate::stream_key(&e.stream), e.stream.clone()))
            .collect();
        if streams.is_empty() {
            return Ok(());
        }
        let mut erased = HashSet::new();
        // Versions up to here were hidden by a soft delete.
        let mut hidden = HashMap::new();
        for chunk in streams.values().collect::<Vec<_>>().chunks(100) {
            let keys: Vec<HashMap<String, DdbValue>> =
                chunk.iter().map(|s| self.key(s, HEAD_SK)).collect();
            let ka = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError::backend("build a head lookup", e))?;
            let out = counted_as(
                OpKind::Feed,
                self.client
                    .batch_get_item()
                    .request_items(&self.config.table, ka)
                    .return_consumed_capacity(
                        aws_sdk_dynamodb::types::ReturnConsumedCapacity::Total,
                    )
                    .send(),
            )
            .await
            .map_err(|e| from_sdk("read the heads of the feed's streams", e))?;
            self.charge(OpKind::Feed, out.consumed_capacity());
            for head in out
                .responses()
                .and_then(|r| r.get(&self.config.table))
                .into_iter()
                .flatten()
            {
                let Some(DdbValue::S(pk)) = head.get("pk") else {
                    continue;
                };
                if head.contains_key("x") {
                    erased.insert(pk.clone());
                } else if let Some(h) = number(head, "h") {
                    hidden.insert(pk.clone(), h);
                }
            }
        }
        // A unit's events are one stream's, in version order, so what goes is a prefix of
        // them: it counts as handed out, and a checkpoint's count of a record's items stays
        // what the record holds.
        for u in units.iter_mut() {
            let before = u.items.len();
            u.items.retain(|i| match i {
                FeedItem::Event(e) => {
                    let key = crate::stream_key(&e.stream);
                    !erased.contains(&key) && hidden.get(&key).is_none_or(|h| e.version.0 > *h)
                }
                FeedItem::Deleted { .. } => true,
            });
            u.done += before - u.items.len();
        }
        Ok(())
    }

    /// The change feed.
    pub(crate) fn feed(
        &self,
        from: FeedStart,
        opts: FeedOptions,
    ) -> BoxStream<'_, Result<ChangeBatch>> {
        let poll = self.limits.feed_poll_interval;
        let max = opts.max_batch.unwrap_or(self.limits.page_events).max(1);
        stream::unfold(None::<State>, move |state| {
            let (from, opts) = (from.clone(), opts.clone());
            async move {
                let mut st = match state {
                    Some(st) if st.ended => return None,
                    Some(st) => st,
                    None => match self.start(&from, opts.split).await {
                        Ok(st) => st,
                        Err(e) => return Some((Err(e), Some(State::ended()))),
                    },
                };
                loop {
                    if !st.queue.is_empty() {
                        let items = self.take_batch(&mut st, max);
                        let checkpoint = checkpoint(&st);
                        return Some((Ok(ChangeBatch { items, checkpoint }), Some(st)));
                    }
                    let (any, full) = match self.round(&mut st, &opts).await {
                        Ok(read) => read,
                        Err(e) => {
                            st.ended = true;
                            return Some((Err(e), Some(st)));
                        }
                    };
                    let more = if opts.follow { full } else { any };
                    if !st.queue.is_empty() || more {
                        continue;
                    }
                    if !opts.follow {
                        st.ended = true;
                        let checkpoint = checkpoint(&st);
                        let batch = ChangeBatch {
                            items: Vec::new(),
                            checkpoint,
                        };
                        return Some((Ok(batch), Some(st)));
                    }
                    tokio::time::sleep(poll).await;
                }
            }
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(pairs: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        pairs
            .iter()
            .map(|(id, p)| (id.to_string(), p.map(str::to_string)))
            .collect()
    }

    #[test]
    fn a_split_keeps_each_lineage_with_one_worker() {
        // a → b → c (rollovers), d → e, f alone; a child of a shard not listed is a root.
        let l = listing(&[
            ("a", None),
            ("b", Some("a")),
            ("c", Some("b")),
            ("d", None),
            ("e", Some("d")),
            ("f", Some("gone")),
        ]);
        for workers in 1..=4 {
            let owners = |id: &str| -> Vec<u32> {
                (0..workers)
                    .filter(|w| {
                        owned(
                            id,
                            &l,
                            Some(FeedSplit {
                                worker: *w,
                                workers,
                            }),
                        )
                    })
                    .collect()
            };
            for (id, _) in &l {
                assert_eq!(owners(id).len(), 1, "{id} with {workers} workers");
            }
            assert_eq!(owners("a"), owners("b"));
            assert_eq!(owners("a"), owners("c"));
            assert_eq!(owners("d"), owners("e"));
        }
        assert!(owned("a", &l, None));
    }

    fn ids(l: &[(String, Option<String>)]) -> Vec<&str> {
        l.iter().map(|(id, _)| id.as_str()).collect()
    }

    /// Streams may list a child before its parent; a split gives two children; the root's
    /// parent may be trimmed already.
    #[test]
    fn lineage_puts_parents_first() {
        let l = listing(&[
            ("c1", Some("b")),
            ("b", Some("a")),
            ("c2", Some("b")),
            ("a", Some("trimmed")),
            ("d", None),
            ("e", Some("d")),
        ]);
        let o = parents_first(l);
        let pos = |id: &str| ids(&o).iter().position(|x| *x == id).expect("listed");
        assert_eq!(o.len(), 6, "{o:?}");
        for (child, parent) in [("b", "a"), ("c1", "b"), ("c2", "b"), ("e", "d")] {
            assert!(pos(parent) < pos(child), "{parent} after {child}: {o:?}");
        }
        // A cycle (never listed by the service) loses no shard.
        let o = parents_first(listing(&[("x", Some("y")), ("y", Some("x"))]));
        assert_eq!(o.len(), 2);
    }

    fn reader(id: &str, parent: Option<&str>, closed: bool) -> Shard {
        let mut s = shard(id.into(), parent.map(str::to_string), Pos::Trim, false);
        s.closed = closed;
        s
    }

    /// A child is read only once its parent is read to its end (or no longer listed).
    #[test]
    fn children_wait_for_their_parent() {
        let open = [reader("a", None, false), reader("b", Some("a"), false)];
        assert!(readable(&open, 0));
        assert!(
            !readable(&open, 1),
            "a child read while its parent has records"
        );
        let done = [reader("a", None, true), reader("b", Some("a"), false)];
        assert!(readable(&done, 1));
        let orphan = [reader("b", Some("gone"), false)];
        assert!(readable(&orphan, 0));
    }

    /// Resumed, a listed shard missing from the checkpoint is new (read from its oldest record)
    /// unless a descendant is in the checkpoint (it was drained and left it).
    #[test]
    fn resume_tells_drained_shards_from_new_ones() {
        let l = listing(&[
            ("a", None),
            ("b", Some("a")),
            ("c", Some("b")),
            ("d", Some("b")),
        ]);
        let pos: HashMap<String, Pos> = [("c".to_string(), Pos::After("9".into()))].into();
        assert!(
            drained("a", &l, &pos),
            "a grandparent of a checkpointed shard"
        );
        assert!(drained("b", &l, &pos), "a parent of a checkpointed shard");
        assert!(
            !drained("d", &l, &pos),
            "a sibling born after the checkpoint"
        );
        let old: HashMap<String, Pos> = [("a".to_string(), Pos::After("1".into()))].into();
        assert!(
            !drained("b", &l, &old),
            "a child of a checkpointed shard is new"
        );
    }

    /// A checkpoint leaves out a shard read to its end once its children are in it, and keeps
    /// the scan's place and cut.
    #[test]
    fn checkpoints_round_trip() {
        let mut st = State::ended();
        st.arn = "arn:s".into();
        st.shards = vec![reader("a", None, true), reader("b", Some("a"), false)];
        st.shards[1].last = Some("42".into());
        st.cut = 7;
        let cp = checkpoint(&st);
        let (arn, pos, scan, cut) = decode(&cp).expect("decodes");
        assert_eq!(arn, "arn:s");
        assert!(!pos.contains_key("a"), "{cp}");
        assert_eq!(pos.get("b"), Some(&Pos::After("42".into())));
        assert!(scan.is_none());
        assert_eq!(cut, 7);
        st.scan = Some(Scan::new(3, 9));
        let cp = checkpoint(&st);
        let (_, _, scan, _) = decode(&cp).expect("decodes");
        let scan = scan.expect("a scan position");
        assert_eq!((scan.since, scan.cut, scan.last), (3, 9, None));
        for bad in [
            "ddb1;arn;;x",
            "ddb1;arn;a=after:1;cut=z",
            "ddb1;arn;;1,2,7,trim",
        ] {
            assert!(decode(&Checkpoint::new(bad)).is_err(), "{bad}");
        }
    }
}
