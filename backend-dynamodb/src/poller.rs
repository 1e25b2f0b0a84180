//! One shard poller per store, shared by all its feeds.
//!
//! Streams serves about five `GetRecords` a second per shard and throttles beyond about two
//! readers per shard, so the feeds of one store do not each read every shard: per shard, a
//! shared log holds the records read lately (up to [`DynamoDbConfig::feed_buffer_bytes`]),
//! and a feed whose position lies in it reads from it. At the log's end, one feed reads the
//! shard for all (single-flight under the log's lock):
//!
//! - a catch-up feed needs a read that started after it asked (it sees what it would have seen
//!   alone);
//! - a following feed takes a read that started within its poll interval (it would have slept
//!   that long anyway), so N followers cost about one `GetRecords` per shard per interval.
//!
//! A feed joins a log when its position is in it: the record it read last is there, or the log
//! starts where it starts (the trim horizon, or the record after which it opened). A feed behind
//! the log's oldest record, or at a position the log cannot place, reads the shard alone until
//! the record it read last is in the log. A `Now` feed (no record read yet) joins a log that
//! opened at the latest record for it, or one whose end it can prove is its own start: the
//! log's last records were read before the feed opened its own iterator, and a read that
//! started afterwards found nothing new.
//!
//! [`DynamoDbConfig::feed_buffer_bytes`]: crate::DynamoDbConfig::feed_buffer_bytes

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodbstreams::operation::get_records::GetRecordsOutput;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use sekiban_core::{OpKind, Result};

use crate::DynamoDbTable;
use crate::client::counted_as;
use crate::error::from_sdk;

/// Records asked for in one `GetRecords` (the service's most).
pub(crate) const RECORDS_PER_READ: usize = 1000;

/// A log untouched this long, and read by no feed, is dropped (its iterator has expired).
const IDLE: Duration = Duration::from_secs(15 * 60);

/// A shard's shared log.
pub(crate) type SharedLog = Arc<tokio::sync::Mutex<Log>>;

/// The shared logs of one store, by (stream ARN, shard).
#[derive(Debug)]
pub(crate) struct Poller {
    logs: Mutex<HashMap<(String, String), (SharedLog, Instant)>>,
    buffer_bytes: usize,
}

/// Where a log starts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Base {
    /// Not opened yet.
    Unopened,
    /// The shard's trim horizon when it opened (nothing dropped since).
    Trim,
    /// After this record.
    After(String),
    /// The latest record when it opened, which has no number.
    Latest,
}

/// The records of one shard read lately, in order.
#[derive(Debug)]
pub(crate) struct Log {
    arn: String,
    shard: String,
    base: Base,
    /// The index of `records[0]` (0 at the base).
    first: u64,
    records: VecDeque<(Arc<Record>, usize)>,
    bytes: usize,
    iterator: Option<String>,
    /// The shard ended, and every record of it is in the log (or was, before being dropped).
    closed: bool,
    /// No longer readable (its position expired): its feeds read alone.
    broken: bool,
    /// The last read: when it started, how many records it brought, whether it was full.
    last_read: Option<(Instant, usize, bool)>,
    /// When the log's end was last moved on (its latest read with records ended, or its
    /// opening at the latest record).
    settled: Option<Instant>,
}

/// What one read of a shard brought a feed.
#[derive(Debug, Default)]
pub(crate) struct Read {
    pub(crate) records: Vec<Arc<Record>>,
    /// More is waiting: read again without sleeping.
    pub(crate) full: bool,
    /// The shard ended and the feed has its last record.
    pub(crate) closed: bool,
}

/// Where a feed is in a shard, to join its log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct At<'a> {
    /// The record it read last.
    pub(crate) after: Option<&'a str>,
    /// It has read none, and starts at the latest record (else at the trim horizon).
    pub(crate) latest: bool,
    /// It has an iterator of its own.
    pub(crate) alone: bool,
    /// It reads alone, and found itself at the shard's latest record between these times: it
    /// opened its iterator at the latest record, or a read of its own found nothing new.
    pub(crate) quiet: Option<(Instant, Instant)>,
}

