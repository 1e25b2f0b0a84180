//! sekiban-postgres beside postgres-es 0.5 (cqrs-es) and a raw tokio-postgres floor, in one run
//! on one server: appends per second at 1 and 16 tasks with 1 and 10 events (~100-byte JSON) per
//! append, on distinct streams and on one contended stream; p50/p99 latency per append; round
//! trips per append (sekiban's own counters, and every contender on the wire through a counting
//! proxy); the load of a 1 000-event stream. Then, to show where a gap to the floor comes from,
//! the floor's connections replay sekiban's own statements (`sekiban_postgres::statement_texts`) step by step. Prints
//! markdown tables on stdout, progress on stderr.
//!
//! `cargo run --release --manifest-path bench/postgres/Cargo.toml -- --url postgres://postgres@127.0.0.1:5432/test`
//! (`scripts/bench-postgres.sh` runs it; `-- --help` lists the options). Everything is written
//! into three fresh schemas `bench_<random>_{sekiban,floor,pges}`, dropped at the end (`--keep`
//! keeps them).
//!
//! The parts: `args` (the command line), `rows` (one timed row of appends and its statistics),
//! `wire` (round trips through the counting proxy), `loads` (the 1 000-event stream's loads),
//! `report` (the markdown); `run` here puts them in order. The contenders and the proxy are the
//! library's (`src/lib.rs`).

mod args;
mod loads;
mod report;
mod rows;
mod wire;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use sekiban_core::Store as _;

use sekiban_bench_postgres::contenders::{
    self, Contender, Floor, FloorSql, PostgresEs, Sekiban, connect,
};

use crate::args::Args;
use crate::loads::{Loads, prepare_loads, time_loads};
use crate::rows::{Mode, Row, Sample, run_row};
use crate::wire::{Wire, wire_phase};

