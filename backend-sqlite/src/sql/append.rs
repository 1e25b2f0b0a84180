//! Appends, and the re-send check (rule 3).

use super::*;

/// Appends inside the caller's transaction. Rule 3 is checked first, then the expected version.
pub(crate) fn append(
    c: &Conn,
    s: &StreamId,
    expected: ExpectedVersion,
    events: &[EventData],
) -> Result<AppendResult> {
    let h = live(s, head(c, OpKind::Append, s)?)?;
    let current = h.as_ref().map_or(Version::NONE, |h| h.version);
    if !expected.accepts(current) {
        // A re-send conflicts under Exact/NoStream: compare ids on this path only.
        if current > Version::NONE
            && let Some(r) = find_resend(c, s, events)?
        {
            return Ok(r);
        }
        return Err(StoreError::WrongExpectedVersion {
            stream: s.clone(),
            expected,
            actual: current,
        });
    }
    let first = current.plus(1);
    let last = current.plus(events.len() as u64);
    let now = now_micros();
    for (n, e) in events.iter().enumerate() {
        let inserted = c.insert(
            OpKind::Append,
            e.size(),
            "INSERT INTO sekiban_log (kind, tenant, category, stream_id, version, event_id, event_type, schema_version, data, metadata, recorded_at, append_first, append_last) \
             VALUES (0, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                s.tenant(),
                s.category(),
                s.id(),
                i(first.0 + n as u64),
                e.id.0.as_bytes().as_slice(),
                e.event_type,
                i64::from(e.schema_version),
                e.data.as_ref(),
                metadata_text(&e.metadata)?,
                now,
                i(first.0),
                i(last.0),
            ],
        )?;
        if !inserted {
            // An event id the stream already holds: undo this append's rows, then it is either a
            // re-send of an earlier append or a conflict.
            c.batch(OpKind::Append, &format!("ROLLBACK TO {JOB_SAVEPOINT}"))?;
            return find_resend(c, s, events)?.ok_or_else(|| {
                StoreError::backend(
                    "append",
                    "a unique index refused a row no stored event explains",
                )
            });
        }
    }
    c.exec(
        OpKind::Append,
        0,
        "INSERT INTO sekiban_streams (tenant, category, stream_id, version) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (tenant, category, stream_id) DO UPDATE SET version = excluded.version",
        params![s.tenant(), s.category(), s.id(), i(last.0)],
    )?;
    Ok(AppendResult {
        first,
        last,
        deduplicated: false,
    })
}

/// The stream's stored events with the ids of `events`, matched by the one rule in core.
pub(super) fn find_resend(
    c: &Conn,
    s: &StreamId,
    events: &[EventData],
) -> Result<Option<AppendResult>> {
    let marks = vec!["?"; events.len()].join(", ");
    let sql = format!(
        "SELECT {EVENT_COLUMNS}, l.append_first, l.append_last FROM sekiban_log l \
         WHERE l.tenant = ? AND l.category = ? AND l.stream_id = ? AND l.kind = 0 AND l.event_id IN ({marks})"
    );
    let ids: Vec<Vec<u8>> = events.iter().map(|e| e.id.0.as_bytes().to_vec()).collect();
    let (t, cat, id) = (s.tenant(), s.category(), s.id());
    let mut p: Vec<&dyn ToSql> = vec![&t, &cat, &id];
    p.extend(ids.iter().map(|b| b as &dyn ToSql));
    let found = c.rows(OpKind::Append, &sql, p.as_slice(), |row| {
        let e = event_at(s.clone(), row, 0)?;
        Ok(Some((
            e,
            Version(u(col(row, 7)?)),
            Version(u(col(row, 8)?)),
        )))
    })?;
    if found.is_empty() {
        return Ok(None);
    }
    let by_id: HashMap<EventId, &(RecordedEvent, Version, Version)> =
        found.iter().map(|f| (f.0.id, f)).collect();
    match_resend(s, events, |id| {
        by_id.get(&id).map(|(event, first, last)| PriorEvent {
            event,
            append_first: *first,
            append_last: *last,
        })
    })
}
