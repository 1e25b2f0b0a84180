//! Feed batches are bounded by bytes as well as by count.

mod common;

use bytes::Bytes;
use sekiban_conformance::{catch_up, feed_events};
use sekiban_core::{
    EventData, EventStore, ExpectedVersion, FeedOptions, FeedStart, ObjectBlobStore, Store,
    StreamId,
};
use sekiban_postgres::PostgresEventStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_batches_end_at_page_bytes() {
    let store: PostgresEventStore =
        common::store_with(std::sync::Arc::new(ObjectBlobStore::memory())).await;
    let l = store.limits().clone();
    let size = l.max_event_bytes.min(l.page_bytes / 3) - 64;
    let n = (l.page_bytes * 5 / 2).div_ceil(size);
    let tenant = format!("fb{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let s = StreamId::new(&tenant, "big", "1").expect("stream id");
    for i in 0..n {
        let data = Bytes::from(vec![b'a' + (i % 26) as u8; size]);
        store
            .append(&s, ExpectedVersion::Any, vec![EventData::new("Big", data)])
            .await
            .unwrap_or_else(|e| panic!("append: {e}"));
    }
    let batches = catch_up(
        &store,
        FeedStart::Beginning,
        FeedOptions::catch_up().tenant(&tenant),
    )
    .await
    .unwrap_or_else(|e| panic!("feed: {e}"));
    let got = feed_events(&batches);
    let versions: Vec<u64> = got.iter().map(|e| e.version.0).collect();
    assert_eq!(versions, (1..=n as u64).collect::<Vec<_>>());
    assert!(
        got.iter()
            .all(|e| e.data.len() == size && e.data[0] == b'a' + ((e.version.0 - 1) % 26) as u8),
        "events came back with other data"
    );
    let event = size + "Big".len();
    for b in &batches {
        let bytes: usize = b
            .items
            .iter()
            .filter_map(|i| match i {
                sekiban_core::FeedItem::Event(e) => Some(e.data.len() + e.event_type.len()),
                _ => None,
            })
            .sum();
        assert!(
            bytes < l.page_bytes + event,
            "a batch of {} items carries {bytes} bytes; pages end at {} bytes plus the event that reaches it",
            b.items.len(),
            l.page_bytes
        );
    }
    assert!(
        batches.iter().filter(|b| !b.items.is_empty()).count() >= 3,
        "{n} events of {size} bytes came in {} batches",
        batches.len()
    );
}
