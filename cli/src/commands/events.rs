//! `sekiban events`: print one stream's events.

use std::io::{BufWriter, Write};

use futures::StreamExt;
use sekiban_core::{ReadOptions, Version};

use crate::args::EventsArgs;
use crate::open::OpenedStore;
use crate::output::{EventLine, preview, rfc3339, table};

/// Prints the events of a stream as a table or JSON lines.
pub async fn run(opened: &OpenedStore, args: EventsArgs) -> anyhow::Result<()> {
    let mut opts = if args.backward {
        ReadOptions::backward()
    } else {
        ReadOptions::forward()
    };
    if let Some(v) = args.from {
        opts = opts.from(Version(v));
    }
    if let Some(n) = args.limit {
        opts = opts.max_count(n);
    }
    let mut events = opened.store.read(&args.stream, opts);
    let mut out = BufWriter::new(std::io::stdout());
    let mut rows = Vec::new();
    let mut count = 0u64;
    while let Some(e) = events.next().await {
        let e = e?;
        count += 1;
        if args.json {
            serde_json::to_writer(&mut out, &EventLine::new(&e))?;
            out.write_all(b"\n")?;
        } else {
            rows.push(vec![
                e.version.to_string(),
                e.event_type.clone(),
                e.schema_version.to_string(),
                e.id.to_string(),
                rfc3339(e.recorded_at),
                preview(&e.data, 60),
            ]);
        }
    }
    if !args.json && count > 0 {
        out.write_all(
            table(
                &["VERSION", "TYPE", "SCHEMA", "ID", "RECORDED", "DATA"],
                &rows,
            )
            .as_bytes(),
        )?;
    }
    out.flush()?;
    if count == 0 {
        eprintln!("no events in {} for this read", args.stream);
    }
    Ok(())
}
