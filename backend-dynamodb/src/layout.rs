//! How a stream lives in the table: its partition key, and the encoding of one append's events
//! into the single binary attribute of the item that holds them.
//!
//! An append's events are one byte string: a format byte, then the events, each as its id
//! (16 bytes), schema version (4 bytes), and its type, metadata (JSON, empty when there is none)
//! and data, each preceded by its length (4 bytes). Format 0 is that as it is; format 1 is it
//! deflated, used when that is smaller (a write unit is charged per started KB of the item).

use std::time::SystemTime;

use bytes::Bytes;
use sekiban_core::{
    EventData, EventId, Metadata, RecordedEvent, Result, StoreError, StreamId, Version,
};

/// The partition key of a stream: tenant, category and id joined by `|`, which none of them may
/// contain, so no two streams share a key.
///
/// ```
/// # use sekiban_core::StreamId;
/// let s = StreamId::new("acme", "order", "42").unwrap();
/// assert_eq!(sekiban_dynamodb::stream_key(&s), "acme|order|42");
/// ```
pub fn stream_key(stream: &StreamId) -> String {
    format!("{}|{}|{}", stream.tenant(), stream.category(), stream.id())
}

const RAW: u8 = 0;
const DEFLATED: u8 = 1;
/// Deflate's level: the default trade of speed and size.
const LEVEL: u8 = 6;

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    // Lengths fit: an event is at most a few hundred KB (the item limit is 400 KB).
    out.extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(b);
}

/// Encodes an append's events as the item stores them, deflated when that is smaller.
pub fn encode_events(events: &[EventData]) -> Result<Vec<u8>> {
    let mut raw = vec![RAW];
    for e in events {
        raw.extend_from_slice(e.id.0.as_bytes());
        raw.extend_from_slice(&e.schema_version.to_le_bytes());
        put_bytes(&mut raw, e.event_type.as_bytes());
        let metadata = if e.metadata.is_empty() {
            Vec::new()
        } else {
            serde_json::to_vec(&e.metadata)
                .map_err(|err| StoreError::backend("encode event metadata", err))?
        };
        put_bytes(&mut raw, &metadata);
        put_bytes(&mut raw, &e.data);
    }
    let mut deflated = vec![DEFLATED];
    deflated.extend(miniz_oxide::deflate::compress_to_vec(&raw[1..], LEVEL));
    Ok(if deflated.len() < raw.len() {
        deflated
    } else {
        raw
    })
}

/// Reads what [`encode_events`] wrote.
struct Reader<'a> {
    at: &'a [u8],
    what: &'a str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.at.len() < n {
            return Err(StoreError::Corrupt {
                what: format!("{}: the events end early", self.what),
            });
        }
        let (head, rest) = self.at.split_at(n);
        self.at = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

