#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::sync::Arc;

use async_trait::async_trait;
use azure_data_cosmos::CosmosClient;
use futures::stream::BoxStream;
use sekiban_core::backend::{CostCounter, SnapshotOffload};
use sekiban_core::{
    AppendResult, BlobStore, Capabilities, ChangeBatch, ChangeFeed, CostSnapshot, DeleteMode,
    EventData, EventStore, ExpectedVersion, FeedHistory, FeedOptions, FeedStart, Limits,
    ReadOptions, RecordedEvent, Result, SnapshotAndTail, Store, StoreError, StreamCatalog,
    StreamId, Version,
};

mod account;
mod append;
mod blobs;
mod checkpoints;
mod config;
mod conn;
mod container;
mod delete;
mod docs;
mod doctor;
mod feed;
mod heads;
mod load;
mod read;
mod snapshots;
#[cfg(feature = "testcontainers")]
pub mod testcontainer;
mod url;

pub use blobs::{AzureBlobConfig, azure_blobs, install_tls};
pub use config::CosmosConfig;
pub use container::{ContainerDefinition, DEFINITION, Init};
pub use docs::stream_partition;
pub use url::{CosmosUrl, KEY_ENV};

/// How many of a stream's latest events a re-send is recognised within.
pub const IDEMPOTENCY_WINDOW: u64 = 16;

/// Cosmos DB's largest document (2 MB), which bounds an append (one document).
pub const MAX_DOCUMENT_BYTES: usize = 2 * 1024 * 1024;

/// The limits of the Cosmos DB store: an append is one document of at most 2 MB (its events'
/// bytes, below that by a margin for the JSON around them) and at most 1 000 events.
pub fn cosmos_limits() -> Limits {
    Limits {
        max_event_bytes: 1400 * 1024,
        max_append_events: 1000,
        max_append_bytes: 1400 * 1024,
        max_inline_snapshot_bytes: 64 * 1024,
        page_events: 1000,
        page_bytes: 1024 * 1024,
        feed_poll_interval: std::time::Duration::from_millis(500),
        idempotency_window: IDEMPOTENCY_WINDOW,
    }
}

/// A sekiban container in Cosmos DB (NoSQL API), reached through one SDK client whose every
/// request is counted.
///
/// ```no_run
/// # async fn run(client: azure_data_cosmos::CosmosClient) -> sekiban_core::Result<()> {
/// use sekiban_cosmos::{CosmosConfig, CosmosStore};
/// let config = CosmosConfig::new("sekiban", "events");
/// CosmosStore::init(&client, &config).await?;
/// let store = CosmosStore::connect(client, config).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CosmosStore {
    /// The events container's resource id: checkpoints name it.
    rid: String,
    config: CosmosConfig,
    events: conn::Conn,
    /// The container of checkpoints (not the events container: its writes would come back on
    /// the feed).
    leases: conn::Conn,
    costs: Arc<CostCounter>,
    limits: Limits,
    offload: SnapshotOffload,
    heads: Arc<heads::HeadCache>,
    /// Feed ranges the container had when a feed last listed them.
    ranges_listed: Arc<std::sync::atomic::AtomicU32>,
}

impl CosmosStore {
    /// A store on `client`'s account with the database and containers `config` names; they must
    /// exist ([`CosmosStore::init`] creates them). Large snapshots are refused until a blob store
    /// is given ([`CosmosStore::connect_with_blobs`]).
    pub async fn connect(client: CosmosClient, config: CosmosConfig) -> Result<Self> {
        Self::connect_with(client, config, Arc::new(NoBlobs)).await
    }

    /// The same, offloading snapshots above the inline limit to `blobs`. The store retries a
    /// blob request that failed transiently within its budget
    /// ([`CosmosConfig::retry_attempts`]), so give it a blob store whose client retries nothing
    /// itself: [`azure_blobs`] builds one.
    pub async fn connect_with_blobs(
        client: CosmosClient,
        config: CosmosConfig,
        blobs: Arc<dyn BlobStore>,
    ) -> Result<Self> {
        Self::connect_with(client, config, blobs).await
    }

