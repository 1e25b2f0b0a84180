//! `sekiban tail`: follow the change feed.

use std::io::{BufWriter, Write};

use futures::StreamExt;
use sekiban_core::{Checkpoint, DeleteMode, FeedItem, FeedOptions};

use crate::args::TailArgs;
use crate::open::OpenedStore;
use crate::output::{feed_item_json, preview, rfc3339};

/// How the loop ended.
enum End {
    Max,
    Idle,
    Interrupted,
    FeedEnded,
}

/// Follows the feed until `--max` events, `--idle-exit` seconds of silence, or Ctrl-C.
pub async fn run(opened: &OpenedStore, args: TailArgs) -> anyhow::Result<()> {
    if args.max == Some(0) {
        return Ok(());
    }
    let mut opts = FeedOptions::follow();
    if let Some(t) = &args.tenant {
        opts = opts.tenant(t.clone());
    }
    if let Some(c) = &args.category {
        opts = opts.category(c.clone());
    }
    let mut feed = opened.store.changes(args.from.clone(), opts);
    let mut out = BufWriter::new(std::io::stdout());
    let mut events = 0u64;
    let mut resume: Option<Checkpoint> = None;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let end = loop {
        let next = async {
            match args.idle_exit {
                Some(idle) => tokio::time::timeout(idle, feed.next()).await.ok(),
                None => Some(feed.next().await),
            }
        };
        let batch = tokio::select! {
            n = next => match n {
                None => break End::Idle,
                Some(None) => break End::FeedEnded,
                Some(Some(batch)) => batch?,
            },
            _ = &mut ctrl_c => break End::Interrupted,
        };
        let count = batch.items.len();
        let mut stopped = false;
        for (i, item) in batch.items.iter().enumerate() {
            let last = i + 1 == count;
            if args.json {
                let checkpoint = last.then(|| batch.checkpoint.as_str());
                out.write_all(feed_item_json(item, checkpoint)?.as_bytes())?;
            } else {
                out.write_all(text_line(item).as_bytes())?;
            }
            out.write_all(b"\n")?;
            if item.as_event().is_some() {
                events += 1;
                if Some(events) == args.max {
                    stopped = true;
                    if last {
                        resume = Some(batch.checkpoint.clone());
                    }
                    break;
                }
            }
        }
        if !stopped {
            resume = Some(batch.checkpoint.clone());
        }
        out.flush()?;
        if stopped {
            break End::Max;
        }
    };
    out.flush()?;
    if !args.json {
        let why = match end {
            End::Max => format!("stopped after {events} events"),
            End::Idle => format!(
                "stopped: nothing arrived for {:?}",
                args.idle_exit.unwrap_or_default()
            ),
            End::Interrupted => "interrupted".to_string(),
            End::FeedEnded => "the feed ended".to_string(),
        };
        match resume {
            Some(c) => eprintln!("{why}; resume with --from {c}"),
            None => eprintln!("{why}"),
        }
    }
    Ok(())
}

fn text_line(item: &FeedItem) -> String {
    match item {
        FeedItem::Event(e) => format!(
            "{}  {}  v{}  {}  {}",
            rfc3339(e.recorded_at),
            e.stream,
            e.version,
            e.event_type,
            preview(&e.data, 80)
        ),
        FeedItem::Deleted {
            stream,
            version,
            mode,
        } => format!(
            "{stream}  deleted ({}) at version {version}",
            match mode {
                DeleteMode::Soft => "soft",
                DeleteMode::Hard => "hard",
            }
        ),
    }
}
