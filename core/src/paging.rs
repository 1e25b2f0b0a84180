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
    pub from: Version,
    /// Read order.
    pub direction: Direction,
    /// Most events in the page.
    pub limit: usize,
}

/// A fetched page: its events in read order, and whether more may follow (it was full, or cut
/// short by the page's byte limit).
pub type Page = (Vec<RecordedEvent>, bool);

/// Reads a stream lazily: one `fetch` per page of at most `page_events`, the next page requested
/// only when the reader gets to it; `max_count` and direction from `opts`. Memory stays bounded
/// by one page.
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
    let start = (remaining > 0 && from.0 >= 1).then_some((from, remaining));
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