    async fn connect_with(
        client: CosmosClient,
        config: CosmosConfig,
        blobs: Arc<dyn BlobStore>,
    ) -> Result<Self> {
        let costs = Arc::new(CostCounter::new());
        let (events, leases, rid) = container::clients(&client, &config).await?;
        let limits = cosmos_limits();
        let offload = SnapshotOffload::counted_retrying(
            blobs,
            costs.clone(),
            limits.max_inline_snapshot_bytes,
            conn::blob_budget(config.retry_attempts),
        );
        let ranges = events_conn(&events, &costs, config.retry_attempts)
            .feed_ranges()
            .await?
            .len();
        // The properties the partition key paths name, when they are not the documents' own.
        let fields = (config.partition_key_paths != DEFINITION.partition_key_paths).then(|| {
            Arc::new(
                config
                    .partition_key_paths
                    .clone()
                    .map(|p| p.trim_start_matches('/').to_owned()),
            )
        });
        Ok(CosmosStore {
            rid,
            events: conn::Conn {
                container: events,
                costs: costs.clone(),
                fields,
                operation: conn::retry_options(config.retry_attempts),
            },
            leases: conn::Conn {
                container: leases,
                costs: costs.clone(),
                fields: None,
                operation: conn::retry_options(config.retry_attempts),
            },
            config,
            costs,
            limits,
            offload,
            heads: Arc::new(heads::HeadCache::new(heads::HEADS_CACHED)),
            ranges_listed: Arc::new(std::sync::atomic::AtomicU32::new(
                u32::try_from(ranges).unwrap_or(u32::MAX),
            )),
        })
    }

    /// Creates the database and both containers as [`DEFINITION`] declares them (what exists
    /// is checked instead), so that [`CosmosStore::connect`] finds them.
    pub async fn init(client: &CosmosClient, config: &CosmosConfig) -> Result<Init> {
        container::create(client, config, &Arc::new(CostCounter::new())).await
    }

    /// The configuration.
    pub fn config(&self) -> &CosmosConfig {
        &self.config
    }

    /// The blob store large snapshots go to.
    pub fn blobs(&self) -> Arc<dyn BlobStore> {
        self.offload.blobs().clone()
    }

    /// Requests counted so far.
    pub fn costs(&self) -> CostSnapshot {
        self.costs.snapshot()
    }
}

fn events_conn(
    container: &azure_data_cosmos::clients::ContainerClient,
    costs: &Arc<CostCounter>,
    attempts: Option<u32>,
) -> conn::Conn {
    conn::Conn {
        container: container.clone(),
        costs: costs.clone(),
        fields: None,
        operation: conn::retry_options(attempts),
    }
}

/// The blob store of a store given none: a snapshot above the inline limit is refused.
#[derive(Debug)]
struct NoBlobs;

#[async_trait]
impl BlobStore for NoBlobs {
    async fn put(&self, key: &str, _bytes: bytes::Bytes) -> Result<()> {
        Err(StoreError::invalid(format!(
            "snapshot blob {key}: the snapshot is larger than the inline limit and the store has no blob store; connect with CosmosStore::connect_with_blobs"
        )))
    }
    async fn get(&self, _key: &str) -> Result<Option<bytes::Bytes>> {
        Ok(None)
    }
    async fn delete(&self, _key: &str) -> Result<()> {
        Ok(())
    }
    async fn list(&self, _prefix: &str) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

/// Appends in one transactional batch, paged reads (see the crate README).
#[async_trait]
impl EventStore for CosmosStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<EventData>,
    ) -> Result<AppendResult> {
        self.append_events(stream, expected, events).await
    }

    fn read(&self, stream: &StreamId, opts: ReadOptions) -> BoxStream<'_, Result<RecordedEvent>> {
        self.read_events(stream, opts)
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Version> {
        let head = self.read_head(stream, sekiban_core::OpKind::Read).await?;
        match head {
            Some((h, _)) if h.x => Err(StoreError::StreamDeleted {
                stream: stream.clone(),
                version: Version(h.v),
            }),
            Some((h, _)) => Ok(Version(h.v)),
            None => Ok(Version::NONE),
        }
    }

    async fn delete_stream(&self, stream: &StreamId, mode: DeleteMode) -> Result<()> {
        self.delete(stream, mode).await
    }
}

/// From the change feed, one partition per feed range.
impl ChangeFeed for CosmosStore {
    fn changes(&self, from: FeedStart, opts: FeedOptions) -> BoxStream<'_, Result<ChangeBatch>> {
        self.feed(from, opts)
    }
}

/// Everything in one object.
#[async_trait]
impl Store for CosmosStore {
    fn limits(&self) -> &Limits {
        &self.limits
    }
    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::basic();
        c.feed_history = FeedHistory::Unbounded;
        c.feed_partitions = self
            .ranges_listed
            .load(std::sync::atomic::Ordering::Relaxed)
            .max(1);
        c.reports_capacity_units = true;
        c
    }
    fn costs(&self) -> CostSnapshot {
        self.costs.snapshot()
    }
    fn catalog(&self) -> Option<&dyn StreamCatalog> {
        None
    }
    /// One query: the head, the appends after the snapshot and its pointer (see the README).
    async fn load_snapshot_and_tail(&self, stream: &StreamId) -> Result<SnapshotAndTail<'_>> {
        self.load_together(stream).await
    }
    /// Nothing to release: the SDK client's connections close when the last clone is dropped.
    async fn close(&self) -> Result<()> {
        Ok(())
    }
}
