//! Checkpoints in their own container (partition key `/id`), one document per name, saved on
//! its etag.

use async_trait::async_trait;
use azure_data_cosmos::PartitionKey;
use serde::{Deserialize, Serialize};

use sekiban_core::backend::checkpoint::check_name;
use sekiban_core::{Checkpoint, CheckpointStore, Etag, OpKind, Result, StoreError};

use crate::CosmosStore;
use crate::conn::{CONFLICT, NOT_FOUND, PRECONDITION_FAILED};

#[derive(Debug, Serialize, Deserialize)]
struct CheckpointDoc {
    id: String,
    /// The consumer's name as given.
    n: String,
    /// The checkpoint.
    c: String,
    /// The save that wrote it: a token drawn once per save, so a save the SDK tried again
    /// after its reply was lost recognises its own document.
    #[serde(default)]
    w: String,
}

/// The document id of a checkpoint name: the name itself when Cosmos DB takes it as an id (no
/// `/ \ ? #`, nothing to trim, not starting with `~`), else `~` and the SHA-256 of the name.
fn doc_id(name: &str) -> String {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@'));
    if plain {
        name.to_owned()
    } else {
        format!("~{}", sekiban_core::snapshot::sha256_hex(name.as_bytes()))
    }
}

fn conflict(name: &str) -> StoreError {
    StoreError::CheckpointConflict {
        name: name.to_owned(),
    }
}

#[async_trait]
impl CheckpointStore for CosmosStore {
    async fn load_checkpoint(&self, name: &str) -> Result<Option<(Checkpoint, Etag)>> {
        check_name(name)?;
        let id = doc_id(name);
        let Some(found) = self
            .leases
            .read(OpKind::Checkpoint, PartitionKey::from(id.clone()), &id)
            .await?
        else {
            return Ok(None);
        };
        let doc: CheckpointDoc = found.doc.parse()?;
        Ok(Some((Checkpoint::new(doc.c), Etag(found.etag))))
    }

    async fn save_checkpoint(
        &self,
        name: &str,
        checkpoint: &Checkpoint,
        expected: Option<&Etag>,
    ) -> Result<Etag> {
        check_name(name)?;
        let id = doc_id(name);
        let token = uuid::Uuid::new_v4().simple().to_string();
        let doc = crate::docs::to_json(&serde_json::json!({
            "id": id,
            "k": "c",
            "n": name,
            "c": checkpoint.as_str(),
            "w": token,
        }))?;
        let written = self
            .leases
            .write(
                OpKind::Checkpoint,
                PartitionKey::from(id.clone()),
                &id,
                Some(&doc),
                expected.map(|e| e.0.as_str()),
            )
            .await?;
        match written {
            Ok(Some(etag)) => Ok(Etag(etag)),
            Ok(None) => Err(StoreError::Corrupt {
                what: format!("checkpoint {name}: the service answered a save without an etag"),
            }),
            // Refused: confirmed by a read first. The SDK tries a write again when its reply
            // is lost, and that second try is refused by the first one's document.
            Err(CONFLICT | PRECONDITION_FAILED | NOT_FOUND) => {
                match self
                    .leases
                    .read(OpKind::Checkpoint, PartitionKey::from(id.clone()), &id)
                    .await?
                {
                    Some(found) if found.doc.parse::<CheckpointDoc>()?.w == token => {
                        Ok(Etag(found.etag))
                    }
                    _ => Err(conflict(name)),
                }
            }
            Err(status) => Err(StoreError::Corrupt {
                what: format!("checkpoint {name}: the save was refused with status {status}"),
            }),
        }
    }

    async fn delete_checkpoint(&self, name: &str) -> Result<()> {
        check_name(name)?;
        let id = doc_id(name);
        match self
            .leases
            .write(
                OpKind::Checkpoint,
                PartitionKey::from(id.clone()),
                &id,
                None,
                None,
            )
            .await?
        {
            Ok(_) | Err(NOT_FOUND) => Ok(()),
            Err(status) => Err(StoreError::Corrupt {
                what: format!("checkpoint {name}: the delete was refused with status {status}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::doc_id;

    #[test]
    fn plain_names_are_ids_and_others_are_hashed() {
        assert_eq!(doc_id("projector-1"), "projector-1");
        let odd = doc_id("a/b?c");
        assert!(odd.starts_with('~') && odd.len() == 65);
        assert_ne!(doc_id("~x"), "~x");
        assert_ne!(doc_id("a/b"), doc_id("a/c"));
    }
}