impl Poller {
    pub(crate) fn new(buffer_bytes: usize) -> Self {
        Poller {
            logs: Mutex::new(HashMap::new()),
            buffer_bytes,
        }
    }

    /// The log of `shard`, made when missing; idle logs nobody reads are dropped meanwhile.
    fn log(&self, arn: &str, shard: &str) -> SharedLog {
        let now = Instant::now();
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        logs.retain(|_, (log, used)| {
            Arc::strong_count(log) > 1 || now.duration_since(*used) < IDLE
        });
        let entry = logs
            .entry((arn.to_string(), shard.to_string()))
            .or_insert_with(|| {
                let log = Log {
                    arn: arn.to_string(),
                    shard: shard.to_string(),
                    base: Base::Unopened,
                    first: 0,
                    records: VecDeque::new(),
                    bytes: 0,
                    iterator: None,
                    closed: false,
                    broken: false,
                    last_read: None,
                    settled: None,
                };
                (Arc::new(tokio::sync::Mutex::new(log)), now)
            });
        entry.1 = now;
        entry.0.clone()
    }

    /// Forgets a broken log, so the next feed starts a new one.
    fn forget(&self, log: &Log) {
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        logs.remove(&(log.arn.clone(), log.shard.clone()));
    }
}

impl Log {
    fn end(&self) -> u64 {
        self.first + self.records.len() as u64
    }

    /// The index after record `seq`, if the log holds it or starts right after it.
    fn after(&self, seq: &str) -> Option<u64> {
        if self.base == Base::After(seq.to_string()) {
            return Some(self.first);
        }
        self.records
            .iter()
            .position(|(r, _)| r.dynamodb().and_then(|d| d.sequence_number()) == Some(seq))
            .map(|i| self.first + i as u64 + 1)
    }

    /// Drops the oldest records beyond `limit` bytes, but none at or after `keep`.
    fn trim_to(&mut self, limit: usize, keep: u64) {
        while self.bytes > limit && self.first < keep {
            let Some((r, size)) = self.records.pop_front() else {
                break;
            };
            self.bytes -= size;
            self.first += 1;
            self.base = match r.dynamodb().and_then(|d| d.sequence_number()) {
                Some(seq) => Base::After(seq.to_string()),
                None => Base::Unopened,
            };
        }
    }
}

/// About the bytes a record holds in memory.
fn record_size(r: &Record) -> usize {
    fn value(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
            AttributeValue::B(b) => b.as_ref().len(),
            AttributeValue::L(l) => l.iter().map(value).sum(),
            AttributeValue::M(m) => m.iter().map(|(k, v)| k.len() + value(v)).sum(),
            AttributeValue::Ss(s) | AttributeValue::Ns(s) => s.iter().map(String::len).sum(),
            AttributeValue::Bs(b) => b.iter().map(|b| b.as_ref().len()).sum(),
            _ => 1,
        }
    }
    let image = |i: Option<&HashMap<String, AttributeValue>>| {
        i.map_or(0, |m| {
            m.iter().map(|(k, v)| k.len() + value(v)).sum::<usize>()
        })
    };
    let d = r.dynamodb();
    128 + d.map_or(0, |d| image(d.new_image()) + image(d.keys()))
}

/// Reopening a log failed: its feeds read alone.
struct Broken;

/// A `GetRecords` that failed for its iterator.
pub(crate) enum Lost {
    /// It expired (after 15 minutes).
    Expired,
    /// It points before the oldest record kept (DynamoDB Local also says so of an iterator
    /// opened on a shard still empty, once the shard has records).
    Trimmed,
}

impl DynamoDbTable {
    /// A shard iterator of `kind` (after `seq`); `None` when the shard has ended.
    pub(crate) async fn shard_iterator(
        &self,
        arn: &str,
        shard: &str,
        kind: ShardIteratorType,
        seq: Option<String>,
    ) -> Result<Option<String>> {
        let out = counted_as(
            OpKind::Feed,
            self.streams
                .get_shard_iterator()
                .stream_arn(arn)
                .shard_id(shard)
                .shard_iterator_type(kind)
                .set_sequence_number(seq)
                .send(),
        )
        .await
        .map_err(|e| {
            if e.as_service_error()
                .is_some_and(|s| s.is_trimmed_data_access_exception())
            {
                sekiban_core::StoreError::FeedPositionExpired {
                    detail: format!(
                        "shard {shard} no longer holds the records after the checkpoint's position"
                    ),
                }
            } else {
                from_sdk(&format!("open shard {shard}"), e)
            }
        })?;
        Ok(out.shard_iterator().map(str::to_string))
    }

