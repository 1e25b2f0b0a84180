//! Snapshots: one pointer item per stream (`sk` = [`SNAPSHOT_SK`], just below the head) holding
//! the state inline up to `max_inline_snapshot_bytes`, or a reference to its blob; larger states
//! go to the blob store first (core's `SnapshotOffload`: blob, then pointer, hash checked on
//! load, no orphan left on replace or delete).

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnConsumedCapacity,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use bytes::Bytes;
use sekiban_core::backend::snapshots::SnapshotPointers;
use sekiban_core::snapshot::{
    PointerWrite, SnapshotBody, SnapshotOffload, StoredSnapshot, check_snapshot_version,
};
use sekiban_core::{BlobStore, OpKind, Result, Snapshot, StoreError, StreamId, Version};

use crate::client::counted_as;
use crate::error::from_sdk;
use crate::events::{Item, number};
use crate::{DynamoDbTable, HEAD_SK, stream_key};

/// The sort key of a stream's snapshot pointer: below the head, above every version.
pub const SNAPSHOT_SK: i64 = HEAD_SK - 1;

/// How many times a save re-reads the pointer after another save replaced it meanwhile.
const SAVE_TRIES: usize = 8;

fn corrupt(stream: &StreamId, why: &str) -> StoreError {
    StoreError::Corrupt {
        what: format!("the snapshot pointer of {stream}: {why}"),
    }
}

/// The pointer an item holds.
fn pointer_of(stream: &StreamId, item: &Item) -> Result<StoredSnapshot> {
    let version = number(item, "sv").ok_or_else(|| corrupt(stream, "no version"))?;
    let state_type = match item.get("st") {
        Some(AttributeValue::S(s)) => s.clone(),
        _ => return Err(corrupt(stream, "no state type")),
    };
    let schema_version = number(item, "ss")
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| corrupt(stream, "no schema version"))?;
    let inline = match item.get("sb") {
        Some(AttributeValue::B(b)) => Some(b.as_ref().to_vec()),
        _ => None,
    };
    let blob = match item.get("sr") {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    };
    Ok(StoredSnapshot {
        version: Version(version),
        state_type,
        schema_version,
        body: SnapshotBody::from_columns(inline, blob)?,
    })
}

/// A blob store for a table configured without a bucket: large snapshots are refused, with what
/// to do about it.
#[derive(Debug)]
pub(crate) struct NoBucket;

#[async_trait]
impl BlobStore for NoBucket {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        Err(StoreError::invalid(format!(
            "a snapshot of {} bytes ({key}) is above the inline limit and no bucket is configured; add bucket=NAME to the dynamodb:// URL",
            bytes.len()
        )))
    }
    async fn get(&self, _key: &str) -> Result<Option<Bytes>> {
        Ok(None)
    }
    async fn delete(&self, _key: &str) -> Result<()> {
        Ok(())
    }
    async fn list(&self, _prefix: &str) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

impl DynamoDbTable {
    /// The pointer item and the head of a stream, in one strongly consistent `Query`.
    async fn pointer_and_head(
        &self,
        stream: &StreamId,
        kind: OpKind,
    ) -> Result<(Option<StoredSnapshot>, Option<Item>)> {
        let out = counted_as(
            kind,
            self.client
                .query()
                .table_name(&self.config.table)
                .key_condition_expression("pk = :pk AND sk >= :s")
                .expression_attribute_values(":pk", AttributeValue::S(stream_key(stream)))
                .expression_attribute_values(":s", AttributeValue::N(SNAPSHOT_SK.to_string()))
                .consistent_read(true)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send(),
        )
        .await
        .map_err(|e| from_sdk(&format!("read the snapshot pointer of {stream}"), e))?;
        self.charge(kind, out.consumed_capacity());
        let (mut pointer, mut head) = (None, None);
        for item in out.items() {
            match number(item, "sk") {
                Some(sk) if sk == SNAPSHOT_SK as u64 => pointer = Some(pointer_of(stream, item)?),
                Some(sk) if sk == HEAD_SK as u64 => head = Some(item.clone()),
                _ => {}
            }
        }
        let received = pointer.as_ref().map_or(0, StoredSnapshot::size);
        self.costs.record_bytes(kind, 0, received as u64);
        if let Some(h) = &head
            && h.contains_key("x")
        {
            return Err(StoreError::StreamDeleted {
                stream: stream.clone(),
                version: Version(number(h, "v").unwrap_or(0)),
            });
        }
        Ok((pointer, head))
    }

