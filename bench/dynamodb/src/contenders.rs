//! The two contenders behind one small interface: sekiban-dynamodb (`DynamoDbTable`, an
//! `EventStore`) and dynamo-es (its `DynamoEventRepository`, through cqrs-es's
//! `PersistedEventRepository`), the events both write, and the SDK clients the benchmark builds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::interceptors::{
    BeforeSerializationInterceptorContextMut, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ReturnConsumedCapacity,
    ScalarAttributeType, TableStatus,
};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{PersistedEventRepository, SerializedEvent};
use cqrs_es::{Aggregate, DomainEvent};
use dynamo_es::DynamoEventRepository;
use futures::StreamExt;
use sekiban_core::{
    EventData, EventStore, ExpectedVersion, Metadata, ReadOptions, Snapshot, SnapshotStore, Store,
    StreamId, Version,
};
use sekiban_dynamodb::{DynamoDbConfig, DynamoDbTable};
use serde::{Deserialize, Serialize};

/// Tenant and category of every stream (dynamo-es: the aggregate type is the category).
pub const TENANT: &str = "bench";
pub const CATEGORY: &str = "account";
pub const EVENT_TYPE: &str = "Deposited";
/// The region every client names (DynamoDB Local accepts any).
pub const REGION: &str = "us-east-1";

// ---------------------------------------------------------------------------------------------
// The events

/// What one append carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// One event of 800 bytes: data, type and metadata (a correlation id and an actor, as JSON).
    One800,
    /// Ten events of 100 bytes each: data and type, no metadata.
    Ten100,
    /// Ten events of 100 bytes whose JSON holds a random text (base64 characters): what deflate
    /// cannot shrink much.
    Ten100Random,
}

impl Shape {
    pub fn events(self) -> usize {
        match self {
            Shape::One800 => 1,
            _ => 10,
        }
    }

    /// Bytes of each event: data + type + metadata (JSON).
    pub fn event_bytes(self) -> usize {
        match self {
            Shape::One800 => 800,
            _ => 100,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Shape::One800 => "1 × 800 B",
            Shape::Ten100 => "10 × 100 B",
            Shape::Ten100Random => "10 × 100 B, random text",
        }
    }

    pub fn tag(self) -> &'static str {
        match self {
            Shape::One800 => "k1",
            Shape::Ten100 => "k10",
            Shape::Ten100Random => "k10r",
        }
    }
}

/// One event as both contenders are given it.
#[derive(Clone, Debug)]
pub struct Ev {
    pub data: String,
    /// Metadata as sekiban serialises it (and dynamo-es stores it): JSON, or none.
    pub metadata: Option<Metadata>,
}

impl Ev {
    pub fn metadata_json(&self) -> String {
        self.metadata
            .as_ref()
            .and_then(|m| serde_json::to_string(m).ok())
            .unwrap_or_default()
    }

    /// data + type + metadata, in bytes.
    pub fn size(&self) -> usize {
        self.data.len() + EVENT_TYPE.len() + self.metadata_json().len()
    }
}

/// A small deterministic generator (xorshift), seeded per event.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const WORDS: [&str; 24] = [
    "deposit",
    "at",
    "the",
    "branch",
    "counter",
    "by",
    "cheque",
    "transfer",
    "from",
    "savings",
    "monthly",
    "salary",
    "refund",
    "of",
    "invoice",
    "card",
    "payment",
    "cash",
    "online",
    "for",
    "rent",
    "groceries",
    "fee",
    "interest",
];

/// Ordinary JSON of exactly `len` bytes for event `n`: an account, a random 32-digit reference,
/// an amount and a memo of words; or, `random`, a random text of base64 characters.
pub fn payload(n: u64, len: usize, random: bool) -> String {
    let mut rng = Rng::new(n + 1);
    let head = format!(
        r#"{{"account":"acc-{:04}","ref":"{:016x}{:016x}","amount":{},"memo":""#,
        n % 10_000,
        rng.next(),
        rng.next(),
        rng.next() % 100_000
    );
    let room = len.saturating_sub(head.len() + 2);
    let mut memo = String::with_capacity(room + 16);
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    while memo.len() < room {
        if random {
            memo.push(B64[(rng.next() % 64) as usize] as char);
        } else {
            if !memo.is_empty() {
                memo.push(' ');
            }
            memo.push_str(WORDS[(rng.next() % WORDS.len() as u64) as usize]);
        }
    }
    memo.truncate(room);
    format!("{head}{memo}\"}}")
}

