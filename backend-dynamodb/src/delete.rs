//! Deleting a stream. Soft: the head remembers how far (`h`) and the version goes on; the items
//! of events older than the idempotency window are removed, the newer ones are kept hidden (`z`)
//! so that a re-send of a hidden append is still recognised (rule 3) and reads skip them. Hard: the head becomes a tombstone (`x`) first, with a second tombstone below
//! every version, so no append or read gets through, then every other item of the stream goes.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, Put, ReturnConsumedCapacity, TransactWriteItem, Update,
    WriteRequest,
};
use sekiban_core::{DeleteMode, OpKind, Result, StoreError, StreamId, Version};

use crate::client::counted_as;
use crate::error::from_sdk;
use crate::events::{FLOOR_SK, Item, now_micros, number};
use crate::{DynamoDbTable, HEAD_SK, IDEMPOTENCY_WINDOW, stream_key};

/// Whether a transaction was cancelled by a refused condition (and nothing else).
fn is_condition_refusal<R>(e: &SdkError<TransactWriteItemsError, R>) -> bool {
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(c)) => c
            .cancellation_reasons()
            .iter()
            .any(|r| r.code() == Some("ConditionalCheckFailed")),
        _ => false,
    }
}

/// Most deletes in one `BatchWriteItem`.
const BATCH: usize = 25;

impl DynamoDbTable {
    /// Deletes a stream (nothing when it does not exist or is already erased).
    pub(crate) async fn delete(&self, stream: &StreamId, mode: DeleteMode) -> Result<()> {
        let head = match self.head_for_delete(stream).await? {
            Some(v) => v,
            None => return Ok(()),
        };
        let dropped = self.pointer(stream).await?;
        match mode {
            DeleteMode::Soft => {
                if dropped.is_some() {
                    self.delete_pointer(stream).await?;
                }
                // Every soft delete that hides something changes the head (`d` counts them), so
                // each one is a record on the stream and a marker on the feed, as on every
                // store; one with nothing new to hide (the stream soft-deleted at its head
                // already, e.g. by an earlier try whose reply was lost) changes nothing.
                let mut head = head;
                for _ in 0..8 {
                    self.hide_items(stream, head.0).await?;
                    if self.mark_soft(stream, head).await? {
                        break;
                    }
                    // An append moved the head meanwhile, or the stream was erased; or it was
                    // hidden up to this head already.
                    match self.head_for_delete(stream).await? {
                        Some(v) if v == head => break,
                        Some(v) => head = v,
                        None => break,
                    }
                }
            }
            DeleteMode::Hard => {
                self.tombstone(stream, head).await?;
                let items = self.items_upto(stream, u64::MAX).await?;
                self.delete_keys(stream, items.into_iter().map(|(key, _, _)| key).collect())
                    .await?;
            }
        }
        self.offload.after_delete(stream, mode, Some(dropped)).await
    }

    /// Deletes the snapshot pointer item.
    async fn delete_pointer(&self, stream: &StreamId) -> Result<()> {
        counted_as(
            OpKind::Delete,
            self.client
                .delete_item()
                .table_name(&self.config.table)
                .set_key(Some(self.key(stream, crate::SNAPSHOT_SK)))
                .send(),
        )
        .await
        .map_err(|e| from_sdk(&format!("delete the snapshot of {stream}"), e))?;
        Ok(())
    }

