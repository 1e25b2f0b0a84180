//! The documents of one stream, all in its logical partition (tenant, `category|id`), told apart
//! by `k`:
//!
//! | `id` | `k` | holds |
//! |---|---|---|
//! | `h` | `h` | the head: version, the version a soft delete hid up to, the erased flag, the ids of the latest events (the idempotency window) |
//! | `a` + first version (20 digits) | `a` | one append's events, rewritten only to mark it hidden (`z`) by a soft delete |
//! | `p` | `p` | the snapshot pointer (inline state, or a blob reference) |
//! | `d` + version + `s`/`h` + the delete's number | `d` | a deletion marker, for the change feed |
//!
//! `o` orders a stream's documents in forward queries: -1 for the head (first), twice the last
//! version for an append (so `ORDER BY c.o` is version order), twice the version plus one for the
//! snapshot pointer; `r` in backward ones: the head first again, then the others from the latest
//! (`-o`), so the appends after a snapshot come before its pointer.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use sekiban_core::snapshot::{BlobRef, SnapshotBody, StoredSnapshot};
use sekiban_core::{
    DeleteMode, EventData, EventId, Metadata, RecordedEvent, Result, StoreError, StreamId, Version,
};

/// The kinds of document (`k`).
pub(crate) const HEAD: &str = "h";
pub(crate) const APPEND: &str = "a";
pub(crate) const POINTER: &str = "p";
pub(crate) const MARKER: &str = "d";

/// The id of the head document.
pub(crate) const HEAD_ID: &str = "h";
/// The id of the snapshot pointer document.
pub(crate) const POINTER_ID: &str = "p";

/// The second part of a stream's partition key: category and id joined by `|`, which neither may
/// contain, so no two streams of a tenant share a logical partition.
///
/// ```
/// # use sekiban_core::StreamId;
/// let s = StreamId::new("acme", "order", "42").unwrap();
/// assert_eq!(sekiban_cosmos::stream_partition(&s), ("acme", "order|42".to_string()));
/// ```
pub fn stream_partition(stream: &StreamId) -> (&str, String) {
    (
        stream.tenant(),
        format!("{}|{}", stream.category(), stream.id()),
    )
}

/// The stream a document's partition key names.
pub(crate) fn stream_of(tenant: &str, s: &str) -> Result<StreamId> {
    let corrupt = || StoreError::Corrupt {
        what: format!("a document of tenant {tenant} names stream {s:?}, not category|id"),
    };
    let (category, id) = s.split_once('|').ok_or_else(corrupt)?;
    StreamId::new(tenant, category, id).map_err(|_| corrupt())
}

/// Microseconds since the epoch.
pub(crate) fn micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

pub(crate) fn from_micros(us: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

/// A stream's head document.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct Head {
    pub id: String,
    pub t: String,
    pub s: String,
    pub k: String,
    pub o: i64,
    #[serde(default = "head_r")]
    pub r: i64,
    /// The stream's version.
    pub v: u64,
    /// The version a soft delete hid up to (0: none).
    #[serde(default)]
    pub h: u64,
    /// Erased by a hard delete: a tombstone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub x: bool,
    /// How many deletes the stream had (each has its own marker).
    #[serde(default)]
    pub d: u64,
    /// The ids of the latest events (the idempotency window), oldest first, with their versions.
    #[serde(default)]
    pub w: Vec<(EventId, u64)>,
    /// When it last changed (µs since the epoch).
    pub ts: i64,
}

impl Head {
    /// The head of a stream that has none yet.
    pub fn new(stream: &StreamId) -> Self {
        let (t, s) = stream_partition(stream);
        Head {
            id: HEAD_ID.into(),
            t: t.into(),
            s,
            k: HEAD.into(),
            o: -1,
            r: head_r(),
            v: 0,
            h: 0,
            x: false,
            d: 0,
            w: Vec::new(),
            ts: 0,
        }
    }

