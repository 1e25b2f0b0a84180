//! `ObjectBlobStore` behind our trait, in memory and in a local directory.

use std::sync::Arc;

use bytes::Bytes;
use sekiban_core::backend::{CostCounter, CountingBlobStore};
use sekiban_core::{BlobStore, ObjectBlobStore, OpKind, StoreError};

async fn exercise(blobs: &dyn BlobStore) {
    let a = "snapshots/acme/order/1/00000000000000000003-aa";
    let b = "snapshots/acme/order/1/00000000000000000007-bb";
    let other = "snapshots/acme/order/12/00000000000000000001-cc";
    assert_eq!(blobs.get(a).await.unwrap(), None, "a missing blob");
    blobs
        .put(a, Bytes::from_static(b"\x00\xffstate"))
        .await
        .unwrap();
    blobs.put(b, Bytes::from(vec![7u8; 100_000])).await.unwrap();
    blobs.put(other, Bytes::from_static(b"x")).await.unwrap();
    assert_eq!(
        blobs.get(a).await.unwrap(),
        Some(Bytes::from_static(b"\x00\xffstate"))
    );
    assert_eq!(blobs.get(b).await.unwrap().map(|x| x.len()), Some(100_000));
    // A prefix is whole path segments: stream "1" does not list stream "12".
    assert_eq!(
        blobs.list("snapshots/acme/order/1/").await.unwrap(),
        vec![a.to_string(), b.to_string()]
    );
    assert_eq!(blobs.list("snapshots/acme/").await.unwrap().len(), 3);
    blobs.put(a, Bytes::from_static(b"replaced")).await.unwrap();
    assert_eq!(
        blobs.get(a).await.unwrap(),
        Some(Bytes::from_static(b"replaced"))
    );
    blobs.delete(a).await.unwrap();
    blobs.delete(a).await.unwrap();
    assert_eq!(blobs.get(a).await.unwrap(), None, "a deleted blob");
    assert_eq!(
        blobs.list("snapshots/acme/order/1/").await.unwrap(),
        vec![b.to_string()]
    );
    assert_eq!(
        blobs.list("snapshots/nobody/").await.unwrap(),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn memory_blobs() {
    exercise(&ObjectBlobStore::memory()).await;
}

#[tokio::test]
async fn local_directory_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = ObjectBlobStore::local_dir(dir.path()).unwrap();
    exercise(&blobs).await;
    assert!(
        dir.path().join("snapshots/acme/order/1").is_dir(),
        "blobs are files under the directory"
    );
}

#[tokio::test]
async fn a_missing_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = ObjectBlobStore::local_dir(dir.path().join("nope")).unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput { .. }), "{err:?}");
}

#[tokio::test]
async fn counting_blobs_count_each_request() {
    let costs = Arc::new(CostCounter::new());
    let blobs = CountingBlobStore::new(Arc::new(ObjectBlobStore::memory()), costs.clone());
    blobs.put("k/1", Bytes::from_static(b"abc")).await.unwrap();
    blobs.get("k/1").await.unwrap();
    blobs.list("k/").await.unwrap();
    blobs.delete("k/1").await.unwrap();
    let c = costs.snapshot().get(OpKind::Blob);
    assert_eq!((c.round_trips, c.bytes_sent, c.bytes_received), (4, 3, 3));
}
