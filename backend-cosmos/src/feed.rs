//! The change feed: the SDK's pull model (latest-version mode) read per feed range, each range a
//! partition of the shared feed driver ([`sekiban_core::backend::feed::drive_partitions`]).
//!
//! - The checkpoint holds the events container's resource id (a checkpoint of a recreated or
//!   other container is refused) and, per feed range, the continuation token the SDK gave at
//!   the end of the last page handed out whole, and, when one document had more items than a
//!   batch takes, how many of them were handed out. A range that split or merged since is read on from its token: the SDK
//!   follows the physical partitions under a range itself, each in LSN order.
//! - Per-stream order: a stream is one logical partition, so all its documents are in one
//!   physical partition and come in the order they were written.
//! - The latest-version feed keeps only a document's latest version and drops deleted ones.
//!   Append documents are never rewritten, so every event comes, except to hide them: a soft
//!   delete marks the append documents it keeps for re-sends (`z`, so they come again, giving
//!   nothing) and removes older ones; a hard delete removes them all. Heads and snapshot pointers
//!   give nothing; deletion markers are documents of their own.
//! - An empty page of one range says that range is caught up, not the feed: the driver polls
//!   every range in turn until all are at rest.

use async_trait::async_trait;
use azure_data_cosmos::feed::FeedRange;
use azure_data_cosmos::options::ChangeFeedStartFrom;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use sekiban_core::backend::FeedPoll;
use sekiban_core::backend::checkpoint::CheckpointCodec;
use sekiban_core::backend::feed::{
    Held, Partition, PartitionPoll, PartitionedSource, Wait, drive_partitions, stable_hash,
};
use sekiban_core::{
    ChangeBatch, Checkpoint, FeedItem, FeedOptions, FeedStart, Result, StoreError, Version,
};

use crate::CosmosStore;
use crate::docs::{APPEND, AnyDoc, AppendDoc, MARKER, MarkerDoc, stream_of};

/// Where a reader is in one feed range: after the page that ended at a continuation, and, when a
/// document had more items than one batch takes, that many items of the first document after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Pos {
    /// The continuation after the last document read whole (`None`: the feed's start).
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    cont: Option<String>,
    /// Without a continuation: start from now (else from the beginning).
    #[serde(rename = "n", default, skip_serializing_if = "std::ops::Not::not")]
    now: bool,
    /// The document after `cont` handed out in part (tenant, stream and id)...
    #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
    doc: Option<String>,
    /// ...and how many of its items.
    #[serde(rename = "t", default)]
    taken: usize,
}

impl Pos {
    fn start(now: bool) -> Self {
        Pos {
            cont: None,
            now,
            doc: None,
            taken: 0,
        }
    }
}

/// A document's identity in the container.
fn identity(doc: &AnyDoc) -> String {
    let field = |k: &str| doc.rest.get(k).and_then(|v| v.as_str()).unwrap_or_default();
    format!("{}|{}|{}", field("t"), field("s"), field("id"))
}

/// The positions of a checkpoint, by feed range.
#[derive(Debug, Serialize, Deserialize)]
struct Positions(Vec<(String, Pos)>);

impl std::fmt::Display for Positions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let json = serde_json::to_string(&self.0).map_err(|_| std::fmt::Error)?;
        f.write_str(&json)
    }
}

impl std::str::FromStr for Positions {
    type Err = serde_json::Error;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        serde_json::from_str(s).map(Positions)
    }
}

/// The position after a page read whole: its continuation (without one, where the read started).
fn after_page(after: &Pos, continuation: Option<String>) -> Pos {
    match continuation {
        Some(c) => Pos {
            cont: Some(c),
            ..Pos::start(false)
        },
        None => after.clone(),
    }
}

/// A poll's items, each at the position the poll reached (the driver hands a poll out whole).
fn poll(items: Vec<FeedItem>, reached: Pos, at_end: bool) -> FeedPoll<Pos> {
    FeedPoll {
        items: items.into_iter().map(|i| (reached.clone(), i)).collect(),
        reached,
        at_end,
    }
}

/// The feed as the driver reads it: each feed range a partition, keyed by its text form.
struct Ranges<'a>(&'a CosmosStore);

impl CosmosStore {
    fn codec(&self) -> CheckpointCodec {
        CheckpointCodec::new("cosmos", "Cosmos DB container", self.rid.clone())
    }

    /// The change feed.
    pub(crate) fn feed(
        &self,
        from: FeedStart,
        opts: FeedOptions,
    ) -> BoxStream<'_, Result<ChangeBatch>> {
        drive_partitions(Ranges(self), from, opts, self.limits.page_events)
    }

    /// One page of a range's change feed after `at`, of at most `docs` documents.
    async fn changes_page(
        &self,
        range: &FeedRange,
        at: &Pos,
        docs: usize,
    ) -> Result<crate::conn::ChangePage> {
        let start = if at.now {
            ChangeFeedStartFrom::Now
        } else {
            ChangeFeedStartFrom::Beginning
        };
        self.events
            .changes(
                range,
                start,
                at.cont.as_deref(),
                u32::try_from(docs).unwrap_or(1000),
            )
            .await
    }

    /// A document's feed items: an append's events, or a deletion marker.
    fn items_of(&self, doc: &AnyDoc, opts: &FeedOptions) -> Result<Vec<FeedItem>> {
        if doc.k != APPEND && doc.k != MARKER {
            return Ok(Vec::new());
        }
        let tenant = doc
            .rest
            .get("t")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let s = doc
            .rest
            .get("s")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        // A feed range scoped to a tenant's key prefix may hold other tenants' documents too:
        // filter here, whatever the service returned.
        let stream = stream_of(tenant, s)?;
        if !opts.matches(&stream) {
            return Ok(Vec::new());
        }
        if doc.k == MARKER {
            let m: MarkerDoc = doc.parse()?;
            return Ok(vec![FeedItem::Deleted {
                stream,
                version: Version(m.v),
                mode: m.mode(),
            }]);
        }
        let a: AppendDoc = doc.parse()?;
        if a.z {
            return Ok(Vec::new());
        }
        Ok(a.events(&stream)?
            .into_iter()
            .map(FeedItem::Event)
            .collect())
    }
}

