//! Every request the store sends goes through here, and is counted here: the round trips the
//! SDK made for it (its retries included, from the operation's diagnostics), the request charge
//! the service reported (RU), and the bytes of the documents sent and received. Status codes
//! become the store's errors here too.

use std::sync::Arc;

use azure_data_cosmos::clients::ContainerClient;
use azure_data_cosmos::diagnostics::DiagnosticsContext;
use azure_data_cosmos::feed::{ContinuationToken, FeedRange};
use azure_data_cosmos::models::TransactionalBatch;
use azure_data_cosmos::options::{
    BatchOptions, ChangeFeedOptions, ChangeFeedStartFrom, ItemReadOptions, ItemWriteOptions,
    MaxItemCountHint, OperationOptions, Precondition, QueryOptions, ReadFeedRangesOptions,
    ThrottlingRetryOptionsBuilder,
};
use azure_data_cosmos::{CosmosError, FeedScope, PartitionKey, Query};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::value::RawValue;

use sekiban_core::backend::CostCounter;
use sekiban_core::{OpKind, Result, StoreError};

use crate::docs::AnyDoc;

/// HTTP status codes the store tells apart.
pub(crate) const NOT_FOUND: u16 = 404;
pub(crate) const CONFLICT: u16 = 409;
pub(crate) const PRECONDITION_FAILED: u16 = 412;

/// A container and the counter its requests feed.
#[derive(Clone)]
pub(crate) struct Conn {
    pub container: ContainerClient,
    pub costs: Arc<CostCounter>,
    /// The properties the partition key paths name, when not the documents' own `t` and `s`.
    pub fields: Option<Arc<[String; 2]>>,
    /// The SDK's retry budget, on every request ([`retry_options`]).
    pub operation: OperationOptions,
}

/// The SDK's retry policy, on every request: `attempts` attempts in all (the first included)
/// for each kind of fault it retries, throttling (429, after the service's
/// `x-ms-retry-after-ms`) and failures (5xx, 408, a lost connection); `None`: 10 for throttling
/// (within 30 s of waits) and 4 for failures, the SDK's documented defaults, set here because
/// the SDK left to itself retries a throttled request at two layers (19 requests over 107 s for
/// a throttle that never ends).
pub(crate) fn retry_options(attempts: Option<u32>) -> OperationOptions {
    let (throttled, failed) = match attempts {
        Some(n) => (n.max(1), n.max(1)),
        None => (10, 4),
    };
    azure_data_cosmos::options::OperationOptionsBuilder::new()
        .with_max_failover_retry_count(failed - 1)
        .with_throttling_retry_options(
            ThrottlingRetryOptionsBuilder::new()
                .with_max_retry_count(throttled - 1)
                .with_max_retry_wait_time(std::time::Duration::from_secs(30))
                .build(),
        )
        .build()
}

/// The budget of blob requests (snapshot offload), which the store's loop retries (the blob
/// client retries nothing itself): `attempts`, or 4 (the failures' default).
pub(crate) fn blob_budget(attempts: Option<u32>) -> sekiban_core::backend::RetryBudget {
    sekiban_core::backend::RetryBudget::attempts(attempts.unwrap_or(4))
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").finish_non_exhaustive()
    }
}

/// One document read, with its etag.
#[derive(Debug)]
pub(crate) struct Found {
    pub doc: AnyDoc,
    pub etag: String,
}

/// The result of a transactional batch the service refused: the status of each operation (the
/// one that failed, and 424 for the others).
#[derive(Debug)]
pub(crate) struct Refused {
    pub statuses: Vec<u16>,
}

impl Refused {
    /// The first status that is not 424 (failed dependency): the operation that failed.
    pub fn cause(&self) -> Option<(usize, u16)> {
        self.statuses
            .iter()
            .copied()
            .enumerate()
            .find(|(_, s)| *s != 424)
    }
}

