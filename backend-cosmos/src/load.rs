//! A stream's latest snapshot and the events after it in one request: a query ordered by `r`
//! returns the head, then the append documents from the latest back, then the snapshot pointer
//! (its order key sits between the appends that end at its version and those after). When the
//! pointer (or the stream's first append) is in the first page, that page holds everything.

use futures::StreamExt;
use futures::stream::BoxStream;

use azure_data_cosmos::Query;
use sekiban_core::backend::load_snapshot_then_read;
use sekiban_core::{OpKind, RecordedEvent, Result, SnapshotAndTail, StreamId};

use crate::CosmosStore;
use crate::docs::{APPEND, AppendDoc, HEAD, Head, POINTER, PointerDoc};
use crate::heads::partition_key;
use crate::read::erased;

/// Documents the combined load asks for: the head, the pointer, and up to 14 appends after it.
const LOAD_DOCUMENTS: u32 = 16;

impl CosmosStore {
    pub(crate) async fn load_together(&self, stream: &StreamId) -> Result<SnapshotAndTail<'_>> {
        let query = Query::from(format!(
            "SELECT TOP {LOAD_DOCUMENTS} * FROM c WHERE c.k = '{HEAD}' OR c.k = '{POINTER}' OR c.k = '{APPEND}' ORDER BY c.r"
        ));
        let docs = self
            .events
            .query(
                OpKind::Snapshot,
                partition_key(stream),
                query,
                LOAD_DOCUMENTS,
            )
            .next()
            .await
            .transpose()?
            .unwrap_or_default();
        let complete_without_pointer = docs.len() < LOAD_DOCUMENTS as usize;
        let mut hidden = 0;
        let mut appends: Vec<AppendDoc> = Vec::new();
        let mut pointer = None;
        for doc in &docs {
            if doc.k == HEAD {
                let h: Head = doc.parse()?;
                if h.x {
                    return Err(erased(stream, &h));
                }
                hidden = h.h;
            } else if doc.k == POINTER {
                pointer = Some(doc.parse::<PointerDoc>()?);
                break;
            } else if doc.k == APPEND {
                appends.push(doc.parse()?);
            }
        }
        let snapshot = match &pointer {
            Some(p) => match self.offload.resolve(stream, &p.stored(stream)?).await? {
                Some(s) => Some(s),
                // Its blob was replaced meanwhile: load the way every store does.
                None => return load_snapshot_then_read(self, stream).await,
            },
            None if complete_without_pointer => None,
            // Neither the pointer nor the stream's start in one page: a long tail.
            None => return load_snapshot_then_read(self, stream).await,
        };
        let after = snapshot.as_ref().map_or(0, |s| s.version.0).max(hidden);
        let mut tail: Vec<RecordedEvent> = Vec::new();
        for a in appends.iter().rev() {
            tail.extend(
                a.events(stream)?
                    .into_iter()
                    .filter(|e| e.version.0 > after),
            );
        }
        let tail: BoxStream<'_, Result<RecordedEvent>> =
            futures::stream::iter(tail.into_iter().map(Ok)).boxed();
        Ok(SnapshotAndTail { snapshot, tail })
    }
}
