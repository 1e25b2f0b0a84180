//! The change feed's reads of the log.

use super::*;

/// The highest log position ever used (0 for an empty log).
pub(crate) fn last_position(c: &Conn) -> Result<u64> {
    Ok(c.one(
        OpKind::Feed,
        "SELECT seq FROM sqlite_sequence WHERE name = 'sekiban_log'",
        [],
        |r| r.get::<_, i64>(0),
    )?
    .map_or(0, u))
}

/// One feed poll after `after`: items (with their positions) and the position reached. Reads
/// the last position first, then rows up to it, so `reached` covers rows other tenants wrote.
pub(crate) fn poll_feed(
    c: &Conn,
    after: u64,
    tenant: Option<&str>,
    category: Option<&str>,
    limit: usize,
    page_bytes: usize,
) -> Result<FeedPoll<u64>> {
    let max = last_position(c)?;
    if max <= after {
        return Ok(FeedPoll::new(Vec::new(), limit, false, after, after));
    }
    let (after_i, max_i, limit_i) = (i(after), i(max), i(limit as u64));
    let mut p: Vec<&dyn ToSql> = vec![&after_i, &max_i, &limit_i];
    let mut filter = String::new();
    for (column, value) in [("tenant", &tenant), ("category", &category)] {
        if let Some(v) = value {
            p.push(v);
            filter.push_str(&format!(" AND l.{column} = ?{}", p.len()));
        }
    }
    let sql = format!(
        "SELECT l.position, l.kind, l.tenant, l.category, l.stream_id, {EVENT_COLUMNS} FROM sekiban_log l \
         JOIN sekiban_streams s ON s.tenant = l.tenant AND s.category = l.category AND s.stream_id = l.stream_id \
         WHERE l.position > ?1 AND l.position <= ?2{filter} AND (l.kind <> 0 OR l.version > s.hidden_upto) \
         ORDER BY l.position LIMIT ?3"
    );
    let mut bytes = 0usize;
    let mut cut = false;
    let items = c.rows(OpKind::Feed, &sql, p.as_slice(), |row| {
        // A batch ends with the event that reaches `page_bytes`.
        if bytes >= page_bytes {
            cut = true;
            return Ok(None);
        }
        let position = u(col(row, 0)?);
        let kind: i64 = col(row, 1)?;
        let stream = StreamId::new(
            col::<String>(row, 2)?,
            col::<String>(row, 3)?,
            col::<String>(row, 4)?,
        )
        .map_err(|e| decode("a stored stream id", e))?;
        let item = match LogKind::from_code(kind) {
            Some(LogKind::Event) => {
                let e = event_at(stream, row, 5)?;
                bytes += e.size();
                FeedItem::Event(e)
            }
            Some(LogKind::Deleted(mode)) => FeedItem::Deleted {
                stream,
                version: Version(u(col(row, 5)?)),
                mode,
            },
            None => return Err(decode("a log row", format!("unknown kind {kind}"))),
        };
        Ok(Some((position, item)))
    })?;
    c.costs().record_bytes(OpKind::Feed, 0, bytes as u64);
    Ok(FeedPoll::new(items, limit, cut, after, max))
}
