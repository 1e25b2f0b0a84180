//! Appends: a small head item per stream, one item per append (reads are in [`crate::read`]).
//!
//! - The head (`sk` = [`HEAD_SK`], after every version) holds `v`, the stream's version, and `f`,
//!   the first version of its last append. Every append updates it under the expected-version
//!   condition, so of two appenders at one version exactly one wins, whatever version they name.
//! - One item per append, keyed by its last version (`sk` = last), holds `n` events in `e`
//!   ([`crate::encode_events`]) recorded at `t` (microseconds since the epoch).
//! - Both are written by one `TransactWriteItems`: one round trip. A refused condition returns
//!   the head as it was, in the cancellation reason: the actual version without another read.
//! - A forward read from `from` is one `Query` of `sk >= from`: the item holding `from` first
//!   (its last version is at least `from`), then the rest in order, then the head.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use sekiban_core::idempotency::{PriorEvent, match_resend};
use sekiban_core::{
    AppendResult, EventData, EventId, ExpectedVersion, Limits, OpKind, RecordedEvent, Result,
    StoreError, StreamId, Version,
};

use crate::client::counted_as;
use crate::error::{built, from_sdk};
use crate::{DynamoDbTable, decode_events, encode_events, stream_key};

/// The sort key of a stream's head item: after every version.
pub const HEAD_SK: i64 = i64::MAX;

/// The sort key of an erased stream's floor tombstone: before every version.
pub(crate) const FLOOR_SK: i64 = 0;

/// How long an `Any` or `StreamExists` append goes on trying after losing races for the head:
/// at once the first three times (the refusal carries the head's version), then after a random
/// wait that doubles each loss (from 5 ms, at most 80 ms). A count would not do: of 16 writers
/// on one stream each wins a round with odds of 1 in 16, so 64 losses in a row happen.
const ANY_PATIENCE: Duration = Duration::from_secs(120);

/// How many of a stream's latest events a re-send is recognised within: the head keeps their ids,
/// and a refused append, or the head read of an `Any` or `StreamExists` append, reads the head and
/// this many latest appends in one `Query` (each holds at least one event).
pub const IDEMPOTENCY_WINDOW: u64 = 16;

/// The head keeps the ids of the stream's latest events in sets of one generation each
/// (`i<g>`: the ids of versions `g * W + 1 ..= (g + 1) * W`, W the window), the last two
/// generations only: between W and 2 W ids. An append adds its ids and removes the generations
/// that fall behind, and, to refuse a re-send at the head's own version, is conditional on its
/// ids (all of them up to `PROBED_IDS`, else the first and last) being in neither generation kept
/// before it. All of that is known from the
/// expected version alone, so it takes no read.
struct IdSets {
    /// ` ADD …` and ` REMOVE …` clauses for the head's update.
    update: String,
    /// ` AND NOT contains(…)` clauses for its condition.
    condition: String,
    names: Vec<(String, String)>,
    values: Vec<(String, AttributeValue)>,
}

/// Appends of up to this many events have every id checked against the head's recent ones in
/// their condition; longer ones their first and last.
const PROBED_IDS: usize = 32;

/// The generation of a version's id (versions from 1).
fn generation(v: u64) -> u64 {
    v.saturating_sub(1) / IDEMPOTENCY_WINDOW
}

