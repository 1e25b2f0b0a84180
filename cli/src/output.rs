//! Formatting what the commands print: times, tables, payload previews, JSON lines of events.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sekiban_core::{FeedItem, Metadata, RecordedEvent};
use serde::Serialize;
use serde_json::value::RawValue;

/// A time as RFC 3339 in UTC with microseconds, e.g. `2024-02-29T13:05:09.250000Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let nanos: i128 = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    };
    let secs = nanos.div_euclid(1_000_000_000);
    let micros = nanos.rem_euclid(1_000_000_000) / 1000;
    let days = secs.div_euclid(86_400) as i64;
    let day_secs = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        day_secs / 3600,
        day_secs / 60 % 60,
        day_secs % 60
    )
}

/// Year, month and day of a day count since 1970-01-01 (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // 0..=365
    let mp = (5 * doy + 2) / 153; // March-based month, 0..=11
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A short, one-line view of a payload for tables: the text when it is UTF-8 (control characters
/// escaped, cut at `max` characters), else its size.
pub fn preview(data: &[u8], max: usize) -> String {
    let Ok(text) = std::str::from_utf8(data) else {
        return format!("<{} bytes, not UTF-8>", data.len());
    };
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Text aligned in columns under a header row.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            l.push_str(cell);
            if i + 1 < widths.len() {
                l.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// JSON text without the whitespace between tokens; strings are kept as they are. `json` must be
/// valid JSON.
pub fn minify_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}

/// The payload as a JSON value when it is valid JSON, in its own key order and number spelling,
/// on one line.
pub fn data_as_json(data: &[u8]) -> Option<Box<RawValue>> {
    let raw: &RawValue = serde_json::from_slice(data).ok()?;
    RawValue::from_string(minify_json(raw.get())).ok()
}

/// One event as a JSON line (`events --json`, `tail --json`).
#[derive(Debug, Serialize)]
pub struct EventLine<'a> {
    /// `"event"` in `tail` output; absent in `events` output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// `tenant/category/id`.
    pub stream: String,
    /// Position in the stream.
    pub version: u64,
    /// Event id.
    pub id: String,
    /// Event type.
    #[serde(rename = "type")]
    pub event_type: &'a str,
    /// Schema version.
    pub schema_version: u32,
    /// Metadata.
    pub metadata: &'a Metadata,
    /// RFC 3339, UTC.
    pub recorded_at: String,
    /// The exact bytes, standard base64.
    pub data_b64: String,
    /// The bytes as JSON, when they are JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
    /// `tail`: the checkpoint to resume after this item (on the last item of each batch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<&'a str>,
}

impl<'a> EventLine<'a> {
    /// The line of `e`.
    pub fn new(e: &'a RecordedEvent) -> Self {
        EventLine {
            kind: None,
            stream: e.stream.to_string(),
            version: e.version.0,
            id: e.id.to_string(),
            event_type: &e.event_type,
            schema_version: e.schema_version,
            metadata: &e.metadata,
            recorded_at: rfc3339(e.recorded_at),
            data_b64: STANDARD.encode(&e.data),
            data: data_as_json(&e.data),
            checkpoint: None,
        }
    }
}

/// A deletion marker of the change feed as a JSON line (`tail --json`).
#[derive(Debug, Serialize)]
pub struct DeletedLine<'a> {
    /// Always `"deleted"`.
    pub kind: &'static str,
    /// `tenant/category/id`.
    pub stream: String,
    /// The stream's last version when deleted.
    pub version: u64,
    /// `"soft"` or `"hard"`.
    pub mode: &'static str,
    /// The checkpoint to resume after this item (on the last item of each batch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<&'a str>,
}

/// One feed item as a JSON line, with `checkpoint` when given.
pub fn feed_item_json(item: &FeedItem, checkpoint: Option<&str>) -> serde_json::Result<String> {
    match item {
        FeedItem::Event(e) => {
            let mut line = EventLine::new(e);
            line.kind = Some("event");
            line.checkpoint = checkpoint;
            serde_json::to_string(&line)
        }
        FeedItem::Deleted {
            stream,
            version,
            mode,
        } => serde_json::to_string(&DeletedLine {
            kind: "deleted",
            stream: stream.to_string(),
            version: version.0,
            mode: match mode {
                sekiban_core::DeleteMode::Soft => "soft",
                sekiban_core::DeleteMode::Hard => "hard",
            },
            checkpoint,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: i64, nanos: u32) -> SystemTime {
        if secs >= 0 {
            UNIX_EPOCH + Duration::new(secs as u64, nanos)
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::new(0, nanos)
        }
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(at(0, 0)), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(at(951_782_400, 0)), "2000-02-29T00:00:00.000000Z");
        assert_eq!(
            rfc3339(at(1_700_000_000, 123_456_789)),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(rfc3339(at(4_107_542_399, 0)), "2100-02-28T23:59:59.000000Z");
        assert_eq!(rfc3339(at(-1, 500_000_000)), "1969-12-31T23:59:59.500000Z");
        assert_eq!(rfc3339(at(-86_400 * 366, 0)), "1968-12-31T00:00:00.000000Z");
    }

    #[test]
    fn civil_dates_round_the_calendar() {
        // Every day from 1900 to 2400 follows the one before it.
        let mut prev = civil_from_days(-25_567 - 1);
        for days in -25_567..157_000 {
            let (y, m, d) = civil_from_days(days);
            let next_day = (prev.0, prev.1, prev.2 + 1);
            let next_month = (prev.0, prev.1 + 1, 1);
            let next_year = (prev.0 + 1, 1, 1);
            assert!(
                (y, m, d) == next_day || (y, m, d) == next_month || (y, m, d) == next_year,
                "{prev:?} -> {:?}",
                (y, m, d)
            );
            prev = (y, m, d);
        }
        assert_eq!(civil_from_days(-25_567), (1900, 1, 1));
    }

    #[test]
    fn previews() {
        assert_eq!(preview(b"{\"a\":1}\n", 20), "{\"a\":1}\\n");
        assert_eq!(preview(b"abcdef", 3), "abc…");
        assert_eq!(preview(&[0xff, 0], 3), "<2 bytes, not UTF-8>");
    }

    #[test]
    fn minify_keeps_order_and_strings() {
        let json = "{ \"b\" : [1, 2.50],\n \"a\": \"x y \\\" z\" }";
        assert_eq!(minify_json(json), r#"{"b":[1,2.50],"a":"x y \" z"}"#);
        let raw = data_as_json(json.as_bytes()).unwrap();
        assert_eq!(raw.get(), r#"{"b":[1,2.50],"a":"x y \" z"}"#);
        assert!(data_as_json(b"not json").is_none());
        assert!(data_as_json(&[0xff]).is_none());
    }

    #[test]
    fn tables_align() {
        let t = table(
            &["A", "LONGER"],
            &[vec!["xyz".into(), "1".into()], vec!["".into(), "22".into()]],
        );
        assert_eq!(t, "A    LONGER\nxyz  1\n     22\n");
    }
}