/// The server's address, which must be on this machine: the benchmark is a load generator.
async fn upstream(url: &str) -> Result<std::net::SocketAddr> {
    let config: tokio_postgres::Config = url.parse().context("parse the URL")?;
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => bail!("give a TCP host in the URL (127.0.0.1)"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await?
        .next()
        .ok_or_else(|| anyhow!("{host} does not resolve"))?;
    if !addr.ip().is_loopback() {
        bail!("{host} is not a loopback address: this benchmark only sends load to this machine");
    }
    Ok(addr)
}

#[derive(Debug, Clone)]
struct Names {
    sekiban: String,
    floor: String,
    pges: String,
}

struct Results {
    rows: Vec<(Row, [Vec<Sample>; 3])>,
    wire: Option<Wire>,
    /// Loads on the tables as the run wrote them (no statistics yet), then after `ANALYZE`.
    loads: Loads,
    loads_analyzed: Loads,
    analysis: Vec<(Row, Vec<Vec<Sample>>)>,
    server: String,
    settings: String,
    /// The machine's load average (1 min) when the run started and when it ended.
    load_avg: (String, String),
}

fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

const NAMES: [&str; 3] = ["sekiban", "postgres-es", "floor"];

async fn run(args: &Args, names: &Names, admin: &tokio_postgres::Client) -> Result<Results> {
    let load_start = load_avg();
    let addr = upstream(&args.url).await?;
    let server: String = admin.query_one("SHOW server_version", &[]).await?.get(0);
    let mut settings = Vec::new();
    for s in [
        "synchronous_commit",
        "fsync",
        "shared_buffers",
        "wal_sync_method",
        "max_connections",
    ] {
        let v: String = admin.query_one(&format!("SHOW {s}"), &[]).await?.get(0);
        settings.push(format!("{s}={v}"));
    }
    eprintln!(
        "bench: PostgreSQL {server}; schemas {}, {}, {}",
        names.sekiban, names.floor, names.pges
    );

    let sekiban = Arc::new(Sekiban::open(&args.url, &names.sekiban, args.pool).await?);
    // The floor writes into a second copy of sekiban's schema (same tables and indexes).
    sekiban_postgres::PostgresEventStore::migrate(&sekiban_postgres::PostgresConfig::from_url(
        &contenders::with_params(&args.url, &[("schema", &names.floor)]),
    )?)
    .await?;
    let floor = Arc::new(Floor::open(&args.url, &names.floor, &names.sekiban, args.pool).await?);
    let pges = Arc::new(PostgresEs::open(&args.url, &names.pges, args.pool, admin).await?);
    let contenders: [Arc<dyn Contender>; 3] = [sekiban.clone(), pges.clone(), floor.clone()];

    prepare_loads(&sekiban, &pges).await?;

    let wire = if args.wire {
        eprintln!("bench: counting round trips on the wire");
        Some(wire_phase(args, names, addr).await?)
    } else {
        None
    };

    eprintln!("bench: warm-up");
    for c in &contenders {
        for (k, n) in [(1, 320), (10, 160)] {
            let row = Row {
                mode: Mode::Distinct,
                tasks: 16,
                events: k,
                appends: n,
            };
            run_row(c.clone(), None, row, &format!("warm-k{k}")).await?;
        }
    }

    let mut rows = Vec::new();
    for mode in [Mode::Distinct, Mode::Contended] {
        for tasks in [1, 16] {
            for events in [1, 10] {
                let appends = match (tasks, mode) {
                    (1, _) => args.appends_1,
                    (_, Mode::Distinct) => args.appends_16,
                    _ => args.contended_16,
                };
                rows.push((
                    Row {
                        mode,
                        tasks,
                        events,
                        appends,
                    },
                    [Vec::new(), Vec::new(), Vec::new()],
                ));
            }
        }
    }
    let started = Instant::now();
    for round in 0..args.rounds {
        for (r, (row, samples)) in rows.iter_mut().enumerate() {
            for j in 0..3 {
                // A different order each row and round.
                let i = (j + r + round) % 3;
                let tag = format!(
                    "r{round}-{}-c{}-k{}",
                    if row.mode == Mode::Distinct { "d" } else { "x" },
                    row.tasks,
                    row.events
                );
                let costs = (i == 0).then(|| sekiban.clone());
                let s = run_row(contenders[i].clone(), costs, *row, &tag).await?;
                eprintln!(
                    "bench: round {} {} streams, {} tasks, {} events/append: {:>12} {:>8.0} appends/s ({} conflicts)",
                    round + 1,
                    row.label(),
                    row.tasks,
                    row.events,
                    NAMES[i],
                    s.rate,
                    s.conflicts
                );
                samples[i].push(s);
            }
        }
    }
    eprintln!(
        "bench: appends took {:.0} s; timing loads",
        started.elapsed().as_secs_f64()
    );
    let loads = time_loads(&sekiban, &pges, &floor, args.load_reps).await?;
    let mut analyze = String::new();
    for t in ["log", "streams"] {
        analyze.push_str(&format!(
            "ANALYZE {}.{t}; ANALYZE {}.{t}; ",
            names.sekiban, names.floor
        ));
    }
    analyze.push_str(&format!(
        "ANALYZE {0}.events; ANALYZE {0}.snapshots;",
        names.pges
    ));
    admin.batch_execute(&analyze).await.context("ANALYZE")?;
    eprintln!("bench: timing loads after ANALYZE");
    let loads_analyzed = time_loads(&sekiban, &pges, &floor, args.load_reps).await?;
    pges.pool.close().await;
    drop(pges);

    let mut analysis = Vec::new();
    if args.analysis {
        eprintln!("bench: analysis: floor → + sekiban's statement → + background NOTIFY → sekiban");
        let channel = format!("{}.feed", names.floor);
        let variants: Vec<Arc<dyn Contender>> = vec![
            Arc::new(floor.variant("floor", FloorSql::Floor, None)),
            Arc::new(floor.variant("floor + sekiban's statement", FloorSql::Sekiban, None)),
            Arc::new(floor.variant(
                "floor + sekiban's statement + NOTIFY",
                FloorSql::Sekiban,
                Some(channel),
            )),
            sekiban.clone(),
        ];
        for (row, _) in rows.iter().filter(|(r, _)| r.mode == Mode::Distinct) {
            analysis.push((*row, vec![Vec::new(); variants.len()]));
        }
        for round in 0..args.rounds {
            for (r, (row, samples)) in analysis.iter_mut().enumerate() {
                for j in 0..variants.len() {
                    let i = (j + r + round) % variants.len();
                    let tag = format!("a{round}-v{i}-c{}-k{}", row.tasks, row.events);
                    let s = run_row(variants[i].clone(), None, *row, &tag).await?;
                    eprintln!(
                        "bench: analysis round {} {} tasks, {} events/append: {:>38} {:>8.0} appends/s",
                        round + 1,
                        row.tasks,
                        row.events,
                        variants[i].name(),
                        s.rate
                    );
                    samples[i].push(s);
                }
            }
        }
    }
    sekiban.store.close().await?;
    Ok(Results {
        rows,
        wire,
        loads,
        loads_analyzed,
        analysis,
        server,
        settings: settings.join(", "),
        load_avg: (load_start, load_avg()),
    })
}

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let code = rt.block_on(async {
        let run_id = uuid::Uuid::new_v4().simple().to_string();
        let base = format!("bench_{}", &run_id[..8]);
        let names = Names {
            sekiban: format!("{base}_sekiban"),
            floor: format!("{base}_floor"),
            pges: format!("{base}_pges"),
        };
        if let Err(e) = upstream(&args.url).await {
            eprintln!("bench: {e:#}");
            return 2;
        }
        let admin = match connect(&args.url).await {
            Ok(a) => a,
            Err(e) => {
                eprintln!("bench: {e:#} (is the server up? `pg_ctlcluster 15 main start`)");
                return 1;
            }
        };
        let result = tokio::select! {
            r = run(&args, &names, &admin) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        };
        if args.keep {
            eprintln!("bench: kept schemas {}, {}, {}", names.sekiban, names.floor, names.pges);
        } else {
            // Other connections of this run are closed by now; give the server a moment.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let drop = format!(
                "DROP SCHEMA IF EXISTS {} CASCADE; DROP SCHEMA IF EXISTS {} CASCADE; DROP SCHEMA IF EXISTS {} CASCADE",
                names.sekiban, names.floor, names.pges
            );
            if let Err(e) = admin.batch_execute(&drop).await {
                eprintln!("bench: could not drop the schemas of this run: {e}");
            }
        }
        match result {
            Ok(r) => {
                print!("{}", report::report(&args, &r));
                0
            }
            Err(e) => {
                eprintln!("bench: {e:#}");
                1
            }
        }
    });
    std::process::exit(code);
}
