//! Deletes. Both kinds are one batch that rewrites the head (on its etag), adds a deletion
//! marker document for the change feed, and drops the snapshot pointer. A soft delete also marks
//! the append documents within the idempotency window hidden in that batch (a re-send of them is
//! still recognised; reads and the feed skip them), then removes the older ones. A hard delete
//! then removes every append document, and the snapshot's blobs: the head stays as a tombstone,
//! so the stream is never written again. Removals go up to 100 in one batch.

use std::time::SystemTime;

use azure_data_cosmos::Query;
use azure_data_cosmos::models::TransactionalBatch;
use azure_data_cosmos::options::{BatchDeleteOptions, BatchReplaceOptions, Precondition};
use futures::TryStreamExt;

use sekiban_core::{DeleteMode, OpKind, Result, StoreError, StreamId};

use crate::conn::{NOT_FOUND, PRECONDITION_FAILED, error};
use crate::docs::{
    APPEND, AnyDoc, AppendDoc, HEAD, HEAD_ID, Head, MarkerDoc, POINTER, POINTER_ID, PointerDoc,
    json_size, micros,
};
use crate::heads::partition_key;
use crate::{CosmosStore, IDEMPOTENCY_WINDOW};

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
        let (pointer, version, again) = loop {
            let found = self.head_and_pointer(stream, OpKind::Delete).await?;
            let Some((head, etag)) = found.head else {
                return Ok(());
            };
            // Nothing left to do: writes nothing, so a delete tried again after its reply was
            // lost has one effect and one marker. What follows the batch (removing documents
            // and blobs) runs again, in case the first try did not get to finish it.
            let done = match mode {
                DeleteMode::Hard => head.x,
                DeleteMode::Soft if head.x => return Ok(()),
                DeleteMode::Soft => head.v > 0 && head.h >= head.v,
            };
            if done {
                break (None, head.v, true);
            }
            let now = micros(SystemTime::now());
            let marker = MarkerDoc::new(stream, head.v, head.d + 1, mode, now);
            let mut next = head.clone();
            next.ts = now;
            next.d += 1;
            // A soft delete hides the appends it keeps for re-sends in the same batch.
            let kept = match mode {
                DeleteMode::Soft => self.window_appends(stream, &head).await?,
                DeleteMode::Hard => Vec::new(),
            };
            match mode {
                DeleteMode::Soft => next.h = head.v,
                DeleteMode::Hard => {
                    next.x = true;
                    next.w.clear();
                }
            }
            let next = self.events.doc(&next)?;
            let marker = self.events.doc(&marker)?;
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
                batch = batch.delete_item(
                    POINTER_ID,
                    Some(
                        BatchDeleteOptions::default()
                            .with_precondition(Precondition::if_match(etag.clone())),
                    ),
                );
            }
            let mut sent = sent;
            for (doc, etag) in kept {
                let hidden = self.events.doc(&AppendDoc {
                    z: true,
                    ..doc.clone()
                })?;
                sent += json_size(&hidden);
                batch = batch
                    .replace_item(
                        doc.id.clone(),
                        &hidden,
                        Some(
                            BatchReplaceOptions::default()
                                .with_precondition(Precondition::if_match(etag)),
                        ),
                    )
                    .map_err(|e| error("build a delete batch", e))?;
            }
            match self.events.batch(OpKind::Delete, batch, sent).await? {
                Ok(_) => break (found.pointer, head.v, false),
                Err(refused) => match refused.cause() {
                    // The head, the pointer or a kept append changed meanwhile: read again.
                    Some((i, PRECONDITION_FAILED | NOT_FOUND)) if i != 1 => continue,
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
        let dropped = pointer.map(|(p, _)| p.stored(stream)).transpose()?;
        // Hard: every append document; soft: those the idempotency window no longer needs.
        let condition = match mode {
            DeleteMode::Hard => "true".to_owned(),
            DeleteMode::Soft => format!("c.l <= {}", version.saturating_sub(IDEMPOTENCY_WINDOW)),
        };
        let ids = self.append_ids(stream, &condition).await?;
        self.remove(stream, &ids).await?;
        if again && mode == DeleteMode::Soft {
            // The pointer the first try dropped is gone, its blob maybe not: the blobs of the
            // hidden versions go (no pointer can name one again: a snapshot of a hidden
            // version is refused).
            return self
                .offload
                .discard_older(stream, sekiban_core::Version(version + 1))
                .await;
        }
        self.offload.after_delete(stream, mode, Some(dropped)).await
    }

    /// The append documents within the idempotency window of `head` not hidden yet, with their
    /// etags.
    async fn window_appends(
        &self,
        stream: &StreamId,
        head: &Head,
    ) -> Result<Vec<(AppendDoc, String)>> {
        let oldest = head.v.saturating_sub(IDEMPOTENCY_WINDOW);
        let query = Query::from(format!(
            "SELECT * FROM c WHERE c.k = '{APPEND}' AND c.l > {oldest}"
        ));
        let pages: Vec<Vec<AnyDoc>> = self
            .events
            .query(OpKind::Delete, partition_key(stream), query, 100)
            .try_collect()
            .await?;
        let mut out = Vec::new();
        for d in pages.into_iter().flatten() {
            // `z` is not indexed: filtered here.
            let a: AppendDoc = d.parse()?;
            if !a.z {
                out.push((a, d.etag.clone().unwrap_or_default()));
            }
        }
        Ok(out)
    }

    /// The ids of the stream's append documents that match `condition`.
    async fn append_ids(&self, stream: &StreamId, condition: &str) -> Result<Vec<String>> {
        let query = Query::from(format!(
            "SELECT c.id, c.k FROM c WHERE c.k = '{APPEND}' AND {condition}"
        ));
        let pages: Vec<Vec<AnyDoc>> = self
            .events
            .query(OpKind::Delete, partition_key(stream), query, 1000)
            .try_collect()
            .await?;
        Ok(pages
            .into_iter()
            .flatten()
            .filter_map(|d| d.rest.get("id").and_then(|v| v.as_str()).map(str::to_owned))
            .collect())
    }

    /// Removes documents of a stream, up to 100 in one batch. A document already gone (removed
    /// by a try whose reply was lost, which the SDK sent again) refuses the whole batch with a
    /// 404: the batch goes again without it.
    async fn remove(&self, stream: &StreamId, ids: &[String]) -> Result<()> {
        for chunk in ids.chunks(BATCH_OPERATIONS) {
            let mut left = chunk.to_vec();
            while !left.is_empty() {
                let mut batch = TransactionalBatch::new(partition_key(stream));
                for id in &left {
                    batch = batch.delete_item(id.clone(), None);
                }
                match self.events.batch(OpKind::Delete, batch, 0).await? {
                    Ok(_) => break,
                    Err(refused) => match refused.cause() {
                        Some((i, NOT_FOUND)) if i < left.len() => {
                            left.remove(i);
                        }
                        _ => {
                            return Err(StoreError::Corrupt {
                                what: format!(
                                    "deleting {stream}: a batch of removals was refused with statuses {:?}; delete the stream again to finish",
                                    refused.statuses
                                ),
                            });
                        }
                    },
                }
            }
        }
        Ok(())
    }
}
