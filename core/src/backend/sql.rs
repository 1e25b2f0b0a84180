//! What the SQL stores (SQLite, PostgreSQL) share: how a log row says what it is, how a stream
//! row keeps its snapshot pointer, how a listing row becomes a [`StreamInfo`], integer columns,
//! and their default limits.

use std::time::Duration;

use crate::error::{Result, StoreError};
use crate::event::{DeleteMode, Metadata};
use crate::id::{StreamId, Version};
use crate::snapshot::{SnapshotBody, StoredSnapshot};
use crate::store::{Limits, StreamInfo};

/// How a SQL backend stores a row of its log: an event, or a deletion marker. One encoding for
/// every backend that keeps events and markers in one ordered table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogKind {
    /// An appended event (stored as 0).
    Event,
    /// A deletion marker (stored as 1 for soft, 2 for hard).
    Deleted(DeleteMode),
}

impl LogKind {
    /// The stored code.
    pub const fn code(self) -> i16 {
        match self {
            LogKind::Event => 0,
            LogKind::Deleted(DeleteMode::Soft) => 1,
            LogKind::Deleted(DeleteMode::Hard) => 2,
        }
    }

    /// The kind of a stored code; `None` for a code no version of sekiban writes.
    ///
    /// ```
    /// use sekiban_core::backend::sql::LogKind;
    /// use sekiban_core::DeleteMode;
    /// let hard = LogKind::Deleted(DeleteMode::Hard);
    /// assert_eq!(LogKind::from_code(hard.code().into()), Some(hard));
    /// assert_eq!(LogKind::from_code(7), None);
    /// ```
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(LogKind::Event),
            1 => Some(LogKind::Deleted(DeleteMode::Soft)),
            2 => Some(LogKind::Deleted(DeleteMode::Hard)),
            _ => None,
        }
    }
}

/// The stream row's columns that hold its snapshot pointer, in [`PointerColumns`] order.
pub const POINTER_COLUMNS: &str =
    "snapshot_version, snapshot_type, snapshot_schema, snapshot_state, snapshot_blob";

/// A snapshot pointer as a stream row keeps it: five nullable columns ([`POINTER_COLUMNS`]),
/// all `NULL` when the stream has no snapshot.
///
/// ```
/// use sekiban_core::backend::sql::PointerColumns;
/// use sekiban_core::snapshot::{SnapshotBody, StoredSnapshot};
/// use sekiban_core::Version;
///
/// let p = StoredSnapshot {
///     version: Version(7),
///     state_type: "Cart".into(),
///     schema_version: 2,
///     body: SnapshotBody::Inline(bytes::Bytes::from_static(b"{}")),
/// };
/// let columns = PointerColumns::of(Some(&p)).unwrap();
/// assert_eq!(columns.version, Some(7));
/// assert_eq!(columns.into_pointer().unwrap(), Some(p));
/// assert_eq!(PointerColumns::of(None).unwrap().into_pointer().unwrap(), None);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PointerColumns {
    /// `snapshot_version`.
    pub version: Option<i64>,
    /// `snapshot_type`.
    pub state_type: Option<String>,
    /// `snapshot_schema`.
    pub schema_version: Option<i64>,
    /// `snapshot_state`: the inline state.
    pub inline: Option<Vec<u8>>,
    /// `snapshot_blob`: the blob reference, as JSON.
    pub blob: Option<String>,
}

impl PointerColumns {
    /// The columns of a pointer, or of none.
    pub fn of(pointer: Option<&StoredSnapshot>) -> Result<Self> {
        let Some(p) = pointer else {
            return Ok(PointerColumns::default());
        };
        let (inline, blob) = p.body.to_columns()?;
        Ok(PointerColumns {
            version: Some(to_i64(p.version.0)),
            state_type: Some(p.state_type.clone()),
            schema_version: Some(i64::from(p.schema_version)),
            inline,
            blob,
        })
    }

