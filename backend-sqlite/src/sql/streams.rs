//! Deleting a stream (soft or hard).

use super::*;

/// Deletes a stream inside the caller's transaction. `None`: nothing to delete (no stream, an
/// erased one, or a soft delete of a stream with no event since the last); else the snapshot
/// pointer it dropped.
pub(crate) fn delete(
    c: &Conn,
    s: &StreamId,
    mode: DeleteMode,
) -> Result<Option<Option<StoredSnapshot>>> {
    let Some(h) = head(c, OpKind::Delete, s)?.filter(|h| !h.erased) else {
        return Ok(None);
    };
    // A soft delete with nothing new to hide does nothing (no second marker).
    if mode == DeleteMode::Soft && h.hidden_upto >= h.version {
        return Ok(None);
    }
    let old = load_pointer(c, s)?;
    let kind = match mode {
        DeleteMode::Soft => {
            c.exec(
                OpKind::Delete,
                0,
                "UPDATE sekiban_streams SET hidden_upto = version, snapshot_version = NULL, snapshot_type = NULL, \
                 snapshot_schema = NULL, snapshot_state = NULL, snapshot_blob = NULL \
                 WHERE tenant = ?1 AND category = ?2 AND stream_id = ?3",
                params![s.tenant(), s.category(), s.id()],
            )?;
            LogKind::Deleted(DeleteMode::Soft).code()
        }
        DeleteMode::Hard => {
            c.exec(
                OpKind::Delete,
                0,
                "DELETE FROM sekiban_log WHERE tenant = ?1 AND category = ?2 AND stream_id = ?3 AND kind = 0",
                params![s.tenant(), s.category(), s.id()],
            )?;
            c.exec(
                OpKind::Delete,
                0,
                "UPDATE sekiban_streams SET erased = 1, snapshot_version = NULL, snapshot_type = NULL, \
                 snapshot_schema = NULL, snapshot_state = NULL, snapshot_blob = NULL \
                 WHERE tenant = ?1 AND category = ?2 AND stream_id = ?3",
                params![s.tenant(), s.category(), s.id()],
            )?;
            LogKind::Deleted(DeleteMode::Hard).code()
        }
    };
    c.exec(
        OpKind::Delete,
        0,
        "INSERT INTO sekiban_log (kind, tenant, category, stream_id, version, recorded_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![kind, s.tenant(), s.category(), s.id(), i(h.version.0), now_micros()],
    )?;
    Ok(Some(old))
}