/// A page of change-feed documents and the continuation after it (`None`: the SDK gave no page,
/// so the position stays where it was).
#[derive(Debug)]
pub(crate) struct ChangePage {
    pub docs: Vec<AnyDoc>,
    pub continuation: Option<String>,
}

fn status_of(e: &CosmosError) -> u16 {
    u16::from(e.status().status_code())
}

/// Maps an SDK error: 429 (after the SDK's own retries, which honour `x-ms-retry-after-ms`)
/// is `Throttled`, anything transient `Unavailable`, the rest a backend error.
pub(crate) fn error(context: &str, e: CosmosError) -> StoreError {
    let status = e.status();
    if status.is_throttled() {
        StoreError::throttled(context.to_owned(), e)
    } else if status.is_transient() || status.is_timeout() || status.is_service_unavailable() {
        StoreError::unavailable(context.to_owned(), e)
    } else {
        StoreError::backend(context.to_owned(), e)
    }
}

/// The property names of the documents' tenant and stream.
const OWN: [&str; 2] = ["t", "s"];

/// Renames the top-level properties `from` to `to` (same order).
fn rename(v: &mut serde_json::Value, from: [&str; 2], to: [&str; 2]) {
    if let Some(map) = v.as_object_mut() {
        for (f, t) in from.iter().zip(to) {
            if let Some(x) = map.remove(*f) {
                map.insert(t.to_owned(), x);
            }
        }
    }
}

impl Conn {
    /// A document as the container stores it: its JSON, with the tenant and stream under the
    /// properties the partition key paths name.
    pub fn doc<T: serde::Serialize>(&self, doc: &T) -> Result<serde_json::Value> {
        let mut v = crate::docs::to_json(doc)?;
        if let Some(f) = &self.fields {
            rename(&mut v, OWN, [f[0].as_str(), f[1].as_str()]);
        }
        Ok(v)
    }

    /// A stored document, its tenant and stream under the documents' own names again.
    fn parse(&self, raw: &RawValue) -> Result<AnyDoc> {
        let Some(f) = &self.fields else {
            return parse(raw);
        };
        let mut v: serde_json::Value = serde_json::from_str(raw.get()).map_err(corrupt)?;
        rename(&mut v, [f[0].as_str(), f[1].as_str()], OWN);
        serde_json::from_value(v).map_err(corrupt)
    }

    /// Counts one operation: every request its diagnostics record (the SDK's retries included,
    /// each also counted as a retry) and the request charge of all of them.
    fn count(
        &self,
        kind: OpKind,
        diagnostics: Option<&DiagnosticsContext>,
        sent: usize,
        received: usize,
    ) {
        let (requests, charge) = diagnostics.map_or((1, 0.0), |d| {
            (
                d.request_count().max(1),
                f64::from(d.total_request_charge()),
            )
        });
        for i in 0..requests {
            // Every try sends the request's body; the answer read is the last one's.
            let r = if i + 1 == requests { received } else { 0 };
            self.costs.record(kind, sent as u64, r as u64);
            if i > 0 {
                // A request the SDK's retry policy sent again.
                self.costs.record_retry(kind);
            }
        }
        self.costs.record_units(kind, charge);
    }

    fn count_error(&self, kind: OpKind, e: &CosmosError, sent: usize) {
        let d = e.diagnostics();
        self.count(kind, d.as_deref(), sent, 0);
    }

    /// A point read; `None` when the document does not exist.
    pub async fn read(&self, kind: OpKind, pk: PartitionKey, id: &str) -> Result<Option<Found>> {
        let options = ItemReadOptions::default().with_operation_options(self.operation.clone());
        match self.container.read_item(pk, id, Some(options)).await {
            Ok(resp) => {
                let d = resp.diagnostics();
                let etag = resp.headers().etag().map(|e| e.to_string());
                let body: Box<RawValue> = match resp.into_model() {
                    Ok(b) => b,
                    Err(e) => {
                        self.count(kind, Some(&d), 0, 0);
                        return Err(error("read a document", e));
                    }
                };
                self.count(kind, Some(&d), 0, body.get().len());
                let doc: AnyDoc = self.parse(&body)?;
                let etag = etag.or_else(|| doc.etag.clone()).unwrap_or_default();
                Ok(Some(Found { doc, etag }))
            }
            Err(e) if status_of(&e) == NOT_FOUND => {
                self.count_error(kind, &e, 0);
                Ok(None)
            }
            Err(e) => {
                self.count_error(kind, &e, 0);
                Err(error("read a document", e))
            }
        }
    }