    /// The pointer the columns hold; `None` when `snapshot_version` is `NULL`.
    pub fn into_pointer(self) -> Result<Option<StoredSnapshot>> {
        let Some(version) = self.version else {
            return Ok(None);
        };
        let schema = self.schema_version.unwrap_or(0);
        Ok(Some(StoredSnapshot {
            version: Version(to_u64(version)),
            state_type: self.state_type.unwrap_or_default(),
            schema_version: u32::try_from(schema).map_err(|e| StoreError::Corrupt {
                what: format!("a snapshot schema version {schema}: {e}"),
            })?,
            body: SnapshotBody::from_columns(self.inline, self.blob)?,
        }))
    }

    /// The bytes a write of these columns sends: the inline state.
    pub fn sent(&self) -> usize {
        self.inline.as_ref().map_or(0, Vec::len)
    }
}

/// An event's metadata as a row keeps it: JSON text, `None` when it is empty.
///
/// ```
/// use sekiban_core::backend::sql::{metadata_from_text, metadata_text};
/// use sekiban_core::Metadata;
/// let m = Metadata::default();
/// assert_eq!(metadata_text(&m).unwrap(), None);
/// assert_eq!(metadata_from_text(None).unwrap(), m);
/// ```
pub fn metadata_text(m: &Metadata) -> Result<Option<String>> {
    if m.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(m)
        .map(Some)
        .map_err(|e| StoreError::invalid(format!("metadata cannot be encoded: {e}")))
}

/// An event's metadata from the text [`metadata_text`] stored; text that does not parse is
/// [`StoreError::Corrupt`].
pub fn metadata_from_text(text: Option<String>) -> Result<Metadata> {
    match text {
        None => Ok(Metadata::default()),
        Some(t) => serde_json::from_str(&t).map_err(|e| StoreError::Corrupt {
            what: format!("event metadata: {e}"),
        }),
    }
}

/// A version or count as a SQL `BIGINT` (saturating).
pub fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A `BIGINT` column as a version or count (a negative one, never written, as 0).
pub fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Where a listing of `tenant`'s streams resumes: the `(category, id)` of `after`, or before
/// everything when there is none or it is another tenant's.
///
/// ```
/// use sekiban_core::backend::sql::listing_cursor;
/// use sekiban_core::StreamId;
/// let s = StreamId::new("acme", "order", "7").unwrap();
/// assert_eq!(listing_cursor("acme", Some(&s)), ("order", "7"));
/// assert_eq!(listing_cursor("other", Some(&s)), ("", ""));
/// ```
pub fn listing_cursor<'a>(tenant: &str, after: Option<&'a StreamId>) -> (&'a str, &'a str) {
    after
        .filter(|a| a.tenant() == tenant)
        .map_or(("", ""), |a| (a.category(), a.id()))
}

/// A listing row as the catalog reports it: the stream, its head, how far a soft delete hid
/// it, and whether a hard delete erased it.
pub fn listed_stream(
    tenant: &str,
    category: String,
    id: String,
    version: i64,
    hidden_upto: i64,
    erased: bool,
) -> Result<StreamInfo> {
    let stream = StreamId::new(tenant, category, id).map_err(|e| StoreError::Corrupt {
        what: format!("a stored stream id: {e}"),
    })?;
    Ok(StreamInfo::of_head(
        stream,
        Version(to_u64(version)),
        Version(to_u64(hidden_upto)),
        erased,
    ))
}

/// The limits of a SQL store reading `page_events` rows a page: 1 MiB events, appends of up to
/// 1 000 events and 16 MiB, snapshots inline up to 256 KiB, 4 MiB pages, a 1 s poll interval,
/// re-sends recognised across the whole stream.
pub fn limits(page_events: usize) -> Limits {
    Limits {
        max_event_bytes: 1024 * 1024,
        max_append_events: 1000,
        max_append_bytes: 16 * 1024 * 1024,
        max_inline_snapshot_bytes: 256 * 1024,
        page_events,
        page_bytes: 4 * 1024 * 1024,
        feed_poll_interval: Duration::from_millis(1000),
        idempotency_window: u64::MAX,
    }
}