    /// Joins the shared log of `shard` at `at`: the log and the index of the feed's next record
    /// in it, or `None` when the feed reads alone for now.
    pub(crate) async fn join_log(
        &self,
        arn: &str,
        shard: &str,
        at: At<'_>,
    ) -> Result<Option<(SharedLog, u64)>> {
        let shared = self.poller.log(arn, shard);
        // A new `Now` feed takes its position at once: it does not wait for a read the log is
        // making for others (it reads alone, and joins later).
        let fresh = at.latest && at.after.is_none() && at.quiet.is_none() && !at.alone;
        let mut log = if fresh {
            match shared.try_lock() {
                Ok(log) => log,
                Err(_) => return Ok(None),
            }
        } else {
            shared.lock().await
        };
        if log.broken {
            return Ok(None);
        }
        let cursor = if log.base == Base::Unopened {
            let (base, kind, seq) = match (at.after, at.latest) {
                (Some(seq), _) => (
                    Base::After(seq.to_string()),
                    ShardIteratorType::AfterSequenceNumber,
                    Some(seq.to_string()),
                ),
                // Its own iterator came first: the log's latest would be later.
                (None, true) if at.alone => return Ok(None),
                (None, true) => (Base::Latest, ShardIteratorType::Latest, None),
                (None, false) => (Base::Trim, ShardIteratorType::TrimHorizon, None),
            };
            let iterator = self.shard_iterator(arn, shard, kind, seq).await?;
            log.closed = iterator.is_none();
            log.iterator = iterator;
            if base == Base::Latest {
                log.settled = Some(Instant::now());
            }
            log.base = base;
            Some(log.first)
        } else if let Some(c) = at.after.and_then(|seq| log.after(seq)) {
            Some(c)
        } else if at.after.is_none() && !at.latest && log.base == Base::Trim && log.first == 0 {
            Some(0)
        } else if let Some((from, to)) = at.quiet {
            // The log's end is the feed's position when the log's records were read before the
            // feed found itself at the latest record, and a read started after that found
            // nothing new: every record the log holds is at or before the feed's position, and
            // nothing at or before it is missing from the log.
            let read_since = log.last_read.is_some_and(|(at, _, _)| at > to);
            if !read_since && !log.closed && !self.read_or_break(&mut log).await? {
                return Ok(None);
            }
            let quiet = log.closed || log.last_read.is_some_and(|(at, n, _)| at > to && n == 0);
            let settled = log.settled.is_some_and(|s| s < from);
            (quiet && settled).then(|| log.end())
        } else {
            None
        };
        drop(log);
        Ok(cursor.map(|c| (shared, c)))
    }

    /// A feed's read of its shard through the log, from index `cursor`, for a feed that asked
    /// at `asked` and takes a shard read that started up to `wait` before. `None`: the log
    /// no longer holds the feed's position, and the feed reads alone.
    pub(crate) async fn read_log(
        &self,
        shared: &SharedLog,
        cursor: u64,
        asked: Instant,
        wait: Duration,
    ) -> Result<Option<(Read, u64)>> {
        let mut log = shared.lock().await;
        if log.broken || cursor < log.first || cursor > log.end() {
            return Ok(None);
        }
        if cursor == log.end() && !log.closed {
            let recent = log
                .last_read
                .is_some_and(|(at, _, full)| !full && at + wait >= asked);
            if !recent && !self.read_or_break(&mut log).await? {
                return Ok(None);
            }
        }
        let from = usize::try_from(cursor - log.first).unwrap_or(usize::MAX);
        let to = from.saturating_add(RECORDS_PER_READ).min(log.records.len());
        let records = log
            .records
            .range(from.min(to)..to)
            .map(|(r, _)| r.clone())
            .collect();
        let next = log.first + to as u64;
        let read = Read {
            records,
            full: next < log.end() || log.last_read.is_some_and(|(_, _, full)| full),
            closed: log.closed && next == log.end(),
        };
        let limit = self.poller.buffer_bytes;
        log.trim_to(limit, next);
        Ok(Some((read, next)))
    }

