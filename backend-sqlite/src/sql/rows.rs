//! Rows as the store's values: a stream's head, events, metadata.

use super::*;

/// The stream's row: head, soft-deleted-up-to, erased.
pub(super) struct Head {
    pub(super) version: Version,
    pub(super) hidden_upto: Version,
    pub(super) erased: bool,
}

pub(super) fn head(c: &Conn, kind: OpKind, s: &StreamId) -> Result<Option<Head>> {
    c.one(
        kind,
        "SELECT version, hidden_upto, erased FROM sekiban_streams WHERE tenant = ?1 AND category = ?2 AND stream_id = ?3",
        params![s.tenant(), s.category(), s.id()],
        |r| {
            Ok(Head {
                version: Version(u(r.get(0)?)),
                hidden_upto: Version(u(r.get(1)?)),
                erased: r.get::<_, i64>(2)? != 0,
            })
        },
    )
}

pub(super) fn live(s: &StreamId, h: Option<Head>) -> Result<Option<Head>> {
    match h {
        Some(h) if h.erased => Err(StoreError::StreamDeleted {
            stream: s.clone(),
            version: h.version,
        }),
        other => Ok(other),
    }
}

pub(super) fn event_id(bytes: Vec<u8>) -> Result<EventId> {
    uuid::Uuid::from_slice(&bytes)
        .map(EventId)
        .map_err(|e| decode("an event id", e))
}

/// Columns of an event row, from index `at`: version, event_id, event_type, schema_version,
/// data, metadata, recorded_at.
pub(super) const EVENT_COLUMNS: &str =
    "l.version, l.event_id, l.event_type, l.schema_version, l.data, l.metadata, l.recorded_at";

pub(super) fn event_at(stream: StreamId, row: &Row<'_>, at: usize) -> Result<RecordedEvent> {
    Ok(RecordedEvent {
        stream,
        version: Version(u(col(row, at)?)),
        id: event_id(col(row, at + 1)?)?,
        event_type: col(row, at + 2)?,
        schema_version: u32::try_from(col::<i64>(row, at + 3)?)
            .map_err(|e| decode("a schema version", e))?,
        data: Bytes::from(col::<Vec<u8>>(row, at + 4)?),
        metadata: metadata_from_text(col(row, at + 5)?)?,
        recorded_at: from_micros(col(row, at + 6)?),
    })
}
