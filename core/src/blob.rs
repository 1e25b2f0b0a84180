//! Blob storage for large snapshots: a small trait of our own, with `object_store` behind it.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::backend::RetryBudget;
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

/// A blob request that failed in a way the service calls transient: a throttle (429) or a
/// failure (5xx) answered by the service, or a connection lost before the whole answer came.
/// An HTTP layer under an `object_store` client returns it (inside its error) so that
/// [`ObjectBlobStore`] answers [`StoreError::Throttled`] or [`StoreError::Unavailable`], which
/// the store's retry loop retries, instead of a `Backend` error.
///
/// ```
/// use sekiban_core::blob::TransientBlobError;
/// assert!(TransientBlobError::status(503).to_string().contains("503"));
/// assert!(TransientBlobError::status(429).throttled());
/// ```
#[derive(Debug)]
pub struct TransientBlobError {
    status: Option<u16>,
    source: Option<crate::BoxError>,
}

impl TransientBlobError {
    /// The service answered `status` (429 or 5xx).
    pub fn status(status: u16) -> Self {
        TransientBlobError {
            status: Some(status),
            source: None,
        }
    }

    /// The connection failed or was lost before the whole answer came.
    pub fn lost(source: impl Into<crate::BoxError>) -> Self {
        TransientBlobError {
            status: None,
            source: Some(source.into()),
        }
    }

    /// Whether the service throttled the request (429).
    pub fn throttled(&self) -> bool {
        self.status == Some(429)
    }
}

impl fmt::Display for TransientBlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(s) => write!(f, "the blob service answered {s}"),
            None => write!(f, "the connection to the blob service was lost"),
        }
    }
}

impl std::error::Error for TransientBlobError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// An `object_store` error as the store's: a [`TransientBlobError`] anywhere in its chain is
/// `Throttled` or `Unavailable`, anything else a `Backend` error.
fn blob_error(what: &str, key: &str, e: object_store::Error) -> StoreError {
    let context = format!("blob store: {what} {key:?}");
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(c) = cause {
        if let Some(t) = c.downcast_ref::<TransientBlobError>() {
            return if t.throttled() {
                StoreError::throttled(context, e)
            } else {
                StoreError::unavailable(context, e)
            };
        }
        cause = c.source();
    }
    StoreError::backend(context, e)
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
/// store's [`CostCounter`], so snapshot offload shows in the store's costs; with
/// [`CountingBlobStore::retrying`], it also retries transient failures within a budget (for a
/// blob store whose client retries nothing itself), each attempt a round trip and each retry
/// counted.
#[derive(Debug, Clone)]
pub struct CountingBlobStore {
    inner: Arc<dyn BlobStore>,
    costs: Arc<CostCounter>,
    budget: RetryBudget,
}

impl CountingBlobStore {
    /// Counts `inner`'s requests into `costs`; retries nothing.
    pub fn new(inner: Arc<dyn BlobStore>, costs: Arc<CostCounter>) -> Self {
        CountingBlobStore {
            inner,
            costs,
            budget: RetryBudget::NEVER,
        }
    }

    /// Retries a request that failed transiently (`Throttled`, `Unavailable`) within `budget`.
    /// Every blob request is idempotent (a blob's key holds its content's hash), so a retry
    /// after a lost reply is safe.
    pub fn retrying(mut self, budget: RetryBudget) -> Self {
        self.budget = budget;
        self
    }
}

#[async_trait]
impl BlobStore for CountingBlobStore {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        self.budget
            .run(&self.costs, OpKind::Blob, || {
                self.costs.record(OpKind::Blob, bytes.len() as u64, 0);
                self.inner.put(key, bytes.clone())
            })
            .await
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.budget
            .run(&self.costs, OpKind::Blob, || async {
                let r = self.inner.get(key).await;
                let n = r
                    .as_ref()
                    .ok()
                    .and_then(|b| b.as_ref())
                    .map_or(0, |b| b.len());
                self.costs.record(OpKind::Blob, 0, n as u64);
                r
            })
            .await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.budget
            .run(&self.costs, OpKind::Blob, || {
                self.costs.record(OpKind::Blob, 0, 0);
                self.inner.delete(key)
            })
            .await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.budget
            .run(&self.costs, OpKind::Blob, || {
                self.costs.record(OpKind::Blob, 0, 0);
                self.inner.list(prefix)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    #[test]
    fn transient_answers_in_an_error_chain_are_typed_transient() {
        let wrapped = |e: TransientBlobError| object_store::Error::Generic {
            store: "test",
            source: Box::new(e),
        };
        let e = blob_error("get", "k", wrapped(TransientBlobError::status(503)));
        assert!(matches!(e, StoreError::Unavailable { .. }), "{e:?}");
        let e = blob_error("get", "k", wrapped(TransientBlobError::status(429)));
        assert!(matches!(e, StoreError::Throttled { .. }), "{e:?}");
        let lost = TransientBlobError::lost(std::io::Error::other("reset"));
        let e = blob_error("get", "k", wrapped(lost));
        assert!(matches!(e, StoreError::Unavailable { .. }), "{e:?}");
        let e = blob_error(
            "get",
            "k",
            object_store::Error::Generic {
                store: "test",
                source: Box::new(std::io::Error::other("denied")),
            },
        );
        assert!(matches!(e, StoreError::Backend { .. }), "{e:?}");
    }

    /// Fails the first `fails` requests with `Unavailable`.
    #[derive(Debug)]
    struct Flaky {
        fails: AtomicU32,
        inner: ObjectBlobStore,
    }

    impl Flaky {
        fn fail(&self) -> Result<()> {
            if self
                .fails
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(StoreError::unavailable("flaky", "a lost connection"));
            }
            Ok(())
        }
    }

    #[async_trait]
    impl BlobStore for Flaky {
        async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
            self.fail()?;
            self.inner.put(key, bytes).await
        }
        async fn get(&self, key: &str) -> Result<Option<Bytes>> {
            self.fail()?;
            self.inner.get(key).await
        }
        async fn delete(&self, key: &str) -> Result<()> {
            self.fail()?;
            self.inner.delete(key).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<String>> {
            self.fail()?;
            self.inner.list(prefix).await
        }
    }

    #[tokio::test]
    async fn a_retrying_counter_retries_within_its_budget_and_counts_each_attempt() {
        let flaky = Arc::new(Flaky {
            fails: AtomicU32::new(2),
            inner: ObjectBlobStore::memory(),
        });
        let costs = Arc::new(CostCounter::new());
        let budget = RetryBudget {
            attempts: 3,
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        };
        let blobs = CountingBlobStore::new(flaky.clone(), costs.clone()).retrying(budget);
        blobs.put("a/b", Bytes::from_static(b"x")).await.unwrap();
        let c = costs.snapshot();
        assert_eq!(
            (c.round_trips(OpKind::Blob), c.retries(OpKind::Blob)),
            (3, 2)
        );
        flaky.fails.store(3, Ordering::SeqCst);
        let e = blobs.get("a/b").await.unwrap_err();
        assert!(e.is_transient(), "{e:?}");
        let c = costs.snapshot();
        assert_eq!(
            (c.round_trips(OpKind::Blob), c.retries(OpKind::Blob)),
            (6, 4)
        );
        // Without a budget: one attempt, nothing retried.
        flaky.fails.store(1, Ordering::SeqCst);
        let once = CountingBlobStore::new(flaky, costs.clone());
        assert!(once.delete("a/b").await.is_err());
        assert_eq!(costs.snapshot().retries(OpKind::Blob), 4);
    }
}
