//! Reading a stream: its head version, and its events a page at a time.

use futures::StreamExt;
use sekiban_core::backend::sql::{to_i64 as i, to_u64 as u};
use sekiban_core::paging::{Page, PageRequest};
use sekiban_core::{Direction, OpKind, RecordedEvent, StoreError, StreamId, Version};

use super::rows::{event_at, get};
use super::statements::Sql;
use super::{Db, Param, Result};

impl Db {
    /// The head version (0 when missing).
    pub(crate) async fn stream_version(&self, s: &StreamId) -> Result<Version> {
        let (t, c, id) = (s.tenant(), s.category(), s.id());
        let rows = self
            .query(OpKind::Read, 0, Sql::Version, &[&t, &c, &id])
            .await?;
        match rows.first() {
            None => Ok(Version::NONE),
            Some(r) if get::<bool>(r, 1)? => Err(StoreError::StreamDeleted {
                stream: s.clone(),
                version: Version(u(get(r, 0)?)),
            }),
            Some(r) => Ok(Version(u(get(r, 0)?))),
        }
    }

    /// One page of a stream in one statement; `bool`: more may follow. Rows are decoded as they
    /// arrive and the rest of the page is dropped unread once `page_bytes` is reached, so memory
    /// stays within `page_bytes` plus one event whatever the events' sizes.
    pub(crate) async fn read_page(
        &self,
        s: &StreamId,
        page: PageRequest,
        page_bytes: usize,
    ) -> Result<Page> {
        let (sql, end) = match page.direction {
            Direction::Forward => (Sql::ReadForward, u64::MAX),
            Direction::Backward => (Sql::ReadBackward, 1),
        };
        let (t, c, id) = (s.tenant(), s.category(), s.id());
        let (from, end, limit) = (i(page.from.0), i(end), i(page.limit as u64));
        let params: [Param<'_>; 6] = [&t, &c, &id, &from, &end, &limit];
        let (client, rows) = self.query_rows(OpKind::Read, sql, &params).await?;
        futures::pin_mut!(rows);
        let mut events: Vec<RecordedEvent> = Vec::with_capacity(page.limit.min(1024));
        let mut bytes = 0usize;
        // The stream's head and soft-deleted-up-to versions, from its row.
        let mut bounds = None;
        while let Some(row) = rows.next().await {
            let row = match row {
                Ok(row) => row,
                Err(e) => return Err(super::broken(client, "read", e)),
            };
            if let Some(hidden_upto) = get::<Option<i64>>(&row, 7)? {
                let head = u(get(&row, 0)?);
                if hidden_upto < 0 {
                    return Err(StoreError::StreamDeleted {
                        stream: s.clone(),
                        version: Version(head),
                    });
                }
                bounds = Some((head, u(hidden_upto)));
                continue;
            }
            let e = event_at(s.clone(), &row, 0)?;
            bytes += e.size();
            events.push(e);
            if bytes >= page_bytes {
                break;
            }
        }
        self.costs.record_bytes(OpKind::Read, 0, bytes as u64);
        let more = match (events.last(), bounds) {
            (None, _) => false,
            (Some(last), Some((head, hidden_upto))) => match page.direction {
                Direction::Forward => last.version.0 < head,
                Direction::Backward => last.version.0 > hidden_upto + 1,
            },
            // The stream's row comes first; were it ever cut off, ask for the next page.
            (Some(_), None) => true,
        };
        Ok((events, more))
    }
}
