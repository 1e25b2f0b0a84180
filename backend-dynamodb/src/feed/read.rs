//! Reading the stream: listing its shards, starting a reader, reading one shard (through the
//! store's shared shard poller) or one page of a replay's scan into units of items, and the
//! checks every batch passes (erased and hidden events are dropped).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue as DdbValue, KeysAndAttributes};
use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};
use sekiban_core::{
    DeleteMode, FeedItem, FeedOptions, FeedStart, OpKind, RecordedEvent, Result, StoreError,
    StreamId, Version,
};

use super::lineage::{Listing, drained, parents_first, root_of};
use super::{Pos, Shard, Source, State, Unit, shard, stream_of};
use crate::client::counted_as;
use crate::error::from_sdk;
use crate::events::{Item, decode_item, now_micros, number};
use crate::poller::{At, Lost, RECORDS_PER_READ, Read};
use crate::replay::{CLOCK_MARGIN, Phase, Scan};
use crate::{DynamoDbTable, HEAD_SK};

/// A record's image as the table's item, so one decoder serves the table and its stream
/// (attribute types the store does not write are left out).
pub(super) fn to_item(img: &HashMap<String, AttributeValue>) -> Item {
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

impl DynamoDbTable {
    /// The ARN of the table's stream.
    pub(super) async fn stream_arn(&self) -> Result<String> {
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
    pub(super) async fn shards(&self) -> Result<(String, Listing)> {
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

    /// Fills a new reader's state for a feed from `from`: the stream, and each shard's
    /// position (a replay starts with a scan and lists the shards when it hands over).
    pub(super) async fn start_state(&self, st: &mut State, from: &FeedStart) -> Result<()> {
        if st.split.is_some() && *from == FeedStart::Beginning {
            return Err(StoreError::invalid(
                "a split DynamoDB feed starts from Now or a checkpoint: the replay from \
                 Beginning scans the whole table, which shards do not divide; replay with one \
                 reader and split the workers from its checkpoint",
            ));
        }
        let (arn, listed) = if *from == FeedStart::Beginning {
            (self.stream_arn().await?, Vec::new())
        } else {
            self.shards().await?
        };
        let (wanted_arn, positions, scan, cut) = match from {
            FeedStart::After(c) => {
                let (a, p, scan, cut) = super::checkpoint::decode(c)?;
                (Some(a), p, scan, cut)
            }
            // Everything in the table: a scan first, then the shards from its start on.
            FeedStart::Beginning => (None, HashMap::new(), Some(self.scan_pass(0)), 0),
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
        st.arn = arn;
        st.scan = scan;
        st.cut = cut;
        if st.scan.is_some() {
            return Ok(());
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
            let root = root_of(id, &listed);
            let latest = *from == FeedStart::Now;
            st.shards
                .push(shard(id.clone(), parent.clone(), root, pos, latest));
        }
        Ok(())
    }

    /// After shard `i` ended: the shards listed now that the reader does not know yet (its
    /// children, and any other shard new since), read from their oldest records.
    pub(super) async fn new_shards(&self, st: &mut State) -> Result<Vec<usize>> {
        let (_, listed) = self.shards().await?;
        let mut added = Vec::new();
        for (id, parent) in &listed {
            if st.shards.iter().any(|s| &s.id == id) {
                continue;
            }
            // A child's root is its parent's, as the reader knows it.
            let root = match st.shards.iter().find(|s| Some(&s.id) == parent.as_ref()) {
                Some(p) => p.root.clone(),
                None => root_of(id, &listed),
            };
            st.shards
                .push(shard(id.clone(), parent.clone(), root, Pos::Trim, false));
            added.push(st.shards.len() - 1);
        }
        Ok(added)
    }

    /// A scan pass starting now, for what was written from `since` on (the replay margin is at
    /// most a quarter of the stream's retention).
    pub(super) fn scan_pass(&self, since: u64) -> Scan {
        let margin = u64::try_from(self.config.replay_margin.as_micros())
            .unwrap_or(u64::MAX)
            .min(self.retention_micros() / 4);
        Scan::new(since, now_micros().saturating_sub(margin))
    }

    /// The stream's retention in µs.
    pub(super) fn retention_micros(&self) -> u64 {
        u64::try_from(self.config.stream_retention.as_micros()).unwrap_or(u64::MAX)
    }

    /// After a scan pass: the shards from the pass's cut on, or, when records from then may be
    /// trimmed already, another pass for what was written since.
    pub(super) async fn hand_over(&self, st: &mut State) -> Result<()> {
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
            .iter()
            .map(|(id, parent)| {
                let root = root_of(id, &listed);
                shard(id.clone(), parent.clone(), root, Pos::Since(cut), false)
            })
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

    /// One page of a replay's scan, as units in the queue.
    pub(super) async fn scan_units(&self, st: &mut State, opts: &FeedOptions) -> Result<()> {
        let Some(scan) = st.scan.as_mut() else {
            return Ok(());
        };
        let mut units = Vec::new();
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
        self.drop_erased(&mut units).await?;
        st.queue
            .extend(units.into_iter().filter(|u| !u.items.is_empty()));
        Ok(())
    }

    /// One read of shard `i`: each record's items join the queue. Returns the read (whether it
    /// brought records, was full, or found the shard closed).
    pub(super) async fn shard_units(
        &self,
        st: &mut State,
        i: usize,
        opts: &FeedOptions,
    ) -> Result<Read> {
        let wait = if opts.follow {
            self.limits.feed_poll_interval
        } else {
            Duration::ZERO
        };
        // Records of writes older than the stream keeps count as trimmed (on AWS they are).
        let trimmed = now_micros().saturating_sub(self.retention_micros());
        let read = self.read_shard(&st.arn, &mut st.shards[i], wait).await?;
        let since = match st.shards[i].start {
            Pos::Since(t) if !st.shards[i].latest => Some(t.saturating_sub(60_000_000)),
            _ => None,
        };
        // The appends' items this read brought, whichever comes first of an append's two
        // records (the head's or its item's): a head's events come from them, not from one
        // `GetItem` each. An item hidden (`z`) or removed later in the read is left out. Each
        // record's new image as an item, converted once for both passes.
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
        let mut units = Vec::new();
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
        self.drop_erased(&mut units).await?;
        st.queue
            .extend(units.into_iter().filter(|u| !u.items.is_empty()));
        if read.closed {
            st.shards[i].closed = true;
        }
        Ok(read)
    }

    /// The items one record stands for: a head's events or deletion marker; nothing for the
    /// other items (`batches`: the appends' items the same read brought, by key).
    pub(super) async fn items_of(
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

    /// The next batch of `source` from the queue: at most `max` items, ending with the event
    /// that reaches the page bytes.
    pub(super) fn take_batch(&self, st: &mut State, source: Source, max: usize) -> Vec<FeedItem> {
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut k = 0;
        while out.len() < max && bytes < self.limits.page_bytes && k < st.queue.len() {
            if st.queue[k].source != source {
                k += 1;
                continue;
            }
            match st.queue[k].items.pop_front() {
                Some(item) => {
                    bytes += item.size();
                    st.queue[k].done += 1;
                    out.push(item);
                }
                None => {
                    st.queue.remove(k);
                    continue;
                }
            }
            if st.queue[k].items.is_empty() {
                st.queue.remove(k);
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
            // Heads the service left unread (`UnprocessedKeys`) are asked for again: a head
            // never read would let an erased stream's events through.
            let heads = std::sync::Mutex::new(Vec::new());
            let what = "read the heads of the feed's streams";
            self.rest(OpKind::Feed, what, ka, |ka| async {
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
                .map_err(|e| from_sdk(what, e))?;
                self.charge(OpKind::Feed, out.consumed_capacity());
                heads.lock().unwrap_or_else(|p| p.into_inner()).extend(
                    out.responses()
                        .and_then(|r| r.get(&self.config.table))
                        .into_iter()
                        .flatten()
                        .cloned(),
                );
                Ok(out
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.config.table))
                    .filter(|k| !k.keys().is_empty())
                    .cloned())
            })
            .await?;
            for head in heads.into_inner().unwrap_or_else(|p| p.into_inner()) {
                let Some(DdbValue::S(pk)) = head.get("pk") else {
                    continue;
                };
                if head.contains_key("x") {
                    erased.insert(pk.clone());
                } else if let Some(h) = number(&head, "h") {
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
}
