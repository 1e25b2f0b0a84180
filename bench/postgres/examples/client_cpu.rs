//! Client CPU per one-event append at 1 task: sekiban-postgres's `append` against a raw
//! tokio-postgres connection sending a copy of its statement. For profiling the client path:
//! `cargo run --release --manifest-path bench/postgres/Cargo.toml --example client_cpu -- URL [N] [sekiban|raw|load]`
//! Writes into a fresh schema `bench_cpu_<pid>`, dropped at the end.

use std::time::Instant;

use anyhow::{Context, Result};
use futures::StreamExt;
use sekiban_bench_postgres::contenders::raw_event;
use sekiban_core::{
    EventData, EventStore, ExpectedVersion, ReadOptions, Store as _, StreamId, Version,
};
use sekiban_postgres::{PostgresConfig, PostgresEventStore};

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn payload(n: u64) -> String {
    let head = format!(r#"{{"tag":"bench","n":{n},"pad":""#);
    let pad = "x".repeat(100 - head.len() - 2);
    format!("{head}{pad}\"}}")
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into());
    let n: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(5000);
    let mode = args.get(3).cloned().unwrap_or_else(|| "sekiban".into());
    let schema = format!("bench_cpu_{}", std::process::id());
    let sep = if url.contains('?') { '&' } else { '?' };
    let config = PostgresConfig::from_url(&format!("{url}{sep}schema={schema}&pool=16"))?;
    PostgresEventStore::migrate(&config).await?;
    let store = PostgresEventStore::connect(config).await?;
    let stream = StreamId::new("bench", "account", "s1")?;
    store
        .append(
            &stream,
            ExpectedVersion::NoStream,
            vec![EventData::new("Ticked", payload(0))],
        )
        .await?;
    let mut head = 1u64;
    let (raw, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let s = format!("\"{schema}\"");
    let sql = sekiban_postgres::statement_texts(&schema);
    let text = |name: &str| {
        sql.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t.clone())
            .ok_or_else(|| anyhow::anyhow!("no statement {name}"))
    };
    let existing = text("append_existing")?;
    let stmt = raw.prepare(&existing).await?;
    let select = raw
        .prepare(&format!(
            "SELECT version, event_id, event_type, schema_version, data, metadata::text, recorded_at \
             FROM {s}.log WHERE tenant = $1 AND category = $2 AND stream_id = $3 AND kind = 0 ORDER BY version"
        ))
        .await?;
    let paged = raw.prepare(&text("read_forward")?).await?;
    if mode.ends_with("load") {
        for _ in 0..9 {
            let batch: Vec<EventData> = (1..=111)
                .map(|i| EventData::new("Ticked", payload(head + i)))
                .collect();
            head = store
                .append(&stream, ExpectedVersion::Exact(Version(head)), batch)
                .await?
                .last
                .0;
        }
    }
    let t0 = Instant::now();
    let c0 = cpu_seconds();
    let mut loaded = 0usize;
    for _ in 0..n {
        match mode.as_str() {
            "sekiban" => {
                let r = store
                    .append(
                        &stream,
                        ExpectedVersion::Exact(Version(head)),
                        vec![EventData::new("Ticked", payload(head + 1))],
                    )
                    .await?;
                head = r.last.0;
            }
            "raw" => {
                let ids = vec![uuid::Uuid::new_v4()];
                let types = vec!["Ticked"];
                let schemas = vec![1i32];
                let body = payload(head + 1);
                let data: Vec<&[u8]> = vec![body.as_bytes()];
                let meta: Vec<Option<String>> = vec![None];
                let (one, h) = (1i64, head as i64);
                let rows = raw
                    .query(
                        &stmt,
                        &[
                            &"bench", &"account", &"s1", &one, &h, &ids, &types, &schemas, &data,
                            &meta,
                        ],
                    )
                    .await
                    .context("raw append")?;
                head = rows.first().map_or(head, |r| r.get::<_, i64>(0) as u64);
            }
            "load" => {
                let mut events = store.read(&stream, ReadOptions::forward().max_count(1000));
                while let Some(e) = events.next().await {
                    let _ = e?;
                    loaded += 1;
                }
            }
            "rawload" | "stmtload" => {
                let rows = if mode == "rawload" {
                    raw.query(&select, &[&"bench", &"account", &"s1"]).await?
                } else {
                    raw.query(
                        &paged,
                        &[&"bench", &"account", &"s1", &1i64, &i64::MAX, &1000i64],
                    )
                    .await?
                };
                for r in &rows {
                    // sekiban's statement sends the stream's row first (last column set).
                    if mode == "stmtload" && r.try_get::<_, Option<i64>>(7)?.is_some() {
                        continue;
                    }
                    let _e = raw_event(r, 0)?;
                    loaded += 1;
                }
            }
            other => anyhow::bail!("unknown mode {other}"),
        }
    }
    let cpu = cpu_seconds() - c0;
    let wall = t0.elapsed().as_secs_f64();
    println!(
        "{mode}: {n} ops, {:.1} µs client CPU/op, {:.1} µs wall/op, {:.0} ops/s (loaded {loaded})",
        cpu / n as f64 * 1e6,
        wall / n as f64 * 1e6,
        n as f64 / wall
    );
    store.close().await?;
    if std::env::var_os("KEEP").is_none() {
        raw.batch_execute(&format!("DROP SCHEMA {s} CASCADE"))
            .await?;
    } else {
        println!("kept schema {schema}");
    }
    Ok(())
}
