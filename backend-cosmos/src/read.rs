//! Reads of a stream: pages of its append documents by a single-partition query in version
//! order, the head with them (it sorts first either way) to tell an erased stream and the
//! versions a soft delete hid.

use azure_data_cosmos::Query;
use futures::StreamExt;
use futures::stream::BoxStream;
use sekiban_core::paging::{Page, PageRequest, paged_by_items};
use sekiban_core::{
    Direction, OpKind, ReadOptions, RecordedEvent, Result, StoreError, StreamId, Version,
};

use crate::CosmosStore;
use crate::docs::{APPEND, AppendDoc, HEAD, Head};
use crate::heads::partition_key;

impl CosmosStore {
    /// One page: queries of at most `items` documents, again from where one ended while it found
    /// nothing to return (events a soft delete hid). Also returns how many documents gave events.
    async fn page(
        &self,
        stream: &StreamId,
        page: PageRequest,
        items: usize,
    ) -> Result<(Page, usize)> {
        // The head comes first in every page: the version a soft delete hid up to.
        let mut hidden = 0;
        let forward = page.direction == Direction::Forward;
        let mut from = page.from.0;
        let mut events = Vec::new();
        let mut bytes = 0usize;
        let mut used = 0usize;
        loop {
            let items = items.max(1);
            let text = if forward {
                format!(
                    "SELECT TOP {items} * FROM c WHERE c.k = '{HEAD}' OR (c.k = '{APPEND}' AND c.l >= @v) ORDER BY c.o"
                )
            } else {
                format!(
                    "SELECT TOP {items} * FROM c WHERE c.k = '{HEAD}' OR (c.k = '{APPEND}' AND c.f <= @v) ORDER BY c.r"
                )
            };
            let query = Query::from(text)
                .with_parameter("@v", from)
                .map_err(|e| crate::conn::error("build a query", e))?;
            let docs = self
                .events
                .query(
                    OpKind::Read,
                    partition_key(stream),
                    query,
                    u32::try_from(items).unwrap_or(u32::MAX),
                )
                .next()
                .await
                .transpose()?
                .unwrap_or_default();
            let appends = docs.iter().filter(|d| d.k == APPEND).count();
            let mut more = docs.len() >= items;
            let mut next = None;
            'docs: for doc in &docs {
                if doc.k == HEAD {
                    let h: Head = doc.parse()?;
                    if h.x {
                        return Err(erased(stream, &h));
                    }
                    hidden = h.h;
                    continue;
                }
                if doc.k != APPEND {
                    continue;
                }
                let a: AppendDoc = doc.parse()?;
                next = Some(if forward {
                    a.l + 1
                } else {
                    a.f.saturating_sub(1)
                });
                let mut decoded = a.events(stream)?;
                if !forward {
                    decoded.reverse();
                }
                let mut gave = false;
                for e in decoded {
                    let wanted = if forward {
                        e.version.0 >= page.from.0
                    } else {
                        e.version.0 <= page.from.0
                    };
                    if !wanted || e.version.0 <= hidden {
                        continue;
                    }
                    if events.len() == page.limit || bytes >= self.limits.page_bytes {
                        more = true;
                        break 'docs;
                    }
                    bytes += e.size();
                    events.push(e);
                    gave = true;
                }
                used += usize::from(gave);
            }
            match next {
                // A full page of documents that gave nothing (hidden): read on after them.
                Some(n)
                    if events.is_empty()
                        && more
                        && page.limit > 0
                        && appends > 0
                        && (forward || n > 0) =>
                {
                    from = n;
                }
                _ => return Ok(((events, more), used)),
            }
        }
    }

    /// Reads a stream lazily, one query a page, asking for as many documents as the events per
    /// document read so far suggest ([`paged_by_items`]).
    pub(crate) fn read_events(
        &self,
        stream: &StreamId,
        opts: ReadOptions,
    ) -> BoxStream<'_, Result<RecordedEvent>> {
        let stream = stream.clone();
        paged_by_items(opts, self.limits.page_events, move |page, items| {
            let stream = stream.clone();
            async move { self.page(&stream, page, items).await }
        })
    }
}

pub(crate) fn erased(stream: &StreamId, head: &Head) -> StoreError {
    StoreError::StreamDeleted {
        stream: stream.clone(),
        version: Version(head.v),
    }
}