/// The events of the append after `head` (numbered from `head + 1`).
pub fn events(shape: Shape, head: u64) -> Vec<Ev> {
    (1..=shape.events() as u64)
        .map(|i| {
            let n = head + i;
            let metadata = (shape == Shape::One800).then(|| Metadata {
                correlation_id: Some(format!("{}", uuid::Uuid::from_u128(u128::from(n) << 64))),
                actor: Some("bench-user".into()),
                ..Metadata::default()
            });
            let mut e = Ev {
                data: String::new(),
                metadata,
            };
            let len = shape.event_bytes() - e.size();
            e.data = payload(n, len, shape == Shape::Ten100Random);
            e
        })
        .collect()
}

/// The events of the append after `head` as sekiban is given them.
pub fn event_data(shape: Shape, head: u64) -> Vec<EventData> {
    events(shape, head)
        .into_iter()
        .map(|e| {
            let mut d = EventData::new(EVENT_TYPE, e.data);
            if let Some(m) = e.metadata {
                d = d.with_metadata(m);
            }
            d
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The interface

/// What a phase needs of a contender.
#[async_trait]
pub trait Contender: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Appends one append of `shape` to `stream` when its head is `head` (0: a new stream); the
    /// new head.
    async fn append(&self, stream: &str, head: u64, shape: Shape) -> Result<u64>;
    /// Reads a whole stream; the events read.
    async fn load(&self, stream: &str) -> Result<usize>;
    /// Reads the snapshot and the events after it; the events read.
    async fn load_with_snapshot(&self, stream: &str) -> Result<usize>;
    /// Requests the contender's client has sent so far (every attempt).
    fn requests(&self) -> u64;
}

// ---------------------------------------------------------------------------------------------
// sekiban-dynamodb

pub fn stream_id(stream: &str) -> Result<StreamId> {
    Ok(StreamId::new(TENANT, CATEGORY, stream)?)
}

/// sekiban-dynamodb as a user gets it: `DynamoDbTable::connect` + `init`, then
/// `EventStore::append` with `Exact(head)` (`NoStream` for a new stream).
#[derive(Debug)]
pub struct Sekiban {
    pub table: DynamoDbTable,
}

impl Sekiban {
    /// The table `name` reached through `endpoint` (not created).
    pub async fn connect(endpoint: &str, name: &str) -> Result<Sekiban> {
        let config = DynamoDbConfig::from_url(&format!(
            "dynamodb://{name}?endpoint={endpoint}&region={REGION}"
        ))?;
        Ok(Sekiban {
            table: DynamoDbTable::connect(config).await,
        })
    }

    pub async fn save_snapshot(&self, stream: &str, version: u64, state: String) -> Result<()> {
        self.table
            .save_snapshot(Snapshot {
                stream: stream_id(stream)?,
                version: Version(version),
                state_type: "Account".into(),
                schema_version: 1,
                state: state.into(),
            })
            .await?;
        Ok(())
    }

    pub fn costs(&self) -> sekiban_core::CostSnapshot {
        Store::costs(&self.table)
    }

    async fn count(&self, stream: &StreamId, opts: ReadOptions) -> Result<usize> {
        let mut events = self.table.read(stream, opts);
        let mut n = 0;
        while let Some(e) = events.next().await {
            let _ = e?;
            n += 1;
        }
        Ok(n)
    }
}

#[async_trait]
impl Contender for Sekiban {
    fn name(&self) -> &'static str {
        "sekiban"
    }

    async fn append(&self, stream: &str, head: u64, shape: Shape) -> Result<u64> {
        let expected = if head == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(Version(head))
        };
        let batch = event_data(shape, head);
        let r = self
            .table
            .append(&stream_id(stream)?, expected, batch)
            .await?;
        Ok(r.last.0)
    }

    async fn load(&self, stream: &str) -> Result<usize> {
        self.count(&stream_id(stream)?, ReadOptions::forward())
            .await
    }

    async fn load_with_snapshot(&self, stream: &str) -> Result<usize> {
        let id = stream_id(stream)?;
        let snap = self
            .table
            .load_snapshot(&id)
            .await?
            .ok_or_else(|| anyhow!("no snapshot of {stream}"))?;
        self.count(
            &id,
            ReadOptions::forward().from(Version(snap.version.0 + 1)),
        )
        .await
    }

    fn requests(&self) -> u64 {
        self.costs().operation_round_trips()
    }
}

// ---------------------------------------------------------------------------------------------
// dynamo-es

/// The smallest aggregate cqrs-es accepts: its `TYPE` is the first half of dynamo-es's
/// partition key (`account:<id>`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Account {
    deposits: u64,
}

/// Any JSON payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AccountEvent {
    Deposited(serde_json::Value),
}

