//! The two contenders behind one small interface: sekiban-dynamodb ([`Sekiban`]: `DynamoDbTable`,
//! an `EventStore`, in `sekiban.rs`) and dynamo-es ([`DynamoEs`]: its `DynamoEventRepository`,
//! through cqrs-es's `PersistedEventRepository`, in `dynamo_es.rs`), beside the floors of the
//! analysis ([`Floor`]: raw SDK writes of sekiban's own append item, in `floor.rs`); here, what
//! they share: the events both write, the interface, and the SDK clients the benchmark builds.

mod dynamo_es;
mod floor;
mod sekiban;

pub use dynamo_es::{Account, AccountEvent, DynamoEs, NoError, create_dynamo_es_tables};
pub use floor::{Floor, FloorKind, create_floor_table};
pub use sekiban::{Sekiban, stream_id};

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
use aws_sdk_dynamodb::types::{ReturnConsumedCapacity, TableStatus};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use sekiban_core::{EventData, Metadata};

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
// Tables

/// Waits until `table` is active (at most 60 s).
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
