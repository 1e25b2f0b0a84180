//! The change feed: positions, where `Now` starts, one poll of the log, and the notifications
//! that wake waiting readers.

use futures::StreamExt;
use sekiban_core::backend::FeedPoll;
use sekiban_core::backend::sql::{LogKind, to_i64 as i, to_u64 as u};
use sekiban_core::{FeedItem, OpKind, StreamId, Version};

use super::rows::{decode, event_at, get};
use super::statements::Sql;
use super::{Db, Param, Result};

/// A feed position: after this (tx, global position).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct FeedPosition {
    pub(crate) tx: i64,
    pub(crate) position: i64,
}

/// `TX:POSITION`, as checkpoints hold it.
impl std::fmt::Display for FeedPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.tx, self.position)
    }
}

impl std::str::FromStr for FeedPosition {
    type Err = ();

    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        let (tx, position) = s.split_once(':').ok_or(())?;
        Ok(FeedPosition {
            tx: tx.parse().map_err(|_| ())?,
            position: position.parse().map_err(|_| ())?,
        })
    }
}

impl Db {
    /// The position `Now` starts after: everything below the current snapshot's xmin.
    pub(crate) async fn now(&self) -> Result<FeedPosition> {
        let rows = self.query(OpKind::Feed, 0, Sql::Xmin, &[]).await?;
        let xmin: i64 = rows.first().map(|r| get(r, 0)).transpose()?.unwrap_or(0);
        Ok(FeedPosition {
            tx: xmin - 1,
            position: i64::MAX,
        })
    }

    /// One feed poll after `after`: at most `limit` items, ending with the one that reaches
    /// `page_bytes`; rows are decoded as they arrive and the rest is left unread.
    pub(crate) async fn poll_feed(
        &self,
        after: FeedPosition,
        tenant: Option<&str>,
        category: Option<&str>,
        limit: usize,
        page_bytes: usize,
    ) -> Result<FeedPoll<FeedPosition>> {
        let lim = i(limit as u64);
        let mut params: Vec<Param<'_>> = vec![&after.tx, &after.position, &lim];
        let feed = match (&tenant, &category) {
            (None, None) => Sql::Feed,
            (Some(_), None) => Sql::FeedTenant,
            (None, Some(_)) => Sql::FeedCategory,
            (Some(_), Some(_)) => Sql::FeedTenantCategory,
        };
        if let Some(t) = &tenant {
            params.push(t);
        }
        if let Some(c) = &category {
            params.push(c);
        }
        let (client, rows) = self.query_rows(OpKind::Feed, feed, &params).await?;
        futures::pin_mut!(rows);
        let mut items = Vec::new();
        let mut xmin = after.tx;
        let mut bytes = 0;
        let mut cut = false;
        while let Some(row) = rows.next().await {
            let row = match row {
                Ok(row) => row,
                Err(e) => return Err(super::broken(client, "read the feed", e)),
            };
            xmin = get(&row, 0)?;
            let Some(tx) = get::<Option<i64>>(&row, 1)? else {
                break;
            };
            let pos = FeedPosition {
                tx,
                position: get(&row, 2)?,
            };
            let kind: i16 = get(&row, 3)?;
            let stream = StreamId::new(
                get::<String>(&row, 4)?,
                get::<String>(&row, 5)?,
                get::<String>(&row, 6)?,
            )
            .map_err(|e| decode("a stored stream id", e))?;
            let item = match LogKind::from_code(kind.into()) {
                Some(LogKind::Event) => {
                    let e = event_at(stream, &row, 7)?;
                    bytes += e.size();
                    FeedItem::Event(e)
                }
                Some(LogKind::Deleted(mode)) => FeedItem::Deleted {
                    stream,
                    version: Version(u(get(&row, 7)?)),
                    mode,
                },
                None => return Err(decode("a log row", format!("unknown kind {kind}"))),
            };
            items.push((pos, item));
            // A batch ends with the event that reaches `page_bytes`; the rest is left unread.
            if bytes >= page_bytes {
                cut = true;
                break;
            }
        }
        self.costs.record_bytes(OpKind::Feed, 0, bytes as u64);
        // At the end: everything below the snapshot's xmin has been seen.
        let end = after.max(FeedPosition {
            tx: xmin - 1,
            position: i64::MAX,
        });
        Ok(FeedPoll::new(items, limit, cut, after, end))
    }

    /// Sends one coalesced notification per tenant (outside any append transaction).
    pub(crate) async fn notify(&self, channel: &str, tenants: &[String]) -> Result<()> {
        self.query(OpKind::Notify, 0, Sql::Notify, &[&channel, &tenants])
            .await?;
        Ok(())
    }
}
