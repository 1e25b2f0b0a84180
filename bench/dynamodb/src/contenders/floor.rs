//! The floors of the analysis: raw SDK writes of sekiban's own append item.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, anyhow};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};

use super::{Client, Contender, Shape, event_data, stream_id, wait_active};

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
