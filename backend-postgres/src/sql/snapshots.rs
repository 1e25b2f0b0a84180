//! Snapshot pointers: saving one (step 2 of a snapshot save) and loading it.

use sekiban_core::backend::sql::{to_i64 as i, to_u64 as u};
use sekiban_core::snapshot::{PointerWrite, Snapshot, StoredSnapshot, check_snapshot_version};
use sekiban_core::{OpKind, StoreError, StreamId, Version};

use super::rows::{get, read_pointer};
use super::statements::Sql;
use super::{Db, Result};

impl Db {
    /// Step 2 of a snapshot save, in one statement.
    pub(crate) async fn save_pointer(
        &self,
        snapshot: &Snapshot,
        stored: StoredSnapshot,
    ) -> Result<PointerWrite> {
        let s = &snapshot.stream;
        let (inline, blob) = stored.body.to_columns()?;
        let (t, c, id) = (s.tenant(), s.category(), s.id());
        let version = i(stored.version.0);
        let schema = i32::try_from(stored.schema_version).unwrap_or(i32::MAX);
        let sent = inline.as_ref().map_or(0, Vec::len);
        let rows = self
            .query(
                OpKind::Snapshot,
                sent,
                Sql::SavePointer,
                &[
                    &t,
                    &c,
                    &id,
                    &version,
                    &stored.state_type,
                    &schema,
                    &inline,
                    &blob,
                ],
            )
            .await?;
        let Some(row) = rows.first() else {
            check_snapshot_version(snapshot, None, Version::NONE)?;
            return Ok(PointerWrite::Refused);
        };
        let head = Version(u(get(row, 0)?));
        if get::<bool>(row, 2)? {
            return Err(StoreError::StreamDeleted {
                stream: s.clone(),
                version: head,
            });
        }
        check_snapshot_version(snapshot, Some(head), Version(u(get(row, 1)?)))?;
        let old = read_pointer(row, 3)?;
        if get::<i64>(row, 8)? > 0 {
            Ok(PointerWrite::Replaced(old))
        } else {
            Ok(PointerWrite::Refused)
        }
    }

    /// The snapshot pointer.
    pub(crate) async fn load_pointer(&self, s: &StreamId) -> Result<Option<StoredSnapshot>> {
        let (t, c, id) = (s.tenant(), s.category(), s.id());
        let rows = self
            .query(OpKind::Snapshot, 0, Sql::LoadPointer, &[&t, &c, &id])
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        if get::<bool>(row, 0)? {
            return Err(StoreError::StreamDeleted {
                stream: s.clone(),
                version: Version(u(get(row, 1)?)),
            });
        }
        let pointer = read_pointer(row, 2)?;
        let received = pointer.as_ref().map_or(0, StoredSnapshot::size);
        self.costs
            .record_bytes(OpKind::Snapshot, 0, received as u64);
        Ok(pointer)
    }
}
