//! Listing streams.

use super::*;

/// Lists streams of a tenant, in (category, id) order.
pub(crate) fn list_streams(
    c: &Conn,
    tenant: &str,
    category: Option<&str>,
    after: Option<&StreamId>,
    limit: usize,
) -> Result<Vec<StreamInfo>> {
    let (after_cat, after_id) = listing_cursor(tenant, after);
    let listed = c.rows(
        OpKind::Other,
        "SELECT category, stream_id, version, hidden_upto, erased FROM sekiban_streams \
         WHERE tenant = ?1 AND (?2 IS NULL OR category = ?2) AND (category, stream_id) > (?3, ?4) \
         ORDER BY category, stream_id LIMIT ?5",
        params![tenant, category, after_cat, after_id, i(limit as u64)],
        |row| {
            let erased = col::<i64>(row, 4)? != 0;
            let (category, id) = (col(row, 0)?, col(row, 1)?);
            listed_stream(tenant, category, id, col(row, 2)?, col(row, 3)?, erased).map(Some)
        },
    )?;
    let received: usize = listed.iter().map(StreamInfo::size).sum();
    c.costs().record_bytes(OpKind::Other, 0, received as u64);
    Ok(listed)
}
