//! Stream heads: read from the container, and remembered with their etags.
//!
//! An append replaces the head on the etag it was read with, so it must know the etag. The store
//! keeps the head (and etag) of the streams it wrote or read lately: an append to such a stream
//! is one request, and when another writer changed the head meanwhile the etag no longer matches
//! and the batch is refused (412), so a stale entry costs a read, never a wrong append.

use std::collections::HashMap;
use std::sync::Mutex;

use azure_data_cosmos::PartitionKey;
use sekiban_core::{OpKind, Result, StoreError, StreamId};

use crate::CosmosStore;
use crate::docs::{HEAD, HEAD_ID, Head, stream_partition};

/// How many heads a store remembers.
pub(crate) const HEADS_CACHED: usize = 16 * 1024;

/// Heads with their etags, at most `capacity` of them (when full, a new entry replaces one at
/// random: the cache saves a read, it is never needed for correctness).
#[derive(Debug)]
pub(crate) struct HeadCache {
    capacity: usize,
    heads: Mutex<HashMap<StreamId, (Head, String)>>,
}

impl HeadCache {
    pub fn new(capacity: usize) -> Self {
        HeadCache {
            capacity,
            heads: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, stream: &StreamId) -> Option<(Head, String)> {
        self.heads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(stream)
            .cloned()
    }

    pub fn put(&self, stream: &StreamId, head: Head, etag: String) {
        let mut heads = self.heads.lock().unwrap_or_else(|p| p.into_inner());
        if heads.len() >= self.capacity && !heads.contains_key(stream) {
            if let Some(k) = heads.keys().next().cloned() {
                heads.remove(&k);
            }
        }
        heads.insert(stream.clone(), (head, etag));
    }

    pub fn forget(&self, stream: &StreamId) {
        self.heads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(stream);
    }
}

/// The partition key of a stream's documents.
pub(crate) fn partition_key(stream: &StreamId) -> PartitionKey {
    let (t, s) = stream_partition(stream);
    PartitionKey::from((t.to_owned(), s))
}

impl CosmosStore {
    /// The stream's head and its etag, read from the container (one point read) and remembered.
    pub(crate) async fn read_head(
        &self,
        stream: &StreamId,
        kind: OpKind,
    ) -> Result<Option<(Head, String)>> {
        let found = self
            .events
            .read(kind, partition_key(stream), HEAD_ID)
            .await?;
        match found {
            None => {
                self.heads.forget(stream);
                Ok(None)
            }
            Some(f) => {
                if f.doc.k != HEAD {
                    return Err(StoreError::Corrupt {
                        what: format!("the head of {stream} is a document of kind {:?}", f.doc.k),
                    });
                }
                let head: Head = f.doc.parse()?;
                self.heads.put(stream, head.clone(), f.etag.clone());
                Ok(Some((head, f.etag)))
            }
        }
    }
}
