//! Appends per second on a SQLite file with `synchronous=FULL`, at several concurrency levels:
//! C tasks, each appending one ~100-byte event per append to its own stream with an exact
//! expected version (the workload of `bench/sqlite/eventsourcing_sqlite.py`).
//!
//! `cargo run --release --manifest-path bench/sqlite/Cargo.toml --bin appends -- --dir DIR --appends N --concurrency 1,16`
//! (`scripts/bench-sqlite.sh` runs it and the Python peer in one run).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sekiban_core::{EventData, EventStore, ExpectedVersion, OpKind, Store, StreamId, Version};
use sekiban_sqlite::{SqliteConfig, SqliteEventStore, Synchronous};
use tokio::sync::Barrier;

struct Args {
    dir: PathBuf,
    appends: usize,
    concurrency: Vec<usize>,
    json: bool,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        dir: std::env::temp_dir(),
        appends: 2000,
        concurrency: vec![1, 16],
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--dir" => a.dir = it.next().ok_or("--dir needs a directory")?.into(),
            "--appends" => {
                a.appends = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or("--appends needs a number")?
            }
            "--concurrency" => {
                a.concurrency = it
                    .next()
                    .ok_or("--concurrency needs a list")?
                    .split(',')
                    .map(|c| c.parse().map_err(|_| format!("bad concurrency {c}")))
                    .collect::<Result<_, _>>()?
            }
            "--json" => a.json = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

/// 100 bytes of JSON, like the Python side's state.
fn payload(n: usize) -> String {
    sekiban_bench_sqlite::payload("bench", n)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

async fn level(dir: &std::path::Path, appends: usize, c: usize, json: bool) -> Result<(), String> {
    let path = dir.join(format!(
        "sekiban-bench-c{c}-{}.db",
        uuid::Uuid::new_v4().simple()
    ));
    let mut config = SqliteConfig::file(&path);
    config.synchronous = Synchronous::Full;
    let store = Arc::new(
        SqliteEventStore::open(config)
            .await
            .map_err(|e| e.to_string())?,
    );
    let per = appends / c;
    let barrier = Arc::new(Barrier::new(c + 1));
    let mut tasks = Vec::new();
    for t in 0..c {
        let (store, barrier) = (store.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let s =
                StreamId::new("bench", "account", format!("a{t}")).map_err(|e| e.to_string())?;
            // Warm-up, not timed.
            store
                .append(
                    &s,
                    ExpectedVersion::NoStream,
                    vec![EventData::new("Ticked", payload(0))],
                )
                .await
                .map_err(|e| e.to_string())?;
            barrier.wait().await;
            let mut lat = Vec::with_capacity(per);
            for n in 1..=per {
                let e = EventData::new("Ticked", payload(n));
                let t0 = Instant::now();
                store
                    .append(&s, ExpectedVersion::Exact(Version(n as u64)), vec![e])
                    .await
                    .map_err(|e| e.to_string())?;
                lat.push(t0.elapsed());
            }
            Ok::<_, String>(lat)
        }));
    }
    barrier.wait().await;
    let before = store.costs();
    let start = Instant::now();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.map_err(|e| e.to_string())??);
    }
    let secs = start.elapsed().as_secs_f64();
    let statements = (store.costs() - before).round_trips(OpKind::Append);
    lat.sort();
    let done = lat.len();
    let rate = done as f64 / secs;
    let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
    eprintln!(
        "sekiban-sqlite: concurrency {c}: {rate:.0} appends/s, p50 {p50:.2} ms, p99 {p99:.2} ms, {:.1} statements per append",
        statements as f64 / done as f64
    );
    if json {
        println!(
            r#"{{"impl":"sekiban-sqlite","concurrency":{c},"appends":{done},"seconds":{secs:.4},"appends_per_s":{rate:.1},"p50_ms":{p50:.3},"p99_ms":{p99:.3},"synchronous":"full"}}"#
        );
    }
    store.close().await.map_err(|e| e.to_string())?;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    let mut blobs = path.into_os_string();
    blobs.push(".blobs");
    let _ = std::fs::remove_dir_all(blobs);
    Ok(())
}

fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("appends: {e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    for c in &a.concurrency {
        if let Err(e) = rt.block_on(level(&a.dir, a.appends, *c, a.json)) {
            eprintln!("appends: concurrency {c}: {e}");
            std::process::exit(1);
        }
    }
}
