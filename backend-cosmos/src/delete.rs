//! Deletes. Both kinds are one batch that rewrites the head (on its etag), adds a deletion
//! marker document for the change feed, and drops the snapshot pointer. A hard delete then
//! removes every append document, up to 100 in one batch each, and the snapshot's blobs: the
//! head stays as a tombstone, so the stream is never written again.

use std::time::SystemTime;

use azure_data_cosmos::Query;
use azure_data_cosmos::models::TransactionalBatch;
use azure_data_cosmos::options::{BatchDeleteOptions, BatchReplaceOptions, Precondition};
use futures::TryStreamExt;

use sekiban_core::{DeleteMode, OpKind, Result, StoreError, StreamId};

use crate::CosmosStore;
use crate::conn::{NOT_FOUND, PRECONDITION_FAILED, error};
use crate::docs::{
    APPEND, AnyDoc, HEAD, HEAD_ID, Head, MarkerDoc, POINTER, POINTER_ID, PointerDoc, json_size,
    micros, to_json,
};
use crate::heads::partition_key;

/// Most operations in one transactional batch.
const BATCH_OPERATIONS: usize = 100;

/// A stream's head and snapshot pointer, as one query reads them.
#[derive(Debug, Default)]
pub(crate) struct HeadAndPointer {
    pub head: Option<(Head, String)>,
    pub pointer: Option<(PointerDoc, String)>,
}

impl CosmosStore {
    /// The head and the snapshot pointer of a stream, in one query.
    pub(crate) async fn head_and_pointer(
        &self,
        stream: &StreamId,
        kind: OpKind,
    ) -> Result<HeadAndPointer> {
        let query = Query::from(format!(
            "SELECT * FROM c WHERE c.k = '{HEAD}' OR c.k = '{POINTER}'"
        ));
        let pages: Vec<Vec<AnyDoc>> = self
            .events
            .query(kind, partition_key(stream), query, 2)
            .try_collect()
            .await?;
        let mut out = HeadAndPointer::default();
        for doc in pages.into_iter().flatten() {
            let etag = doc.etag.clone().unwrap_or_default();
            if doc.k == HEAD {
                out.head = Some((doc.parse()?, etag));
            } else if doc.k == POINTER {
                out.pointer = Some((doc.parse()?, etag));
            }
        }
        Ok(out)
    }

    pub(crate) async fn delete(&self, stream: &StreamId, mode: DeleteMode) -> Result<()> {
        self.heads.forget(stream);
        let pointer = loop {
            let found = self.head_and_pointer(stream, OpKind::Delete).await?;
            let Some((head, etag)) = found.head else {
                return Ok(());
            };
            if head.x || (mode == DeleteMode::Soft && head.h == head.v) {
                return Ok(());
            }
            let now = micros(SystemTime::now());
            let marker = MarkerDoc::new(stream, head.v, mode, now);
            let mut next = head.clone();
            next.ts = now;
            match mode {
                DeleteMode::Soft => next.h = head.v,
                DeleteMode::Hard => {
                    next.x = true;
                    next.w.clear();
                }
            }
            let next = to_json(&next)?;
            let marker = to_json(&marker)?;
            let sent = json_size(&next) + json_size(&marker);
            let mut batch = TransactionalBatch::new(partition_key(stream))
                .replace_item(
                    HEAD_ID,
                    &next,
                    Some(
                        BatchReplaceOptions::default()
                            .with_precondition(Precondition::if_match(etag)),
                    ),
                )
                .and_then(|b| b.create_item(&marker))
                .map_err(|e| error("build a delete batch", e))?;
            if let Some((_, etag)) = &found.pointer {
                batch = batch
                    .delete_item(
                        POINTER_ID,
                        Some(
                            BatchDeleteOptions::default()
                                .with_precondition(Precondition::if_match(etag.clone())),
                        ),
                    );
            }
            match self.events.batch(OpKind::Delete, batch, sent).await? {
                Ok(_) => break found.pointer,
                Err(refused) => match refused.cause() {
                    // The head or the pointer changed meanwhile: read them again.
                    Some((0 | 2, PRECONDITION_FAILED | NOT_FOUND)) => continue,
                    // The marker exists: a delete at this version ran before and its head
                    // write was lost to a later one; read again.
                    Some((1, crate::conn::CONFLICT)) => continue,
                    cause => {
                        return Err(StoreError::Corrupt {
                            what: format!(
                                "delete of {stream}: the batch was refused with statuses {:?} ({cause:?})",
                                refused.statuses
                            ),
                        });
                    }
                },
            }
        };
        if let Some((p, _)) = pointer {
            self.offload.discard(&p.stored(stream)?).await?;
        }
        if mode == DeleteMode::Hard {
            self.erase(stream).await?;
        }
        Ok(())
    }

    /// Removes every append document of an erased stream, and its snapshot blobs.
    async fn erase(&self, stream: &StreamId) -> Result<()> {
        let query = Query::from(format!("SELECT c.id, c.k FROM c WHERE c.k = '{APPEND}'"));
        let pages: Vec<Vec<AnyDoc>> = self
            .events
            .query(OpKind::Delete, partition_key(stream), query, 1000)
            .try_collect()
            .await?;
        let ids: Vec<String> = pages
            .into_iter()
            .flatten()
            .filter_map(|d| d.rest.get("id").and_then(|v| v.as_str()).map(str::to_owned))
            .collect();
        for chunk in ids.chunks(BATCH_OPERATIONS) {
            let mut batch = TransactionalBatch::new(partition_key(stream));
            for id in chunk {
                batch = batch.delete_item(id.clone(), None);
            }
            if let Err(refused) = self.events.batch(OpKind::Delete, batch, 0).await? {
                return Err(StoreError::Corrupt {
                    what: format!(
                        "erasing {stream}: a batch of deletes was refused with statuses {:?}; delete the stream again to finish",
                        refused.statuses
                    ),
                });
            }
        }
        let blobs = self.offload.blobs();
        for key in blobs
            .list(&sekiban_core::snapshot::stream_blob_prefix(stream))
            .await?
        {
            blobs.delete(&key).await?;
        }
        Ok(())
    }
}
