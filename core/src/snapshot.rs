//! Snapshots, and the one offload scheme every backend uses for large ones.
//!
//! Order of a save with offload: PUT the blob, then write the pointer conditionally (stream live,
//! version not older than the current pointer's), then delete the replaced blob. A load that finds
//! the pointer's blob gone re-reads the pointer once. A crash between PUT and pointer leaves an
//! unreferenced blob under the stream's prefix; hard delete removes every blob under that prefix.

use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::backend::RetryBudget;
use crate::blob::{BlobStore, CountingBlobStore};
use crate::cost::CostCounter;
use crate::error::{Result, StoreError};
use crate::id::{StreamId, Version};

/// A stream's state folded up to `version`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The stream.
    pub stream: StreamId,
    /// The last event folded into `state`.
    pub version: Version,
    /// Type name of the state.
    pub state_type: String,
    /// Schema version of the state.
    pub schema_version: u32,
    /// The state, opaque bytes.
    pub state: Bytes,
}

impl Snapshot {
    /// Checks what does not depend on a store: a version above 0 and a non-empty state type.
    pub fn validate(&self) -> Result<()> {
        if self.version == Version::NONE {
            return Err(StoreError::invalid(format!(
                "snapshot of {} has version 0; a snapshot folds at least one event",
                self.stream
            )));
        }
        if self.state_type.is_empty() || self.state_type.contains('\0') {
            return Err(StoreError::invalid(format!(
                "snapshot of {} needs a state type without NUL",
                self.stream
            )));
        }
        Ok(())
    }
}

/// Where a stored snapshot's bytes live.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotBody {
    /// Inside the store's own record.
    Inline(Bytes),
    /// In the blob store.
    Offloaded(BlobRef),
}

impl SnapshotBody {
    /// The body as a SQL row keeps it, in two nullable columns: the inline bytes, or the blob
    /// reference as JSON.
    pub fn to_columns(&self) -> Result<(Option<Vec<u8>>, Option<String>)> {
        match self {
            SnapshotBody::Inline(b) => Ok((Some(b.to_vec()), None)),
            SnapshotBody::Offloaded(r) => serde_json::to_string(r)
                .map(|json| (None, Some(json)))
                .map_err(|e| StoreError::backend("encode a snapshot pointer", e)),
        }
    }

    /// The body from the two columns of [`SnapshotBody::to_columns`]; a blob reference that
    /// does not parse is [`StoreError::Corrupt`].
    ///
    /// ```
    /// use sekiban_core::snapshot::SnapshotBody;
    /// let body = SnapshotBody::Inline(bytes::Bytes::from_static(b"state"));
    /// let (inline, blob) = body.to_columns().unwrap();
    /// assert_eq!(SnapshotBody::from_columns(inline, blob).unwrap(), body);
    /// ```
    pub fn from_columns(inline: Option<Vec<u8>>, blob: Option<String>) -> Result<SnapshotBody> {
        match blob {
            Some(json) => serde_json::from_str::<BlobRef>(&json)
                .map(SnapshotBody::Offloaded)
                .map_err(|e| StoreError::Corrupt {
                    what: format!("a snapshot pointer: {e}"),
                }),
            None => Ok(SnapshotBody::Inline(Bytes::from(
                inline.unwrap_or_default(),
            ))),
        }
    }
}

/// A pointer to an offloaded snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    /// Blob key ([`blob_key`]).
    pub key: String,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    /// Length in bytes.
    pub size: u64,
}

/// A snapshot as a backend keeps it: everything but the state, and where the state is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSnapshot {
    /// The last event folded in.
    pub version: Version,
    /// Type name of the state.
    pub state_type: String,
    /// Schema version of the state.
    pub schema_version: u32,
    /// The state or a pointer to it.
    pub body: SnapshotBody,
}

