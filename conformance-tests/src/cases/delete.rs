//! Soft delete hides; hard delete erases and leaves a tombstone.

use bytes::Bytes;
use sekiban_core::snapshot::stream_blob_prefix;
use sekiban_core::{DeleteMode, ExpectedVersion, Snapshot, StoreError, Version};

use crate::{CaseResult, Harness, check_eq, events, expect_err, read_all, versions};

/// After a soft delete reads are empty, the version stays, and a later append continues it.
pub async fn soft_delete_hides_and_continues_versions(h: &Harness) -> CaseResult {
    let s = h.new_stream("order");
    h.store
        .append(&s, ExpectedVersion::NoStream, events("a", 3))
        .await?;
    h.store.delete_stream(&s, DeleteMode::Soft).await?;
    check_eq!(
        read_all(&*h.store, &s).await?.len(),
        0,
        "events visible after a soft delete"
    );
    check_eq!(
        h.store.stream_version(&s).await?,
        Version(3),
        "version after a soft delete"
    );
    let r = h
        .store
        .append(&s, ExpectedVersion::NoStream, events("b", 1))
        .await;
    expect_err(r, "NoStream on a soft-deleted stream", |e| {
        matches!(
            e,
            StoreError::WrongExpectedVersion {
                actual: Version(3),
                ..
            }
        )
    })?;
    let r = h
        .store
        .append(&s, ExpectedVersion::Exact(Version(3)), events("c", 2))
        .await?;
    check_eq!(
        (r.first, r.last),
        (Version(4), Version(5)),
        "append after a soft delete"
    );
    check_eq!(
        versions(&read_all(&*h.store, &s).await?),
        vec![4, 5],
        "visible versions"
    );
    h.store
        .delete_stream(&h.new_stream("never-written"), DeleteMode::Soft)
        .await?;
    Ok(())
}

/// A hard delete removes events, snapshots and blobs; the tombstone refuses appends (re-sends
/// included) and reads with `StreamDeleted`.
pub async fn hard_delete_erases_and_tombstones(h: &Harness) -> CaseResult {
    let s = h.new_stream("person");
    let first = events("pii", 4);
    h.store
        .append(&s, ExpectedVersion::NoStream, first.clone())
        .await?;
    let big = Bytes::from(vec![b'p'; h.store.limits().max_inline_snapshot_bytes + 10]);
    h.store
        .save_snapshot(Snapshot {
            stream: s.clone(),
            version: Version(4),
            state_type: "Person".into(),
            schema_version: 1,
            state: big,
        })
        .await?;
    check_eq!(
        h.blobs.list(&stream_blob_prefix(&s)).await?.len(),
        1,
        "snapshot blobs before erasure"
    );
    h.store.delete_stream(&s, DeleteMode::Hard).await?;
    let deleted = |e: &StoreError| {
        matches!(
            e,
            StoreError::StreamDeleted {
                version: Version(4),
                ..
            }
        )
    };
    expect_err(
        read_all(&*h.store, &s).await,
        "read of an erased stream",
        deleted,
    )?;
    expect_err(
        h.store.stream_version(&s).await,
        "version of an erased stream",
        deleted,
    )?;
    expect_err(
        h.store.load_snapshot(&s).await,
        "snapshot of an erased stream",
        deleted,
    )?;
    check_eq!(
        h.blobs.list(&stream_blob_prefix(&s)).await?,
        Vec::<String>::new(),
        "blobs after erasure"
    );
    for expected in [
        ExpectedVersion::Any,
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(Version(4)),
    ] {
        let r = h.store.append(&s, expected, events("again", 1)).await;
        expect_err(
            r,
            &format!("append under {expected} to an erased stream"),
            deleted,
        )?;
    }
    let r = h.store.append(&s, ExpectedVersion::NoStream, first).await;
    expect_err(r, "re-send of an erased append", deleted)?;
    h.store.delete_stream(&s, DeleteMode::Hard).await?;
    Ok(())
}