impl DomainEvent for AccountEvent {
    fn event_type(&self) -> String {
        EVENT_TYPE.into()
    }
    fn event_version(&self) -> String {
        "1.0".into()
    }
}

#[derive(Debug)]
pub struct NoError;

impl std::fmt::Display for NoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no error")
    }
}

impl std::error::Error for NoError {}

impl Aggregate for Account {
    const TYPE: &'static str = CATEGORY;
    type Command = ();
    type Event = AccountEvent;
    type Error = NoError;
    type Services = ();

    async fn handle(&mut self, _: (), _: &(), _: &EventSink<Self>) -> Result<(), NoError> {
        Ok(())
    }

    fn apply(&mut self, _: AccountEvent) {
        self.deposits += 1;
    }
}

/// dynamo-es 0.5: `PersistedEventRepository::persist` (one `TransactWriteItems` with one `Put`
/// per event, each conditional on its sequence being new; at most 25).
pub struct DynamoEs {
    pub repo: DynamoEventRepository,
    attempts: Arc<AtomicU64>,
}

impl DynamoEs {
    /// The repository on `client`, with its events and snapshots tables.
    pub fn new(client: Client, events: &str, snapshots: &str) -> DynamoEs {
        DynamoEs {
            repo: DynamoEventRepository::new(client.client).with_tables(events, snapshots),
            attempts: client.attempts,
        }
    }

    fn serialized(stream: &str, shape: Shape, head: u64) -> Result<Vec<SerializedEvent>> {
        events(shape, head)
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                let metadata = match &e.metadata {
                    Some(m) => serde_json::to_value(m)?,
                    None => serde_json::Value::Object(Default::default()),
                };
                Ok(SerializedEvent::new(
                    stream.to_string(),
                    head as usize + i + 1,
                    Account::TYPE.to_string(),
                    EVENT_TYPE.to_string(),
                    "1.0".to_string(),
                    serde_json::from_str(&e.data)?,
                    metadata,
                ))
            })
            .collect()
    }

    /// Appends `shape` after `head`, with the snapshot row (`state`, snapshot number 1) written
    /// in the same transaction — what its snapshot store does when an append reaches the
    /// snapshot size.
    pub async fn append_with_snapshot(
        &self,
        stream: &str,
        head: u64,
        shape: Shape,
        state: serde_json::Value,
    ) -> Result<u64> {
        let events = Self::serialized(stream, shape, head)?;
        self.repo
            .persist::<Account>(&events, Some((stream.to_string(), state, 1)))
            .await
            .map_err(|e| anyhow!("dynamo-es persist with snapshot: {e}"))?;
        Ok(head + shape.events() as u64)
    }

    /// Its paginated replay (`stream_events`: a `Query` of at most its channel size, 200 items
    /// by default, per page); the events read.
    pub async fn replay(&self, stream: &str) -> Result<usize> {
        let mut s = self
            .repo
            .stream_events::<Account>(stream)
            .await
            .map_err(|e| anyhow!("dynamo-es stream_events: {e}"))?;
        let mut n = 0;
        while let Some(e) = s.next::<Account>(&[]).await {
            e.map_err(|e| anyhow!("dynamo-es stream_events: {e}"))?;
            n += 1;
        }
        Ok(n)
    }
}

#[async_trait]
impl Contender for DynamoEs {
    fn name(&self) -> &'static str {
        "dynamo-es"
    }

    async fn append(&self, stream: &str, head: u64, shape: Shape) -> Result<u64> {
        self.repo
            .persist::<Account>(&Self::serialized(stream, shape, head)?, None)
            .await
            .map_err(|e| anyhow!("dynamo-es persist: {e}"))?;
        Ok(head + shape.events() as u64)
    }

    /// `get_events`: what cqrs-es's `PersistedEventStore` loads an aggregate with (without
    /// snapshots).
    async fn load(&self, stream: &str) -> Result<usize> {
        let events = self
            .repo
            .get_events::<Account>(stream)
            .await
            .map_err(|e| anyhow!("dynamo-es get_events: {e}"))?;
        Ok(events.len())
    }

    /// `get_snapshot` + `get_last_events` after it (what its snapshot store does on a load).
    async fn load_with_snapshot(&self, stream: &str) -> Result<usize> {
        let snap = self
            .repo
            .get_snapshot::<Account>(stream)
            .await
            .map_err(|e| anyhow!("dynamo-es get_snapshot: {e}"))?
            .ok_or_else(|| anyhow!("no dynamo-es snapshot of {stream}"))?;
        let events = self
            .repo
            .get_last_events::<Account>(stream, snap.current_sequence)
            .await
            .map_err(|e| anyhow!("dynamo-es get_last_events: {e}"))?;
        Ok(events.len())
    }

    fn requests(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
    }
}

