//! dynamo-es 0.5 (cqrs-es): its `DynamoEventRepository`, and its tables.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, anyhow};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{PersistedEventRepository, SerializedEvent};
use cqrs_es::{Aggregate, DomainEvent};
use dynamo_es::DynamoEventRepository;
use serde::{Deserialize, Serialize};

use super::{CATEGORY, Client, Contender, EVENT_TYPE, Shape, events, wait_active};

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
