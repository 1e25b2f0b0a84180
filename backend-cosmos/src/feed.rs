//! The change feed: the SDK's pull model (latest-version mode) read per feed range, each range a
//! partition of the shared feed driver ([`sekiban_core::backend::feed::drive_partitions`]).
//!
//! - The checkpoint holds the events container's resource id (a checkpoint of a recreated or
//!   other container is refused) and, per feed range, the continuation token the SDK gave at
//!   the start of the page being read, the `_lsn` of the last document handed out and how many
//!   of its items were. A range that split or merged since is read on from its token: the SDK
//!   follows the physical partitions under a range itself, each in LSN order.
//! - Per-stream order: a stream is one logical partition, so all its documents are in one
//!   physical partition and come in the order they were written.
//! - The latest-version feed keeps only a document's latest version and drops deleted ones.
//!   Append documents are never rewritten, so every event comes; heads and snapshot pointers
//!   (rewritten) give nothing; deletion markers are documents of their own; a hard delete removes
//!   the stream's append documents, so its events are not read again.
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

/// Where a reader is in one feed range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Pos {
    /// The continuation the page being read started at (`None`: the feed's start).
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    cont: Option<String>,
    /// Without a continuation: start from now (else from the beginning).
    #[serde(rename = "n", default, skip_serializing_if = "std::ops::Not::not")]
    now: bool,
    /// In that page, documents before the one with this `_lsn` were handed out...
    #[serde(rename = "l", default)]
    lsn: u64,
    /// ...and this many items of it.
    #[serde(rename = "t", default)]
    taken: usize,
}

impl Pos {
    fn start(now: bool) -> Self {
        Pos {
            cont: None,
            now,
            lsn: 0,
            taken: 0,
        }
    }
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

    /// A document's feed items: an append's events, or a deletion marker.
    fn items_of(&self, doc: &AnyDoc, opts: &FeedOptions) -> Result<Vec<FeedItem>> {
        if doc.k != APPEND && doc.k != MARKER {
            return Ok(Vec::new());
        }
        let tenant = doc.rest.get("t").and_then(|v| v.as_str()).unwrap_or_default();
        let s = doc.rest.get("s").and_then(|v| v.as_str()).unwrap_or_default();
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
        Ok(a.events(&stream)?.into_iter().map(FeedItem::Event).collect())
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
        let start = if after.now {
            ChangeFeedStartFrom::Now
        } else {
            ChangeFeedStartFrom::Beginning
        };
        let page_docs = max.clamp(1, 1000);
        let page = store
            .events
            .changes(
                &range,
                start,
                after.cont.as_deref(),
                u32::try_from(page_docs).unwrap_or(1000),
            )
            .await?;
        let full = page.docs.len() >= page_docs;
        let mut docs = page.docs;
        docs.sort_by_key(|d| d.lsn.unwrap_or(0));
        let mut items = Vec::new();
        let mut bytes = 0usize;
        for doc in &docs {
            let lsn = doc.lsn.unwrap_or(0);
            if lsn < after.lsn {
                continue;
            }
            let skip = if lsn == after.lsn { after.taken } else { 0 };
            for (i, item) in store.items_of(doc, opts)?.into_iter().enumerate().skip(skip) {
                if items.len() >= max || bytes >= store.limits.page_bytes {
                    let reached = Pos {
                        lsn,
                        taken: i,
                        ..after.clone()
                    };
                    return Ok(PartitionPoll::open(FeedPoll {
                        items,
                        reached,
                        at_end: false,
                    }));
                }
                bytes += item.size();
                let pos = Pos {
                    lsn,
                    taken: i + 1,
                    ..after.clone()
                };
                items.push((pos, item));
            }
        }
        // The whole page is handed out: the next poll starts after it.
        let reached = Pos {
            cont: Some(page.continuation),
            now: false,
            lsn: 0,
            taken: 0,
        };
        Ok(PartitionPoll::open(FeedPoll {
            items,
            reached,
            at_end: !full,
        }))
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