/// The events of one append as [`encode_events`] stored them: the first at `first`, all
/// recorded at `recorded_at`.
pub fn decode_events(
    stream: &StreamId,
    first: Version,
    recorded_at: SystemTime,
    stored: &[u8],
) -> Result<Vec<RecordedEvent>> {
    let what = format!("the events of {stream} from version {first}");
    let corrupt = |why: String| StoreError::Corrupt {
        what: format!("{what}: {why}"),
    };
    let inflated;
    let body = match stored.split_first() {
        Some((&RAW, rest)) => rest,
        Some((&DEFLATED, rest)) => {
            inflated = miniz_oxide::inflate::decompress_to_vec(rest)
                .map_err(|e| corrupt(format!("they do not inflate ({e:?})")))?;
            &inflated[..]
        }
        Some((other, _)) => return Err(corrupt(format!("unknown format {other}"))),
        None => return Err(corrupt("no bytes".into())),
    };
    let mut r = Reader {
        at: body,
        what: &what,
    };
    let mut out = Vec::new();
    while !r.at.is_empty() {
        let id = uuid::Uuid::from_slice(r.take(16)?).map_err(|e| corrupt(e.to_string()))?;
        let schema_version = r.u32()?;
        let event_type = std::str::from_utf8(r.bytes()?)
            .map_err(|e| corrupt(format!("an event type is not UTF-8: {e}")))?
            .to_string();
        let metadata = match r.bytes()? {
            [] => Metadata::default(),
            json => serde_json::from_slice(json)
                .map_err(|e| corrupt(format!("metadata does not parse: {e}")))?,
        };
        let data = Bytes::copy_from_slice(r.bytes()?);
        out.push(RecordedEvent {
            stream: stream.clone(),
            version: first.plus(out.len() as u64),
            id: EventId(id),
            event_type,
            schema_version,
            data,
            metadata,
            recorded_at,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn json_events(n: usize, size: usize) -> Vec<EventData> {
        (0..n)
            .map(|i| {
                // A random reference (32 hex digits) in every event, the rest ordinary JSON.
                let head = format!(
                    r#"{{"account":"acc-{i:04}","ref":"{}","amount":{},"memo":""#,
                    uuid::Uuid::new_v4().simple(),
                    i * 7919 % 1000
                );
                let words = "deposit at the branch counter by cheque ".repeat(4);
                let pad = &words[..size.saturating_sub(head.len() + 2)];
                EventData::new("Deposited", format!("{head}{pad}\"}}"))
            })
            .collect()
    }

    #[test]
    fn events_come_back_as_written() {
        let s = StreamId::new("acme", "order", "42").unwrap();
        let mut events = json_events(3, 100);
        events[1].metadata.actor = Some("Ünïcode".into());
        events[1].metadata.extra.insert("Key".into(), String::new());
        events[2].schema_version = 7;
        events[2].data = Bytes::from_static(&[0, 255, 1]);
        let at = UNIX_EPOCH + Duration::from_micros(1_795_000_000_123_456);
        let stored = encode_events(&events).unwrap();
        let back = decode_events(&s, Version(5), at, &stored).unwrap();
        assert_eq!(back.len(), 3);
        for (i, (e, r)) in events.iter().zip(&back).enumerate() {
            assert_eq!(r.version, Version(5 + i as u64));
            assert_eq!(
                (&r.id, &r.event_type, r.schema_version, &r.data, &r.metadata),
                (&e.id, &e.event_type, e.schema_version, &e.data, &e.metadata)
            );
            assert_eq!((&r.stream, r.recorded_at), (&s, at));
        }
    }

    #[test]
    fn ten_json_events_of_100_bytes_fit_one_kb_deflated() {
        let events = json_events(10, 100);
        assert!(events.iter().all(|e| e.size() == 100 + "Deposited".len()));
        let stored = encode_events(&events).unwrap();
        assert_eq!(stored[0], DEFLATED);
        // With the key and attribute names the item stays within 1 KB: 2 write units in a
        // transaction.
        assert!(stored.len() < 800, "{} bytes", stored.len());
        println!("10 JSON events of 100 bytes: {} bytes stored", stored.len());
    }

    #[test]
    fn incompressible_events_stay_raw() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let data: Vec<u8> = (0..800)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        let stored = encode_events(&[EventData::new("Blob", data)]).unwrap();
        assert_eq!(stored[0], RAW);
        assert!(
            stored.len() <= 1 + 16 + 4 + 4 + 4 + 4 + 4 + 800,
            "{}",
            stored.len()
        );
    }

    #[test]
    fn damage_is_corrupt_not_a_panic() {
        let s = StreamId::new("t", "c", "1").unwrap();
        let stored = encode_events(&json_events(2, 100)).unwrap();
        for bad in [
            &[][..],
            &[9, 1, 2][..],
            &stored[..stored.len() - 3],
            &[RAW, 1, 2, 3][..],
        ] {
            let r = decode_events(&s, Version(1), UNIX_EPOCH, bad);
            assert!(
                matches!(r, Err(StoreError::Corrupt { .. })),
                "{bad:?}: {r:?}"
            );
        }
    }
}