// ---------------------------------------------------------------------------------------------
// The floors: raw SDK writes of sekiban's own append item, for the analysis

/// What a floor sends per append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloorKind {
    /// One `PutItem` of the append's item, conditional on its key being new.
    PutItem,
    /// A `TransactWriteItems` of that one put.
    Transact1,
    /// A `TransactWriteItems` of that put and the head's update under the expected version
    /// (`SET v, f` with `v = :at`, or `attribute_not_exists(v)` for a new stream): sekiban's
    /// layout without the ids of the latest events in the head and the conditions on them.
    Transact2,
}

impl FloorKind {
    pub fn label(self) -> &'static str {
        match self {
            FloorKind::PutItem => "PutItem of the append's item",
            FloorKind::Transact1 => "transaction: that put",
            FloorKind::Transact2 => "transaction: that put + head update",
        }
    }
}

/// Raw SDK writes of the item sekiban writes for an append (`encode_events` of its events, the
/// same attributes), into a table of sekiban's definition, on a client of the same stack.
pub struct Floor {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
    pub kind: FloorKind,
    attempts: Arc<AtomicU64>,
}

impl Floor {
    pub fn new(client: Client, table: &str, kind: FloorKind) -> Floor {
        Floor {
            client: client.client,
            table: table.to_string(),
            kind,
            attempts: client.attempts,
        }
    }
}

fn n(v: u64) -> aws_sdk_dynamodb::types::AttributeValue {
    aws_sdk_dynamodb::types::AttributeValue::N(v.to_string())
}

#[async_trait]
impl Contender for Floor {
    fn name(&self) -> &'static str {
        self.kind.label()
    }

    async fn append(&self, stream: &str, head: u64, shape: Shape) -> Result<u64> {
        use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
        let k = shape.events() as u64;
        let last = head + k;
        let pk = AttributeValue::S(sekiban_dynamodb::stream_key(&stream_id(stream)?));
        let stored = sekiban_dynamodb::encode_events(&event_data(shape, head))?;
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let item = std::collections::HashMap::from([
            ("pk".to_string(), pk.clone()),
            ("sk".to_string(), n(last)),
            ("n".to_string(), n(k)),
            ("e".to_string(), AttributeValue::B(stored.into())),
            ("t".to_string(), n(micros)),
        ]);
        if self.kind == FloorKind::PutItem {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(sk)")
                .send()
                .await
                .map_err(|e| anyhow!("floor put: {e:?}"))?;
            return Ok(last);
        }
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(sk)")
            .build()?;
        let mut request = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build());
        if self.kind == FloorKind::Transact2 {
            let mut update = Update::builder()
                .table_name(&self.table)
                .key("pk", pk)
                .key(
                    "sk",
                    AttributeValue::N(sekiban_dynamodb::HEAD_SK.to_string()),
                )
                .update_expression("SET v = :last, f = :first")
                .expression_attribute_values(":last", n(last))
                .expression_attribute_values(":first", n(head + 1));
            update = if head == 0 {
                update.condition_expression("attribute_not_exists(v)")
            } else {
                update
                    .condition_expression("v = :at")
                    .expression_attribute_values(":at", n(head))
            };
            request = request
                .transact_items(TransactWriteItem::builder().update(update.build()?).build());
        }
        request
            .send()
            .await
            .map_err(|e| anyhow!("floor transaction: {e:?}"))?;
        Ok(last)
    }

    async fn load(&self, _stream: &str) -> Result<usize> {
        Err(anyhow!("a floor does not load"))
    }

    async fn load_with_snapshot(&self, _stream: &str) -> Result<usize> {
        Err(anyhow!("a floor does not load"))
    }

    fn requests(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
    }
}

