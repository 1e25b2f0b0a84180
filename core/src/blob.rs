//! Blob storage for large snapshots: a small trait of our own, with `object_store` behind it.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::cost::{CostCounter, OpKind};
use crate::error::{Result, StoreError};

/// Put, get, delete and list bytes by key. Keys are `/`-separated paths made of the characters
/// [`crate::StreamId`] allows.
#[async_trait]
pub trait BlobStore: Send + Sync + fmt::Debug + 'static {
    /// Stores `bytes` under `key`, replacing what was there.
    async fn put(&self, key: &str, bytes: Bytes) -> Result<()>;
    /// The bytes under `key`, or `None` when there are none.
    async fn get(&self, key: &str) -> Result<Option<Bytes>>;
    /// Removes `key`; a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<()>;
    /// Every key under `prefix` (a whole path segment prefix, e.g. `snapshots/acme/`).
    async fn list(&self, prefix: &str) -> Result<Vec<String>>;
}

/// A [`BlobStore`] over any `object_store` implementation: in memory, a local directory, and (in
/// the cloud backends) S3 or Azure Blob.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use sekiban_core::{BlobStore, ObjectBlobStore};
/// let blobs = ObjectBlobStore::memory();
/// blobs.put("snapshots/a/b/c/1-x", "state".into()).await.unwrap();
/// assert_eq!(blobs.list("snapshots/a/").await.unwrap(), vec!["snapshots/a/b/c/1-x".to_string()]);
/// # });
/// ```
#[derive(Clone)]
pub struct ObjectBlobStore {
    inner: Arc<dyn ObjectStore>,
    name: String,
}

impl fmt::Debug for ObjectBlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectBlobStore({})", self.name)
    }
}

fn blob_error(what: &str, key: &str, e: object_store::Error) -> StoreError {
    StoreError::backend(format!("blob store: {what} {key:?}"), e)
}

impl ObjectBlobStore {
    /// Wraps an `object_store` implementation.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        let name = inner.to_string();
        ObjectBlobStore { inner, name }
    }

    /// Blobs kept in this process's memory.
    pub fn memory() -> Self {
        Self::new(Arc::new(object_store::memory::InMemory::new()))
    }

    /// Blobs kept as files under `dir`, which must exist.
    pub fn local_dir(dir: impl AsRef<std::path::Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(StoreError::invalid(format!(
                "blob directory {} does not exist; create it first",
                dir.display()
            )));
        }
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| blob_error("open directory", &dir.display().to_string(), e))?;
        Ok(Self::new(Arc::new(fs)))
    }

    /// Blobs under a directory given as a path or a `file://` URL, created when missing.
    pub fn create_dir(dir: &str) -> Result<Self> {
        let dir = dir.strip_prefix("file://").unwrap_or(dir);
        if dir.is_empty() {
            return Err(StoreError::invalid("an empty blob directory; give a path"));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::invalid(format!("cannot create blob directory {dir}: {e}")))?;
        Self::local_dir(dir)
    }

    fn path(key: &str) -> Result<Path> {
        Path::parse(key).map_err(|e| StoreError::invalid(format!("blob key {key:?}: {e}")))
    }
}

#[async_trait]
impl BlobStore for ObjectBlobStore {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        self.inner
            .put(&Self::path(key)?, PutPayload::from(bytes))
            .await
            .map_err(|e| blob_error("put", key, e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        match self.inner.get(&Self::path(key)?).await {
            Ok(r) => Ok(Some(
                r.bytes().await.map_err(|e| blob_error("get", key, e))?,
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(blob_error("get", key, e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<()> {
        match self.inner.delete(&Self::path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(blob_error("delete", key, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let p = Self::path(prefix.trim_end_matches('/'))?;
        let mut keys: Vec<String> = self
            .inner
            .list(Some(&p))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .map_err(|e| blob_error("list", prefix, e))?;
        keys.sort();
        Ok(keys)
    }
}

/// A [`BlobStore`] wrapper that counts each request as one [`OpKind::Blob`] round trip in a
/// store's [`CostCounter`], so snapshot offload shows in the store's costs.
#[derive(Debug, Clone)]
pub struct CountingBlobStore {
    inner: Arc<dyn BlobStore>,
    costs: Arc<CostCounter>,
}

impl CountingBlobStore {
    /// Counts `inner`'s requests into `costs`.
    pub fn new(inner: Arc<dyn BlobStore>, costs: Arc<CostCounter>) -> Self {
        CountingBlobStore { inner, costs }
    }
}

#[async_trait]
impl BlobStore for CountingBlobStore {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        self.costs.record(OpKind::Blob, bytes.len() as u64, 0);
        self.inner.put(key, bytes).await
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let r = self.inner.get(key).await;
        let n = r
            .as_ref()
            .ok()
            .and_then(|b| b.as_ref())
            .map_or(0, |b| b.len());
        self.costs.record(OpKind::Blob, 0, n as u64);
        r
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.costs.record(OpKind::Blob, 0, 0);
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.costs.record(OpKind::Blob, 0, 0);
        self.inner.list(prefix).await
    }
}
