//! Appends: one transactional batch that writes the head (replaced on its etag, or created) and
//! one document holding the append's events.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use azure_data_cosmos::Query;
use azure_data_cosmos::models::TransactionalBatch;
use azure_data_cosmos::options::{BatchReplaceOptions, Precondition};
use futures::TryStreamExt;

use sekiban_core::idempotency::{PriorEvent, match_resend};
use sekiban_core::{
    AppendResult, EventData, ExpectedVersion, OpKind, RecordedEvent, Result, StoreError, StreamId,
    Version,
};

use crate::conn::{CONFLICT, NOT_FOUND, PRECONDITION_FAILED};
use crate::docs::{APPEND, AppendDoc, Head, json_size, micros};
use crate::heads::partition_key;
use crate::{CosmosStore, IDEMPOTENCY_WINDOW, MAX_DOCUMENT_BYTES};

/// How long an `Any` or `StreamExists` append keeps trying against other writers of its stream.
const CONTENTION_DEADLINE: Duration = Duration::from_secs(120);

/// What the store knows of a stream's head before it writes.
#[derive(Debug)]
struct Known {
    /// The head and its etag; `None`: the stream has no head.
    head: Option<(Head, String)>,
    /// Read from the container for this append (not remembered from earlier).
    fresh: bool,
}

impl Known {
    fn version(&self) -> Version {
        Version(self.head.as_ref().map_or(0, |(h, _)| h.v))
    }
}

impl CosmosStore {
    pub(crate) async fn append_events(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<EventData>,
    ) -> Result<AppendResult> {
        self.limits.check_append(stream, &events)?;
        let mut known = match self.heads.get(stream) {
            Some(cached) => Known {
                head: Some(cached),
                fresh: false,
            },
            // A new stream has no head: try to create it without reading first.
            None if matches!(
                expected,
                ExpectedVersion::NoStream | ExpectedVersion::Exact(Version(0))
            ) =>
            {
                Known {
                    head: None,
                    fresh: false,
                }
            }
            None => self.fresh_head(stream).await?,
        };
        let started = Instant::now();
        let mut losses = 0u32;
        loop {
            if let Some((h, _)) = &known.head
                && h.x
            {
                return Err(StoreError::StreamDeleted {
                    stream: stream.clone(),
                    version: Version(h.v),
                });
            }
            if let Some((h, _)) = &known.head
                && h.knows_any(events.iter().map(|e| &e.id))
            {
                if !known.fresh {
                    known = self.fresh_head(stream).await?;
                    continue;
                }
                if let Some(r) = self.match_resend(stream, &events, h).await? {
                    return Ok(r);
                }
            }
            let head = known.version();
            if !expected.accepts(head) {
                if !known.fresh {
                    known = self.fresh_head(stream).await?;
                    continue;
                }
                return Err(StoreError::WrongExpectedVersion {
                    stream: stream.clone(),
                    expected,
                    actual: head,
                });
            }
            match self.write_append(stream, &known, &events).await? {
                Ok(result) => return Ok(result),
                Err(()) => {
                    // Another writer changed the head since it was read: read it again.
                    if known.fresh {
                        losses += 1;
                        if started.elapsed() > CONTENTION_DEADLINE {
                            return Err(StoreError::throttled(
                                format!("append to {stream}"),
                                format!(
                                    "other writers changed the stream's head {losses} times in {} s",
                                    CONTENTION_DEADLINE.as_secs()
                                ),
                            ));
                        }
                        if losses > 3 {
                            let ms = 5u64 << (losses - 4).min(4);
                            tokio::time::sleep(Duration::from_millis(
                                ms / 2 + rand_below(ms / 2 + 1),
                            ))
                            .await;
                        }
                    }
                    known = self.fresh_head(stream).await?;
                }
            }
        }
    }

    async fn fresh_head(&self, stream: &StreamId) -> Result<Known> {
        Ok(Known {
            head: self.read_head(stream, OpKind::Append).await?,
            fresh: true,
        })
    }