    /// The head after appending `ids` (the first at `first`), keeping the latest `window` ids.
    pub fn appended(
        &self,
        ids: impl Iterator<Item = EventId>,
        first: u64,
        window: u64,
        now: i64,
    ) -> Self {
        let mut next = self.clone();
        for (i, id) in ids.enumerate() {
            next.w.push((id, first + i as u64));
            next.v = first + i as u64;
        }
        let keep_after = next.v.saturating_sub(window);
        next.w.retain(|(_, v)| *v > keep_after);
        next.ts = now;
        next
    }

    /// Whether one of `ids` is in the window.
    pub fn knows_any<'a>(&self, mut ids: impl Iterator<Item = &'a EventId>) -> bool {
        ids.any(|id| self.w.iter().any(|(w, _)| w == id))
    }
}

fn head_r() -> i64 {
    -MAX_ORDER
}

/// One event as an append document stores it. The data is a JSON string when it is UTF-8 (`d`)
/// and base64 otherwise (`b`); either way it comes back byte for byte.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct StoredEvent {
    pub i: EventId,
    pub y: String,
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub n: u32,
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub m: Metadata,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b: Option<String>,
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

impl StoredEvent {
    pub fn of(e: &EventData) -> Self {
        let (d, b) = match std::str::from_utf8(&e.data) {
            Ok(text) => (Some(text.to_owned()), None),
            Err(_) => (None, Some(B64.encode(&e.data))),
        };
        StoredEvent {
            i: e.id,
            y: e.event_type.clone(),
            n: e.schema_version,
            m: e.metadata.clone(),
            d,
            b,
        }
    }

    fn data(&self, what: &dyn Fn() -> String) -> Result<Bytes> {
        match (&self.d, &self.b) {
            (Some(text), None) => Ok(Bytes::from(text.clone().into_bytes())),
            (None, Some(b64)) => {
                B64.decode(b64)
                    .map(Bytes::from)
                    .map_err(|e| StoreError::Corrupt {
                        what: format!("{}: the data is not base64 ({e})", what()),
                    })
            }
            _ => Err(StoreError::Corrupt {
                what: format!("{}: the event has no data field, or two", what()),
            }),
        }
    }
}

/// One append's events: a document that is written once and never changed, so the change feed
/// (which keeps only a document's latest version) delivers every event.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct AppendDoc {
    pub id: String,
    pub t: String,
    pub s: String,
    pub k: String,
    pub o: i64,
    pub r: i64,
    /// First version.
    pub f: u64,
    /// Last version.
    pub l: u64,
    /// When it was recorded (µs since the epoch).
    pub ts: i64,
    pub e: Vec<StoredEvent>,
    /// Hidden by a soft delete (kept for re-sends within the idempotency window; the change
    /// feed and reads skip it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub z: bool,
}

/// The id of the append document whose first version is `first`.
pub(crate) fn append_id(first: u64) -> String {
    format!("a{first:020}")
}

/// The order key of an append ending at `last`.
pub(crate) fn append_order(last: u64) -> i64 {
    i64::try_from(last.saturating_mul(2)).unwrap_or(MAX_ORDER)
}

/// The largest order key: JSON numbers are exact up to 2^53.
pub(crate) const MAX_ORDER: i64 = (1 << 53) - 1;

impl AppendDoc {
    pub fn new(stream: &StreamId, first: u64, events: &[EventData], now: i64) -> Self {
        let (t, s) = stream_partition(stream);
        let last = first + events.len() as u64 - 1;
        AppendDoc {
            id: append_id(first),
            t: t.into(),
            s,
            k: APPEND.into(),
            o: append_order(last),
            r: -append_order(last),
            f: first,
            l: last,
            ts: now,
            e: events.iter().map(StoredEvent::of).collect(),
            z: false,
        }
    }

