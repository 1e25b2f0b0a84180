//! Helpers the cases share; public so a backend's own tests can use them too.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use sekiban_core::{
    ChangeBatch, Checkpoint, EventData, FeedItem, FeedOptions, FeedStart, ReadOptions,
    RecordedEvent, Store, StoreError, StreamId, Version,
};

use crate::{CaseFailure, Harness};

impl Harness {
    /// A stream of this case's tenant with a unique id.
    pub fn new_stream(&self, category: &str) -> StreamId {
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.stream(category, &id)
    }

    /// A stream of this case's tenant.
    pub fn stream(&self, category: &str, id: &str) -> StreamId {
        let s = StreamId::new(&self.tenant, category, id).unwrap_or_else(|e| {
            panic!("the suite built an invalid stream id {category}/{id}: {e}")
        });
        self.record_stream(&s);
        s
    }

    /// Feed options filtered to this case's tenant.
    pub fn feed_opts(&self, follow: bool) -> FeedOptions {
        let o = if follow {
            FeedOptions::follow()
        } else {
            FeedOptions::catch_up()
        };
        o.tenant(&self.tenant)
    }
}

/// `n` events of type `Tick` whose data is `{"tag":"<tag>","n":<i>}`.
pub fn events(tag: &str, n: usize) -> Vec<EventData> {
    (0..n)
        .map(|i| EventData::new("Tick", Bytes::from(format!(r#"{{"tag":"{tag}","n":{i}}}"#))))
        .collect()
}

/// One event.
pub fn event(tag: &str) -> EventData {
    EventData::new("Tick", Bytes::from(format!(r#"{{"tag":"{tag}"}}"#)))
}

/// Reads a whole stream with `opts`.
pub async fn read_with(
    store: &dyn Store,
    stream: &StreamId,
    opts: ReadOptions,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut out = Vec::new();
    let mut s = store.read(stream, opts);
    while let Some(e) = s.next().await {
        out.push(e?);
    }
    Ok(out)
}

/// Reads a whole stream forward.
pub async fn read_all(
    store: &dyn Store,
    stream: &StreamId,
) -> Result<Vec<RecordedEvent>, StoreError> {
    read_with(store, stream, ReadOptions::forward()).await
}

/// Versions of a list of events.
pub fn versions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.version.0).collect()
}

/// Checks that `stored` holds exactly `sent`, in order, at versions `first..`.
pub fn check_events(
    stored: &[RecordedEvent],
    sent: &[EventData],
    first: Version,
    what: &str,
) -> Result<(), CaseFailure> {
    crate::check_eq!(stored.len(), sent.len(), "{what}: number of events");
    for (i, (r, e)) in stored.iter().zip(sent).enumerate() {
        crate::check_eq!(
            r.version,
            first.plus(i as u64),
            "{what}: version of event {i}"
        );
        crate::check!(
            e.same_content(r),
            "{what}: event {i} came back as {r:?}, appended as {e:?}"
        );
    }
    Ok(())
}

/// Reads the feed to its current end (catch-up mode) and returns every batch.
pub async fn catch_up(
    store: &dyn Store,
    from: FeedStart,
    opts: FeedOptions,
) -> Result<Vec<ChangeBatch>, StoreError> {
    let mut opts = opts;
    opts.follow = false;
    let mut out = Vec::new();
    let mut s = store.changes(from, opts);
    while let Some(b) = s.next().await {
        out.push(b?);
    }
    Ok(out)
}

/// Catch-up reads from `from` until they deliver at least `want` items (events and deletion
/// markers), or a deadline of a few poll intervals passes; returns the last read's batches.
///
/// A store may make a commit visible to its feed only once every older transaction has finished
/// (PostgreSQL's feed reads below the snapshot's xmin, so concurrent writers elsewhere delay it):
/// a case that expects its own writes waits for them, as a consumer would.
pub async fn catch_up_settled(
    store: &dyn Store,
    from: FeedStart,
    opts: FeedOptions,
    want: usize,
) -> Result<Vec<ChangeBatch>, StoreError> {
    let deadline = tokio::time::Instant::now()
        + store.limits().feed_poll_interval * 3
        + Duration::from_secs(5);
    loop {
        let batches = catch_up(store, from.clone(), opts.clone()).await?;
        let items: usize = batches.iter().map(|b| b.items.len()).sum();
        if items >= want || tokio::time::Instant::now() >= deadline {
            return Ok(batches);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The events of some batches, in order.
pub fn feed_events(batches: &[ChangeBatch]) -> Vec<RecordedEvent> {
    batches
        .iter()
        .flat_map(|b| b.items.iter().filter_map(FeedItem::as_event).cloned())
        .collect()
}

/// Checks every event a feed delivered against what a read of its stream returns: the same
/// id, type, schema version, data bytes, metadata and recorded time at that version, not only
/// the same (stream, version).
pub async fn check_feed_matches_reads(
    store: &dyn Store,
    got: &[RecordedEvent],
) -> Result<(), CaseFailure> {
    let mut by_stream: std::collections::BTreeMap<&StreamId, Vec<&RecordedEvent>> =
        std::collections::BTreeMap::new();
    for e in got {
        by_stream.entry(&e.stream).or_default().push(e);
    }
    for (stream, fed) in by_stream {
        let read = read_all(store, stream).await?;
        for e in fed {
            let Some(r) = read.iter().find(|r| r.version == e.version) else {
                return Err(CaseFailure {
                    message: format!(
                        "the feed delivered {stream} v{} that a read does not return",
                        e.version
                    ),
                });
            };
            if e != r {
                return Err(CaseFailure {
                    message: format!(
                        "the feed's {stream} v{} differs from what a read returns:\n  feed: {e:?}\n  read: {r:?}",
                        e.version
                    ),
                });
            }
        }
    }
    Ok(())
}

/// The checkpoint of the last batch.
pub fn last_checkpoint(batches: &[ChangeBatch]) -> Result<Checkpoint, CaseFailure> {
    batches.last().map(|b| b.checkpoint.clone()).ok_or_else(|| CaseFailure {
        message: "a catch-up read of the feed yielded no batch at all; it must end with a batch carrying the checkpoint".into(),
    })
}

/// Follows the feed until `want` events arrived or `deadline` passed.
pub async fn follow_until(
    store: &dyn Store,
    from: FeedStart,
    opts: FeedOptions,
    want: usize,
    deadline: Duration,
) -> Result<Vec<RecordedEvent>, CaseFailure> {
    let mut got = Vec::new();
    let mut opts = opts;
    opts.follow = true;
    let mut s = store.changes(from, opts);
    let until = tokio::time::Instant::now() + deadline;
    while got.len() < want {
        match tokio::time::timeout_at(until, s.next()).await {
            Ok(Some(b)) => got.extend(b?.items.iter().filter_map(FeedItem::as_event).cloned()),
            Ok(None) => {
                return Err(CaseFailure {
                    message: "a following change feed ended".into(),
                });
            }
            Err(_) => {
                return Err(CaseFailure {
                    message: format!(
                        "the feed delivered {} of {want} events within {deadline:?}",
                        got.len()
                    ),
                });
            }
        }
    }
    Ok(got)
}

/// Fails unless `r` is an error that `matches` accepts.
pub fn expect_err<T: std::fmt::Debug>(
    r: Result<T, StoreError>,
    what: &str,
    matches: impl FnOnce(&StoreError) -> bool,
) -> Result<StoreError, CaseFailure> {
    match r {
        Err(e) if matches(&e) => Ok(e),
        Err(e) => Err(CaseFailure {
            message: format!("{what}: wrong error {e:?}"),
        }),
        Ok(v) => Err(CaseFailure {
            message: format!("{what}: succeeded with {v:?}, expected an error"),
        }),
    }
}

/// The versions of `stream`'s deletion markers on the feed of its tenant, read from the
/// beginning once at least `want` are there, or a deadline of a few poll intervals passed (a
/// store may show a commit to its feed a little later).
pub async fn deletion_markers(
    h: &Harness,
    stream: &StreamId,
    want: usize,
) -> Result<Vec<u64>, CaseFailure> {
    let deadline = tokio::time::Instant::now()
        + h.store.limits().feed_poll_interval * 3
        + Duration::from_secs(5);
    loop {
        let batches = catch_up(&*h.store, FeedStart::Beginning, h.feed_opts(false)).await?;
        let found: Vec<u64> = batches
            .iter()
            .flat_map(|b| b.items.iter())
            .filter_map(|i| match i {
                FeedItem::Deleted {
                    stream: s, version, ..
                } if s == stream => Some(version.0),
                _ => None,
            })
            .collect();
        if found.len() >= want || tokio::time::Instant::now() >= deadline {
            return Ok(found);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