impl IdSets {
    fn new(at: Version, events: &[EventData], check: bool) -> Self {
        let last_gen = generation(at.0 + events.len() as u64);
        let keep: Vec<u64> = [last_gen.checked_sub(1), Some(last_gen)]
            .into_iter()
            .flatten()
            .collect();
        let before: Vec<u64> = if at == Version::NONE {
            Vec::new()
        } else {
            let g = generation(at.0);
            [g.checked_sub(1), Some(g)].into_iter().flatten().collect()
        };
        let mut out = IdSets {
            update: String::new(),
            condition: String::new(),
            names: Vec::new(),
            values: Vec::new(),
        };
        let mut adds = Vec::new();
        for g in &keep {
            let ids: Vec<aws_sdk_dynamodb::primitives::Blob> = events
                .iter()
                .enumerate()
                .filter(|(i, _)| generation(at.0 + 1 + *i as u64) == *g)
                .map(|(_, e)| aws_sdk_dynamodb::primitives::Blob::new(e.id.0.as_bytes().to_vec()))
                .collect();
            if !ids.is_empty() {
                out.names.push((format!("#a{g}"), format!("i{g}")));
                out.values.push((format!(":a{g}"), AttributeValue::Bs(ids)));
                adds.push(format!("#a{g} :a{g}"));
            }
        }
        let removes: Vec<String> = before
            .iter()
            .filter(|g| !keep.contains(g))
            .map(|g| {
                out.names.push((format!("#r{g}"), format!("i{g}")));
                format!("#r{g}")
            })
            .collect();
        if !adds.is_empty() {
            out.update = format!(" ADD {}", adds.join(", "));
        }
        if !removes.is_empty() {
            out.update
                .push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        if check && !before.is_empty() {
            // Every id of an append of up to `PROBED_IDS` events (the condition stays within
            // DynamoDB's 4 KB for expressions); of a longer one, its first and last.
            let mut probes: Vec<&EventData> = if events.len() <= PROBED_IDS {
                events.iter().collect()
            } else {
                events.first().into_iter().chain(events.last()).collect()
            };
            let mut seen = std::collections::HashSet::new();
            probes.retain(|e| seen.insert(e.id));
            for (j, e) in probes.iter().enumerate() {
                out.values.push((
                    format!(":p{j}"),
                    AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(
                        e.id.0.as_bytes().to_vec(),
                    )),
                ));
                for g in &before {
                    out.names.push((format!("#c{g}"), format!("i{g}")));
                    out.condition
                        .push_str(&format!(" AND NOT contains(#c{g}, :p{j})"));
                }
            }
        }
        out.names.sort();
        out.names.dedup();
        out
    }
}

/// A refused append: the head's version, and whether the head holds one of the append's ids
/// among its recent ones (only then can the append be a re-send within the window).
#[derive(Debug, Clone, Copy)]
struct Refused {
    actual: Version,
    knows_ids: bool,
}

/// Why an append was answered `Throttled` when other transactions on its head kept cancelling
/// it (`TransactionConflict`) past the SDK's retries: under `Any` a lost race, tried again.
#[derive(Debug)]
struct Contention(String);

impl std::fmt::Display for Contention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Contention {}

/// Whether the head's id sets (`i<g>`) hold one of `events`' ids.
fn head_knows(head: &Item, events: &[EventData]) -> bool {
    head.iter()
        .filter(|(k, _)| k.starts_with('i'))
        .filter_map(|(_, v)| match v {
            AttributeValue::Bs(set) => Some(set),
            _ => None,
        })
        .flatten()
        .any(|id| events.iter().any(|e| id.as_ref() == e.id.0.as_bytes()))
}

/// Stored events with the first and last version of the append that wrote each.
type Recent = Vec<(RecordedEvent, Version, Version)>;

/// A table item as the SDK gives it.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// A number attribute of an item, if it has one that parses.
pub(crate) fn number(item: &Item, name: &str) -> Option<u64> {
    match item.get(name) {
        Some(AttributeValue::N(s)) => s.parse().ok(),
        _ => None,
    }
}