    /// One batch: the head (created, or replaced on its etag) and the append's document. `Err(())`
    /// when the head was not as known.
    async fn write_append(
        &self,
        stream: &StreamId,
        known: &Known,
        events: &[EventData],
    ) -> Result<std::result::Result<AppendResult, ()>> {
        let now = micros(SystemTime::now());
        let first = known.version().0 + 1;
        let doc = AppendDoc::new(stream, first, events, now);
        let last = doc.l;
        let base = known
            .head
            .as_ref()
            .map_or_else(|| Head::new(stream), |(h, _)| h.clone());
        let head = base.appended(events.iter().map(|e| e.id), first, IDEMPOTENCY_WINDOW, now);
        let doc = self.events.doc(&doc)?;
        let head_json = self.events.doc(&head)?;
        let size = json_size(&doc);
        let head_size = json_size(&head_json);
        if size + head_size > MAX_DOCUMENT_BYTES {
            let bytes = events.iter().map(EventData::size).sum();
            return Err(StoreError::BatchTooLarge {
                stream: stream.clone(),
                count: events.len(),
                bytes,
                max_count: self.limits.max_append_events,
                max_bytes: bytes * MAX_DOCUMENT_BYTES / (size + head_size),
            });
        }
        let pk = partition_key(stream);
        let batch = TransactionalBatch::new(pk);
        let batch = match &known.head {
            None => batch.create_item(&head_json),
            Some((_, etag)) => batch.replace_item(
                crate::docs::HEAD_ID,
                &head_json,
                Some(
                    BatchReplaceOptions::default()
                        .with_precondition(Precondition::if_match(etag.clone())),
                ),
            ),
        }
        .and_then(|b| b.create_item(&doc))
        .map_err(|e| crate::conn::error("build an append batch", e))?;
        match self
            .events
            .batch(OpKind::Append, batch, size + head_size)
            .await?
        {
            Ok(results) => {
                let etag = results.first().and_then(|(_, e, _)| e.clone());
                match etag {
                    Some(etag) => self.heads.put(stream, head, etag),
                    None => self.heads.forget(stream),
                }
                Ok(Ok(AppendResult {
                    first: Version(first),
                    last: Version(last),
                    deduplicated: false,
                }))
            }
            Err(refused) => match refused.cause() {
                Some((0, CONFLICT | PRECONDITION_FAILED | NOT_FOUND)) => {
                    self.heads.forget(stream);
                    Ok(Err(()))
                }
                cause => Err(StoreError::Corrupt {
                    what: format!(
                        "append to {stream} at version {first}: the batch was refused with statuses {:?} (operation and status {cause:?})",
                        refused.statuses
                    ),
                }),
            },
        }
    }

    /// Whether `events` re-send an append whose ids are in the head's window: reads the appends
    /// that reach into the window (one query) and compares ids and content with all their
    /// events. `None`: not a re-send.
    async fn match_resend(
        &self,
        stream: &StreamId,
        events: &[EventData],
        head: &Head,
    ) -> Result<Option<AppendResult>> {
        let oldest = head.v.saturating_sub(IDEMPOTENCY_WINDOW);
        let query = Query::from(format!(
            "SELECT * FROM c WHERE c.k = '{APPEND}' AND c.l > @oldest"
        ))
        .with_parameter("@oldest", oldest)
        .map_err(|e| crate::conn::error("build a query", e))?;
        let pages: Vec<Vec<crate::docs::AnyDoc>> = self
            .events
            .query(OpKind::Append, partition_key(stream), query, 100)
            .try_collect()
            .await?;
        // Every event of an append that reaches into the window: an append is re-sent whole,
        // however many of its events the window holds (an append of more events than the
        // window is recognised by all of them).
        let mut stored: Vec<(RecordedEvent, Version, Version)> = Vec::new();
        for doc in pages.into_iter().flatten() {
            let a: AppendDoc = doc.parse()?;
            for e in a.events(stream)? {
                stored.push((e, Version(a.f), Version(a.l)));
            }
        }
        let by_id: HashMap<_, _> = stored
            .iter()
            .map(|(e, f, l)| {
                (
                    e.id,
                    PriorEvent {
                        event: e,
                        append_first: *f,
                        append_last: *l,
                    },
                )
            })
            .collect();
        match_resend(stream, events, |id| by_id.get(&id).copied())
    }
}

/// A number below `n` from the clock (jitter for backing off; no randomness crate needed).
fn rand_below(n: u64) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    nanos % n.max(1)
}
