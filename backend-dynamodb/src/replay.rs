//! Replay from the beginning, beyond what Streams keeps: the table is scanned, each stream's
//! events in version order, then the feed hands over to Streams without a gap or a per-stream
//! reordering.
//!
//! - The scan and Streams split the work by the time each write records (`t` on an append's
//!   item, `m` on the head, `hm` for a soft delete), against the pass's cut, the replay margin
//!   (two minutes) before the pass starts: the scan delivers each stream's items up to its first
//!   one written at or after the cut, Streams the rest, from shard positions "records from the
//!   cut on" (with the feed's minute of margin), time positions that need no iterator and do not
//!   expire in 15 minutes. No event comes twice, none is lost, a stream's come in order, and
//!   that holds across resumes without remembering anything per stream. It assumes what the
//!   `Now` feed assumes: writers' clocks within a minute of the service's, and a request
//!   committed within a minute of the time it records.
//! - The scan reads consistently, one page (1 MB) a request. A stream's items come together, in
//!   sort-key order, so its events come in version order; a stream's head (the last of its items)
//!   is looked up in the page, or read with one `GetItem` when the stream runs past the page, so
//!   that a soft-delete marker goes before the events after it. Erased streams give their
//!   hard-delete marker only, hidden items nothing.
//! - A record the cut gives to the scan is skipped by Streams unless an earlier item of its
//!   stream was written after the cut (clocks out of step: the scan stopped before it), which one
//!   `Query` tells.
//! - When a pass ends so late that records from its cut may be trimmed already (it outlasted
//!   the stream's retention, less a quarter of it, at most an hour), the feed does not hand over:
//!   it scans again, delivering each stream from its first item written at or after the previous
//!   cut up to the new one, and hands over from the new pass's cut.
//! - The checkpoint says which pass and where in the scan; resumed, a scan goes on from the item
//!   after the last one handed out (part of an item: the rest of it).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use sekiban_core::{
    DeleteMode, FeedItem, FeedOptions, OpKind, Result, StoreError, StreamId, Version,
};

use crate::client::counted_as;
use crate::error::from_sdk;
use crate::events::{FLOOR_SK, Item, decode_item, number};
use crate::{DynamoDbTable, HEAD_SK, SNAPSHOT_SK};

/// The margin for the store's clock against the service's record times, in µs (DynamoDB Local
/// also rounds record times down to the minute).
pub(crate) const CLOCK_MARGIN: u64 = 60_000_000;

/// Where the scan is in a stream's items.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Before its first item written at or after the pass's `since`.
    Waiting = 0,
    /// Delivering.
    Delivering = 1,
    /// Past its first item written at or after the cut: the rest is Streams'.
    Stopped = 2,
}

/// The stream the scan is in.
#[derive(Debug)]
struct Current {
    pk: String,
    /// Its head, as read when the scan reached the stream.
    head: Option<Item>,
    phase: Phase,
}

/// One pass of the table scan.
#[derive(Debug)]
pub(crate) struct Scan {
    /// Each stream from its first item written at or after this (µs; 0: everything) up to its
    /// first one written at or after `cut`.
    pub since: u64,
    /// The time that splits the work with Streams: the pass's start less the replay margin.
    pub cut: u64,
    /// The key of the last item read (`key_string`).
    pub last: Option<String>,
    /// Part of an item handed out before a resume: its key and how many items.
    pub skip: Option<(String, usize)>,
    /// No page left.
    pub done: bool,
    /// Where the scan was in the stream of `last` (kept in the checkpoint).
    pub phase: Phase,
    current: Option<Current>,
}

impl Scan {
    /// A pass from the first item.
    pub(crate) fn new(since: u64, cut: u64) -> Self {
        Scan {
            since,
            cut,
            last: None,
            skip: None,
            done: false,
            phase: Phase::Waiting,
            current: None,
        }
    }

    /// The pass resumed after `last`, part of `skip` handed out.
    pub(crate) fn resumed(
        since: u64,
        cut: u64,
        phase: Phase,
        last: Option<String>,
        skip: Option<(String, usize)>,
    ) -> Result<Self> {
        let current = match &last {
            Some(k) => Some(Current {
                pk: parse_key(k)?.0,
                head: None,
                phase,
            }),
            None => None,
        };
        Ok(Scan {
            since,
            cut,
            last,
            skip,
            done: false,
            phase,
            current,
        })
    }
}

