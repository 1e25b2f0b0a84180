//! The memory store's own tests (the conformance suite runs on it from its crate).

use super::*;
use crate::{ExpectedVersion, SnapshotStore, Version};

#[test]
fn urls() {
    assert!(MemoryStore::from_url("memory://").is_ok());
    for bad in [
        "sqlite://x.db",
        "memory://somewhere",
        "memory://?colour=blue",
        "memory://?blobs",
        "memory://?partitions=0",
        "memory://x/y",
    ] {
        assert!(
            matches!(
                MemoryStore::from_url(bad),
                Err(StoreError::InvalidInput { .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn url_values_are_percent_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "memory://?blobs={}/a%20b&partitions=2",
        dir.path().display()
    );
    let store = MemoryStore::from_url(&url).unwrap();
    assert_eq!(store.capabilities().feed_partitions, 2);
    assert!(dir.path().join("a b").is_dir());
    let e = MemoryStore::from_url("memory://?colour=blue").unwrap_err();
    assert!(e.to_string().contains("blobs=DIR, partitions=N"), "{e}");
}

#[tokio::test]
async fn blobs_go_to_the_directory_the_url_names() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = dir.path().join("blobs");
    let store = MemoryStore::from_url(&format!("memory://?blobs={}", blobs.display())).unwrap();
    let s = StreamId::new("t", "c", "1").unwrap();
    store
        .append(
            &s,
            ExpectedVersion::NoStream,
            vec![EventData::new("E", "{}")],
        )
        .await
        .unwrap();
    let big = store.limits().max_inline_snapshot_bytes + 1;
    store
        .save_snapshot(Snapshot {
            stream: s.clone(),
            version: Version(1),
            state_type: "S".into(),
            schema_version: 1,
            state: vec![b'x'; big].into(),
        })
        .await
        .unwrap();
    let keys = store.blobs().list("snapshots/").await.unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(blobs.is_dir());
    assert!(std::fs::read_dir(&blobs).unwrap().next().is_some());
}

#[test]
fn limits_are_the_ones_given() {
    let limits = Limits {
        page_events: 7,
        ..default_memory_limits()
    };
    assert_eq!(MemoryStore::with_limits(limits).limits().page_events, 7);
    assert_eq!(
        MemoryStore::new().limits(),
        &default_memory_limits(),
        "new() has the default limits"
    );
}