    /// Creates (`expected` = `None`) or replaces (on `expected`'s etag) a document, or deletes it
    /// (`doc` = `None`); the new etag, or the refusing status (404, 409, 412).
    pub async fn write(
        &self,
        kind: OpKind,
        pk: PartitionKey,
        id: &str,
        doc: Option<&serde_json::Value>,
        expected: Option<&str>,
    ) -> Result<std::result::Result<Option<String>, u16>> {
        let mut options =
            ItemWriteOptions::default().with_operation_options(self.operation.clone());
        if let Some(etag) = expected {
            options = options.with_precondition(Precondition::if_match(etag.to_owned()));
        }
        let options = Some(options);
        let sent = doc.map_or(0, crate::docs::json_size);
        let result = match (doc, expected) {
            (Some(doc), None) => self.container.create_item(pk, id, doc, options).await,
            (Some(doc), Some(_)) => self.container.replace_item(pk, id, doc, options).await,
            (None, _) => self.container.delete_item(pk, id, options).await,
        };
        match result {
            Ok(resp) => {
                let d = resp.diagnostics();
                self.count(kind, Some(&d), sent, 0);
                Ok(Ok(resp.headers().etag().map(|e| e.to_string())))
            }
            Err(e) => {
                self.count_error(kind, &e, sent);
                match status_of(&e) {
                    s @ (NOT_FOUND | CONFLICT | PRECONDITION_FAILED) => Ok(Err(s)),
                    _ => Err(error("write a document", e)),
                }
            }
        }
    }

    /// Runs a transactional batch: every operation's result (status, etag, body), or the
    /// statuses of a refused one (the service answers a refused batch with success and a status
    /// per operation).
    pub async fn batch(
        &self,
        kind: OpKind,
        batch: TransactionalBatch,
        sent: usize,
    ) -> Result<std::result::Result<Vec<(u16, Option<String>, Option<Box<RawValue>>)>, Refused>>
    {
        let resp = match self
            .container
            .execute_transactional_batch(
                batch,
                Some(BatchOptions::default().with_operation_options(self.operation.clone())),
            )
            .await
        {
            Ok(r) => r,
            Err(e) => {
                self.count_error(kind, &e, sent);
                return Err(error("run a transactional batch", e));
            }
        };
        let d = resp.diagnostics();
        let model = match resp.into_model() {
            Ok(m) => m,
            Err(e) => {
                self.count(kind, Some(&d), sent, 0);
                return Err(error("read a transactional batch's results", e));
            }
        };
        let results = model.results();
        let received: usize = results
            .iter()
            .map(|r| r.resource_body().map_or(0, |b| b.get().len()))
            .sum();
        self.count(kind, Some(&d), sent, received);
        if results.iter().all(|r| r.is_success()) && !results.is_empty() {
            Ok(Ok(results
                .iter()
                .map(|r| {
                    (
                        r.status_code(),
                        r.etag().map(str::to_owned),
                        r.resource_body().map(|b| b.to_owned()),
                    )
                })
                .collect()))
        } else {
            Ok(Err(Refused {
                statuses: results.iter().map(|r| r.status_code()).collect(),
            }))
        }
    }

