//! Soft delete hides; hard delete erases and leaves a tombstone.

use bytes::Bytes;
use sekiban_core::snapshot::stream_blob_prefix;
use sekiban_core::{DeleteMode, ExpectedVersion, ReadOptions, Snapshot, StoreError, Version};

use crate::{
    CaseResult, Harness, check, check_eq, deletion_markers, events, expect_err, read_all,
    read_with, versions,
};

/// A delete with nothing left to do does nothing: a soft delete repeated with no event since
/// writes no second marker (a delete tried again after its reply was lost must have one effect),
/// and one after new events hides them with a marker of its own.
pub async fn soft_delete_repeated_marks_once(h: &Harness) -> CaseResult {
    let s = h.new_stream("order");
    h.store
        .append(&s, ExpectedVersion::NoStream, events("a", 2))
        .await?;
    h.store.delete_stream(&s, DeleteMode::Soft).await?;
    h.store.delete_stream(&s, DeleteMode::Soft).await?;
    check_eq!(
        deletion_markers(h, &s, 1).await?,
        vec![2],
        "markers after two soft deletes"
    );
    h.store
        .append(&s, ExpectedVersion::Exact(Version(2)), events("b", 1))
        .await?;
    h.store.delete_stream(&s, DeleteMode::Soft).await?;
    check_eq!(
        deletion_markers(h, &s, 2).await?,
        vec![2, 3],
        "markers after a soft delete of a new event"
    );
    check_eq!(
        read_all(&*h.store, &s).await?.len(),
        0,
        "events visible after the last soft delete"
    );
    Ok(())
}

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

/// Reads of an erased stream fail with `StreamDeleted` whatever their options — `max_count` 0,
/// backward from version 0, from past the head, forward and backward — each in at most one round
/// trip (no events: no page, plus one); a missing stream and a soft-deleted one read as empty
/// with the same options.
pub async fn erased_stream_reads_fail_whatever_the_options(h: &Harness) -> CaseResult {
    let erased = h.new_stream("erased");
    h.store
        .append(&erased, ExpectedVersion::NoStream, events("gone", 5))
        .await?;
    h.store.delete_stream(&erased, DeleteMode::Hard).await?;
    let hidden = h.new_stream("hidden");
    h.store
        .append(&hidden, ExpectedVersion::NoStream, events("hidden", 5))
        .await?;
    h.store.delete_stream(&hidden, DeleteMode::Soft).await?;
    let missing = h.new_stream("missing");
    let options = [
        ("forward", ReadOptions::forward()),
        ("backward", ReadOptions::backward()),
        ("forward, max_count 0", ReadOptions::forward().max_count(0)),
        (
            "backward, max_count 0",
            ReadOptions::backward().max_count(0),
        ),
        ("forward, max_count 1", ReadOptions::forward().max_count(1)),
        (
            "backward, max_count 1",
            ReadOptions::backward().max_count(1),
        ),
        ("forward from 0", ReadOptions::forward().from(Version(0))),
        ("backward from 0", ReadOptions::backward().from(Version(0))),
        (
            "backward from 0, max_count 0",
            ReadOptions::backward().from(Version(0)).max_count(0),
        ),
        ("forward from 3", ReadOptions::forward().from(Version(3))),
        ("backward from 3", ReadOptions::backward().from(Version(3))),
        (
            "forward from past the head",
            ReadOptions::forward().from(Version(6)),
        ),
        (
            "backward from past the head",
            ReadOptions::backward().from(Version(6)),
        ),
        (
            "forward from the last version",
            ReadOptions::forward().from(Version(u64::MAX)),
        ),
        (
            "forward from past the head, max_count 0",
            ReadOptions::forward().from(Version(6)).max_count(0),
        ),
    ];
    let budgeted = h.budgets_apply();
    for (what, opts) in options {
        let before = h.store.costs();
        let r = read_with(&*h.store, &erased, opts).await;
        let used = (h.store.costs() - before).operation_round_trips();
        expect_err(
            r,
            &format!("read of an erased stream, {what}"),
            |e| matches!(e, StoreError::StreamDeleted { stream, version: Version(5) } if *stream == erased),
        )?;
        check!(
            !budgeted || used <= 1,
            "read of an erased stream, {what}: {used} round trips, budget 1"
        );
        for (kind, s) in [("missing", &missing), ("soft-deleted", &hidden)] {
            let r = read_with(&*h.store, s, opts).await?;
            check_eq!(
                versions(&r),
                Vec::<u64>::new(),
                "read of a {kind} stream, {what}"
            );
        }
    }
    Ok(())
}