    /// The events, as recorded.
    pub fn events(&self, stream: &StreamId) -> Result<Vec<RecordedEvent>> {
        if self.e.len() as u64 != self.l + 1 - self.f {
            return Err(StoreError::Corrupt {
                what: format!(
                    "append {} of {stream}: {} events for versions {}..={}",
                    self.id,
                    self.e.len(),
                    self.f,
                    self.l
                ),
            });
        }
        let recorded_at = from_micros(self.ts);
        self.e
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let version = Version(self.f + i as u64);
                let what = || format!("event {version} of {stream}");
                Ok(RecordedEvent {
                    stream: stream.clone(),
                    version,
                    id: e.i,
                    event_type: e.y.clone(),
                    schema_version: e.n,
                    data: e.data(&what)?,
                    metadata: e.m.clone(),
                    recorded_at,
                })
            })
            .collect()
    }
}

/// The order key of a snapshot pointer at `version`: between the appends that end at it and
/// those that end after it, so a query by `r` meets the appends after the snapshot, then the
/// pointer.
pub(crate) fn pointer_order(version: u64) -> i64 {
    i64::try_from(version.saturating_mul(2).saturating_add(1)).unwrap_or(MAX_ORDER)
}

/// A stream's snapshot pointer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PointerDoc {
    pub id: String,
    pub t: String,
    pub s: String,
    pub k: String,
    pub o: i64,
    #[serde(default)]
    pub r: i64,
    pub v: u64,
    pub y: String,
    pub n: u32,
    /// The state inline, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b: Option<String>,
    /// The blob holding the state.
    #[serde(rename = "br", default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<BlobRef>,
    /// The save that wrote it (a token drawn once per save): a save the SDK sent again after
    /// its reply was lost finds its own pointer by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub w: Option<String>,
    /// The blob of the pointer it replaced, when that one was offloaded: what a save that finds
    /// its own pointer still has to delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pb: Option<BlobRef>,
}

impl PointerDoc {
    pub fn new(stream: &StreamId, stored: &StoredSnapshot) -> Self {
        let (t, s) = stream_partition(stream);
        let (b, blob) = match &stored.body {
            SnapshotBody::Inline(bytes) => (Some(B64.encode(bytes)), None),
            SnapshotBody::Offloaded(r) => (None, Some(r.clone())),
        };
        PointerDoc {
            id: POINTER_ID.into(),
            t: t.into(),
            s,
            k: POINTER.into(),
            o: pointer_order(stored.version.0),
            r: -pointer_order(stored.version.0),
            v: stored.version.0,
            y: stored.state_type.clone(),
            n: stored.schema_version,
            b,
            blob,
            w: None,
            pb: None,
        }
    }

    pub fn stored(&self, stream: &StreamId) -> Result<StoredSnapshot> {
        let body = match (&self.b, &self.blob) {
            (Some(b64), None) => {
                SnapshotBody::Inline(Bytes::from(B64.decode(b64).map_err(|e| {
                    StoreError::Corrupt {
                        what: format!("the snapshot of {stream}: the state is not base64 ({e})"),
                    }
                })?))
            }
            (None, Some(r)) => SnapshotBody::Offloaded(r.clone()),
            _ => {
                return Err(StoreError::Corrupt {
                    what: format!("the snapshot pointer of {stream} holds no state, or two"),
                });
            }
        };
        Ok(StoredSnapshot {
            version: Version(self.v),
            state_type: self.y.clone(),
            schema_version: self.n,
            body,
        })
    }
}

/// A deletion marker: its own document, so the change feed delivers it after the stream's events.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct MarkerDoc {
    pub id: String,
    pub t: String,
    pub s: String,
    pub k: String,
    pub o: i64,
    pub v: u64,
    /// `s` soft, `h` hard.
    pub m: String,
    pub ts: i64,
}

