//! Consumers' checkpoints, each saved under an etag (compare-and-set).
//!
//! Every save draws a new random etag and writes it with the checkpoint, so the save can
//! recognise itself when it is tried again after its reply was lost.

use sekiban_core::{Checkpoint, Etag, OpKind, StoreError};

use super::rows::get;
use super::statements::Sql;
use super::{Db, Result};

impl Db {
    /// A consumer's checkpoint and etag.
    pub(crate) async fn load_checkpoint(&self, name: &str) -> Result<Option<(Checkpoint, Etag)>> {
        let rows = self
            .query(OpKind::Checkpoint, 0, Sql::LoadCheckpoint, &[&name])
            .await?;
        rows.first()
            .map(|r| {
                Ok((
                    Checkpoint::new(get::<String>(r, 0)?),
                    Etag(get::<i64>(r, 1)?.to_string()),
                ))
            })
            .transpose()
    }

    /// Saves a checkpoint if the stored etag is `expected`, in one statement, under `etag`: a
    /// new etag the caller drew for this save ([`new_etag`]) and passes again when it tries the
    /// save again, so a save whose reply was lost is recognised and answered with its etag.
    pub(crate) async fn save_checkpoint(
        &self,
        name: &str,
        checkpoint: &Checkpoint,
        expected: Option<&Etag>,
        etag: i64,
    ) -> Result<Etag> {
        let cp = checkpoint.as_str();
        let sent = name.len() + cp.len();
        let rows = match expected {
            None => {
                self.query(
                    OpKind::Checkpoint,
                    sent,
                    Sql::InsertCheckpoint,
                    &[&name, &cp, &etag],
                )
                .await?
            }
            Some(e) => match e.0.parse::<i64>() {
                Ok(tag) => {
                    self.query(
                        OpKind::Checkpoint,
                        sent,
                        Sql::UpdateCheckpoint,
                        &[&name, &cp, &tag, &etag],
                    )
                    .await?
                }
                Err(_) => Vec::new(),
            },
        };
        match rows.first() {
            Some(r) => Ok(Etag(get::<i64>(r, 0)?.to_string())),
            None => Err(StoreError::CheckpointConflict {
                name: name.to_string(),
            }),
        }
    }

    /// Deletes a checkpoint (nothing when there is none).
    pub(crate) async fn delete_checkpoint(&self, name: &str) -> Result<()> {
        self.query(
            OpKind::Checkpoint,
            name.len(),
            Sql::DeleteCheckpoint,
            &[&name],
        )
        .await?;
        Ok(())
    }
}

/// A new etag for one checkpoint save: random, positive, 63 bits (two saves drawing the same
/// one is as likely as a UUID collision).
pub(crate) fn new_etag() -> i64 {
    (uuid::Uuid::new_v4().as_u64_pair().0 >> 1) as i64
}