impl StoredSnapshot {
    /// The bytes a store moves for this pointer, as its cost counter counts them: the inline
    /// state or the blob reference, and the type name.
    ///
    /// ```
    /// use sekiban_core::{snapshot::{SnapshotBody, StoredSnapshot}, Version};
    /// let p = StoredSnapshot {
    ///     version: Version(3),
    ///     state_type: "Cart".into(),
    ///     schema_version: 1,
    ///     body: SnapshotBody::Inline(bytes::Bytes::from_static(b"{\"n\":3}")),
    /// };
    /// assert_eq!(p.size(), 7 + 4);
    /// ```
    pub fn size(&self) -> usize {
        let body = match &self.body {
            SnapshotBody::Inline(b) => b.len(),
            SnapshotBody::Offloaded(r) => r.key.len() + r.sha256.len() + 8,
        };
        body + self.state_type.len()
    }
}

/// Where a snapshot may be saved (one rule for every backend): the stream must exist and be live,
/// and the version must be one of its visible events (`hidden_upto < version <= head`).
pub fn check_snapshot_version(
    snapshot: &Snapshot,
    head: Option<Version>,
    hidden_upto: Version,
) -> Result<()> {
    let Some(head) = head.filter(|h| *h > Version::NONE) else {
        return Err(StoreError::invalid(format!(
            "snapshot of {} at version {}: the stream has no events",
            snapshot.stream, snapshot.version
        )));
    };
    if snapshot.version > head || snapshot.version <= hidden_upto {
        return Err(StoreError::invalid(format!(
            "snapshot of {} at version {}: only versions {}..={head} can be snapshotted",
            snapshot.stream,
            snapshot.version,
            hidden_upto.plus(1)
        )));
    }
    Ok(())
}

/// SHA-256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The prefix under which all of a tenant's snapshot blobs live (ends with `/`).
///
/// ```
/// use sekiban_core::{snapshot::{stream_blob_prefix, tenant_blob_prefix}, StreamId};
/// let s = StreamId::new("acme", "order", "42").unwrap();
/// assert!(stream_blob_prefix(&s).starts_with(&tenant_blob_prefix("acme")));
/// assert!(!stream_blob_prefix(&s).starts_with(&tenant_blob_prefix("acm")));
/// ```
pub fn tenant_blob_prefix(tenant: &str) -> String {
    format!("snapshots/{tenant}/")
}

/// The prefix under which all of a stream's snapshot blobs live (ends with `/`).
pub fn stream_blob_prefix(stream: &StreamId) -> String {
    format!(
        "{}{}/{}/",
        tenant_blob_prefix(stream.tenant()),
        stream.category(),
        stream.id()
    )
}

/// The key of a snapshot blob: `snapshots/{tenant}/{category}/{id}/{version:020}-{sha256}`.
///
/// ```
/// use sekiban_core::{snapshot::blob_key, StreamId, Version};
/// let s = StreamId::new("acme", "order", "42").unwrap();
/// assert!(blob_key(&s, Version(7), "ab12").starts_with("snapshots/acme/order/42/00000000000000000007-"));
/// ```
pub fn blob_key(stream: &StreamId, version: Version, sha256: &str) -> String {
    format!("{}{:020}-{sha256}", stream_blob_prefix(stream), version.0)
}

/// What the conditional pointer write (step 2 of a save) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PointerWrite {
    /// The pointer now references the new snapshot; the one it replaced, if any.
    Replaced(Option<StoredSnapshot>),
    /// A newer snapshot is stored; the new one was not referenced.
    Refused,
}

/// The offload half of a snapshot store: decides inline or blob, writes and verifies blobs.
#[derive(Debug, Clone)]
pub struct SnapshotOffload {
    blobs: Arc<dyn BlobStore>,
    max_inline: usize,
}

impl SnapshotOffload {
    /// Offloads states larger than `max_inline` bytes to `blobs`.
    pub fn new(blobs: Arc<dyn BlobStore>, max_inline: usize) -> Self {
        SnapshotOffload { blobs, max_inline }
    }

