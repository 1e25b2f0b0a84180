//! Managing streams: deleting one, and listing a tenant's.

use sekiban_core::backend::sql::{listed_stream, listing_cursor, to_i64 as i};
use sekiban_core::snapshot::StoredSnapshot;
use sekiban_core::{DeleteMode, OpKind, StreamId, StreamInfo};

use super::rows::{get, read_pointer};
use super::statements::Sql;
use super::{Db, Result};

impl Db {
    /// Deletes a stream in one statement: what it did (`None`: nothing to delete; else the
    /// dropped pointer), and the version the stream was hidden up to before (0: never).
    pub(crate) async fn delete(
        &self,
        s: &StreamId,
        mode: DeleteMode,
    ) -> Result<(Option<Option<StoredSnapshot>>, u64)> {
        let sql = match mode {
            DeleteMode::Soft => Sql::SoftDelete,
            DeleteMode::Hard => Sql::HardDelete,
        };
        let (t, c, id) = (s.tenant(), s.category(), s.id());
        let rows = self.query(OpKind::Delete, 0, sql, &[&t, &c, &id]).await?;
        match rows.first() {
            Some(row) => {
                let hidden = u64::try_from(get::<i64>(row, 7)?).unwrap_or(0);
                if !get::<bool>(row, 0)? && get::<i64>(row, 6)? > 0 {
                    Ok((Some(read_pointer(row, 1)?), hidden))
                } else {
                    Ok((None, hidden))
                }
            }
            None => Ok((None, 0)),
        }
    }

    /// Lists streams of a tenant.
    pub(crate) async fn list_streams(
        &self,
        tenant: &str,
        category: Option<&str>,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<StreamInfo>> {
        let (ac, aid) = listing_cursor(tenant, after);
        let lim = i(limit as u64);
        let rows = match category {
            None => {
                self.query(
                    OpKind::Other,
                    0,
                    Sql::ListStreams,
                    &[&tenant, &ac, &aid, &lim],
                )
                .await?
            }
            Some(category) => {
                self.query(
                    OpKind::Other,
                    0,
                    Sql::ListCategory,
                    &[&tenant, &category, &ac, &aid, &lim],
                )
                .await?
            }
        };
        let listed = rows
            .iter()
            .map(|r| {
                let (category, id) = (get(r, 0)?, get(r, 1)?);
                listed_stream(tenant, category, id, get(r, 2)?, get(r, 3)?, get(r, 4)?)
            })
            .collect::<Result<Vec<_>>>()?;
        let received: usize = listed.iter().map(StreamInfo::size).sum();
        self.costs.record_bytes(OpKind::Other, 0, received as u64);
        Ok(listed)
    }
}