/// The limits of a DynamoDB store: an append is one item of at most 400 KB.
pub fn dynamodb_limits() -> Limits {
    Limits {
        max_event_bytes: 350 * 1024,
        max_append_events: 100,
        // The item also holds the key, 32 bytes per event and the attribute names.
        max_append_bytes: 350 * 1024,
        max_inline_snapshot_bytes: 32 * 1024,
        page_events: 100,
        page_bytes: 1024 * 1024,
        feed_poll_interval: Duration::from_millis(1000),
        idempotency_window: IDEMPOTENCY_WINDOW,
    }
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn num(item: &Item, name: &str, what: &str) -> Result<u64> {
    match item.get(name) {
        Some(AttributeValue::N(s)) => s.parse().map_err(|e| StoreError::Corrupt {
            what: format!("{what}: attribute {name} = {s:?}: {e}"),
        }),
        _ => Err(StoreError::Corrupt {
            what: format!("{what}: attribute {name} is missing or not a number"),
        }),
    }
}

pub(crate) fn erased(stream: &StreamId, version: Version) -> StoreError {
    StoreError::StreamDeleted {
        stream: stream.clone(),
        version,
    }
}

/// The events of an append's item keyed `sk` (its last version), and its first version.
pub(crate) fn decode_item(
    stream: &StreamId,
    item: &Item,
    sk: u64,
    what: &str,
) -> Result<(Version, Vec<RecordedEvent>)> {
    let count = num(item, "n", what)?;
    let first = Version((sk + 1).saturating_sub(count.max(1)));
    let recorded = UNIX_EPOCH + Duration::from_micros(num(item, "t", what)?);
    let Some(AttributeValue::B(stored)) = item.get("e") else {
        return Err(StoreError::Corrupt {
            what: format!("{what} at version {sk} has no events"),
        });
    };
    let events = decode_events(stream, first, recorded, stored.as_ref())?;
    if events.len() as u64 != count {
        return Err(StoreError::Corrupt {
            what: format!(
                "{what} at version {sk} says {count} events and holds {}",
                events.len()
            ),
        });
    }
    Ok((first, events))
}

/// The clock in microseconds since the epoch (record times, etags, a `Now` feed's start).
pub(crate) fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

impl DynamoDbTable {
    pub(crate) fn key(&self, stream: &StreamId, sk: i64) -> Item {
        HashMap::from([
            ("pk".to_string(), AttributeValue::S(stream_key(stream))),
            ("sk".to_string(), n(sk)),
        ])
    }

    /// The head item, read strongly consistent, counted under `kind`.
    pub(crate) async fn head_item(&self, stream: &StreamId, kind: OpKind) -> Result<Option<Item>> {
        let r = counted_as(
            kind,
            self.client
                .get_item()
                .table_name(&self.config.table)
                .set_key(Some(self.key(stream, HEAD_SK)))
                .consistent_read(true)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send(),
        )
        .await
        .map_err(|e| from_sdk(&format!("read the head of {stream}"), e))?;
        self.charge(kind, r.consumed_capacity());
        Ok(r.item().cloned())
    }

    /// The head's version (0: no stream), read strongly consistent.
    pub(crate) async fn head_version(&self, stream: &StreamId, kind: OpKind) -> Result<Version> {
        match self.head_item(stream, kind).await? {
            Some(head) => {
                let v = Version(num(&head, "v", &format!("the head of {stream}"))?);
                if head.contains_key("x") {
                    return Err(erased(stream, v));
                }
                Ok(v)
            }
            None => Ok(Version::NONE),
        }
    }

    /// The head's version and the events of the latest appends, enough to cover the
    /// idempotency window: one backward `Query`, strongly consistent.
    async fn recent(&self, stream: &StreamId, kind: OpKind) -> Result<(Version, Recent)> {
        // The head, the snapshot pointer, then at least one event an item.
        let items = i32::try_from(IDEMPOTENCY_WINDOW + 2).unwrap_or(i32::MAX);
        let out = counted_as(
            kind,
            self.client
                .query()
                .table_name(&self.config.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(stream_key(stream)))
                .scan_index_forward(false)
                .consistent_read(true)
                .limit(items)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send(),
        )
        .await
        .map_err(|e| from_sdk(&format!("read the latest appends of {stream}"), e))?;
        self.charge(kind, out.consumed_capacity());
        let what = format!("an item of {stream}");
        let mut head = Version::NONE;
        let mut recent = Vec::new();
        for item in out.items() {
            let sk = num(item, "sk", &what)?;
            if sk == HEAD_SK as u64 {
                head = Version(num(item, "v", &what)?);
                if item.contains_key("x") {
                    return Err(erased(stream, head));
                }
                continue;
            }
            if sk == crate::SNAPSHOT_SK as u64 {
                continue;
            }
            let (first, events) = decode_item(stream, item, sk, &what)?;
            let last = Version(sk);
            recent.extend(events.into_iter().map(|e| (e, first, last)));
        }
        Ok((head, recent))
    }

    /// Whether `events` re-send an append among the latest `IDEMPOTENCY_WINDOW` events.
    fn resend_of(
        stream: &StreamId,
        events: &[EventData],
        head: Version,
        recent: &Recent,
    ) -> Result<Option<AppendResult>> {
        let floor = head.0.saturating_sub(IDEMPOTENCY_WINDOW);
        let by_id: HashMap<EventId, &(RecordedEvent, Version, Version)> = recent
            .iter()
            .filter(|(e, _, _)| e.version.0 > floor)
            .map(|r| (r.0.id, r))
            .collect();
        match_resend(stream, events, |id| {
            by_id.get(&id).map(|(event, first, last)| PriorEvent {
                event,
                append_first: *first,
                append_last: *last,
            })
        })
    }

    /// Writes `events` after `at` if the head is still at `at`; `Err` with the head's version
    /// when it is not.
    async fn append_at(
        &self,
        stream: &StreamId,
        at: Version,
        events: &[EventData],
    ) -> Result<std::result::Result<AppendResult, Refused>> {
        match self.write_at(stream, at, events, true).await? {
            // Refused at the expected version: an id of the append is among the head's recent
            // ones. A re-send within the window is answered; one outside it, or an id repeated
            // from an older append, goes through as an ordinary append.
            Err(refused) if refused.actual == at && at != Version::NONE => {
                let (head, recent) = self.recent(stream, OpKind::Append).await?;
                if let Some(done) = Self::resend_of(stream, events, head, &recent)? {
                    return Ok(Ok(done));
                }
                self.write_at(stream, at, events, false).await
            }
            other => Ok(other),
        }
    }

    /// One `TransactWriteItems`: the head's update under the expected version (and, with
    /// `check_ids`, under none of the append's ids (see `PROBED_IDS`) being among the head's recent
    /// ones), and the new item.
    async fn write_at(
        &self,
        stream: &StreamId,
        at: Version,
        events: &[EventData],
        check_ids: bool,
    ) -> Result<std::result::Result<AppendResult, Refused>> {
        let k = events.len() as u64;
        let (first, last) = (at.plus(1), at.plus(k));
        let last_sk = i64::try_from(last.0)
            .map_err(|_| StoreError::invalid(format!("{stream}: version {last} is too high")))?;
        let ids = IdSets::new(at, events, check_ids);
        let now = now_micros();
        let mut condition = if at == Version::NONE {
            "attribute_not_exists(v)".to_string()
        } else {
            "v = :at AND attribute_not_exists(x)".to_string()
        };
        condition.push_str(&ids.condition);
        let mut head = Update::builder()
            .table_name(&self.config.table)
            .set_key(Some(self.key(stream, HEAD_SK)))
            .update_expression(format!("SET v = :last, f = :first, m = :now{}", ids.update))
            .condition_expression(condition)
            .expression_attribute_values(":last", n(last.0))
            .expression_attribute_values(":first", n(first.0))
            .expression_attribute_values(":now", n(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if at != Version::NONE {
            head = head.expression_attribute_values(":at", n(at.0));
        }
        for (placeholder, name) in ids.names {
            head = head.expression_attribute_names(placeholder, name);
        }
        for (placeholder, value) in ids.values {
            head = head.expression_attribute_values(placeholder, value);
        }
        let mut item = self.key(stream, last_sk);
        item.insert("n".into(), n(k));
        item.insert("e".into(), AttributeValue::B(encode_events(events)?.into()));
        item.insert("t".into(), n(now));
        let batch = Put::builder()
            .table_name(&self.config.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(sk)");
        let request = self
            .client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .update(built("head update", head.build())?)
                    .build(),
            )
            .transact_items(
                TransactWriteItem::builder()
                    .put(built("events item", batch.build())?)
                    .build(),
            )
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        match counted_as(OpKind::Append, request.send()).await {
            Ok(out) => {
                self.charge(OpKind::Append, out.consumed_capacity());
                Ok(Ok(AppendResult {
                    first,
                    last,
                    deduplicated: false,
                }))
            }
            Err(e) => {
                let refused_head = e.as_service_error().and_then(|s| match s {
                    aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => {
                        c.cancellation_reasons().first().filter(|r| r.code() == Some("ConditionalCheckFailed")).map(|r| r.item().cloned())
                    }
                    _ => None,
                });
                if e.as_service_error()
                    .is_some_and(crate::client::is_transaction_conflict)
                {
                    return Err(StoreError::Throttled {
                        source: Box::new(Contention(format!(
                            "append to {stream}: another transaction kept touching its head; retry"
                        ))),
                    });
                }
                match refused_head {
                    Some(old) => {
                        let refused = match old {
                            Some(head) => {
                                let v = Version(num(&head, "v", &format!("the head of {stream}"))?);
                                if head.contains_key("x") {
                                    return Err(erased(stream, v));
                                }
                                Refused {
                                    actual: v,
                                    knows_ids: head_knows(&head, events),
                                }
                            }
                            None => Refused {
                                actual: Version::NONE,
                                knows_ids: false,
                            },
                        };
                        Ok(Err(refused))
                    }
                    None => Err(from_sdk(&format!("append to {stream}"), e)),
                }
            }
        }
    }

    /// Appends atomically in one request under `Exact`/`NoStream`; `Any` and `StreamExists`
    /// read the head first (and again after losing a race, from the refused request's answer).
    pub(crate) async fn append_events(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<EventData>,
    ) -> Result<AppendResult> {
        self.limits.check_append(stream, &events)?;
        let wrong = |actual| StoreError::WrongExpectedVersion {
            stream: stream.clone(),
            expected,
            actual,
        };
        match expected {
            ExpectedVersion::Exact(_) | ExpectedVersion::NoStream => {
                let at = match expected {
                    ExpectedVersion::Exact(v) => v,
                    _ => Version::NONE,
                };
                let refused = match self.append_at(stream, at, &events).await? {
                    Ok(done) => return Ok(done),
                    Err(refused) => refused,
                };
                // A re-send of an append within the window, under any expected version: the
                // refused head returned its recent ids, and when it holds one of this append's,
                // one read of the latest appends answers it.
                if refused.knows_ids {
                    let (head, recent) = self.recent(stream, OpKind::Append).await?;
                    if let Some(done) = Self::resend_of(stream, &events, head, &recent)? {
                        return Ok(done);
                    }
                }
                let actual = refused.actual;
                Err(wrong(actual))
            }
            ExpectedVersion::Any | ExpectedVersion::StreamExists => {
                let (mut at, recent) = self.recent(stream, OpKind::Append).await?;
                if let Some(done) = Self::resend_of(stream, &events, at, &recent)? {
                    return Ok(done);
                }
                let deadline = tokio::time::Instant::now() + ANY_PATIENCE;
                let mut lost = 0u32;
                while lost == 0 || tokio::time::Instant::now() < deadline {
                    // The refusal said where the head is: try there at once, and only after a
                    // few losses in a row wait, to let the other writers through.
                    if lost > 3 {
                        let ceiling = 5u64 << (lost - 3).min(4);
                        let wait = uuid::Uuid::new_v4().as_u128() as u64 % ceiling;
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                    }
                    if expected == ExpectedVersion::StreamExists && at == Version::NONE {
                        return Err(wrong(at));
                    }
                    match self.append_at(stream, at, &events).await {
                        Ok(Ok(done)) => return Ok(done),
                        Ok(Err(refused)) => at = refused.actual,
                        // Another transaction on the head outlasted the SDK's retries: a lost
                        // race too, tried again at the same version. Throttling, or any other
                        // fault past the SDK's retries, is answered at once: never retries on
                        // top of the SDK's.
                        Err(StoreError::Throttled { source }) if source.is::<Contention>() => {}
                        Err(e) => return Err(e),
                    }
                    lost += 1;
                }
                Err(StoreError::Throttled {
                    source: format!(
                        "append to {stream}: lost the race for the head {lost} times in {} s",
                        ANY_PATIENCE.as_secs()
                    )
                    .into(),
                })
            }
        }
    }
}