#[async_trait]
impl PartitionedSource for Ranges<'_> {
    type Key = String;
    type Position = Pos;
    type Reader = ();

    async fn start(&self, _r: &mut (), from: FeedStart) -> Result<Vec<Partition<String, Pos>>> {
        let store = self.0;
        let positions = match from {
            FeedStart::After(c) => store.codec().decode::<Positions>(&c)?.0,
            start => {
                let now = start == FeedStart::Now;
                store
                    .events
                    .feed_ranges()
                    .await?
                    .into_iter()
                    .map(|r| (r.to_string(), Pos::start(now)))
                    .collect()
            }
        };
        store.ranges_listed.store(
            u32::try_from(positions.len()).unwrap_or(u32::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
        store.costs.record_partitions_opened(positions.len() as u64);
        Ok(positions
            .into_iter()
            .map(|(k, p)| Partition::new(k, p))
            .collect())
    }

    /// One page of the range from the position; when its items do not all fit one batch, the
    /// page again with only the documents that fit (one more request), so a position is always a
    /// continuation, or a continuation and a part of the one document after it.
    async fn poll(
        &self,
        _r: &mut (),
        key: &String,
        after: Pos,
        opts: &FeedOptions,
        max: usize,
    ) -> Result<PartitionPoll<String, Pos>> {
        let store = self.0;
        let range: FeedRange = key.parse().map_err(|e| StoreError::InvalidCheckpoint {
            reason: format!("feed range {key:?} does not parse ({e})"),
        })?;
        let max = max.max(1);
        let page_docs = max.min(1000);
        let page = store.changes_page(&range, &after, page_docs).await?;
        let full = page.docs.len() >= page_docs;
        // The documents whose items fit the batch, whole.
        let mut fit = 0;
        let mut items = Vec::new();
        let mut bytes = 0usize;
        for doc in &page.docs {
            let mut its = store.items_of(doc, opts)?;
            if fit == 0 && after.doc.as_deref() == Some(identity(doc).as_str()) {
                its.drain(..after.taken.min(its.len()));
            }
            if items.len() + its.len() > max || bytes >= store.limits.page_bytes {
                break;
            }
            bytes += its.iter().map(FeedItem::size).sum::<usize>();
            items.extend(its);
            fit += 1;
        }
        if fit == page.docs.len() {
            let reached = after_page(&after, page.continuation);
            return Ok(PartitionPoll::open(poll(items, reached, !full)));
        }
        if fit > 0 {
            // Read again up to the last document that fits: the continuation after it.
            let again = store.changes_page(&range, &after, fit).await?;
            let reached = after_page(&after, again.continuation);
            let mut items = Vec::new();
            for (i, doc) in again.docs.iter().enumerate() {
                let mut its = store.items_of(doc, opts)?;
                if i == 0 && after.doc.as_deref() == Some(identity(doc).as_str()) {
                    its.drain(..after.taken.min(its.len()));
                }
                items.extend(its);
            }
            if items.len() > max {
                // The range changed between the two reads (a document removed): nothing now,
                // the next poll reads from the same place again.
                return Ok(PartitionPoll::open(poll(Vec::new(), after, false)));
            }
            return Ok(PartitionPoll::open(poll(items, reached, false)));
        }
        // The first document alone has more items than a batch takes: part of it.
        let first = &page.docs[0];
        let id = identity(first);
        let done = if after.doc.as_deref() == Some(id.as_str()) {
            after.taken
        } else {
            0
        };
        let all = store.items_of(first, opts)?;
        let mut items = Vec::new();
        let mut bytes = 0usize;
        for item in all.iter().skip(done) {
            if items.len() >= max || (bytes >= store.limits.page_bytes && !items.is_empty()) {
                break;
            }
            bytes += item.size();
            items.push(item.clone());
        }
        let taken = done + items.len();
        let reached = if taken >= all.len() {
            // Read again for the continuation after this one document.
            let again = store.changes_page(&range, &after, 1).await?;
            after_page(&after, again.continuation)
        } else {
            Pos {
                doc: Some(id),
                taken,
                ..after
            }
        };
        Ok(PartitionPoll::open(poll(items, reached, false)))
    }

    fn checkpoint(&self, _r: &(), parts: &[Held<String, Pos>]) -> Checkpoint {
        let positions = parts
            .iter()
            .map(|h| (h.part.key.clone(), h.part.position.clone()))
            .collect();
        self.0.codec().encode(Positions(positions))
    }

    fn owner(&self, key: &String) -> u64 {
        stable_hash(&[key])
    }

    fn reader(&self, _opts: &FeedOptions) {}

    /// A poll interval: the change feed has no notification.
    async fn wait(
        &self,
        _r: &mut (),
        _parts: &[Held<String, Pos>],
        _opts: &FeedOptions,
        _max: usize,
        _delivered: bool,
    ) -> Result<Wait<(String, Pos)>> {
        tokio::time::sleep(self.0.limits.feed_poll_interval).await;
        Ok(Wait::Poll)
    }
}
