//! Snapshots: latest wins, large ones offloaded and hash-checked, no orphans.

use bytes::Bytes;
use sekiban_core::snapshot::stream_blob_prefix;
use sekiban_core::{ExpectedVersion, Snapshot, StoreError, StreamId, Version};

use futures::StreamExt;
use sekiban_core::ReadOptions;

use crate::{CaseResult, Harness, check, check_eq, events, expect_err, read_with};

fn snap(s: &StreamId, v: u64, state: impl Into<Bytes>) -> Snapshot {
    Snapshot {
        stream: s.clone(),
        version: Version(v),
        state_type: "OrderState".into(),
        schema_version: 3,
        state: state.into(),
    }
}

fn large(h: &Harness, fill: u8) -> Bytes {
    Bytes::from(vec![
        fill;
        h.store.limits().max_inline_snapshot_bytes + 1024
    ])
}

async fn blobs_of(h: &Harness, s: &StreamId) -> Result<Vec<String>, StoreError> {
    h.blobs.list(&stream_blob_prefix(s)).await
}

/// Save then load returns the snapshot exactly; a later one replaces it; none → `None`.
pub async fn snapshot_save_and_load_latest(h: &Harness) -> CaseResult {
    let s = h.new_stream("order");
    check_eq!(
        h.store.load_snapshot(&s).await?,
        None,
        "snapshot of a missing stream"
    );
    h.store
        .append(&s, ExpectedVersion::NoStream, events("a", 10))
        .await?;
    check_eq!(
        h.store.load_snapshot(&s).await?,
        None,
        "snapshot before any save"
    );
    let first = snap(&s, 4, "{\"total\": 4 }");
    h.store.save_snapshot(first.clone()).await?;
    check_eq!(
        h.store.load_snapshot(&s).await?,
        Some(first),
        "first snapshot"
    );
    let second = snap(&s, 10, Bytes::from_static(b"\x00binary\xff state"));
    h.store.save_snapshot(second.clone()).await?;
    check_eq!(
        h.store.load_snapshot(&s).await?,
        Some(second),
        "latest snapshot"
    );
    Ok(())
}

/// Saving an older version after a newer one leaves the newer one in place.
pub async fn snapshot_older_never_replaces_newer(h: &Harness) -> CaseResult {
    let s = h.new_stream("order");
    h.store
        .append(&s, ExpectedVersion::NoStream, events("a", 10))
        .await?;
    let newer = snap(&s, 8, "newer");
    h.store.save_snapshot(newer.clone()).await?;
    h.store.save_snapshot(snap(&s, 5, "older")).await?;
    check_eq!(
        h.store.load_snapshot(&s).await?,
        Some(newer.clone()),
        "after saving an older inline snapshot"
    );
    h.store.save_snapshot(snap(&s, 6, large(h, b'o'))).await?;
    check_eq!(
        h.store.load_snapshot(&s).await?,
        Some(newer),
        "after saving an older large snapshot"
    );
    check_eq!(
        blobs_of(h, &s).await?.len(),
        0,
        "blobs left by a refused large snapshot"
    );
    Ok(())
}

/// A snapshot over the inline limit goes to the blob store under the stream's prefix and comes
/// back exactly.
pub async fn snapshot_large_offloaded_and_verified(h: &Harness) -> CaseResult {
    let s = h.new_stream("order");
    h.store
        .append(&s, ExpectedVersion::NoStream, events("a", 3))
        .await?;
    let state = large(h, b'L');
    let big = snap(&s, 3, state.clone());
    h.store.save_snapshot(big.clone()).await?;
    let keys = blobs_of(h, &s).await?;
    check_eq!(keys.len(), 1, "blobs under {}", stream_blob_prefix(&s));
    check_eq!(h.blobs.get(&keys[0]).await?, Some(state), "blob content");
    check_eq!(
        h.store.load_snapshot(&s).await?,
        Some(big),
        "offloaded snapshot loaded"
    );
    Ok(())
}

/// Bytes of an offloaded snapshot changed in the blob store → `Corrupt` on load.
pub async fn snapshot_corrupt_blob_is_an_error(h: &Harness) -> CaseResult {
    let s = h.new_stream("order");
    h.store
        .append(&s, ExpectedVersion::NoStream, events("a", 3))
        .await?;
    h.store.save_snapshot(snap(&s, 2, large(h, b'C'))).await?;
    let keys = blobs_of(h, &s).await?;
    check_eq!(keys.len(), 1, "blobs");
    let mut bytes = h
        .blobs
        .get(&keys[0])
        .await?
        .map(|b| b.to_vec())
        .unwrap_or_default();
    check!(
        !bytes.is_empty(),
        "the blob {} is empty or missing",
        keys[0]
    );
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    h.blobs.put(&keys[0], Bytes::from(bytes)).await?;
    let r = h.store.load_snapshot(&s).await;
    expect_err(r, "load of a corrupted blob", |e| {
        matches!(e, StoreError::Corrupt { .. })
    })?;
    Ok(())
}