    /// One `GetRecords` (charged a streams read unit); `Err(Lost)` when its iterator is no
    /// longer good.
    pub(crate) async fn get_records(
        &self,
        iterator: String,
        shard: &str,
    ) -> Result<std::result::Result<GetRecordsOutput, Lost>> {
        let out = counted_as(
            OpKind::Feed,
            self.streams
                .get_records()
                .shard_iterator(iterator)
                .limit(RECORDS_PER_READ as i32)
                .send(),
        )
        .await;
        match out {
            Ok(out) => {
                self.costs.record_units(OpKind::Feed, 1.0);
                Ok(Ok(out))
            }
            Err(e) => match e.as_service_error() {
                Some(s) if s.is_expired_iterator_exception() => Ok(Err(Lost::Expired)),
                Some(s) if s.is_trimmed_data_access_exception() => Ok(Err(Lost::Trimmed)),
                _ => Err(from_sdk(&format!("read shard {shard}"), e)),
            },
        }
    }

    /// [`Self::read_shard_for_all`]; `false` when the log broke (it is forgotten, and its
    /// feeds read alone).
    async fn read_or_break(&self, log: &mut Log) -> Result<bool> {
        match self.read_shard_for_all(log).await {
            Ok(()) => Ok(true),
            Err(Ok(Broken)) => {
                self.poller.forget(log);
                log.broken = true;
                Ok(false)
            }
            Err(Err(e)) => Err(e),
        }
    }

    /// One `GetRecords` on the log's shard, its records added to the log. `Err(Ok(Broken))`:
    /// the log cannot be reopened where it ends.
    async fn read_shard_for_all(&self, log: &mut Log) -> std::result::Result<(), Result<Broken>> {
        let started = Instant::now();
        for attempt in 0..2 {
            if log.iterator.is_none() {
                let (kind, seq) = match (log.records.back(), &log.base) {
                    (Some((r, _)), _) => match r.dynamodb().and_then(|d| d.sequence_number()) {
                        Some(seq) => (
                            ShardIteratorType::AfterSequenceNumber,
                            Some(seq.to_string()),
                        ),
                        None => return Err(Ok(Broken)),
                    },
                    (None, Base::After(seq)) => {
                        (ShardIteratorType::AfterSequenceNumber, Some(seq.clone()))
                    }
                    (None, Base::Trim) => (ShardIteratorType::TrimHorizon, None),
                    // The latest record then is not the latest now.
                    (None, Base::Latest | Base::Unopened) => return Err(Ok(Broken)),
                };
                match self.shard_iterator(&log.arn, &log.shard, kind, seq).await {
                    Ok(Some(it)) => log.iterator = Some(it),
                    Ok(None) => {
                        log.closed = true;
                        return Ok(());
                    }
                    Err(_) => return Err(Ok(Broken)),
                }
            }
            let it = log.iterator.clone().unwrap_or_default();
            let out = match self.get_records(it, &log.shard).await.map_err(Err)? {
                Ok(out) => out,
                // A new iterator from where the log ends, once.
                Err(Lost::Expired) => {
                    log.iterator = None;
                    continue;
                }
                Err(Lost::Trimmed) if attempt == 0 => {
                    log.iterator = None;
                    continue;
                }
                Err(Lost::Trimmed) => return Err(Ok(Broken)),
            };
            let n = out.records().len();
            for r in out.records() {
                let size = record_size(r);
                log.bytes += size;
                log.records.push_back((Arc::new(r.clone()), size));
            }
            log.iterator = out.next_shard_iterator().map(str::to_string);
            log.closed = log.iterator.is_none();
            log.last_read = Some((started, n, n >= RECORDS_PER_READ));
            if n > 0 || log.settled.is_none() {
                log.settled = Some(Instant::now());
            }
            return Ok(());
        }
        // Expired twice in a row: read again next time.
        Ok(())
    }
}
