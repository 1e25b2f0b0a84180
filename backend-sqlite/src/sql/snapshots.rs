//! Snapshot pointers in the stream row.

use super::*;

/// The snapshot pointer in the row's [`POINTER_COLUMNS`] from column `at` on.
pub(super) fn read_pointer(row: &Row<'_>, at: usize) -> Result<Option<StoredSnapshot>> {
    PointerColumns {
        version: col(row, at)?,
        state_type: col(row, at + 1)?,
        schema_version: col(row, at + 2)?,
        inline: col(row, at + 3)?,
        blob: col(row, at + 4)?,
    }
    .into_pointer()
}

/// The stream's snapshot pointer.
pub(crate) fn load_pointer(c: &Conn, s: &StreamId) -> Result<Option<StoredSnapshot>> {
    let sql = format!(
        "SELECT erased, version, {POINTER_COLUMNS} FROM sekiban_streams WHERE tenant = ?1 AND category = ?2 AND stream_id = ?3"
    );
    let row = c.rows(
        OpKind::Snapshot,
        &sql,
        params![s.tenant(), s.category(), s.id()],
        |row| {
            if col::<i64>(row, 0)? != 0 {
                return Err(StoreError::StreamDeleted {
                    stream: s.clone(),
                    version: Version(u(col(row, 1)?)),
                });
            }
            Ok(Some(read_pointer(row, 2)?))
        },
    )?;
    let pointer = row.into_iter().next().flatten();
    let received = pointer.as_ref().map_or(0, StoredSnapshot::size);
    c.costs().record_bytes(OpKind::Snapshot, 0, received as u64);
    Ok(pointer)
}

pub(super) fn write_pointer_columns(
    c: &Conn,
    s: &StreamId,
    p: Option<&StoredSnapshot>,
) -> Result<()> {
    let p = PointerColumns::of(p)?;
    c.exec(
        OpKind::Snapshot,
        p.sent(),
        "UPDATE sekiban_streams SET snapshot_version = ?4, snapshot_type = ?5, snapshot_schema = ?6, \
         snapshot_state = ?7, snapshot_blob = ?8 WHERE tenant = ?1 AND category = ?2 AND stream_id = ?3",
        params![
            s.tenant(),
            s.category(),
            s.id(),
            p.version,
            p.state_type,
            p.schema_version,
            p.inline,
            p.blob
        ],
    )?;
    Ok(())
}

/// Step 2 of a snapshot save: the conditional pointer write.
pub(crate) fn save_pointer(
    c: &Conn,
    snapshot: &Snapshot,
    stored: StoredSnapshot,
) -> Result<PointerWrite> {
    let s = &snapshot.stream;
    let h = live(s, head(c, OpKind::Snapshot, s)?)?;
    check_snapshot_version(
        snapshot,
        h.as_ref().map(|h| h.version),
        h.as_ref().map_or(Version::NONE, |h| h.hidden_upto),
    )?;
    let current = load_pointer(c, s)?;
    if current
        .as_ref()
        .is_some_and(|p| p.version > snapshot.version)
    {
        return Ok(PointerWrite::Refused);
    }
    write_pointer_columns(c, s, Some(&stored))?;
    Ok(PointerWrite::Replaced(current))
}
