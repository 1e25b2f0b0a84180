#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use sekiban_core::BlobStore;
use sekiban_core::backend::CostCounter;
use sekiban_core::snapshot::SnapshotOffload;
use sekiban_core::{
    AppendResult, Capabilities, ChangeBatch, ChangeFeed, CostSnapshot, DeleteMode, EventData,
    EventStore, ExpectedVersion, FeedHistory, FeedOptions, FeedStart, Limits, ReadOptions,
    RecordedEvent, Result, Store, StoreError, StreamCatalog, StreamId, Version,
};

mod checkpoints;
mod client;
mod config;
mod delete;
mod doctor;
mod error;
mod events;
mod feed;
mod layout;
mod poller;
mod read;
mod replay;
mod s3;
mod snapshots;
mod table;
#[cfg(feature = "testcontainers")]
pub mod testcontainer;

pub use config::DynamoDbConfig;
pub use events::{HEAD_SK, IDEMPOTENCY_WINDOW, dynamodb_limits};
pub use layout::{decode_events, encode_events, stream_key};
pub use s3::S3Blobs;
pub use snapshots::SNAPSHOT_SK;
pub use table::{Init, KeyAttribute, TABLE, TableDefinition, other_replica_regions};

/// A sekiban table in DynamoDB, reached through one counted client.
///
/// ```no_run
/// # async fn run() -> sekiban_core::Result<()> {
/// use sekiban_dynamodb::{DynamoDbConfig, DynamoDbTable, Init};
/// let config = DynamoDbConfig::from_url("dynamodb://events?endpoint=http://127.0.0.1:8000")?;
/// let table = DynamoDbTable::connect(config).await;
/// match table.init().await? {
///     Init::Created => println!("created"),
///     Init::Existed => println!("already there, as sekiban needs it"),
/// }
/// table.check().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DynamoDbTable {
    client: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
    config: DynamoDbConfig,
    costs: Arc<CostCounter>,
    limits: Limits,
    offload: SnapshotOffload,
    blobs: Arc<dyn BlobStore>,
    /// The bucket of `bucket=`, where large snapshots go.
    s3: Option<S3Blobs>,
    /// Shards the stream had when a feed last listed them.
    shards_listed: Arc<std::sync::atomic::AtomicU32>,
    /// The shard poller all feeds of this store (and its clones) share.
    poller: Arc<poller::Poller>,
}

impl DynamoDbTable {
    /// A client for the table of `config`, with the AWS environment's region and credentials
    /// where the config names none, offloading snapshots larger than
    /// `max_inline_snapshot_bytes` to the S3 bucket it names (without one, such snapshots are
    /// refused). Sends nothing yet.
    pub async fn connect(config: DynamoDbConfig) -> Self {
        Self::connect_with(config, None).await
    }

    /// The same, offloading large snapshots to `blobs` instead.
    pub async fn connect_with_blobs(config: DynamoDbConfig, blobs: Arc<dyn BlobStore>) -> Self {
        Self::connect_with(config, Some(blobs)).await
    }

    async fn connect_with(config: DynamoDbConfig, blobs: Option<Arc<dyn BlobStore>>) -> Self {
        let costs = Arc::new(CostCounter::new());
        let config_buffer = config.feed_buffer_bytes;
        let shared = client::shared(&config).await;
        let (client, streams) = client::dynamodb(&shared, costs.clone(), config.retry_attempts);
        let s3 = config.bucket.as_deref().map(|b| {
            let client = client::s3(
                &shared,
                config.s3_endpoint.as_deref(),
                costs.clone(),
                config.retry_attempts,
            );
            S3Blobs::new(
                client,
                b,
                client::budget(config.retry_attempts),
                costs.clone(),
            )
        });
        let blobs: Arc<dyn BlobStore> = match (blobs, &s3) {
            (Some(b), _) => b,
            (None, Some(s3)) => Arc::new(s3.clone()),
            (None, None) => Arc::new(snapshots::NoBucket),
        };
        let limits = dynamodb_limits();
        let offload = SnapshotOffload::counted(
            blobs.clone(),
            costs.clone(),
            limits.max_inline_snapshot_bytes,
        );
        DynamoDbTable {
            client,
            streams,
            config,
            costs,
            limits,
            offload,
            blobs,
            s3,
            shards_listed: Arc::new(std::sync::atomic::AtomicU32::new(0)),
            poller: Arc::new(poller::Poller::new(config_buffer)),
        }
    }

    /// Opens the store at `url` for use: connects, checks the table (it must exist, made by
    /// `init`), and offloads large snapshots to the S3 bucket the URL names (`bucket=`, which
    /// must exist) or to a local directory (`blobs=DIR`, for development).
    pub async fn open(url: &str) -> Result<Self> {
        let config = DynamoDbConfig::from_url(url)?;
        if config.bucket.is_some() && config.blobs.is_some() {
            return Err(StoreError::invalid(format!(
                "{url:?} names a bucket and a blobs directory; snapshots go to one of them"
            )));
        }
        let table = match &config.blobs {
            Some(dir) => {
                let blobs: Arc<dyn BlobStore> =
                    Arc::new(sekiban_core::ObjectBlobStore::create_dir(dir)?);
                Self::connect_with_blobs(config, blobs).await
            }
            None => Self::connect(config).await,
        };
        table.check().await?;
        if let Some(s3) = &table.s3 {
            s3.check().await?;
        }
        Ok(table)
    }

