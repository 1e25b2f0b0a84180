//! Reads of a stream: its version (the head's), and pages of events by `Query`, forward from the
//! item holding `from` or backward.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use futures::stream::BoxStream;
use sekiban_core::paging::{Page, PageRequest, paged_by_items};
use sekiban_core::{Direction, OpKind, ReadOptions, RecordedEvent, Result, StreamId, Version};

use crate::client::counted_as;
use crate::error::from_sdk;
use crate::events::{FLOOR_SK, HEAD_SK, decode_item, erased, n, num};
use crate::{DynamoDbTable, stream_key};

impl DynamoDbTable {
    /// The head version.
    pub(crate) async fn version_of(&self, stream: &StreamId) -> Result<Version> {
        self.head_version(stream, OpKind::Read).await
    }

    /// One page of a read: `Query`s of at most `items` items, again from where one ended while
    /// it found nothing to return (items a soft delete hid), so a page is empty only at the end.
    /// Also returns how many items gave it events.
    async fn page(
        &self,
        stream: &StreamId,
        page: PageRequest,
        items: usize,
    ) -> Result<(Page, usize)> {
        let forward = page.direction == Direction::Forward;
        // Forward: the item holding `from` has a last version of at least `from`. Backward: an
        // item holding `from` ends at most `max_append_events - 1` versions after it.
        let (condition, bound) = if forward {
            ("pk = :pk AND sk >= :b", page.from.0)
        } else {
            let reach = self.limits.max_append_events.saturating_sub(1) as u64;
            ("pk = :pk AND sk <= :b", page.from.0.saturating_add(reach))
        };
        let bound = i64::try_from(bound).unwrap_or(HEAD_SK);
        let mut events = Vec::new();
        let mut bytes = 0usize;
        let mut used = 0usize;
        let mut start = None;
        let what = format!("an item of {stream}");
        loop {
            let out = counted_as(
                OpKind::Read,
                self.client
                    .query()
                    .table_name(&self.config.table)
                    .key_condition_expression(condition)
                    .expression_attribute_values(":pk", AttributeValue::S(stream_key(stream)))
                    .expression_attribute_values(":b", n(bound))
                    .scan_index_forward(forward)
                    .consistent_read(true)
                    .limit(i32::try_from(items.max(1)).unwrap_or(i32::MAX))
                    .set_exclusive_start_key(start.take())
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send(),
            )
            .await
            .map_err(|e| from_sdk(&format!("read {stream}"), e))?;
            self.charge(OpKind::Read, out.consumed_capacity());
            let mut more = out.last_evaluated_key().is_some();
            'items: for item in out.items() {
                let sk = num(item, "sk", &what)?;
                if sk == crate::SNAPSHOT_SK as u64 {
                    continue;
                }
                if sk == HEAD_SK as u64 || sk == FLOOR_SK as u64 {
                    if item.contains_key("x") {
                        return Err(erased(stream, Version(num(item, "v", &what)?)));
                    }
                    continue;
                }
                // Hidden by a soft delete, kept for re-sends.
                if item.contains_key("z") {
                    continue;
                }
                let (_, mut decoded) = decode_item(stream, item, sk, &what)?;
                if !forward {
                    decoded.reverse();
                }
                let mut gave = false;
                for e in decoded {
                    let wanted = if forward {
                        e.version >= page.from
                    } else {
                        e.version <= page.from
                    };
                    if !wanted {
                        continue;
                    }
                    if events.len() == page.limit || bytes >= self.limits.page_bytes {
                        more = true;
                        break 'items;
                    }
                    bytes += e.size();
                    events.push(e);
                    gave = true;
                }
                used += usize::from(gave);
            }
            match out.last_evaluated_key() {
                Some(k) if events.is_empty() && page.limit > 0 => start = Some(k.clone()),
                _ => return Ok(((events, more), used)),
            }
        }
    }

    /// Reads a stream lazily, one `Query` a page, asking for as many items as the events per
    /// item read so far suggest ([`paged_by_items`]).
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
