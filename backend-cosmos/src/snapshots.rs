//! Snapshot pointers: one document per stream (`p`), beside its head. A save checks the head in
//! the same batch (a batch read on its etag), so a snapshot is never stored for a stream deleted
//! meanwhile; the pointer is replaced on its own etag, so an older snapshot never replaces a
//! newer one. A pointer names the save that wrote it and the blob it replaced, so a save the
//! SDK sent again after its reply was lost knows its own pointer and still deletes that blob.

use async_trait::async_trait;
use azure_data_cosmos::models::TransactionalBatch;
use azure_data_cosmos::options::{BatchReadOptions, BatchReplaceOptions, Precondition};

use sekiban_core::backend::snapshots::SnapshotPointers;
use sekiban_core::snapshot::{
    PointerWrite, SnapshotBody, SnapshotOffload, StoredSnapshot, check_snapshot_version,
};
use sekiban_core::{OpKind, Result, Snapshot, StoreError, StreamId, Version};

use crate::CosmosStore;
use crate::conn::{CONFLICT, NOT_FOUND, PRECONDITION_FAILED, error};
use crate::docs::{HEAD_ID, POINTER_ID, PointerDoc, json_size};
use crate::heads::partition_key;
use crate::read::erased;

#[async_trait]
impl SnapshotPointers for CosmosStore {
    fn offload(&self) -> &SnapshotOffload {
        &self.offload
    }

    async fn write_pointer(
        &self,
        snapshot: &Snapshot,
        stored: StoredSnapshot,
    ) -> Result<PointerWrite> {
        let stream = &snapshot.stream;
        let token = uuid::Uuid::new_v4().simple().to_string();
        loop {
            let found = self.head_and_pointer(stream, OpKind::Snapshot).await?;
            // This save's own pointer: an earlier try committed, its reply lost (the SDK sent
            // the batch again, and the pointer it wrote refused it). What it replaced is kept
            // in it, for the offload to delete.
            if let Some((p, _)) = &found.pointer
                && p.w.as_deref() == Some(token.as_str())
            {
                let replaced = p.pb.clone().map(|r| StoredSnapshot {
                    body: SnapshotBody::Offloaded(r),
                    ..stored.clone()
                });
                return Ok(PointerWrite::Replaced(replaced));
            }
            if let Some((h, _)) = &found.head
                && h.x
            {
                return Err(erased(stream, h));
            }
            check_snapshot_version(
                snapshot,
                found.head.as_ref().map(|(h, _)| Version(h.v)),
                Version(found.head.as_ref().map_or(0, |(h, _)| h.h)),
            )?;
            let Some((_, head_etag)) = &found.head else {
                continue;
            };
            if let Some((p, _)) = &found.pointer
                && p.v > snapshot.version.0
            {
                return Ok(PointerWrite::Refused);
            }
            let mut pointer = PointerDoc::new(stream, &stored);
            pointer.w = Some(token.clone());
            pointer.pb = found.pointer.as_ref().and_then(|(p, _)| p.blob.clone());
            let doc = self.events.doc(&pointer)?;
            let sent = json_size(&doc);
            let batch = TransactionalBatch::new(partition_key(stream)).read_item(
                HEAD_ID,
                Some(
                    BatchReadOptions::default()
                        .with_precondition(Precondition::if_match(head_etag.clone())),
                ),
            );
            let batch = match &found.pointer {
                None => batch.create_item(&doc),
                Some((_, etag)) => batch.replace_item(
                    POINTER_ID,
                    &doc,
                    Some(
                        BatchReplaceOptions::default()
                            .with_precondition(Precondition::if_match(etag.clone())),
                    ),
                ),
            }
            .map_err(|e| error("build a snapshot batch", e))?;
            match self.events.batch(OpKind::Snapshot, batch, sent).await? {
                Ok(_) => {
                    let replaced = match found.pointer {
                        Some((p, _)) => Some(p.stored(stream)?),
                        None => None,
                    };
                    return Ok(PointerWrite::Replaced(replaced));
                }
                Err(refused) => match refused.cause() {
                    // The head or the pointer changed meanwhile: read them again.
                    Some((_, PRECONDITION_FAILED | NOT_FOUND | CONFLICT)) => continue,
                    cause => {
                        return Err(StoreError::Corrupt {
                            what: format!(
                                "snapshot of {stream}: the batch was refused with statuses {:?} ({cause:?})",
                                refused.statuses
                            ),
                        });
                    }
                },
            }
        }
    }

    async fn read_pointer(&self, stream: &StreamId) -> Result<Option<StoredSnapshot>> {
        let found = self.head_and_pointer(stream, OpKind::Snapshot).await?;
        if let Some((h, _)) = &found.head
            && h.x
        {
            return Err(erased(stream, h));
        }
        found.pointer.map(|(p, _)| p.stored(stream)).transpose()
    }
}