    /// The stored pointer, for a delete to clean up after.
    pub(crate) async fn pointer(&self, stream: &StreamId) -> Result<Option<StoredSnapshot>> {
        Ok(self.pointer_and_head(stream, OpKind::Delete).await?.0)
    }

    /// Step 2 of a save: the pointer replaces `current` if the stream is live and the version
    /// is one of its visible events; one `TransactWriteItems` (a check of the head, the put).
    async fn put_pointer(
        &self,
        snapshot: &Snapshot,
        stored: &StoredSnapshot,
    ) -> Result<PointerWrite> {
        let stream = &snapshot.stream;
        let ver = AttributeValue::N(stored.version.0.to_string());
        for _ in 0..SAVE_TRIES {
            let (current, head) = self.pointer_and_head(stream, OpKind::Snapshot).await?;
            let head_version = head.as_ref().and_then(|h| number(h, "v")).map(Version);
            let hidden = Version(head.as_ref().and_then(|h| number(h, "h")).unwrap_or(0));
            check_snapshot_version(snapshot, head_version, hidden)?;
            if current.as_ref().is_some_and(|c| c.version > stored.version) {
                return Ok(PointerWrite::Refused);
            }
            let check = ConditionCheck::builder()
                .table_name(&self.config.table)
                .set_key(Some(self.key(stream, HEAD_SK)))
                .condition_expression(
                    "v >= :ver AND attribute_not_exists(x) AND (attribute_not_exists(h) OR h < :ver)",
                )
                .expression_attribute_values(":ver", ver.clone())
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .build()
                .map_err(|e| StoreError::backend("build the head check", e))?;
            let mut item = self.key(stream, SNAPSHOT_SK);
            item.insert("sv".into(), ver.clone());
            item.insert("st".into(), AttributeValue::S(stored.state_type.clone()));
            item.insert(
                "ss".into(),
                AttributeValue::N(stored.schema_version.to_string()),
            );
            let (inline, blob) = stored.body.to_columns()?;
            if let Some(b) = inline {
                item.insert("sb".into(), AttributeValue::B(b.into()));
            }
            if let Some(r) = blob {
                item.insert("sr".into(), AttributeValue::S(r));
            }
            let mut put = Put::builder()
                .table_name(&self.config.table)
                .set_item(Some(item));
            put = match &current {
                None => put.condition_expression("attribute_not_exists(sv)"),
                Some(c) => put
                    .condition_expression("sv = :was")
                    .expression_attribute_values(
                        ":was",
                        AttributeValue::N(c.version.0.to_string()),
                    ),
            };
            let put = put
                .build()
                .map_err(|e| StoreError::backend("build the pointer put", e))?;
            let request = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().condition_check(check).build())
                .transact_items(TransactWriteItem::builder().put(put).build())
                .return_consumed_capacity(ReturnConsumedCapacity::Total);
            match counted_as(OpKind::Snapshot, request.send()).await {
                Ok(out) => {
                    self.charge(OpKind::Snapshot, out.consumed_capacity());
                    return Ok(PointerWrite::Replaced(current));
                }
                // The head or the pointer moved meanwhile: look again.
                Err(e)
                    if matches!(
                        e.as_service_error(),
                        Some(TransactWriteItemsError::TransactionCanceledException(_))
                    ) => {}
                Err(e) => return Err(from_sdk(&format!("save a snapshot of {stream}"), e)),
            }
        }
        Err(StoreError::Throttled {
            source: format!("save a snapshot of {stream}: the pointer kept moving").into(),
        })
    }
}

#[async_trait]
impl SnapshotPointers for DynamoDbTable {
    fn offload(&self) -> &SnapshotOffload {
        &self.offload
    }

    async fn write_pointer(
        &self,
        snapshot: &Snapshot,
        stored: StoredSnapshot,
    ) -> Result<PointerWrite> {
        self.put_pointer(snapshot, &stored).await
    }

    async fn read_pointer(&self, stream: &StreamId) -> Result<Option<StoredSnapshot>> {
        Ok(self.pointer_and_head(stream, OpKind::Snapshot).await?.0)
    }
}