/// Replacing an offloaded snapshot deletes its blob; replacing with an inline one too.
pub async fn snapshot_replaced_blob_deleted(h: &Harness) -> CaseResult {
    let s = h.new_stream("order");
    h.store
        .append(&s, ExpectedVersion::NoStream, events("a", 6))
        .await?;
    h.store.save_snapshot(snap(&s, 2, large(h, b'1'))).await?;
    let second = snap(&s, 4, large(h, b'2'));
    h.store.save_snapshot(second.clone()).await?;
    let keys = blobs_of(h, &s).await?;
    check_eq!(
        keys.len(),
        1,
        "blobs after replacing an offloaded snapshot: {keys:?}"
    );
    check_eq!(
        h.store.load_snapshot(&s).await?,
        Some(second.clone()),
        "latest"
    );
    h.store.save_snapshot(second.clone()).await?;
    check_eq!(
        blobs_of(h, &s).await?.len(),
        1,
        "blobs after saving the same snapshot again"
    );
    check_eq!(
        h.store.load_snapshot(&s).await?,
        Some(second),
        "same snapshot saved twice"
    );
    let inline = snap(&s, 6, "small");
    h.store.save_snapshot(inline.clone()).await?;
    check_eq!(
        blobs_of(h, &s).await?,
        Vec::<String>::new(),
        "blobs after an inline snapshot replaced an offloaded one"
    );
    check_eq!(
        h.store.load_snapshot(&s).await?,
        Some(inline),
        "inline snapshot"
    );
    Ok(())
}

/// A snapshot at version 0, beyond the head, of a missing stream, or without a state type is
/// refused with a typed error, and nothing is stored.
pub async fn snapshot_bad_input_rejected(h: &Harness) -> CaseResult {
    let s = h.new_stream("order");
    let r = h.store.save_snapshot(snap(&s, 1, "x")).await;
    expect_err(r, "snapshot of a missing stream", |e| {
        matches!(e, StoreError::InvalidInput { .. })
    })?;
    h.store
        .append(&s, ExpectedVersion::NoStream, events("a", 2))
        .await?;
    for (what, bad) in [
        ("version 0", snap(&s, 0, "x")),
        ("beyond the head", snap(&s, 3, "x")),
        (
            "empty state type",
            Snapshot {
                state_type: String::new(),
                ..snap(&s, 1, "x")
            },
        ),
        ("large, beyond the head", snap(&s, 9, large(h, b'x'))),
    ] {
        let r = h.store.save_snapshot(bad).await;
        expect_err(r, what, |e| matches!(e, StoreError::InvalidInput { .. }))?;
    }
    check_eq!(
        h.store.load_snapshot(&s).await?,
        None,
        "snapshot after refused saves"
    );
    check_eq!(
        blobs_of(h, &s).await?,
        Vec::<String>::new(),
        "blobs after refused saves"
    );
    Ok(())
}

/// `load_snapshot_and_tail` is `load_snapshot` and a read after it, whatever the store does in
/// one request: without a snapshot the whole stream, with one the snapshot and the events after
/// it, each the same as what a read returns.
pub async fn snapshot_and_tail_load_together(h: &Harness) -> CaseResult {
    let s = h.new_stream("snap");
    h.store
        .append(&s, ExpectedVersion::NoStream, events("a", 3))
        .await?;
    // The snapshot is at version 2, inside the first (3-event) append: a store that keeps an
    // append's events together must still start the tail at version 3.
    for (snapshot_at, what) in [(None, "without a snapshot"), (Some(2), "with a snapshot")] {
        if let Some(v) = snapshot_at {
            h.store.save_snapshot(snap(&s, v, "state at 2")).await?;
            h.store
                .append(&s, ExpectedVersion::Exact(Version(3)), events("b", 2))
                .await?;
        }
        let loaded = h.store.load_snapshot_and_tail(&s).await?;
        let want_snapshot = h.store.load_snapshot(&s).await?;
        check_eq!(
            loaded.snapshot,
            want_snapshot,
            "{what}: the snapshot loaded with its tail"
        );
        let tail: Vec<_> = loaded.tail.collect().await;
        let tail = tail.into_iter().collect::<Result<Vec<_>, _>>()?;
        let from = Version(snapshot_at.unwrap_or(0)).plus(1);
        let want = read_with(&*h.store, &s, ReadOptions::forward().from(from)).await?;
        check!(
            !want.is_empty(),
            "{what}: the read after the snapshot is empty"
        );
        check_eq!(tail, want, "{what}: the tail loaded with the snapshot");
    }
    Ok(())
}
