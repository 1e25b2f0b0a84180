//! Round trips and request charge (RU, as the in-process emulator reports it) of each operation:
//! the appends of 1 and 100 events the store's head is known for cost one round trip, whatever
//! their size, and so does a load with a snapshot and a short tail. Run with `--no-capture` for
//! the table.

use futures::StreamExt;
use sekiban_core::{
    EventData, EventStore, ExpectedVersion, OpKind, ReadOptions, Snapshot, SnapshotStore, Store,
    StreamId, Version,
};

mod common;

fn events(n: usize, bytes: usize) -> Vec<EventData> {
    (0..n)
        .map(|i| {
            let body = format!(
                r#"{{"n":{i},"pad":"{}"}}"#,
                "x".repeat(bytes.saturating_sub(20))
            );
            EventData::new("Noted", body)
        })
        .collect()
}

#[tokio::test]
async fn operations_cost_what_the_readme_says() {
    let (store, _blobs) = common::memory_blobs_store().await;
    let s = StreamId::new("acme", "order", "1").unwrap();
    let mut rows = Vec::new();
    let mut measure =
        async |what: &str, kind: OpKind, f: std::pin::Pin<Box<dyn Future<Output = ()> + '_>>| {
            let before = store.costs();
            f.await;
            let c = store.costs() - before;
            assert_eq!(c.total().retries, 0, "{what}: no fault, no retry ({c})");
            let op = c.get(kind);
            rows.push(format!(
                "| {what} | {} | {:.2} | {} | {} |",
                c.operation_round_trips(),
                op.capacity_units,
                op.bytes_sent,
                op.bytes_received
            ));
            c.operation_round_trips()
        };
    let first = measure(
        "append 1 event (new stream, `NoStream`)",
        OpKind::Append,
        Box::pin(async {
            store
                .append(&s, ExpectedVersion::NoStream, events(1, 200))
                .await
                .unwrap();
        }),
    )
    .await;
    let one = measure(
        "append 1 event of 200 B (`Exact`)",
        OpKind::Append,
        Box::pin(async {
            store
                .append(&s, ExpectedVersion::Exact(Version(1)), events(1, 200))
                .await
                .unwrap();
        }),
    )
    .await;
    let hundred = measure(
        "append 100 events of 200 B (`Exact`)",
        OpKind::Append,
        Box::pin(async {
            store
                .append(&s, ExpectedVersion::Exact(Version(2)), events(100, 200))
                .await
                .unwrap();
        }),
    )
    .await;
    measure(
        "append 1 event (`Any`)",
        OpKind::Append,
        Box::pin(async {
            store
                .append(&s, ExpectedVersion::Any, events(1, 200))
                .await
                .unwrap();
        }),
    )
    .await;
    measure(
        "read 103 events",
        OpKind::Read,
        Box::pin(async {
            let n = store.read(&s, ReadOptions::forward()).count().await;
            assert_eq!(n, 103);
        }),
    )
    .await;
    measure(
        "stream version (point read of the head)",
        OpKind::Read,
        Box::pin(async {
            store.stream_version(&s).await.unwrap();
        }),
    )
    .await;
    measure(
        "save a 1 KB snapshot",
        OpKind::Snapshot,
        Box::pin(async {
            let snap = Snapshot {
                stream: s.clone(),
                version: Version(100),
                state_type: "Order".into(),
                schema_version: 1,
                state: vec![b'x'; 1024].into(),
            };
            store.save_snapshot(snap).await.unwrap();
        }),
    )
    .await;
    measure(
        "load with a snapshot and a 3-event tail",
        OpKind::Snapshot,
        Box::pin(async {
            let loaded = store.load_snapshot_and_tail(&s).await.unwrap();
            assert_eq!(loaded.tail.count().await, 3);
        }),
    )
    .await;
    println!(
        "| operation | round trips | RU (emulator) | bytes sent | bytes received |\n|---|---|---|---|---|"
    );
    for r in &rows {
        println!("{r}");
    }
    assert_eq!(first, 1, "a first append creates the head in its batch");
    assert_eq!(one, 1, "an append to a stream whose head the store knows");
    assert_eq!(
        hundred, 1,
        "an append of 100 events is one document in one batch"
    );
}
