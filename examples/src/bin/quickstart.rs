//! Appends, reads and follows the change feed on the embedded default store (a SQLite file in a
//! temporary directory), and prints what each step cost in statements.
//!
//! Run: `cargo run -p sekiban-examples --bin quickstart`

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use sekiban_core::{
    EventData, ExpectedVersion, FeedItem, FeedOptions, FeedStart, Metadata, OpKind, ReadOptions,
    Snapshot, Store, StoreError, StreamId, Version,
};
use sekiban_sqlite::{SqliteConfig, SqliteEventStore};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), StoreError> {
    let dir = tempfile::tempdir()
        .map_err(|e| StoreError::invalid(format!("cannot create a temporary directory: {e}")))?;
    let path = dir.path().join("quickstart.db");
    let store: Arc<dyn Store> = Arc::new(SqliteEventStore::open(SqliteConfig::file(&path)).await?);
    println!("store: {}", path.display());
    let result = walk_through(&store).await;
    // Closing finishes queued writes and checkpoints the file before the process exits.
    store.close().await?;
    result
}

async fn walk_through(store: &Arc<dyn Store>) -> Result<(), StoreError> {
    let tenant = "acme";

    // A projector follows the feed of one tenant from the beginning, in the background.
    let follower = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut feed =
                store.changes(FeedStart::Beginning, FeedOptions::follow().tenant(tenant));
            let mut seen = 0;
            while let Some(batch) = feed.next().await {
                let batch = batch?;
                for item in &batch.items {
                    if let FeedItem::Event(e) = item {
                        println!("  feed: {} v{} {}", e.stream, e.version, e.event_type);
                        seen += 1;
                    }
                }
                if seen == 7 {
                    println!("  feed: caught up, checkpoint {}", batch.checkpoint);
                    return Ok::<_, StoreError>(batch.checkpoint);
                }
            }
            Err(StoreError::invalid("the feed ended"))
        })
    };

    let orders: Vec<StreamId> = (1..=3)
        .map(|i| StreamId::new(tenant, "order", format!("order-{i}")))
        .collect::<Result<_, _>>()?;
    let meta = Metadata {
        actor: Some("quickstart".into()),
        ..Metadata::default()
    };

    println!("appending to {} orders", orders.len());
    for (i, order) in orders.iter().enumerate() {
        let placed = EventData::new("OrderPlaced", format!(r#"{{"lines":{}}}"#, i + 1))
            .with_metadata(meta.clone());
        store
            .append(order, ExpectedVersion::NoStream, vec![placed])
            .await?;
    }
    let before = store.costs();
    let paid = vec![
        EventData::new("OrderPaid", r#"{"amount":42}"#),
        EventData::new("OrderShipped", r#"{"carrier":"ups"}"#),
    ];
    let r = store
        .append(&orders[0], ExpectedVersion::Exact(Version(1)), paid.clone())
        .await?;
    println!(
        "appended versions {}..={} of {} in {} append statements",
        r.first,
        r.last,
        orders[0],
        (store.costs() - before).round_trips(OpKind::Append)
    );

    // A retry after a lost reply re-sends the same events: nothing is written twice.
    let again = store
        .append(&orders[0], ExpectedVersion::Exact(Version(1)), paid)
        .await?;
    println!(
        "re-sent the same append: deduplicated = {}",
        again.deduplicated
    );

    // A writer holding a stale version is refused with the actual version.
    match store
        .append(
            &orders[0],
            ExpectedVersion::Exact(Version(1)),
            vec![EventData::new("OrderCancelled", "{}")],
        )
        .await
    {
        Err(StoreError::WrongExpectedVersion { actual, .. }) => {
            println!("stale append refused: the stream is at version {actual}")
        }
        other => println!("unexpected: {other:?}"),
    }

    store
        .append(
            &orders[1],
            ExpectedVersion::Any,
            vec![EventData::new("OrderPaid", r#"{"amount":7}"#)],
        )
        .await?;
    store
        .append(
            &orders[2],
            ExpectedVersion::Any,
            vec![EventData::new("OrderPaid", r#"{"amount":9}"#)],
        )
        .await?;

    store
        .save_snapshot(Snapshot {
            stream: orders[0].clone(),
            version: Version(3),
            state_type: "Order".into(),
            schema_version: 1,
            state: r#"{"status":"shipped","amount":42}"#.into(),
        })
        .await?;

    println!("reading {}", orders[0]);
    let mut events = store.read(&orders[0], ReadOptions::forward());
    while let Some(e) = events.next().await {
        let e = e?;
        println!(
            "  v{} {} {}",
            e.version,
            e.event_type,
            String::from_utf8_lossy(&e.data)
        );
    }
    if let Some(s) = store.load_snapshot(&orders[0]).await? {
        println!(
            "  snapshot at v{}: {}",
            s.version,
            String::from_utf8_lossy(&s.state)
        );
    }

    match tokio::time::timeout(Duration::from_secs(10), follower).await {
        Ok(Ok(Ok(checkpoint))) => {
            let etag = store
                .save_checkpoint("quickstart-projector", &checkpoint, None)
                .await?;
            println!("projector checkpoint saved (etag {})", etag.0);
        }
        other => {
            return Err(StoreError::invalid(format!(
                "the feed follower did not catch up: {other:?}"
            )));
        }
    }
    println!("costs: {}", store.costs());
    Ok(())
}
