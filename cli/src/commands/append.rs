//! `sekiban append`: one event, or a JSON-lines batch as one atomic append.

use std::io::Read;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use sekiban_core::{EventData, EventId, Metadata, StoreError};

use crate::args::AppendArgs;
use crate::commands::print;
use crate::exit::bad_input;
use crate::open::OpenedStore;
use crate::output::minify_json;

/// One line of a `--batch` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchLine {
    #[serde(default)]
    id: Option<uuid::Uuid>,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default, deserialize_with = "present")]
    data: Option<Box<RawValue>>,
    #[serde(default)]
    data_b64: Option<String>,
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    metadata: Option<Metadata>,
}

/// `"data": null` is the JSON value `null`, not a missing field.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

#[derive(Serialize)]
struct Outcome<'a> {
    stream: String,
    first: u64,
    last: u64,
    deduplicated: bool,
    ids: &'a [String],
}

#[derive(Serialize)]
struct Conflict {
    error: &'static str,
    stream: String,
    expected: String,
    actual: u64,
}

/// Reads a file's bytes, or standard input for `-`.
fn read_input(path: &Path) -> anyhow::Result<Vec<u8>> {
    let result = if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map(|_| buf)
    } else {
        std::fs::read(path)
    };
    result.map_err(|e| bad_input(format!("cannot read {}: {e}", path.display())))
}

/// The events of a JSON-lines batch file.
fn parse_batch(path: &Path, bytes: &[u8], schema_version: u32) -> anyhow::Result<Vec<EventData>> {
    let mut events = Vec::new();
    for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let at = || format!("{} line {}", path.display(), n + 1);
        let l: BatchLine = serde_json::from_slice(line).map_err(|e| {
            bad_input(format!(
                "{}: {e}; each line is {{\"id\"?, \"type\", \"data\"}} or {{\"id\"?, \"type\", \"data_b64\"}}",
                at()
            ))
        })?;
        let data = match (l.data, l.data_b64) {
            (Some(json), None) => minify_json(json.get()).into_bytes(),
            (None, Some(b64)) => STANDARD.decode(b64.as_bytes()).map_err(|e| {
                bad_input(format!("{}: data_b64 is not standard base64: {e}", at()))
            })?,
            (Some(_), Some(_)) => {
                return Err(bad_input(format!(
                    "{}: has both data and data_b64; give one",
                    at()
                )));
            }
            (None, None) => {
                return Err(bad_input(format!(
                    "{}: has neither data (a JSON value) nor data_b64 (exact bytes)",
                    at()
                )));
            }
        };
        let mut e = EventData::new(l.event_type, data)
            .with_schema_version(l.schema_version.unwrap_or(schema_version))
            .with_metadata(l.metadata.unwrap_or_default());
        if let Some(id) = l.id {
            e = e.with_id(EventId(id));
        }
        events.push(e);
    }
    if events.is_empty() {
        return Err(bad_input(format!(
            "{} holds no events; give one JSON object per line",
            path.display()
        )));
    }
    Ok(events)
}

/// The events the flags describe.
fn events_of(args: &AppendArgs) -> anyhow::Result<Vec<EventData>> {
    if let Some(batch) = &args.batch {
        return parse_batch(batch, &read_input(batch)?, args.schema_version);
    }
    let data = match (&args.data, &args.data_file) {
        (Some(text), None) => text.clone().into_bytes(),
        (None, Some(path)) => read_input(path)?,
        _ => return Err(bad_input("give one of --data, --data-file or --batch")),
    };
    let Some(event_type) = &args.event_type else {
        return Err(bad_input("--type is required unless --batch is given"));
    };
    let mut e = EventData::new(event_type.clone(), data).with_schema_version(args.schema_version);
    if let Some(id) = args.id {
        e = e.with_id(EventId(id));
    }
    Ok(vec![e])
}

/// Appends, printing the versions written or why not.
pub async fn run(opened: &OpenedStore, args: AppendArgs) -> anyhow::Result<()> {
    let events = events_of(&args)?;
    let ids: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
    let result = opened
        .store
        .append(&args.stream, args.expected, events)
        .await;
    let r = match result {
        Ok(r) => r,
        Err(e) => {
            if let StoreError::WrongExpectedVersion {
                stream,
                expected,
                actual,
            } = &e
                && args.json
            {
                print(&format!(
                    "{}\n",
                    serde_json::to_string(&Conflict {
                        error: "wrong_expected_version",
                        stream: stream.to_string(),
                        expected: expected.to_string(),
                        actual: actual.0,
                    })?
                ))?;
            }
            return Err(e.into());
        }
    };
    if args.json {
        let line = serde_json::to_string(&Outcome {
            stream: args.stream.to_string(),
            first: r.first.0,
            last: r.last.0,
            deduplicated: r.deduplicated,
            ids: &ids,
        })?;
        print(&format!("{line}\n"))?;
        return Ok(());
    }
    let versions = if r.first == r.last {
        format!("version {}", r.first)
    } else {
        format!("versions {}..{}", r.first, r.last)
    };
    let what = match ids.as_slice() {
        [id] => format!("1 event (id {id})"),
        many => format!("{} events", many.len()),
    };
    let text = if r.deduplicated {
        format!(
            "idempotent re-send: {what} already stored in {} at {versions} by an earlier identical append; nothing written\n",
            args.stream
        )
    } else {
        format!("appended {what} to {} at {versions}\n", args.stream)
    };
    print(&text)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_lines() {
        let p = Path::new("b.jsonl");
        let text = b"{\"type\":\"A\",\"data\": {\"z\": 1, \"a\": [1, 2]}}\r\n\n{\"id\":\"6f9619ff-8b86-d011-b42d-00cf4fc964ff\",\"type\":\"B\",\"data_b64\":\"AP8=\",\"schema_version\":3}\n{\"type\":\"N\",\"data\":null}\n";
        let events = parse_batch(p, text, 1).unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(&events[0].data[..], br#"{"z":1,"a":[1,2]}"#);
        assert_eq!(&events[1].data[..], &[0u8, 0xff]);
        assert_eq!(events[1].schema_version, 3);
        assert_eq!(
            events[1].id.to_string(),
            "6f9619ff-8b86-d011-b42d-00cf4fc964ff"
        );
        assert_eq!(&events[2].data[..], b"null");
        for bad in [
            &b"{\"type\":\"A\"}"[..],
            b"{\"type\":\"A\",\"data\":1,\"data_b64\":\"\"}",
            b"{\"type\":\"A\",\"data_b64\":\"***\"}",
            b"{\"type\":\"A\",\"data\":1,\"colour\":2}",
            b"not json",
            b"\n\n",
        ] {
            assert!(
                parse_batch(p, bad, 1).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
