//! Lazily paged stream reads, for backends that fetch a stream one page per request.

use std::future::Future;

use futures::StreamExt;
use futures::future::Either;
use futures::stream::{self, BoxStream};

use crate::error::Result;
use crate::event::{Direction, ReadOptions, RecordedEvent};
use crate::id::Version;

/// One page to fetch: versions from `from` (inclusive) onwards in `direction`, at most `limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// First version of the page (inclusive); `Version(u64::MAX)` reading backward from the head.
    /// `Version(0)` reading backward from version 0 (a page with no events; the stream is still
    /// looked up).
    pub from: Version,
    /// Read order.
    pub direction: Direction,
    /// Most events in the page. 0 only on a read's first page when the reader wants no events
    /// (`max_count` 0): the backend still looks the stream up, and fails an erased one with
    /// `StreamDeleted`.
    pub limit: usize,
}

/// A fetched page: its events in read order, and whether more may follow (it was full, or cut
/// short by the page's byte limit).
pub type Page = (Vec<RecordedEvent>, bool);

/// Reads a stream lazily: one `fetch` per page of at most `page_events`, the next page requested
/// only when the reader gets to it; `max_count` and direction from `opts`. Memory stays bounded
/// by one page. The first page is always fetched, even when the options select no events, so a
/// read of an erased stream fails with `StreamDeleted` whatever its options.
pub fn paged<'a, F, Fut>(
    opts: ReadOptions,
    page_events: usize,
    fetch: F,
) -> BoxStream<'a, Result<RecordedEvent>>
where
    F: FnMut(PageRequest) -> Fut + Send + 'a,
    Fut: Future<Output = Result<Page>> + Send + 'a,
{
    let from = match opts.direction {
        Direction::Forward => Version(opts.from.map_or(1, |v| v.0.max(1))),
        Direction::Backward => opts.from.unwrap_or(Version(u64::MAX)),
    };
    let remaining = opts.max_count.unwrap_or(u64::MAX);
    // The first page is fetched even when it can hold nothing (`max_count` 0, backward from
    // version 0): that request is what tells a readable stream from an erased one, whose read
    // fails with `StreamDeleted` whatever the options. It stays the read's one request.
    let start = Some((from, remaining));
    stream::unfold((fetch, start), move |(mut fetch, state)| async move {
        let (from, remaining) = state?;
        let limit = usize::try_from(remaining)
            .unwrap_or(usize::MAX)
            .min(page_events.max(1));
        let request = PageRequest {
            from,
            direction: opts.direction,
            limit,
        };
        // A page's events are handed out as they are, not copied into another list.
        match fetch(request).await {
            Err(e) => Some((Either::Right(stream::iter([Err(e)])), (fetch, None))),
            Ok((events, more)) => {
                let next = match (events.last(), more) {
                    (Some(last), true) => match opts.direction {
                        Direction::Forward => last.version.0.checked_add(1),
                        Direction::Backward => last.version.0.checked_sub(1).filter(|n| *n >= 1),
                    }
                    .map(|n| (Version(n), remaining - events.len() as u64))
                    .filter(|(_, left)| *left > 0),
                    _ => None,
                };
                if events.is_empty() {
                    return None;
                }
                let items = Either::Left(stream::iter(events.into_iter().map(Ok)));
                Some((items, (fetch, next)))
            }
        }
    })
    .flatten()
    .boxed()
}

/// [`paged`] for a store whose read requests count stored items (an item or document per
/// append) that hold several events each: `fetch` gets the page and how many items to ask for,
/// and returns the page and how many items gave it events. The first page asks for one item per
/// event it wants, later ones for as many as the events per item read so far suggest (so a
/// stream of many-event appends is not read several times over), each with two more: one for an
/// item holding events before the page's first, one for an item that is not an append (a head).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use futures::StreamExt;
/// use sekiban_core::paging::paged_by_items;
/// use sekiban_core::ReadOptions;
/// let mut asked = Vec::new();
/// let read = paged_by_items(ReadOptions::forward(), 10, |page, items| {
///     asked.push(items);
///     async move { Ok(((Vec::new(), false), 0)) }
/// });
/// assert_eq!(read.count().await, 0);
/// assert_eq!(asked, [12]);
/// # });
/// ```
pub fn paged_by_items<'a, F, Fut>(
    opts: ReadOptions,
    page_events: usize,
    mut fetch: F,
) -> BoxStream<'a, Result<RecordedEvent>>
where
    F: FnMut(PageRequest, usize) -> Fut + Send + 'a,
    Fut: Future<Output = Result<(Page, usize)>> + Send + 'a,
{
    let per_item = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(1));
    paged(opts, page_events, move |page| {
        let per = per_item.clone();
        let items = page
            .limit
            .div_ceil(per.load(std::sync::atomic::Ordering::Relaxed).max(1))
            .saturating_add(2);
        let fetched = fetch(page, items);
        async move {
            let ((events, more), used) = fetched.await?;
            if let Some(n) = events.len().checked_div(used) {
                per.store(n.max(1), std::sync::atomic::Ordering::Relaxed);
            }
            Ok((events, more))
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures::StreamExt;

    use super::*;
    use crate::error::StoreError;
    use crate::id::StreamId;

    /// The pages a read asks for, and its result, over a stream that fails every page with
    /// `StreamDeleted` (an erased one).
    fn erased(opts: ReadOptions) -> (Vec<PageRequest>, Vec<Result<RecordedEvent>>) {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = asked.clone();
        let stream = StreamId::new("t", "c", "s").expect("a stream id");
        let read = paged(opts, 10, move |page| {
            log.lock().expect("the log").push(page);
            let e = StoreError::StreamDeleted {
                stream: stream.clone(),
                version: Version(3),
            };
            async move { Err(e) }
        });
        let got = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(read.collect::<Vec<_>>());
        let asked = asked.lock().expect("the log").clone();
        (asked, got)
    }

    #[test]
    fn a_read_that_wants_nothing_still_asks_for_one_page() {
        for opts in [
            ReadOptions::forward().max_count(0),
            ReadOptions::backward().max_count(0),
            ReadOptions::backward().from(Version(0)),
            ReadOptions::forward().from(Version(u64::MAX)),
        ] {
            let (asked, got) = erased(opts);
            assert_eq!(asked.len(), 1, "{opts:?}: pages asked for");
            assert!(
                matches!(got[..], [Err(StoreError::StreamDeleted { .. })]),
                "{opts:?}: {got:?}"
            );
        }
        let (asked, _) = erased(ReadOptions::forward().max_count(0));
        assert_eq!(asked[0].limit, 0, "a page for max_count 0 holds nothing");
        let (asked, _) = erased(ReadOptions::backward().from(Version(0)));
        assert_eq!(asked[0].from, Version(0), "backward from 0 starts at 0");
    }
}
