//! Events as written and as read back.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::id::{EventId, StreamId, Version};

/// Longest event type, in bytes.
pub const MAX_EVENT_TYPE_LEN: usize = 200;

/// What an append expects of the stream's current version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// Append whatever the stream's version is.
    Any,
    /// The stream must not exist yet (version 0).
    NoStream,
    /// The stream must have at least one event.
    StreamExists,
    /// The stream must be exactly at this version (its head). `Exact(Version(0))` equals `NoStream`.
    Exact(Version),
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::StreamExists => f.write_str("stream exists"),
            ExpectedVersion::Exact(v) => write!(f, "{v}"),
        }
    }
}

impl ExpectedVersion {
    /// Whether a stream at `head` satisfies this expectation.
    pub fn accepts(self, head: Version) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => head == Version::NONE,
            ExpectedVersion::StreamExists => head > Version::NONE,
            ExpectedVersion::Exact(v) => v == head,
        }
    }
}

/// Tracing and audit information carried beside an event. Values may not contain NUL.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Id shared by everything one request caused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Id of the message that caused this event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    /// Who caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Anything else, by key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

impl Metadata {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.correlation_id.is_none()
            && self.causation_id.is_none()
            && self.actor.is_none()
            && self.extra.is_empty()
    }

    fn strings(&self) -> impl Iterator<Item = &str> {
        [&self.correlation_id, &self.causation_id, &self.actor]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .chain(
                self.extra
                    .iter()
                    .flat_map(|(k, v)| [k.as_str(), v.as_str()]),
            )
    }

    /// Bytes the metadata counts toward an event's size.
    pub fn size(&self) -> usize {
        self.strings().map(str::len).sum()
    }

    fn validate(&self) -> Result<()> {
        if self.strings().any(|s| s.contains('\0')) {
            return Err(StoreError::invalid(
                "metadata contains a NUL character, which not every backend can store; remove it",
            ));
        }
        Ok(())
    }
}

/// An event to append: an id, a type, a schema version and opaque bytes.
///
/// `data` is usually JSON produced by serde, but any bytes come back exactly as written.
///
/// ```
/// use sekiban_core::EventData;
/// let e = EventData::new("OrderPlaced", r#"{"total": 42}"#).with_schema_version(2);
/// assert_eq!(e.event_type, "OrderPlaced");
/// assert_eq!(&e.data[..], br#"{"total": 42}"#);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventData {
    /// Caller-chosen id; re-sending the same events makes an append idempotent.
    pub id: EventId,
    /// Event type name.
    pub event_type: String,
    /// Schema version of `data`, for upcasting.
    pub schema_version: u32,
    /// The payload, opaque to the store.
    pub data: Bytes,
    /// Tracing and audit information.
    pub metadata: Metadata,
}

impl EventData {
    /// An event with a fresh id, schema version 1 and empty metadata.
    pub fn new(event_type: impl Into<String>, data: impl Into<Bytes>) -> Self {
        EventData {
            id: EventId::new(),
            event_type: event_type.into(),
            schema_version: 1,
            data: data.into(),
            metadata: Metadata::default(),
        }
    }

    /// Sets the id.
    pub fn with_id(mut self, id: EventId) -> Self {
        self.id = id;
        self
    }

    /// Sets the schema version.
    pub fn with_schema_version(mut self, v: u32) -> Self {
        self.schema_version = v;
        self
    }

    /// Sets the metadata.
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Bytes this event counts toward the size limits: data, type and metadata.
    pub fn size(&self) -> usize {
        self.data.len() + self.event_type.len() + self.metadata.size()
    }

    /// Checks what does not depend on a store's limits.
    pub fn validate(&self) -> Result<()> {
        if self.event_type.is_empty() {
            return Err(StoreError::invalid(format!(
                "event {} has an empty event type; name the event",
                self.id
            )));
        }
        if self.event_type.len() > MAX_EVENT_TYPE_LEN {
            return Err(StoreError::invalid(format!(
                "event {} has a type of {} bytes; the maximum is {MAX_EVENT_TYPE_LEN}",
                self.id,
                self.event_type.len()
            )));
        }
        if self.event_type.contains('\0') {
            return Err(StoreError::invalid(format!(
                "event {} has a NUL character in its type",
                self.id
            )));
        }
        self.metadata.validate()
    }