    /// A single-partition query, read lazily one page (one request) at a time.
    pub fn query(
        &self,
        kind: OpKind,
        pk: PartitionKey,
        query: Query,
        page_items: u32,
    ) -> BoxStream<'static, Result<Vec<AnyDoc>>> {
        let conn = self.clone();
        let options = QueryOptions::default()
            .with_max_item_count(max_items(page_items))
            .with_operation_options(self.operation.clone());
        let start = async move {
            let pages = conn
                .container
                .query_items::<Box<RawValue>>(query, FeedScope::partition(pk), Some(options))
                .await
                .map_err(|e| {
                    conn.count_error(kind, &e, 0);
                    error("query a stream", e)
                })?
                .into_pages();
            Ok::<_, StoreError>((conn, pages))
        };
        futures::stream::once(start)
            .flat_map(move |started| match started {
                Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
                Ok((conn, pages)) => pages
                    .map(move |page| match page {
                        Ok(page) => {
                            let d = page.diagnostics();
                            let items = page.into_items();
                            let received = items.iter().map(|b| b.get().len()).sum();
                            conn.count(kind, Some(&d), 0, received);
                            items
                                .iter()
                                .map(|b| conn.parse(b))
                                .collect::<Result<Vec<AnyDoc>>>()
                        }
                        Err(e) => {
                            conn.count_error(kind, &e, 0);
                            Err(error("query a stream", e))
                        }
                    })
                    .boxed(),
            })
            .boxed()
    }

    /// One page of a feed range's change feed (latest version), from `continuation` or, without
    /// one, from `start`.
    pub async fn changes(
        &self,
        range: &FeedRange,
        start: ChangeFeedStartFrom,
        continuation: Option<&str>,
        page_items: u32,
    ) -> Result<ChangePage> {
        let kind = OpKind::Feed;
        let mut options = ChangeFeedOptions::default()
            .with_max_item_count(max_items(page_items))
            .with_operation_options(self.operation.clone());
        if let Some(c) = continuation {
            options = options.with_continuation_token(ContinuationToken::from_string(c.to_owned()));
        }
        let mut pages = self
            .container
            .query_change_feed::<Box<RawValue>>(
                FeedScope::range(range.clone()),
                start,
                Some(options),
            )
            .await
            .map_err(|e| {
                self.count_error(kind, &e, 0);
                error("read the change feed", e)
            })?;
        let page = match pages.next().await {
            Some(Ok(page)) => page,
            Some(Err(e)) => {
                self.count_error(kind, &e, 0);
                return Err(error("read the change feed", e));
            }
            None => {
                return Ok(ChangePage {
                    docs: Vec::new(),
                    continuation: continuation.map(str::to_owned),
                });
            }
        };
        let d = page.diagnostics();
        let items = page.into_items();
        let received = items
            .iter()
            .map(|i| i.current().map_or(0, |b| b.get().len()))
            .sum();
        self.count(kind, Some(&d), 0, received);
        let docs = items
            .iter()
            .filter_map(|i| i.current())
            .map(|b| self.parse(b))
            .collect::<Result<Vec<AnyDoc>>>()?;
        let continuation = pages
            .to_continuation_token()
            .map_err(|e| error("take the change feed's continuation", e))?;
        Ok(ChangePage {
            docs,
            continuation: Some(continuation.as_str().to_owned()),
        })
    }

    /// The container's feed ranges.
    pub async fn feed_ranges(&self) -> Result<Vec<FeedRange>> {
        let ranges = self
            .container
            .read_feed_ranges(Some(
                ReadFeedRangesOptions::default().with_operation_options(self.operation.clone()),
            ))
            .await
            .map_err(|e| error("list the feed ranges", e))?;
        // Served from the SDK's routing cache after the first call: counted as one listing.
        self.costs.record(OpKind::Partitions, 0, 0);
        Ok(ranges)
    }
}

fn max_items(n: u32) -> MaxItemCountHint {
    std::num::NonZeroU32::new(n).map_or(MaxItemCountHint::ServerDecides, MaxItemCountHint::Limit)
}

fn parse(raw: &RawValue) -> Result<AnyDoc> {
    serde_json::from_str(raw.get()).map_err(corrupt)
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        what: format!("a document does not parse as one of this store's ({e})"),
    }
}
