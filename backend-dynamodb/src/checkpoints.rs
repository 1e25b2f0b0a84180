//! Consumers' checkpoints: one item each, under a partition key no stream can have (`~` is not
//! allowed in a tenant), saved conditionally on its etag. The etag starts at the clock in
//! microseconds and grows by at least one a save, so a name deleted and saved anew never hands
//! out an etag it handed out before. Each save writes a token of its own (`w`): a save refused
//! by the item its own earlier try wrote (a reply lost, the request sent again) is answered
//! with its etag.

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure,
};
use sekiban_core::backend::checkpoint::check_name as check_checkpoint_name;
use sekiban_core::{Checkpoint, CheckpointStore, Etag, OpKind, Result, StoreError};

use crate::DynamoDbTable;
use crate::client::counted_as;
use crate::error::from_sdk;
use crate::events::now_micros;

fn key(name: &str) -> std::collections::HashMap<String, AttributeValue> {
    std::collections::HashMap::from([
        (
            "pk".to_string(),
            AttributeValue::S(format!("~checkpoint|{name}")),
        ),
        ("sk".to_string(), AttributeValue::N("0".into())),
    ])
}

fn etag_of(s: &str) -> Option<u64> {
    s.parse().ok()
}

#[async_trait]
impl CheckpointStore for DynamoDbTable {
    async fn load_checkpoint(&self, name: &str) -> Result<Option<(Checkpoint, Etag)>> {
        check_checkpoint_name(name)?;
        let out = counted_as(
            OpKind::Checkpoint,
            self.client
                .get_item()
                .table_name(&self.config.table)
                .set_key(Some(key(name)))
                .consistent_read(true)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send(),
        )
        .await
        .map_err(|e| from_sdk(&format!("load checkpoint {name:?}"), e))?;
        self.charge(OpKind::Checkpoint, out.consumed_capacity());
        let Some(item) = out.item() else {
            return Ok(None);
        };
        match (item.get("c"), item.get("e")) {
            (Some(AttributeValue::S(c)), Some(AttributeValue::N(e))) => {
                Ok(Some((Checkpoint::new(c.clone()), Etag(e.clone()))))
            }
            _ => Err(StoreError::Corrupt {
                what: format!("checkpoint {name:?}: its item lacks the checkpoint or the etag"),
            }),
        }
    }

    async fn save_checkpoint(
        &self,
        name: &str,
        checkpoint: &Checkpoint,
        expected: Option<&Etag>,
    ) -> Result<Etag> {
        check_checkpoint_name(name)?;
        let conflict = || StoreError::CheckpointConflict {
            name: name.to_string(),
        };
        let (condition, previous) = match expected {
            None => ("attribute_not_exists(pk)", None),
            Some(tag) => ("e = :previous", Some(etag_of(&tag.0).ok_or_else(conflict)?)),
        };
        let next = previous.map_or(0, |p| p + 1).max(now_micros());
        let mut item = key(name);
        item.insert(
            "c".into(),
            AttributeValue::S(checkpoint.as_str().to_string()),
        );
        item.insert("e".into(), AttributeValue::N(next.to_string()));
        // The save's own token: a save the SDK tried again after its reply was lost is refused
        // by the item its first try wrote, and knows it by this.
        let token = uuid::Uuid::new_v4().simple().to_string();
        item.insert("w".into(), AttributeValue::S(token.clone()));
        let mut request = self
            .client
            .put_item()
            .table_name(&self.config.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        if let Some(p) = previous {
            request =
                request.expression_attribute_values(":previous", AttributeValue::N(p.to_string()));
        }
        match counted_as(OpKind::Checkpoint, request.send()).await {
            Ok(out) => {
                self.charge(OpKind::Checkpoint, out.consumed_capacity());
                Ok(Etag(next.to_string()))
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                // The refusing item comes with the refusal: this save's own (its token), or
                // someone else's.
                let stored = match e.into_service_error() {
                    PutItemError::ConditionalCheckFailedException(c) => c.item,
                    _ => None,
                };
                match stored {
                    Some(item) if item.get("w") == Some(&AttributeValue::S(token)) => {
                        Ok(Etag(next.to_string()))
                    }
                    _ => Err(conflict()),
                }
            }
            Err(e) => Err(from_sdk(&format!("save checkpoint {name:?}"), e)),
        }
    }

    async fn delete_checkpoint(&self, name: &str) -> Result<()> {
        check_checkpoint_name(name)?;
        let out = counted_as(
            OpKind::Checkpoint,
            self.client
                .delete_item()
                .table_name(&self.config.table)
                .set_key(Some(key(name)))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send(),
        )
        .await
        .map_err(|e| from_sdk(&format!("delete checkpoint {name:?}"), e))?;
        self.charge(OpKind::Checkpoint, out.consumed_capacity());
        Ok(())
    }
}
