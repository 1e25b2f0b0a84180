//! Rows read back → the store's values (events, snapshot pointers); what
//! cannot be decoded is `Corrupt`.

use std::time::SystemTime;

use bytes::Bytes;
use sekiban_core::backend::sql::{PointerColumns, metadata_from_text, to_u64 as u};
use sekiban_core::snapshot::StoredSnapshot;
use sekiban_core::{EventId, RecordedEvent, StoreError, StreamId, Version};
use tokio_postgres::Row;

use super::Result;

/// A value that cannot be decoded: the stored data is corrupt.
pub(super) fn decode(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: format!("{what}: {e}"),
    }
}

/// Column `idx` of a row.
pub(super) fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    idx: usize,
) -> Result<T> {
    row.try_get(idx).map_err(|e| decode("a row read back", e))
}

/// The event of `stream` in the row's event columns from column `at` on.
pub(super) fn event_at(stream: StreamId, row: &Row, at: usize) -> Result<RecordedEvent> {
    let metadata = metadata_from_text(get(row, at + 5)?)?;
    Ok(RecordedEvent {
        stream,
        version: Version(u(get(row, at)?)),
        id: EventId(get(row, at + 1)?),
        event_type: get(row, at + 2)?,
        schema_version: u32::try_from(get::<i32>(row, at + 3)?)
            .map_err(|e| decode("a schema version", e))?,
        data: Bytes::from(get::<Vec<u8>>(row, at + 4)?),
        metadata,
        recorded_at: get::<SystemTime>(row, at + 6)?,
    })
}

/// The snapshot pointer in the row's [`POINTER_COLUMNS`] from column `at` on.
///
/// [`POINTER_COLUMNS`]: sekiban_core::backend::sql::POINTER_COLUMNS
pub(super) fn read_pointer(row: &Row, at: usize) -> Result<Option<StoredSnapshot>> {
    PointerColumns {
        version: get(row, at)?,
        state_type: get(row, at + 1)?,
        schema_version: get::<Option<i32>>(row, at + 2)?.map(i64::from),
        inline: get(row, at + 3)?,
        blob: get(row, at + 4)?,
    }
    .into_pointer()
}