    /// Offloads states larger than `max_inline` bytes to `blobs`, each blob request counted in
    /// `costs` as one [`crate::OpKind::Blob`] round trip: how a store wires its offload.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use sekiban_core::backend::{CostCounter, SnapshotOffload};
    /// use sekiban_core::ObjectBlobStore;
    /// let costs = Arc::new(CostCounter::new());
    /// let offload = SnapshotOffload::counted(Arc::new(ObjectBlobStore::memory()), costs, 16 * 1024);
    /// # let _ = offload;
    /// ```
    pub fn counted(blobs: Arc<dyn BlobStore>, costs: Arc<CostCounter>, max_inline: usize) -> Self {
        Self::new(Arc::new(CountingBlobStore::new(blobs, costs)), max_inline)
    }

    /// The same, retrying a blob request that failed transiently within `budget`
    /// ([`CountingBlobStore::retrying`]): for a store whose blob client retries nothing itself.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use sekiban_core::backend::{CostCounter, RetryBudget, SnapshotOffload};
    /// use sekiban_core::ObjectBlobStore;
    /// let costs = Arc::new(CostCounter::new());
    /// let blobs = Arc::new(ObjectBlobStore::memory());
    /// let offload = SnapshotOffload::counted_retrying(blobs, costs, 16 * 1024, RetryBudget::attempts(4));
    /// # let _ = offload;
    /// ```
    pub fn counted_retrying(
        blobs: Arc<dyn BlobStore>,
        costs: Arc<CostCounter>,
        max_inline: usize,
        budget: RetryBudget,
    ) -> Self {
        Self::new(
            Arc::new(CountingBlobStore::new(blobs, costs).retrying(budget)),
            max_inline,
        )
    }

    /// The blob store.
    pub fn blobs(&self) -> &Arc<dyn BlobStore> {
        &self.blobs
    }

    /// Step 1 of a save: validates, and PUTs the blob when the state is large. Returns what the
    /// backend stores (conditionally, step 2).
    pub async fn prepare(&self, snapshot: &Snapshot) -> Result<StoredSnapshot> {
        snapshot.validate()?;
        let body = if snapshot.state.len() <= self.max_inline {
            SnapshotBody::Inline(snapshot.state.clone())
        } else {
            let sha256 = sha256_hex(&snapshot.state);
            let key = blob_key(&snapshot.stream, snapshot.version, &sha256);
            self.blobs.put(&key, snapshot.state.clone()).await?;
            SnapshotBody::Offloaded(BlobRef {
                key,
                sha256,
                size: snapshot.state.len() as u64,
            })
        };
        Ok(StoredSnapshot {
            version: snapshot.version,
            state_type: snapshot.state_type.clone(),
            schema_version: snapshot.schema_version,
            body,
        })
    }

    /// Step 3 of a save, or clean-up of a refused one: deletes the blob of a snapshot no pointer
    /// references any more (nothing for an inline one).
    pub async fn discard(&self, stored: &StoredSnapshot) -> Result<()> {
        match &stored.body {
            SnapshotBody::Inline(_) => Ok(()),
            SnapshotBody::Offloaded(r) => self.blobs.delete(&r.key).await,
        }
    }

    /// The snapshot's state, with an offloaded one fetched and its hash checked. `Ok(None)` when
    /// the blob is gone (replaced meanwhile): re-read the pointer once and try again.
    pub async fn resolve(
        &self,
        stream: &StreamId,
        stored: &StoredSnapshot,
    ) -> Result<Option<Snapshot>> {
        let state = match &stored.body {
            SnapshotBody::Inline(b) => b.clone(),
            SnapshotBody::Offloaded(r) => {
                let Some(bytes) = self.blobs.get(&r.key).await? else {
                    return Ok(None);
                };
                let actual = sha256_hex(&bytes);
                if actual != r.sha256 || bytes.len() as u64 != r.size {
                    return Err(StoreError::Corrupt {
                        what: format!(
                            "snapshot blob {} of {stream}: expected {} bytes with SHA-256 {}, read {} bytes with SHA-256 {actual}; delete the blob and save a new snapshot",
                            r.key,
                            r.size,
                            r.sha256,
                            bytes.len()
                        ),
                    });
                }
                bytes
            }
        };
        Ok(Some(Snapshot {
            stream: stream.clone(),
            version: stored.version,
            state_type: stored.state_type.clone(),
            schema_version: stored.schema_version,
            state,
        }))
    }