    /// Whether `recorded` holds the same content as this event (id, type, schema, data, metadata).
    pub fn same_content(&self, recorded: &RecordedEvent) -> bool {
        self.id == recorded.id
            && self.event_type == recorded.event_type
            && self.schema_version == recorded.schema_version
            && self.data == recorded.data
            && self.metadata == recorded.metadata
    }
}

/// An event as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// Its stream.
    pub stream: StreamId,
    /// Its position in the stream.
    pub version: Version,
    /// The caller's id.
    pub id: EventId,
    /// Event type name.
    pub event_type: String,
    /// Schema version of `data`.
    pub schema_version: u32,
    /// The payload, byte-for-byte as appended.
    pub data: Bytes,
    /// Metadata, exactly as appended.
    pub metadata: Metadata,
    /// When the store recorded it (the store's clock).
    pub recorded_at: SystemTime,
}

impl RecordedEvent {
    /// Its size as the limits count it (data + type + metadata), as [`EventData::size`].
    pub fn size(&self) -> usize {
        self.data.len() + self.event_type.len() + self.metadata.size()
    }

    /// The event as it was appended (for re-sending or copying between stores).
    pub fn to_event_data(&self) -> EventData {
        EventData {
            id: self.id,
            event_type: self.event_type.clone(),
            schema_version: self.schema_version,
            data: self.data.clone(),
            metadata: self.metadata.clone(),
        }
    }
}

/// What an append did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendResult {
    /// Version of the first event of the append.
    pub first: Version,
    /// Version of the last event: the stream's head right after the append.
    pub last: Version,
    /// True when the events were already stored by an earlier identical append, so nothing was written.
    pub deduplicated: bool,
}

/// Direction of a read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// Oldest first.
    #[default]
    Forward,
    /// Newest first.
    Backward,
}

/// How to read a stream.
///
/// ```
/// use sekiban_core::{ReadOptions, Version};
/// let last_ten = ReadOptions::backward().max_count(10);
/// let tail = ReadOptions::forward().from(Version(5));
/// # let _ = (last_ten, tail);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadOptions {
    /// First version to return (inclusive). `None`: the first event forward, the head backward.
    pub from: Option<Version>,
    /// Order.
    pub direction: Direction,
    /// Most events to return. `None`: all.
    pub max_count: Option<u64>,
}

impl ReadOptions {
    /// Everything, oldest first.
    pub fn forward() -> Self {
        Self::default()
    }
    /// Everything, newest first.
    pub fn backward() -> Self {
        ReadOptions {
            direction: Direction::Backward,
            ..Self::default()
        }
    }
    /// Starts at `v` (inclusive).
    pub fn from(mut self, v: Version) -> Self {
        self.from = Some(v);
        self
    }
    /// Returns at most `n` events.
    pub fn max_count(mut self, n: u64) -> Self {
        self.max_count = Some(n);
        self
    }
}

/// How to delete a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeleteMode {
    /// Hide the stream's events from reads and the feed; a later append continues its versions.
    Soft,
    /// Erase events, snapshots and blobs (GDPR); a tombstone keeps the last version so the stream
    /// can never be written again.
    Hard,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_versions() {
        let (none, three) = (Version(0), Version(3));
        assert!(ExpectedVersion::Any.accepts(none) && ExpectedVersion::Any.accepts(three));
        assert!(
            ExpectedVersion::NoStream.accepts(none) && !ExpectedVersion::NoStream.accepts(three)
        );
        assert!(
            !ExpectedVersion::StreamExists.accepts(none)
                && ExpectedVersion::StreamExists.accepts(three)
        );
        assert!(ExpectedVersion::Exact(three).accepts(three));
        assert!(!ExpectedVersion::Exact(Version(2)).accepts(three));
        assert!(!ExpectedVersion::Exact(Version(4)).accepts(three));
    }
}
