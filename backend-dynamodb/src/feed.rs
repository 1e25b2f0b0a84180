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

use std::collections::{BTreeMap, HashMap, HashSet};

use aws_sdk_dynamodb::types::{AttributeValue as DdbValue, KeysAndAttributes};
use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use sekiban_core::{
    ChangeBatch, Checkpoint, DeleteMode, FeedItem, FeedOptions, FeedStart, OpKind, RecordedEvent,
    Result, StoreError, StreamId, Version,
};

use crate::client::counted_as;
use crate::error::from_sdk;
use crate::events::{decode_item, now_micros};
use crate::{DynamoDbTable, HEAD_SK};

type Image = HashMap<String, DdbValue>;

/// Records asked for in one `GetRecords` (the service's most).
const RECORDS_PER_READ: i32 = 1000;

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
}

/// One record's items, waiting to be handed out.
#[derive(Debug)]
struct Unit {
    shard: usize,
    /// The record before it in its shard.
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
}

/// A record's image as the table's item, so one decoder serves the table and its stream
/// (attribute types the store does not write are left out).
fn to_item(img: &HashMap<String, AttributeValue>) -> Image {
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

fn num(img: &Image, k: &str) -> Option<u64> {
    match img.get(k) {
        Some(DdbValue::N(v)) => v.parse().ok(),
        _ => None,
    }
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

/// The checkpoint after what has been handed out: per shard, before its first item not yet
/// handed out.
fn checkpoint(st: &State) -> Checkpoint {
    let parts: Vec<String> = st
        .shards
        .iter()
        .enumerate()
        .map(|(i, sh)| {
            let pos = match st.queue.iter().find(|u| u.shard == i) {
                Some(u) if u.done > 0 => Pos::Part {
                    after: u.after.clone(),
                    record: u.record.clone(),
                    skip: u.done,
                },
                Some(u) => u.after.clone().map_or(sh.start.clone(), Pos::After),
                None => match &sh.skip {
                    // A partly handed-out record not read again yet.
                    Some((record, skip)) => Pos::Part {
                        after: sh.last.clone(),
                        record: record.clone(),
                        skip: *skip,
                    },
                    None => sh.last.clone().map_or(sh.start.clone(), Pos::After),
                },
            };
            format!("{}={}", sh.id, encode_pos(&pos))
        })
        .collect();
    Checkpoint::new(format!("ddb1;{};{}", st.arn, parts.join(",")))
}

fn decode(c: &Checkpoint) -> Result<(String, HashMap<String, Pos>)> {
    let bad = |why: &str| StoreError::InvalidCheckpoint {
        reason: format!("{c}: {why}; use a checkpoint this store's feed handed out"),
    };
    let mut parts = c.as_str().splitn(3, ';');
    if parts.next() != Some("ddb1") {
        return Err(bad("not a DynamoDB feed checkpoint"));
    }
    let arn = parts
        .next()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| bad("no stream"))?;
    let mut shards = HashMap::new();
    for entry in parts
        .next()
        .unwrap_or("")
        .split(',')
        .filter(|e| !e.is_empty())
    {
        let (id, pos) = entry
            .split_once('=')
            .ok_or_else(|| bad("a malformed shard"))?;
        let pos = match pos.split(':').collect::<Vec<_>>().as_slice() {
            ["trim"] => Pos::Trim,
            ["after", seq] if !seq.is_empty() => Pos::After((*seq).to_string()),
            ["since", t] => Pos::Since(t.parse().map_err(|_| bad("a malformed time"))?),
            ["part", after, record, skip] if !record.is_empty() => Pos::Part {
                after: (!after.is_empty()).then(|| (*after).to_string()),
                record: (*record).to_string(),
                skip: skip.parse().map_err(|_| bad("a malformed count"))?,
            },
            _ => return Err(bad("a malformed shard position")),
        };
        shards.insert(id.to_string(), pos);
    }
    Ok((arn.to_string(), shards))
}

/// A stream id from a partition key, if it is one (checkpoints are `~…`).
fn stream_of(pk: &str) -> Option<StreamId> {
    let mut p = pk.splitn(3, '|');
    let (t, c, i) = (p.next()?, p.next()?, p.next()?);
    StreamId::new(t, c, i).ok()
}

impl DynamoDbTable {
    /// The table's stream and its shards, parents first.
    async fn shards(&self) -> Result<(String, Vec<(String, Option<String>)>)> {
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
        // Parents before children.
        let ids: HashSet<String> = shards.iter().map(|(id, _)| id.clone()).collect();
        let mut ordered: Vec<(String, Option<String>)> = Vec::new();
        let mut placed: HashSet<String> = HashSet::new();
        while ordered.len() < shards.len() {
            let before = ordered.len();
            for (id, parent) in &shards {
                let ready = parent
                    .as_ref()
                    .is_none_or(|p| !ids.contains(p) || placed.contains(p));
                if !placed.contains(id) && ready {
                    placed.insert(id.clone());
                    ordered.push((id.clone(), parent.clone()));
                }
            }
            if ordered.len() == before {
                break;
            }
        }
        self.costs.record_partitions_opened(ordered.len() as u64);
        Ok((arn, ordered))
    }

    async fn start(&self, from: &FeedStart) -> Result<State> {
        let (arn, listed) = self.shards().await?;
        let (wanted_arn, positions) = match from {
            FeedStart::After(c) => {
                let (a, p) = decode(c)?;
                (Some(a), p)
            }
            _ => (None, HashMap::new()),
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
        let now = now_micros();
        let shards = listed
            .into_iter()
            .map(|(id, _)| {
                let pos = match from {
                    FeedStart::Beginning => Pos::Trim,
                    FeedStart::Now => Pos::Since(now),
                    FeedStart::After(_) => positions.get(&id).cloned().unwrap_or(Pos::Trim),
                };
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
                    start,
                    last,
                    skip,
                    iterator: None,
                    closed: false,
                    latest: *from == FeedStart::Now,
                }
            })
            .collect();
        Ok(State {
            arn,
            shards,
            queue: std::collections::VecDeque::new(),
            ended: false,
        })
    }

    async fn iterator(&self, arn: &str, shard: &Shard) -> Result<Option<String>> {
        let (kind, seq) = match (&shard.last, shard.latest) {
            (Some(seq), _) => (ShardIteratorType::AfterSequenceNumber, Some(seq.clone())),
            (None, true) => (ShardIteratorType::Latest, None),
            (None, false) => (ShardIteratorType::TrimHorizon, None),
        };
        let out = counted_as(
            OpKind::Feed,
            self.streams
                .get_shard_iterator()
                .stream_arn(arn)
                .shard_id(&shard.id)
                .shard_iterator_type(kind)
                .set_sequence_number(seq)
                .send(),
        )
        .await
        .map_err(|e| from_sdk(&format!("open shard {}", shard.id), e))?;
        Ok(out.shard_iterator().map(str::to_string))
    }

    /// One round over the open shards: each record's items join the queue. Returns whether any
    /// shard returned records (when none did, a catch-up reader is done) and whether one
    /// returned a full page (more is waiting: a follower reads on without waiting).
    async fn round(&self, st: &mut State, opts: &FeedOptions) -> Result<(bool, bool)> {
        let mut units = Vec::new();
        let (mut any, mut full) = (false, false);
        for i in 0..st.shards.len() {
            if st.shards[i].closed {
                continue;
            }
            if st.shards[i].iterator.is_none() {
                st.shards[i].iterator = self.iterator(&st.arn, &st.shards[i]).await?;
                if st.shards[i].iterator.is_none() {
                    st.shards[i].closed = true;
                    continue;
                }
            }
            let it = st.shards[i].iterator.clone().unwrap_or_default();
            let out = counted_as(
                OpKind::Feed,
                self.streams
                    .get_records()
                    .shard_iterator(it)
                    .limit(RECORDS_PER_READ)
                    .send(),
            )
            .await
            .map_err(|e| from_sdk(&format!("read shard {}", st.shards[i].id), e))?;
            // Streams charges a read request unit per GetRecords.
            self.costs.record_units(OpKind::Feed, 1.0);
            any |= !out.records().is_empty();
            full |= out.records().len() >= RECORDS_PER_READ as usize;
            st.shards[i].iterator = out.next_shard_iterator().map(str::to_string);
            if st.shards[i].iterator.is_none() {
                st.shards[i].closed = true;
            }
            let since = match st.shards[i].start {
                Pos::Since(t) if !st.shards[i].latest => Some(t.saturating_sub(60_000_000)),
                _ => None,
            };
            let mut batches: HashMap<(String, u64), Image> = HashMap::new();
            for r in out.records() {
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
                let Some(img) = rec.new_image().map(to_item) else {
                    continue;
                };
                let mut items = self.items_of(&img, opts, &mut batches).await?;
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
                        shard: i,
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
        Ok((any, full))
    }

    /// The items one record stands for: a head's events or deletion marker; nothing for the
    /// other items (an append's item is kept in `batches` for its head's record).
    async fn items_of(
        &self,
        img: &Image,
        opts: &FeedOptions,
        batches: &mut HashMap<(String, u64), Image>,
    ) -> Result<Vec<FeedItem>> {
        let (Some(DdbValue::S(pk)), Some(sk)) = (img.get("pk"), num(img, "sk")) else {
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
            // An append's item; one a soft delete hid is no news.
            if sk > 0 && sk < crate::SNAPSHOT_SK as u64 && !img.contains_key("z") {
                batches.insert((pk, sk), img.clone());
            }
            return Ok(Vec::new());
        }
        let v = num(img, "v").unwrap_or(0);
        if img.contains_key("x") {
            return Ok(vec![FeedItem::Deleted {
                stream,
                version: Version(v),
                mode: DeleteMode::Hard,
            }]);
        }
        if num(img, "h") == Some(v) {
            return Ok(vec![FeedItem::Deleted {
                stream,
                version: Version(v),
                mode: DeleteMode::Soft,
            }]);
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

    /// Drops the events of streams erased by now.
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
                if head.contains_key("x")
                    && let Some(DdbValue::S(pk)) = head.get("pk")
                {
                    erased.insert(pk.clone());
                }
            }
        }
        for u in units.iter_mut() {
            u.items.retain(|i| match i {
                FeedItem::Event(e) => !erased.contains(&crate::stream_key(&e.stream)),
                FeedItem::Deleted { .. } => true,
            });
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
                    None => match self.start(&from).await {
                        Ok(st) => st,
                        Err(e) => {
                            let ended = State {
                                arn: String::new(),
                                shards: Vec::new(),
                                queue: std::collections::VecDeque::new(),
                                ended: true,
                            };
                            return Some((Err(e), Some(ended)));
                        }
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