    /// The head's version; `None` when there is nothing to delete.
    async fn head_for_delete(&self, stream: &StreamId) -> Result<Option<Version>> {
        match self.head_version(stream, OpKind::Delete).await {
            Ok(Version::NONE) => Ok(None),
            Ok(v) => Ok(Some(v)),
            Err(StoreError::StreamDeleted { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Records a soft delete up to `head` in the head, if it is still there, live and not hidden
    /// up to `head` already; whether it was.
    async fn mark_soft(&self, stream: &StreamId, head: Version) -> Result<bool> {
        let now = now_micros();
        let request = self
            .client
            .update_item()
            .table_name(&self.config.table)
            .set_key(Some(self.key(stream, HEAD_SK)))
            .update_expression(
                "SET h = :v, m = :now, hm = :now, hl = list_append(if_not_exists(hl, :none), :entry) ADD d :one",
            )
            .condition_expression("attribute_not_exists(x) AND v = :v AND (attribute_not_exists(h) OR h < :v)")
            .expression_attribute_values(":v", AttributeValue::N(head.0.to_string()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(":none", AttributeValue::L(Vec::new()))
            .expression_attribute_values(
                ":entry",
                AttributeValue::L(vec![
                    AttributeValue::N(head.0.to_string()),
                    AttributeValue::N(now.to_string()),
                ]),
            )
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        match counted_as(OpKind::Delete, request.send()).await {
            Ok(out) => {
                self.charge(OpKind::Delete, out.consumed_capacity());
                Ok(true)
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(from_sdk(&format!("delete {stream}"), e)),
        }
    }

    /// Makes the stream a tombstone, in one transaction: the head gets `x`, and an item at
    /// `sk` 0 (below every version) says the same, so a read in either direction meets a
    /// tombstone first once the stream's other items are gone. Already erased: nothing to do.
    async fn tombstone(&self, stream: &StreamId, head: Version) -> Result<()> {
        let update = Update::builder()
            .table_name(&self.config.table)
            .set_key(Some(self.key(stream, HEAD_SK)))
            .update_expression("SET x = :yes, m = :now")
            .condition_expression("attribute_not_exists(x)")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":now", AttributeValue::N(now_micros().to_string()))
            .build()
            .map_err(|e| StoreError::backend("build the tombstone update", e))?;
        let mut floor = self.key(stream, FLOOR_SK);
        floor.insert("v".into(), AttributeValue::N(head.0.to_string()));
        floor.insert("x".into(), AttributeValue::Bool(true));
        let put = Put::builder()
            .table_name(&self.config.table)
            .set_item(Some(floor))
            .build()
            .map_err(|e| StoreError::backend("build the floor tombstone", e))?;
        let request = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        match counted_as(OpKind::Delete, request.send()).await {
            Ok(out) => {
                self.charge(OpKind::Delete, out.consumed_capacity());
                Ok(())
            }
            // Erased meanwhile.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_transaction_canceled_exception())
                    && is_condition_refusal(&e) =>
            {
                Ok(())
            }
            Err(e) => Err(from_sdk(&format!("erase {stream}"), e)),
        }
    }

    /// Soft-deletes up to `head`: the items of an append that ends within the idempotency
    /// window (after `head - IDEMPOTENCY_WINDOW`) are hidden (`z`), the older ones deleted.
    async fn hide_items(&self, stream: &StreamId, head: u64) -> Result<()> {
        let window_floor = head.saturating_sub(IDEMPOTENCY_WINDOW);
        let mut old = Vec::new();
        for (key, sk, hidden) in self.items_upto(stream, head).await? {
            if sk <= window_floor {
                old.push(key);
            } else if !hidden {
                self.hide_item(stream, key).await?;
            }
        }
        self.delete_keys(stream, old).await
    }

    /// Marks one append's item hidden, if it is still there (a hard delete may have taken it).
    async fn hide_item(&self, stream: &StreamId, key: Item) -> Result<()> {
        let request = self
            .client
            .update_item()
            .table_name(&self.config.table)
            .set_key(Some(key))
            .update_expression("SET z = :yes")
            .condition_expression("attribute_exists(sk)")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        match counted_as(OpKind::Delete, request.send()).await {
            Ok(out) => {
                self.charge(OpKind::Delete, out.consumed_capacity());
                Ok(())
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(from_sdk(&format!("hide an append of {stream}"), e)),
        }
    }

    /// The keys of the stream's items with a sort key from 1 up to `upto` (never the head or
    /// the floor tombstone), each with its sort key and whether it is hidden already.
    async fn items_upto(&self, stream: &StreamId, upto: u64) -> Result<Vec<(Item, u64, bool)>> {
        let upto = i64::try_from(upto).unwrap_or(HEAD_SK).min(HEAD_SK - 1);
        let mut start = None;
        let mut found = Vec::new();
        loop {
            let out = counted_as(
                OpKind::Delete,
                self.client
                    .query()
                    .table_name(&self.config.table)
                    .key_condition_expression("pk = :pk AND sk BETWEEN :one AND :upto")
                    .expression_attribute_values(":pk", AttributeValue::S(stream_key(stream)))
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .expression_attribute_values(":upto", AttributeValue::N(upto.to_string()))
                    .projection_expression("pk, sk, z")
                    .consistent_read(true)
                    .set_exclusive_start_key(start)
                    .send(),
            )
            .await
            .map_err(|e| from_sdk(&format!("list the items of {stream}"), e))?;
            for item in out.items() {
                let sk = number(item, "sk").unwrap_or(0);
                let hidden = item.contains_key("z");
                let key: Item = item
                    .iter()
                    .filter(|(k, _)| *k == "pk" || *k == "sk")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                found.push((key, sk, hidden));
            }
            match out.last_evaluated_key() {
                Some(k) => start = Some(k.clone()),
                None => return Ok(found),
            }
        }
    }

    /// Deletes items by key, 25 a `BatchWriteItem`, retrying what the service leaves
    /// unprocessed.
    async fn delete_keys(&self, stream: &StreamId, keys: Vec<Item>) -> Result<()> {
        for chunk in keys.chunks(BATCH) {
            let pending: Vec<WriteRequest> = chunk
                .iter()
                .map(|key| {
                    DeleteRequest::builder()
                        .set_key(Some(key.clone()))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                        .map_err(|e| StoreError::backend("build a delete request", e))
                })
                .collect::<Result<_>>()?;
            let what = format!("delete the items of {stream}");
            self.rest(OpKind::Delete, &what, pending, |batch| async {
                let out = counted_as(
                    OpKind::Delete,
                    self.client
                        .batch_write_item()
                        .request_items(&self.config.table, batch)
                        .send(),
                )
                .await
                .map_err(|e| from_sdk(&what, e))?;
                let left = out
                    .unprocessed_items()
                    .and_then(|u| u.get(&self.config.table))
                    .cloned()
                    .unwrap_or_default();
                Ok((!left.is_empty()).then_some(left))
            })
            .await?;
        }
        Ok(())
    }
}