    /// Creates the bucket `bucket=` names when it does not exist (nothing to do without one).
    pub async fn init_bucket(&self) -> Result<Option<Init>> {
        match &self.s3 {
            Some(s3) => Ok(Some(s3.init().await?)),
            None => Ok(None),
        }
    }

    /// The blob store large snapshots go to.
    pub fn blobs(&self) -> Arc<dyn BlobStore> {
        self.blobs.clone()
    }

    /// Creates the table as [`TABLE`] defines it (on-demand, stream of new images) and waits
    /// until it is active; when a table of that name exists, checks it instead
    /// ([`DynamoDbTable::check`]) and says so.
    pub async fn init(&self) -> Result<Init> {
        table::create(&self.client, &self.config.table, self.region()).await
    }

    /// Checks the table exists, matches [`TABLE`] and is not a Global Table replicated to
    /// another region.
    pub async fn check(&self) -> Result<()> {
        let name = &self.config.table;
        match table::describe(&self.client, name).await? {
            Some(t) => table::check(&t, name, self.region()),
            None => Err(StoreError::NotInitialized {
                what: format!(
                    "table {name} does not exist; create it with DynamoDbTable::init or the templates in infra/"
                ),
            }),
        }
    }

    /// The region requests go to.
    pub fn region(&self) -> Option<&str> {
        self.client.config().region().map(|r| r.as_ref())
    }

    /// The configuration.
    pub fn config(&self) -> &DynamoDbConfig {
        &self.config
    }

    /// The SDK client (every request it sends is counted in [`DynamoDbTable::costs`]).
    pub fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.client
    }

    /// Requests counted so far.
    pub fn costs(&self) -> CostSnapshot {
        self.costs.snapshot()
    }

    /// Sends `first` with `send`, then what the service left undone of it
    /// (`UnprocessedItems`, `UnprocessedKeys`), within the same budget as the SDK's retries
    /// ([`DynamoDbConfig::retry_attempts`], the same waits): the kit's one loop for partial
    /// answers ([`sekiban_core::backend::RetryBudget::rest`]).
    pub(crate) async fn rest<P, F, Fut>(
        &self,
        kind: sekiban_core::OpKind,
        what: &str,
        first: P,
        send: F,
    ) -> Result<()>
    where
        F: FnMut(P) -> Fut,
        Fut: std::future::Future<Output = Result<Option<P>>>,
    {
        client::budget(self.config.retry_attempts)
            .rest(&self.costs, kind, what, first, send)
            .await
    }

    /// Counts the capacity units a response reports (`ReturnConsumedCapacity`) under `kind`.
    pub(crate) fn charge<'a>(
        &self,
        kind: sekiban_core::OpKind,
        consumed: impl IntoIterator<Item = &'a aws_sdk_dynamodb::types::ConsumedCapacity>,
    ) {
        let units: f64 = consumed
            .into_iter()
            .filter_map(|c| c.capacity_units())
            .sum();
        self.costs.record_units(kind, units);
    }
}

/// Appends and reads (see the crate README for the layout). Re-sends are recognised within the
/// latest [`IDEMPOTENCY_WINDOW`] events.
#[async_trait]
impl EventStore for DynamoDbTable {
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
        self.version_of(stream).await
    }

    async fn delete_stream(&self, stream: &StreamId, mode: DeleteMode) -> Result<()> {
        self.delete(stream, mode).await
    }
}

/// From DynamoDB Streams (see the `feed` module's docs).
impl ChangeFeed for DynamoDbTable {
    fn changes(&self, from: FeedStart, opts: FeedOptions) -> BoxStream<'_, Result<ChangeBatch>> {
        self.feed(from, opts)
    }
}

/// Everything in one object.
#[async_trait]
impl Store for DynamoDbTable {
    fn limits(&self) -> &Limits {
        &self.limits
    }
    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::basic();
        // A `Beginning` replay scans the table before it reads the stream.
        c.feed_history = FeedHistory::Unbounded;
        // Shards, and a replay's scan in hash order: no order across streams, so never one.
        c.feed_partitions = self
            .shards_listed
            .load(std::sync::atomic::Ordering::Relaxed)
            .max(2);
        c.reports_capacity_units = true;
        c
    }
    fn costs(&self) -> CostSnapshot {
        self.costs.snapshot()
    }
    fn catalog(&self) -> Option<&dyn StreamCatalog> {
        None
    }
    /// Nothing to release: the SDK client's connections close when the last clone is dropped.
    async fn close(&self) -> Result<()> {
        Ok(())
    }
}
