//! `sekiban demo`: the bank example, on the given store or a fresh SQLite file.

use std::fmt::Write as _;

use sekiban_examples::bank::{DemoOptions, run_demo};

use crate::args::DemoArgs;
use crate::commands::{fresh_temp_dir, print, with_store};
use crate::open::OpenedStore;
use crate::progress;

/// Runs the demo on `store` (default: a SQLite file in a fresh temporary directory, kept so it
/// can be looked into afterwards).
pub async fn run(store: Option<String>, args: DemoArgs) -> anyhow::Result<()> {
    // A URL the user gave may hold credentials: only a file made here is named in the output.
    let (url, made_here) = match store {
        Some(url) => (url, false),
        None => {
            let dir = fresh_temp_dir("sekiban-demo")?;
            (format!("sqlite://{}", dir.join("demo.db").display()), true)
        }
    };
    with_store(&url, async |opened| {
        demo(opened, &url, made_here, args).await
    })
    .await
}

async fn demo(
    opened: &OpenedStore,
    url: &str,
    made_here: bool,
    args: DemoArgs,
) -> anyhow::Result<()> {
    let shown = if made_here {
        url.to_string()
    } else {
        format!("the {} store of --store", opened.kind)
    };
    if !args.json {
        print(&format!("store: {shown}\n"))?;
    }
    let opts = DemoOptions {
        tenant: args.tenant.clone(),
        accounts: args.accounts,
        transfers: args.transfers,
        concurrency: args.concurrency,
    };
    let bar = progress::bar(0, "demo", args.json);
    let feed = bar.clone();
    let report = run_demo(opened.store.clone(), &opts, &move |done, total| {
        feed.set_length(total);
        feed.set_position(done);
    })
    .await;
    bar.finish_and_clear();
    let report = report.map_err(|e| anyhow::Error::from_boxed(e).context("the demo failed"))?;
    // Requests the store sent again after a transient fault (a connection lost, a throttle).
    let retried = opened.store.costs().total().retries;
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        if let Some(map) = value.as_object_mut() {
            map.insert("store".into(), shown.into());
            map.insert("tenant".into(), opts.tenant.clone().into());
            map.insert("requests_retried".into(), retried.into());
        }
        print(&format!("{value}\n"))?;
        return Ok(());
    }
    let mut out = String::new();
    writeln!(out, "commands handled:      {}", report.commands)?;
    writeln!(out, "events appended:       {}", report.events)?;
    writeln!(out, "snapshots written:     {}", report.snapshots)?;
    writeln!(out, "conflicts retried:     {}", report.conflicts_retried)?;
    writeln!(out, "requests retried:      {retried}")?;
    writeln!(
        out,
        "projection caught up:  {} events projected",
        report.projected
    )?;
    writeln!(out, "transfers finished:    {}", report.transfers_finished)?;
    writeln!(
        out,
        "total balance:         {}.{:02} (equal to all money paid in)",
        report.total_balance / 100,
        report.total_balance % 100
    )?;
    if made_here {
        writeln!(
            out,
            "look into it: sekiban --store {url} streams --tenant {}",
            opts.tenant
        )?;
    }
    print(&out)?;
    Ok(())
}