/// An item's key as a checkpoint holds it: the partition key in hex, a dot, the sort key.
pub(crate) fn key_string(pk: &str, sk: u64) -> String {
    let hex: String = pk.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.{sk}")
}

fn parse_key(k: &str) -> Result<(String, u64)> {
    let bad = || StoreError::InvalidCheckpoint {
        reason: format!("{k:?} is not a scan position of this store's feed"),
    };
    let (hex, sk) = k.split_once('.').ok_or_else(bad)?;
    if hex.len() % 2 != 0 {
        return Err(bad());
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<std::result::Result<Vec<u8>, _>>()
        .map_err(|_| bad())?;
    let pk = String::from_utf8(bytes).map_err(|_| bad())?;
    Ok((pk, sk.parse().map_err(|_| bad())?))
}

fn key_item(k: &str) -> Result<Item> {
    let (pk, sk) = parse_key(k)?;
    Ok(HashMap::from([
        ("pk".to_string(), AttributeValue::S(pk)),
        ("sk".to_string(), AttributeValue::N(sk.to_string())),
    ]))
}

/// A head's soft deletes, oldest first: (version, time), from its list `hl` of both in turn.
fn soft_deletes(head: &Item) -> Vec<(u64, u64)> {
    let Some(AttributeValue::L(list)) = head.get("hl") else {
        return Vec::new();
    };
    let nums: Vec<u64> = list
        .iter()
        .filter_map(|v| match v {
            AttributeValue::N(n) => n.parse().ok(),
            _ => None,
        })
        .collect();
    nums.chunks_exact(2).map(|p| (p[0], p[1])).collect()
}

fn pk_of(item: &Item) -> Option<&str> {
    match item.get("pk") {
        Some(AttributeValue::S(s)) => Some(s),
        _ => None,
    }
}

/// Items read by one scan request, ready to queue: the key before, the item's key, its items
/// not handed out yet, how many were (before a resume), and the phase of its stream before the
/// item (what a checkpoint just before it holds).
pub(crate) type ScanUnit = (Option<String>, String, Vec<FeedItem>, usize, Phase);

impl DynamoDbTable {
    /// Reads one page of the scan: its items' events and markers, in order.
    pub(crate) async fn scan_page(
        &self,
        scan: &mut Scan,
        opts: &FeedOptions,
    ) -> Result<Vec<ScanUnit>> {
        let (since, cut) = (scan.since, scan.cut);
        let in_pass = |t: u64| t >= since && t < cut;
        let start = scan.last.as_deref().map(key_item).transpose()?;
        let out = counted_as(
            OpKind::Feed,
            self.client
                .scan()
                .table_name(&self.config.table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send(),
        )
        .await
        .map_err(|e| from_sdk(&format!("scan table {}", self.config.table), e))?;
        self.charge(OpKind::Feed, out.consumed_capacity());
        let items = out.items();
        let mut units = Vec::new();
        for (at, item) in items.iter().enumerate() {
            let (Some(pk), Some(sk)) = (pk_of(item), number(item, "sk")) else {
                continue;
            };
            let key = key_string(pk, sk);
            let after = scan.last.replace(key.clone());
            let Some(stream) = crate::feed::stream_of(pk) else {
                continue;
            };
            if !opts.matches(&stream) {
                continue;
            }
            if scan.current.as_ref().is_none_or(|c| c.pk != pk) {
                // A new stream: its head, from this page or read.
                let head = match items[at..]
                    .iter()
                    .find(|i| pk_of(i) == Some(pk) && number(i, "sk") == Some(HEAD_SK as u64))
                {
                    Some(h) => Some(h.clone()),
                    // The stream runs past the page.
                    None => self.head_item(&stream, OpKind::Feed).await?,
                };
                let current = Current {
                    pk: pk.to_string(),
                    head,
                    phase: if since == 0 {
                        Phase::Delivering
                    } else {
                        Phase::Waiting
                    },
                };
                // Its soft deletes this pass has (`hl`: version, time, …), before the events
                // after them, and before the hard-delete marker of an erased stream (markers
                // hold no event data).
                if let Some(head) = &current.head {
                    let markers: Vec<FeedItem> = soft_deletes(head)
                        .into_iter()
                        .filter(|(_, at)| in_pass(*at))
                        .map(|(h, _)| FeedItem::Deleted {
                            stream: stream.clone(),
                            version: Version(h),
                            mode: DeleteMode::Soft,
                        })
                        .collect();
                    if !markers.is_empty() {
                        units.push((after.clone(), key.clone(), markers, 0, current.phase));
                    }
                }
                scan.current = Some(current);
            }
            let Some(current) = scan.current.as_mut() else {
                continue;
            };
            let erased = current.head.as_ref().is_some_and(|h| h.contains_key("x"));
            let phase_before = current.phase;
            if sk == HEAD_SK as u64 {
                if item.contains_key("x") && in_pass(number(item, "m").unwrap_or(0)) {
                    units.push((
                        after,
                        key,
                        vec![FeedItem::Deleted {
                            stream: stream.clone(),
                            version: Version(number(item, "v").unwrap_or(0)),
                            mode: DeleteMode::Hard,
                        }],
                        0,
                        phase_before,
                    ));
                }
                continue;
            }
            if sk == FLOOR_SK as u64 || sk >= SNAPSHOT_SK as u64 || erased {
                continue;
            }
            let t = number(item, "t").unwrap_or(0);
            if current.phase == Phase::Waiting && t >= since {
                current.phase = Phase::Delivering;
            }
            if current.phase == Phase::Delivering && t >= cut {
                current.phase = Phase::Stopped;
            }
            // Hidden by a soft delete: nothing, though its time counts like any other's.
            if current.phase != Phase::Delivering || item.contains_key("z") {
                continue;
            }
            let (_, events) = decode_item(&stream, item, sk, "an append in the table scan")?;
            let mut events: Vec<FeedItem> = events.into_iter().map(FeedItem::Event).collect();
            let mut done = 0;
            if let Some((record, skip)) = &scan.skip
                && *record == key
            {
                done = (*skip).min(events.len());
                events.drain(..done);
                scan.skip = None;
            }
            if !events.is_empty() {
                units.push((after, key, events, done, phase_before));
            }
        }
        scan.phase = scan.current.as_ref().map_or(Phase::Waiting, |c| c.phase);
        if out.last_evaluated_key().is_none() {
            scan.done = true;
        }
        Ok(units)
    }

    /// Whether an item of `stream` before version `first` was written at or after `cut` (then
    /// a scan with that cut stopped before the append at `first`, and Streams delivers it).
    pub(crate) async fn written_after_cut_before(
        &self,
        stream: &StreamId,
        first: u64,
        cut: u64,
    ) -> Result<bool> {
        if first <= 1 {
            return Ok(false);
        }
        let mut start = None;
        loop {
            let out = counted_as(
                OpKind::Feed,
                self.client
                    .query()
                    .table_name(&self.config.table)
                    .key_condition_expression("pk = :pk AND sk BETWEEN :one AND :before")
                    .filter_expression("t >= :cut")
                    .expression_attribute_values(
                        ":pk",
                        AttributeValue::S(crate::stream_key(stream)),
                    )
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .expression_attribute_values(
                        ":before",
                        AttributeValue::N(first.saturating_sub(1).to_string()),
                    )
                    .expression_attribute_values(":cut", AttributeValue::N(cut.to_string()))
                    .projection_expression("sk")
                    .consistent_read(true)
                    .set_exclusive_start_key(start)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send(),
            )
            .await
            .map_err(|e| from_sdk(&format!("read the appends of {stream}"), e))?;
            self.charge(OpKind::Feed, out.consumed_capacity());
            if out.count() > 0 {
                return Ok(true);
            }
            match out.last_evaluated_key() {
                Some(k) => start = Some(k.clone()),
                None => return Ok(false),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_survive_the_checkpoint() {
        for pk in ["t|c|i", "t|c|a;b,c=d:e.f", "ü|ñ|x"] {
            let k = key_string(pk, 42);
            assert!(!k.contains([';', ',', ':', '=']), "{k}");
            assert_eq!(parse_key(&k).expect("parses"), (pk.to_string(), 42));
        }
        assert!(parse_key("zz.1").is_err());
        assert!(parse_key("616").is_err());
    }
}
