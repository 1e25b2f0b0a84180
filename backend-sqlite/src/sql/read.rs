//! Reading a stream: its version and a page of events.

use super::*;

/// The stream's head version (0 when missing).
pub(crate) fn stream_version(c: &Conn, s: &StreamId) -> Result<Version> {
    Ok(live(s, head(c, OpKind::Read, s)?)?.map_or(Version::NONE, |h| h.version))
}

/// The page statement: the stream's row joined with the events from the page's first version
/// (`?4`, or past the soft-deleted ones) to `?5`. Both bounds are in the index seek, so a page
/// costs the same at any depth.
pub(super) fn read_page_sql(order: &str) -> String {
    format!(
        "SELECT s.erased, s.version, {EVENT_COLUMNS} FROM sekiban_streams s \
         LEFT JOIN sekiban_log l ON l.tenant = s.tenant AND l.category = s.category AND l.stream_id = s.stream_id \
           AND l.kind = 0 AND l.version >= max(?4, s.hidden_upto + 1) AND l.version <= ?5 \
         WHERE s.tenant = ?1 AND s.category = ?2 AND s.stream_id = ?3 ORDER BY l.version {order} LIMIT ?6"
    )
}

/// One page of a stream read in one statement (the stream's row joined with its events, so a
/// missing, erased or soft-deleted stream is answered by the same statement).
pub(crate) fn read_page(
    c: &Conn,
    s: &StreamId,
    page: PageRequest,
    page_bytes: usize,
) -> Result<Page> {
    let limit = page.limit;
    let (order, lo, hi) = match page.direction {
        Direction::Forward => ("ASC", page.from.0, u64::MAX),
        Direction::Backward => ("DESC", 1, page.from.0),
    };
    let sql = read_page_sql(order);
    let mut bytes = 0usize;
    let mut erased = None;
    let mut more = false;
    let mut count = 0usize;
    let events = c.rows(
        OpKind::Read,
        &sql,
        params![
            s.tenant(),
            s.category(),
            s.id(),
            i(lo),
            i(hi),
            // One row more than the page tells whether another page follows.
            i(limit as u64 + 1)
        ],
        |row| {
            if col::<i64>(row, 0)? != 0 {
                erased = Some(Version(u(col(row, 1)?)));
                return Ok(None);
            }
            if col::<Option<i64>>(row, 2)?.is_none() {
                return Ok(None);
            }
            if bytes >= page_bytes || count == limit {
                more = true;
                return Ok(None);
            }
            let e = event_at(s.clone(), row, 2)?;
            bytes += e.size();
            count += 1;
            Ok(Some(e))
        },
    )?;
    c.costs().record_bytes(OpKind::Read, 0, bytes as u64);
    if let Some(version) = erased {
        return Err(StoreError::StreamDeleted {
            stream: s.clone(),
            version,
        });
    }
    Ok((events, more))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::StatementStatus;

    /// Virtual-machine steps of reading one page from `from` (the page statement's own counter).
    fn page_steps(c: &Conn, s: &StreamId, from: u64, direction: Direction) -> i32 {
        let page = PageRequest {
            from: Version(from),
            direction,
            limit: 100,
        };
        let (events, _) = read_page(c, s, page, usize::MAX).expect("read a page");
        assert_eq!(events.len(), 100);
        let order = match direction {
            Direction::Forward => "ASC",
            Direction::Backward => "DESC",
        };
        c.prepare(&read_page_sql(order))
            .expect("the cached page statement")
            .reset_status(StatementStatus::VmStep)
    }

    #[test]
    fn a_page_costs_the_same_at_any_depth() {
        let c = Conn::open(
            &SqliteConfig::memory(),
            Role::Writer,
            Arc::new(CostCounter::new()),
        )
        .expect("open");
        migrate(&c, "a test database").expect("migrate");
        let s = StreamId::new("t", "c", "deep").expect("stream id");
        c.batch(OpKind::Other, "BEGIN").expect("begin");
        for _ in 0..20 {
            let events: Vec<_> = (0..1000).map(|_| EventData::new("T", "{}")).collect();
            append(&c, &s, ExpectedVersion::Any, &events).expect("append");
        }
        // Soft-deleting the first half puts the other bound (hidden_upto) in play.
        c.exec(
            OpKind::Other,
            0,
            "UPDATE sekiban_streams SET hidden_upto = 10000",
            [],
        )
        .expect("soft delete");
        c.batch(OpKind::Other, "COMMIT").expect("commit");
        for direction in [Direction::Forward, Direction::Backward] {
            let (near, deep) = match direction {
                Direction::Forward => (10_001, 19_801),
                Direction::Backward => (10_100, 20_000),
            };
            page_steps(&c, &s, near, direction);
            let shallow = page_steps(&c, &s, near, direction);
            let far = page_steps(&c, &s, deep, direction);
            assert!(
                far < shallow * 3 / 2 && shallow < far * 3 / 2,
                "{direction:?}: a page at {deep} takes {far} steps, at {near} {shallow}"
            );
        }
    }
}