    /// A whole save: [`prepare`](Self::prepare) (blob PUT when large), then `write_pointer` (the
    /// backend's conditional write), then deletes whichever blob is no longer referenced: the
    /// replaced one, or the new one when the write was refused or failed.
    pub async fn save<F, Fut>(&self, snapshot: &Snapshot, write_pointer: F) -> Result<()>
    where
        F: FnOnce(StoredSnapshot) -> Fut,
        Fut: Future<Output = Result<PointerWrite>>,
    {
        let stored = self.prepare(snapshot).await?;
        match write_pointer(stored.clone()).await {
            Ok(PointerWrite::Replaced(Some(old))) if old.body != stored.body => {
                self.discard(&old).await
            }
            Ok(PointerWrite::Replaced(_)) => Ok(()),
            Ok(PointerWrite::Refused) => self.discard(&stored).await,
            Err(e) => {
                self.discard(&stored).await?;
                Err(e)
            }
        }
    }

    /// A whole load: `read_pointer`, then the state (blob GET and hash check when offloaded);
    /// when the blob is gone (replaced meanwhile) the pointer is read once more.
    pub async fn load<F, Fut>(&self, stream: &StreamId, read_pointer: F) -> Result<Option<Snapshot>>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Option<StoredSnapshot>>>,
    {
        for _ in 0..2 {
            let Some(pointer) = read_pointer().await? else {
                return Ok(None);
            };
            if let Some(snapshot) = self.resolve(stream, &pointer).await? {
                return Ok(Some(snapshot));
            }
        }
        Err(StoreError::Corrupt {
            what: format!(
                "the snapshot pointer of {stream} references a blob that is missing; save a new snapshot"
            ),
        })
    }

    /// Blob clean-up after a stream deletion: `deleted` is what the delete did, `None` when it
    /// had nothing to do (a missing or erased stream), else the snapshot it dropped. A soft
    /// delete drops that snapshot's blob, a hard delete every blob of the stream.
    pub async fn after_delete(
        &self,
        stream: &StreamId,
        mode: crate::event::DeleteMode,
        deleted: Option<Option<StoredSnapshot>>,
    ) -> Result<()> {
        match (mode, deleted) {
            (_, None) => Ok(()),
            (crate::event::DeleteMode::Hard, Some(_)) => self.erase_stream(stream).await,
            (crate::event::DeleteMode::Soft, Some(Some(s))) => self.discard(&s).await,
            (crate::event::DeleteMode::Soft, Some(None)) => Ok(()),
        }
    }

    /// Deletes the stream's snapshot blobs of versions below `version`: a pointer never goes
    /// back to an older version, so none of them can be referenced again. What a store calls
    /// after a pointer write it had to try again: the attempt whose reply was lost replaced a
    /// pointer the retry never saw, and that pointer's blob is among these.
    pub async fn discard_older(&self, stream: &StreamId, version: Version) -> Result<()> {
        let prefix = stream_blob_prefix(stream);
        for key in self.blobs.list(&prefix).await? {
            let older = key
                .strip_prefix(&prefix)
                .and_then(|rest| rest.split_once('-'))
                .and_then(|(v, _)| v.parse::<u64>().ok())
                .is_some_and(|v| v < version.0);
            if older {
                self.blobs.delete(&key).await?;
            }
        }
        Ok(())
    }

    /// Deletes every snapshot blob of a stream (hard delete), orphans included.
    pub async fn erase_stream(&self, stream: &StreamId) -> Result<()> {
        for key in self.blobs.list(&stream_blob_prefix(stream)).await? {
            self.blobs.delete(&key).await?;
        }
        Ok(())
    }
}