/// Creates a table of sekiban's key schema (no stream), for the floors; waits until active.
pub async fn create_floor_table(c: &aws_sdk_dynamodb::Client, table: &str) -> Result<()> {
    c.create_table()
        .table_name(table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()?,
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("sk")
                .attribute_type(ScalarAttributeType::N)
                .build()?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("sk")
                .key_type(KeyType::Range)
                .build()?,
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .with_context(|| format!("create {table}"))?;
    wait_active(c, table).await
}

async fn wait_active(c: &aws_sdk_dynamodb::Client, table: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let d = c
            .describe_table()
            .table_name(table)
            .send()
            .await
            .with_context(|| format!("describe {table}"))?;
        if d.table().and_then(|x| x.table_status()) == Some(&TableStatus::Active) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(anyhow!("table {table} not active after 60 s"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Clients

/// Counts every attempt the client sends (retries included).
#[derive(Debug)]
struct Attempts(Arc<AtomicU64>);

impl Intercept for Attempts {
    fn name(&self) -> &'static str {
        "bench-attempts"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Asks for `ReturnConsumedCapacity=TOTAL` on the requests dynamo-es sends (it does not ask), so
/// the proxy can read the emulator's figure for it too. Only on the counted client.
#[derive(Debug)]
struct AskCapacity;

impl Intercept for AskCapacity {
    fn name(&self) -> &'static str {
        "bench-ask-capacity"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        use aws_sdk_dynamodb::operation::{
            get_item::GetItemInput, put_item::PutItemInput, query::QueryInput,
            transact_write_items::TransactWriteItemsInput,
        };
        let input = context.input_mut();
        let total = Some(ReturnConsumedCapacity::Total);
        if let Some(i) = input.downcast_mut::<TransactWriteItemsInput>() {
            i.return_consumed_capacity = i.return_consumed_capacity.take().or(total);
        } else if let Some(i) = input.downcast_mut::<QueryInput>() {
            i.return_consumed_capacity = i.return_consumed_capacity.take().or(total);
        } else if let Some(i) = input.downcast_mut::<GetItemInput>() {
            i.return_consumed_capacity = i.return_consumed_capacity.take().or(total);
        } else if let Some(i) = input.downcast_mut::<PutItemInput>() {
            i.return_consumed_capacity = i.return_consumed_capacity.take().or(total);
        }
        Ok(())
    }
}

/// An SDK client with the counter of its attempts.
#[derive(Clone, Debug)]
pub struct Client {
    pub client: aws_sdk_dynamodb::Client,
    pub attempts: Arc<AtomicU64>,
}

/// A client for `endpoint` on the workspace's HTTPS stack (hyper, rustls on ring), the AWS
/// environment's credentials, counting its attempts; `ask_capacity`: with [`AskCapacity`].
pub async fn client(endpoint: &str, ask_capacity: bool) -> Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let shared = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .load()
        .await;
    let attempts = Arc::new(AtomicU64::new(0));
    let mut conf =
        aws_sdk_dynamodb::config::Builder::from(&shared).interceptor(Attempts(attempts.clone()));
    if ask_capacity {
        conf = conf.interceptor(AskCapacity);
    }
    Client {
        client: aws_sdk_dynamodb::Client::from_conf(conf.build()),
        attempts,
    }
}

/// Creates dynamo-es's two tables as its `db/create_tables.sh` does (on-demand): events keyed
/// by `AggregateTypeAndId` + `AggregateIdSequence`, snapshots by `AggregateTypeAndId`; waits
/// until they are active.
pub async fn create_dynamo_es_tables(
    c: &aws_sdk_dynamodb::Client,
    events: &str,
    snapshots: &str,
) -> Result<()> {
    let attr = |name: &str, t: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(t)
            .build()
    };
    let key = |name: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(t)
            .build()
    };
    c.create_table()
        .table_name(events)
        .attribute_definitions(attr("AggregateTypeAndId", ScalarAttributeType::S)?)
        .attribute_definitions(attr("AggregateIdSequence", ScalarAttributeType::N)?)
        .key_schema(key("AggregateTypeAndId", KeyType::Hash)?)
        .key_schema(key("AggregateIdSequence", KeyType::Range)?)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .with_context(|| format!("create {events}"))?;
    c.create_table()
        .table_name(snapshots)
        .attribute_definitions(attr("AggregateTypeAndId", ScalarAttributeType::S)?)
        .key_schema(key("AggregateTypeAndId", KeyType::Hash)?)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .with_context(|| format!("create {snapshots}"))?;
    wait_active(c, events).await?;
    wait_active(c, snapshots).await
}

/// Deletes `table`; a missing table is fine.
pub async fn delete_table(c: &aws_sdk_dynamodb::Client, table: &str) -> Result<()> {
    match c.delete_table().table_name(table).send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(anyhow!("delete table {table}: {e:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_have_their_sizes() {
        for shape in [Shape::One800, Shape::Ten100, Shape::Ten100Random] {
            let evs = events(shape, 41);
            assert_eq!(evs.len(), shape.events());
            for e in &evs {
                assert_eq!(e.size(), shape.event_bytes(), "{shape:?}");
                serde_json::from_str::<serde_json::Value>(&e.data).expect("JSON");
            }
        }
        assert!(events(Shape::One800, 0)[0].metadata.is_some());
    }
}
