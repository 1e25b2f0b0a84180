//! `sekiban streams`: list streams through the store's catalog.

use serde::Serialize;

use sekiban_core::id::DEFAULT_TENANT;

use crate::args::StreamsArgs;
use crate::commands::print;
use crate::exit::{Exit, Reported};
use crate::open::OpenedStore;
use crate::output::table;

#[derive(Serialize)]
struct Line<'a> {
    stream: String,
    tenant: &'a str,
    category: &'a str,
    id: &'a str,
    version: u64,
    deleted: bool,
}

/// Lists streams of a tenant, or says the store cannot (exit code 1).
pub async fn run(opened: &OpenedStore, args: StreamsArgs) -> anyhow::Result<()> {
    let Some(catalog) = opened.store.catalog() else {
        eprintln!(
            "this store cannot list streams (no StreamCatalog); the {} backend keeps no stream index",
            opened.kind
        );
        return Err(Reported(Exit::Failure).into());
    };
    let tenant = args
        .tenant
        .clone()
        .or_else(|| args.after.as_ref().map(|a| a.tenant().to_string()))
        .unwrap_or_else(|| DEFAULT_TENANT.to_string());
    let streams = catalog
        .list_streams(
            &tenant,
            args.category.as_deref(),
            args.after.as_ref(),
            args.limit,
        )
        .await?;
    let mut out = String::new();
    if args.json {
        for s in &streams {
            out.push_str(&serde_json::to_string(&Line {
                stream: s.stream.to_string(),
                tenant: s.stream.tenant(),
                category: s.stream.category(),
                id: s.stream.id(),
                version: s.version.0,
                deleted: s.deleted,
            })?);
            out.push('\n');
        }
        print(&out)?;
        return Ok(());
    }
    if streams.is_empty() {
        eprintln!(
            "no streams in tenant {tenant:?}{}",
            args.category
                .as_deref()
                .map(|c| format!(", category {c:?}"))
                .unwrap_or_default()
        );
        return Ok(());
    }
    let rows: Vec<Vec<String>> = streams
        .iter()
        .map(|s| {
            vec![
                s.stream.to_string(),
                s.version.to_string(),
                if s.deleted { "yes" } else { "" }.to_string(),
            ]
        })
        .collect();
    out.push_str(&table(&["STREAM", "VERSION", "DELETED"], &rows));
    print(&out)?;
    if streams.len() == args.limit
        && let Some(last) = streams.last()
    {
        eprintln!(
            "more streams may follow: add --after {} (or a larger --limit)",
            last.stream
        );
    }
    Ok(())
}
