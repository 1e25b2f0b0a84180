//! Checkpoints against DynamoDB Local: saves conditional on the etag, loads, deletes, and an etag
//! never handed out twice for one name.

use sekiban_core::{Checkpoint, CheckpointStore, OpKind, StoreError};
use sekiban_dynamodb::DynamoDbTable;

mod common;

async fn table() -> DynamoDbTable {
    common::table("sekiban-test-events", None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saves_are_conditional_and_deletes_forget() {
    let t = table().await;
    let name = format!("projector-{}", uuid::Uuid::new_v4().simple());
    let (one, two) = (Checkpoint::new("position-1"), Checkpoint::new("position-2"));
    assert_eq!(t.load_checkpoint(&name).await.expect("load"), None);

    let before = t.costs();
    let e1 = t
        .save_checkpoint(&name, &one, None)
        .await
        .expect("first save");
    let spent = t.costs() - before;
    assert_eq!(spent.round_trips(OpKind::Checkpoint), 1, "{spent}");
    assert!(
        spent.get(OpKind::Checkpoint).capacity_units > 0.0,
        "{spent}"
    );

    let conflict = |r: sekiban_core::Result<_>| {
        assert!(
            matches!(r, Err(StoreError::CheckpointConflict { .. })),
            "{r:?}"
        );
    };
    conflict(t.save_checkpoint(&name, &two, None).await);
    let e2 = t
        .save_checkpoint(&name, &two, Some(&e1))
        .await
        .expect("a save from the current etag");
    assert_ne!(e1, e2);
    conflict(t.save_checkpoint(&name, &one, Some(&e1)).await);
    conflict(
        t.save_checkpoint(&name, &one, Some(&sekiban_core::Etag("not-a-tag".into())))
            .await,
    );
    assert_eq!(
        t.load_checkpoint(&name).await.expect("load"),
        Some((two.clone(), e2.clone()))
    );

    t.delete_checkpoint(&name).await.expect("delete");
    assert_eq!(t.load_checkpoint(&name).await.expect("load"), None);
    conflict(t.save_checkpoint(&name, &one, Some(&e2)).await);
    let e3 = t
        .save_checkpoint(&name, &one, None)
        .await
        .expect("saved anew");
    assert!(e3 != e1 && e3 != e2, "{e3:?} was handed out before");
    t.delete_checkpoint(&name).await.expect("delete");
    t.delete_checkpoint(&name)
        .await
        .expect("deleting a missing one does nothing");

    for bad in [String::new(), "x".repeat(201), "a\0b".into()] {
        let r = t.save_checkpoint(&bad, &one, None).await;
        assert!(matches!(r, Err(StoreError::InvalidInput { .. })), "{r:?}");
    }
}