impl MarkerDoc {
    /// The marker of the stream's delete number `n`, at `version`.
    pub fn new(stream: &StreamId, version: u64, n: u64, mode: DeleteMode, now: i64) -> Self {
        let (t, s) = stream_partition(stream);
        let m = match mode {
            DeleteMode::Soft => "s",
            DeleteMode::Hard => "h",
        };
        MarkerDoc {
            id: format!("d{version:020}{m}{n}"),
            t: t.into(),
            s,
            k: MARKER.into(),
            o: append_order(version),
            v: version,
            m: m.into(),
            ts: now,
        }
    }

    pub fn mode(&self) -> DeleteMode {
        if self.m == "h" {
            DeleteMode::Hard
        } else {
            DeleteMode::Soft
        }
    }
}

/// Any document of the container, told apart by `k` (with the system properties a read returns).
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct AnyDoc {
    pub k: String,
    #[serde(default, rename = "_etag")]
    pub etag: Option<String>,
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

impl AnyDoc {
    /// The document as `T` (its kind checked by the caller).
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        let mut map = self.rest.clone();
        map.insert("k".into(), serde_json::Value::String(self.k.clone()));
        serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| StoreError::Corrupt {
            what: format!("a document of kind {:?} does not parse ({e})", self.k),
        })
    }
}

/// Serialises a document as the request body, for its size.
pub(crate) fn to_json<T: Serialize>(doc: &T) -> Result<serde_json::Value> {
    serde_json::to_value(doc).map_err(|e| StoreError::backend("encode a document", e))
}

/// The size of a document as Cosmos DB counts it against its 2 MB limit (its JSON).
pub(crate) fn json_size(v: &serde_json::Value) -> usize {
    serde_json::to_vec(v).map_or(0, |b| b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A realistic event: a JSON object of about `bytes` bytes with quoted strings and numbers.
    fn json_event(i: usize, bytes: usize) -> EventData {
        let mut body = format!(
            r#"{{"orderId":"ord-{i:08}","customer":"c-{:06}","amount":{}.{:02},"currency":"EUR","note":""#,
            i * 7 % 1_000_000,
            i * 13 % 10_000,
            i % 100
        );
        while body.len() + 2 < bytes {
            body.push('x');
        }
        body.push_str(r#""}"#);
        EventData::new("OrderPlaced", body)
    }

    fn size_of(stream: &StreamId, events: &[EventData], base64_always: bool) -> usize {
        let mut doc = AppendDoc::new(stream, 1, events, 0);
        if base64_always {
            for (s, e) in doc.e.iter_mut().zip(events) {
                s.d = None;
                s.b = Some(B64.encode(&e.data));
            }
        }
        json_size(&to_json(&doc).unwrap())
    }

    /// Event data as a JSON string (UTF-8) against base64 always: the string is what a document
    /// is charged for, so the smaller encoding is kept for text (the README's table).
    #[test]
    fn text_data_is_stored_smaller_than_base64() {
        let s = StreamId::new("acme", "order", "1").unwrap();
        for (n, bytes) in [(1, 200), (10, 200), (100, 200), (10, 1000)] {
            let events: Vec<_> = (0..n).map(|i| json_event(i, bytes)).collect();
            let data: usize = events.iter().map(|e| e.data.len()).sum();
            let text = size_of(&s, &events, false);
            let b64 = size_of(&s, &events, true);
            println!("| {n} × {bytes} B JSON | {data} | {text} | {b64} |");
            assert!(
                text < b64,
                "{n} events of {bytes} B: {text} as text, {b64} as base64"
            );
        }
        // Bytes that are not UTF-8 go as base64, and come back the same.
        let binary = EventData::new("Blob", vec![0xff, 0x00, 0x80, 0x7f]);
        let doc = AppendDoc::new(&s, 1, std::slice::from_ref(&binary), 0);
        assert!(doc.e[0].d.is_none() && doc.e[0].b.is_some());
        assert_eq!(doc.events(&s).unwrap()[0].data, binary.data);
    }
}
