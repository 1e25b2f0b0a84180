//! Snapshots for a store that writes only the pointer: [`SnapshotPointers`] is the part of
//! [`SnapshotStore`] a backend writes; the offload does the rest, the same way for every store.

use async_trait::async_trait;

use crate::error::Result;
use crate::id::StreamId;
use crate::snapshot::{PointerWrite, Snapshot, SnapshotOffload, StoredSnapshot};
use crate::store::SnapshotStore;

/// Where a store keeps each stream's snapshot pointer (or inline body). Every type that
/// implements it is a [`SnapshotStore`]: a save puts a large state's blob first, then writes the
/// pointer, then deletes whichever blob no pointer references (the replaced one, or the new one
/// when the write was refused or failed); a load reads the pointer and the blob, checks its
/// hash, and reads the pointer once more when the blob was replaced meanwhile.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use async_trait::async_trait;
/// use sekiban_core::backend::snapshots::SnapshotPointers;
/// use sekiban_core::snapshot::{PointerWrite, SnapshotOffload, StoredSnapshot};
/// use sekiban_core::{ObjectBlobStore, Result, Snapshot, SnapshotStore, StreamId, Version};
///
/// /// One stream's pointer, in memory.
/// #[derive(Debug)]
/// struct One {
///     offload: SnapshotOffload,
///     pointer: Mutex<Option<StoredSnapshot>>,
/// }
///
/// #[async_trait]
/// impl SnapshotPointers for One {
///     fn offload(&self) -> &SnapshotOffload {
///         &self.offload
///     }
///     async fn write_pointer(&self, s: &Snapshot, stored: StoredSnapshot) -> Result<PointerWrite> {
///         let mut p = self.pointer.lock().unwrap();
///         if p.as_ref().is_some_and(|c| c.version > s.version) {
///             return Ok(PointerWrite::Refused);
///         }
///         Ok(PointerWrite::Replaced(p.replace(stored)))
///     }
///     async fn read_pointer(&self, _stream: &StreamId) -> Result<Option<StoredSnapshot>> {
///         Ok(self.pointer.lock().unwrap().clone())
///     }
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = One {
///     offload: SnapshotOffload::new(Arc::new(ObjectBlobStore::memory()), 4),
///     pointer: Mutex::new(None),
/// };
/// let stream = StreamId::new("acme", "order", "1").unwrap();
/// let big = Snapshot {
///     stream: stream.clone(),
///     version: Version(3),
///     state_type: "Order".into(),
///     schema_version: 1,
///     state: vec![7u8; 64].into(),
/// };
/// store.save_snapshot(big.clone()).await.unwrap(); // 64 bytes > 4: a blob, then the pointer
/// assert_eq!(store.load_snapshot(&stream).await.unwrap(), Some(big));
/// # });
/// ```
#[async_trait]
pub trait SnapshotPointers: Send + Sync {
    /// The offload the store's snapshots go through (its blob store and inline limit).
    fn offload(&self) -> &SnapshotOffload;

    /// Stores `stored` as the snapshot of `snapshot.stream`, unless a newer one is stored
    /// ([`PointerWrite::Refused`]); the snapshot it replaced. A version above the stream's head,
    /// at or below its soft-deleted version, or of a missing or erased stream is refused with an
    /// error ([`crate::snapshot::check_snapshot_version`]). `snapshot.state` may be left out:
    /// `stored` holds what to store.
    async fn write_pointer(
        &self,
        snapshot: &Snapshot,
        stored: StoredSnapshot,
    ) -> Result<PointerWrite>;

    /// The stream's stored snapshot, if any.
    async fn read_pointer(&self, stream: &StreamId) -> Result<Option<StoredSnapshot>>;
}

#[async_trait]
impl<T: SnapshotPointers + std::fmt::Debug + 'static> SnapshotStore for T {
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        let write = |stored| self.write_pointer(&snapshot, stored);
        self.offload().save(&snapshot, write).await
    }

    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>> {
        let read = || self.read_pointer(stream);
        self.offload().load(stream, read).await
    }
}
