//! sekiban-postgres beside postgres-es 0.5 (cqrs-es) and a raw tokio-postgres floor, in one run
//! on one server: appends per second at 1 and 16 tasks with 1 and 10 events (~100-byte JSON) per
//! append, on distinct streams and on one contended stream; p50/p99 latency per append; round
//! trips per append (sekiban's own counters, and every contender on the wire through a counting
//! proxy); the load of a 1 000-event stream. Then, to show where a gap to the floor comes from,
//! the floor's connections replay sekiban's own statements (`sekiban_postgres::statement_texts`) step by step. Prints
//! markdown tables on stdout, progress on stderr.
//!
//! `cargo run --release --manifest-path bench/postgres/Cargo.toml -- --url postgres://postgres@127.0.0.1:5432/test`
//! (`scripts/bench-postgres.sh` runs it). Everything is written into three fresh schemas
//! `bench_<random>_{sekiban,floor,pges}`, dropped at the end (`--keep` keeps them).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use sekiban_core::{CostSnapshot, OpKind, Store as _};
use tokio::sync::Barrier;

use sekiban_bench_postgres::contenders::{
    self, Contender, Floor, FloorSql, PostgresEs, Sekiban, connect, stream_id,
};
use sekiban_bench_postgres::proxy::{self, Proxy};

const USAGE: &str = "usage: sekiban-bench-postgres [--url URL] [--appends-1 N] [--appends-16 N] \
[--contended-16 N] [--rounds R] [--load-reps N] [--pool N] [--no-wire] [--no-analysis] [--keep] [--quick]";

#[derive(Clone, Debug)]
struct Args {
    url: String,
    /// Appends per row at 1 task.
    appends_1: usize,
    /// Appends per distinct-stream row at 16 tasks.
    appends_16: usize,
    /// Appends per contended row at 16 tasks.
    contended_16: usize,
    rounds: usize,
    load_reps: usize,
    pool: usize,
    wire: bool,
    analysis: bool,
    keep: bool,
}

fn args() -> Result<Args> {
    let mut a = Args {
        url: "postgres://postgres@127.0.0.1:5432/test".into(),
        appends_1: 400,
        appends_16: 1600,
        contended_16: 480,
        rounds: 7,
        load_reps: 60,
        pool: 16,
        wire: true,
        analysis: true,
        keep: false,
    };
    let mut it = std::env::args().skip(1);
    let num = |v: Option<String>, what: &str| -> Result<usize> {
        v.and_then(|n| n.parse().ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| anyhow!("{what} needs a number > 0\n{USAGE}"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--url" => a.url = it.next().ok_or_else(|| anyhow!("--url needs a URL"))?,
            "--appends-1" => a.appends_1 = num(it.next(), "--appends-1")?,
            "--appends-16" => a.appends_16 = num(it.next(), "--appends-16")?,
            "--contended-16" => a.contended_16 = num(it.next(), "--contended-16")?,
            "--rounds" => a.rounds = num(it.next(), "--rounds")?,
            "--load-reps" => a.load_reps = num(it.next(), "--load-reps")?,
            "--pool" => a.pool = num(it.next(), "--pool")?.max(16),
            "--no-wire" => a.wire = false,
            "--no-analysis" => a.analysis = false,
            "--keep" => a.keep = true,
            "--quick" => {
                a.appends_1 = 100;
                a.appends_16 = 320;
                a.contended_16 = 160;
                a.rounds = 1;
                a.load_reps = 10;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    // sekiban's own URL parameters are set per contender here.
    a.url = contenders::without_params(&a.url, &["schema", "pool", "blobs", "connect_timeout_ms"]);
    Ok(a)
}

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

/// `url` pointed at 127.0.0.1:`port`.
fn via_port(url: &str, port: u16) -> Result<String> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| anyhow!("not a URL"))?;
    let (auth, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let user = auth
        .rsplit_once('@')
        .map(|(u, _)| format!("{u}@"))
        .unwrap_or_default();
    Ok(format!("{scheme}://{user}127.0.0.1:{port}{path}"))
}

// ---------------------------------------------------------------------------------------------
// Appends

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Distinct,
    Contended,
}

#[derive(Clone, Copy, Debug)]
struct Row {
    mode: Mode,
    tasks: usize,
    events: usize,
    appends: usize,
}

impl Row {
    fn label(&self) -> &'static str {
        match self.mode {
            Mode::Distinct => "distinct",
            Mode::Contended => "one contended",
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Sample {
    rate: f64,
    appends: usize,
    latencies: Vec<Duration>,
    conflicts: u64,
    costs: Option<CostSnapshot>,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// One timed row of one contender: `row.tasks` tasks after a barrier, each with its own stream
/// (or all on one), `row.appends` appends in all, each of `row.events` events.
async fn run_row(
    c: Arc<dyn Contender>,
    costs: Option<Arc<Sekiban>>,
    row: Row,
    tag: &str,
) -> Result<Sample> {
    let per = (row.appends / row.tasks).max(1);
    let shared = format!("{tag}-shared");
    let mut start_head = 0;
    if row.mode == Mode::Contended {
        start_head = c.append_exact(&shared, 0, row.events).await?;
    }
    // `ready`: every task has done its warm-up; `go`: the counters are read, the clock starts.
    let ready = Arc::new(Barrier::new(row.tasks + 1));
    let go = Arc::new(Barrier::new(row.tasks + 1));
    let mut tasks = Vec::new();
    for t in 0..row.tasks {
        let (c, ready, go, shared) = (c.clone(), ready.clone(), go.clone(), shared.clone());
        let own = format!("{tag}-t{t}");
        tasks.push(tokio::spawn(async move {
            let k = row.events;
            let mut lat = Vec::with_capacity(per);
            let mut conflicts = 0u64;
            match row.mode {
                Mode::Distinct => {
                    // Warm-up, not timed: create the stream, one more append.
                    let mut head = c.append_exact(&own, 0, k).await?;
                    head = c.append_exact(&own, head, k).await?;
                    ready.wait().await;
                    go.wait().await;
                    for _ in 0..per {
                        let t0 = Instant::now();
                        head = c.append_exact(&own, head, k).await?;
                        lat.push(t0.elapsed());
                    }
                }
                Mode::Contended => {
                    let mut known = start_head;
                    c.append_contended(&shared, &mut known, k).await?;
                    ready.wait().await;
                    go.wait().await;
                    for _ in 0..per {
                        let t0 = Instant::now();
                        conflicts += u64::from(c.append_contended(&shared, &mut known, k).await?);
                        lat.push(t0.elapsed());
                    }
                }
            }
            Ok::<_, anyhow::Error>((lat, conflicts))
        }));
    }
    ready.wait().await;
    let before = costs.as_ref().map(|s| s.costs());
    let start = Instant::now();
    go.wait().await;
    let mut s = Sample::default();
    for t in tasks {
        let (lat, conflicts) = t.await??;
        s.latencies.extend(lat);
        s.conflicts += conflicts;
    }
    let secs = start.elapsed().as_secs_f64();
    s.costs = costs.as_ref().zip(before).map(|(st, b)| st.costs() - b);
    s.appends = s.latencies.len();
    s.rate = s.appends as f64 / secs;
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// Round trips on the wire

#[derive(Debug, Default, Clone)]
struct Wire {
    /// (contender, events per append) → requests per append.
    appends: Vec<(&'static str, usize, f64)>,
    /// sekiban's background NOTIFY statements per append (included in its wire count).
    sekiban_notify: Vec<(usize, f64)>,
    /// sekiban's own counter per append (operations, NOTIFY excluded).
    sekiban_counted: Vec<(usize, f64)>,
    /// (load, requests).
    loads: Vec<(&'static str, u64)>,
    /// What the counts are made of, per contender: (contender, "Q/S/H" per append at 1 event).
    detail: Vec<(&'static str, String)>,
}

const WIRE_APPENDS: u64 = 50;

async fn wire_phase(args: &Args, names: &Names, addr: std::net::SocketAddr) -> Result<Wire> {
    let proxy = Proxy::start(addr).await?;
    let url = via_port(&args.url, proxy.port)?;
    let admin = connect(&url).await?;
    let sekiban = Arc::new(Sekiban::open(&url, &names.sekiban, 2).await?);
    // One connection: sqlx prepares per connection, so every counted call finds its statement.
    let pges = Arc::new(PostgresEs::open(&url, &names.pges, 1, &admin).await?);
    let floor = Arc::new(Floor::open(&url, &names.floor, &names.sekiban, 1).await?);
    let all: [Arc<dyn Contender>; 3] = [sekiban.clone(), pges.clone(), floor.clone()];
    let mut w = Wire::default();
    for c in &all {
        for k in [1usize, 10] {
            let stream = format!("wire-k{k}");
            let mut head = 0;
            for _ in 0..3 {
                head = c.append_exact(&stream, head, k).await?;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let (before, costs) = (proxy.counted(), sekiban.costs());
            // (Each append is followed by a pause, so background work — sekiban's NOTIFY,
            // sqlx's test of a returned connection — is counted with the append it follows.)
            for _ in 0..WIRE_APPENDS {
                head = c.append_exact(&stream, head, k).await?;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // Lets sekiban's background notifier send what it owes for these appends.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let d = proxy.counted() - before;
            w.appends
                .push((c.name(), k, d.round_trips() as f64 / WIRE_APPENDS as f64));
            if k == 1 {
                let per = |n: u64| n as f64 / WIRE_APPENDS as f64;
                w.detail.push((
                    c.name(),
                    format!(
                        "{:.2} Query + {:.2} Sync + {:.2} Flush",
                        per(d.query),
                        per(d.sync),
                        per(d.flush)
                    ),
                ));
            }
            if c.name() == "sekiban" {
                let dc = sekiban.costs() - costs;
                w.sekiban_notify.push((
                    k,
                    dc.round_trips(OpKind::Notify) as f64 / WIRE_APPENDS as f64,
                ));
                w.sekiban_counted
                    .push((k, dc.operation_round_trips() as f64 / WIRE_APPENDS as f64));
            }
        }
    }
    let load = stream_id(LOAD_STREAM)?;
    // One untimed load each first (statements prepared, pools warm), then one counted.
    for counted in [false, true] {
        // sqlx tests a connection when it goes back to its pool, in a spawned task: wait for it.
        let settle = || tokio::time::sleep(Duration::from_millis(100));
        let mut record = |name: &'static str, before: proxy::Counted| {
            if counted {
                w.loads
                    .push((name, (proxy.counted() - before).round_trips()));
            }
        };
        let b = proxy.counted();
        sekiban.load(&load).await?;
        settle().await;
        record(LOADS[0], b);
        let b = proxy.counted();
        sekiban.load_with_snapshot(&load).await?;
        settle().await;
        record(LOADS[1], b);
        let b = proxy.counted();
        pges.load(LOAD_STREAM).await?;
        settle().await;
        record(LOADS[2], b);
        let b = proxy.counted();
        pges.load_with_snapshot(LOAD_STREAM).await?;
        settle().await;
        record(LOADS[3], b);
        let b = proxy.counted();
        floor.load(LOAD_STREAM).await?;
        settle().await;
        record(LOADS[4], b);
        let b = proxy.counted();
        floor.load_paged(LOAD_STREAM, 1000).await?;
        settle().await;
        record(LOADS[5], b);
    }
    pges.pool.close().await;
    sekiban.store.close().await?;
    Ok(w)
}

// ---------------------------------------------------------------------------------------------
// Loads

const LOAD_STREAM: &str = "load-1000";
const LOADS: [&str; 6] = [
    "sekiban read (all pages)",
    "sekiban load_snapshot + tail",
    "postgres-es get_events",
    "postgres-es get_snapshot + get_last_events",
    "floor SELECT",
    "floor with sekiban's read statement (one page of 1 000)",
];
const LOAD_EVENTS: u64 = 1000;
const SNAPSHOT_AT: u64 = 950;

#[derive(Debug, Default, Clone)]
struct Loads {
    /// (what, milliseconds of each repetition).
    times: Vec<(&'static str, Vec<f64>)>,
    /// sekiban's own round trips per load: (what, count).
    sekiban_round_trips: Vec<(&'static str, f64)>,
}

async fn prepare_loads(sekiban: &Sekiban, pges: &PostgresEs) -> Result<()> {
    let mut head = 0;
    while head < LOAD_EVENTS {
        head = sekiban.append_exact(LOAD_STREAM, head, 100).await?;
    }
    let state = format!(r#"{{"ticks":{SNAPSHOT_AT},"pad":"{}"}}"#, "s".repeat(200));
    sekiban
        .save_snapshot(&stream_id(LOAD_STREAM)?, SNAPSHOT_AT, state)
        .await?;
    pges.fill(LOAD_STREAM, LOAD_EVENTS, 50, SNAPSHOT_AT).await
}

async fn time_loads(
    sekiban: &Sekiban,
    pges: &PostgresEs,
    floor: &Floor,
    reps: usize,
) -> Result<Loads> {
    let load = stream_id(LOAD_STREAM)?;
    const WHAT: [&str; 6] = LOADS;
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); WHAT.len()];
    let mut rts = [0u64; 2];
    let warm = 5;
    for rep in 0..warm + reps {
        for j in 0..WHAT.len() {
            // A different order each repetition.
            let i = (j + rep) % WHAT.len();
            let before = sekiban.costs();
            let t0 = Instant::now();
            let n = match i {
                0 => sekiban.load(&load).await?,
                1 => sekiban.load_with_snapshot(&load).await?,
                2 => pges.load(LOAD_STREAM).await?,
                3 => pges.load_with_snapshot(LOAD_STREAM).await?,
                4 => floor.load(LOAD_STREAM).await?,
                _ => floor.load_paged(LOAD_STREAM, 1000).await?,
            };
            let ms = t0.elapsed().as_secs_f64() * 1000.0;
            let expected = if i == 1 || i == 3 {
                LOAD_EVENTS - SNAPSHOT_AT
            } else {
                LOAD_EVENTS
            };
            if n as u64 != expected {
                bail!("{}: read {n} events, expected {expected}", WHAT[i]);
            }
            if rep >= warm {
                times[i].push(ms);
                if i < 2 {
                    rts[i] += (sekiban.costs() - before).operation_round_trips();
                }
            }
        }
    }
    Ok(Loads {
        times: WHAT.iter().copied().zip(times).collect(),
        sekiban_round_trips: vec![
            (WHAT[0], rts[0] as f64 / reps as f64),
            (WHAT[1], rts[1] as f64 / reps as f64),
        ],
    })
}

// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// The report

fn report(args: &Args, r: &Results) -> String {
    let mut o = String::new();
    let rate = |s: &[Sample]| median(s.iter().map(|x| x.rate).collect());
    // A ratio is the median of the rounds' ratios: each round runs the contenders back to back,
    // so a burst of other load on the machine touches both sides of a ratio alike.
    let ratio = |a: &[Sample], b: &[Sample]| {
        median(a.iter().zip(b).map(|(x, y)| x.rate / y.rate).collect())
    };
    let lat = |s: &[Sample]| {
        let mut all: Vec<Duration> = s.iter().flat_map(|x| x.latencies.iter().copied()).collect();
        all.sort();
        (percentile(&all, 0.5), percentile(&all, 0.99))
    };
    let per_append = |s: &[Sample], f: &dyn Fn(&CostSnapshot) -> u64| {
        let n: usize = s.iter().map(|x| x.appends).sum();
        let rt: u64 = s.iter().filter_map(|x| x.costs.as_ref()).map(f).sum();
        rt as f64 / n.max(1) as f64
    };
    let _ = writeln!(
        o,
        "PostgreSQL {} on 127.0.0.1 ({}), {} cores, load average {} at the start and {} at the end (the client shares the machine with the server); {}; {} round(s), medians of rounds; pool {} connections each.\n",
        r.server,
        r.settings,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        r.load_avg.0,
        r.load_avg.1,
        env!("BENCH_LOCKED_VERSIONS"),
        args.rounds,
        args.pool
    );
    let _ = writeln!(
        o,
        "### Appends per second (medians of the rounds; ratios: medians of the rounds' ratios)\n"
    );
    let _ = writeln!(
        o,
        "| streams | tasks | events/append | appends | sekiban | postgres-es | floor | sekiban/floor | postgres-es/floor | sekiban/postgres-es |"
    );
    let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (row, s) in &r.rows {
        let (a, b, f) = (rate(&s[0]), rate(&s[1]), rate(&s[2]));
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {a:.0} | {b:.0} | {f:.0} | {:.2} | {:.2} | {:.2} |",
            row.label(),
            row.tasks,
            row.events,
            s[0].first().map_or(0, |x| x.appends),
            ratio(&s[0], &s[2]),
            ratio(&s[1], &s[2]),
            ratio(&s[0], &s[1])
        );
    }
    let _ = writeln!(o, "\n### Latency per append, p50 / p99 ms (all rounds)\n");
    let _ = writeln!(
        o,
        "| streams | tasks | events/append | sekiban | postgres-es | floor | conflicts per append: sekiban / postgres-es / floor |"
    );
    let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---|");
    for (row, s) in &r.rows {
        let cell = |x: &[Sample]| {
            let (p50, p99) = lat(x);
            format!("{p50:.2} / {p99:.2}")
        };
        let conf = |x: &[Sample]| {
            let n: usize = x.iter().map(|y| y.appends).sum();
            let c: u64 = x.iter().map(|y| y.conflicts).sum();
            format!("{:.2}", c as f64 / n.max(1) as f64)
        };
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} / {} / {} |",
            row.label(),
            row.tasks,
            row.events,
            cell(&s[0]),
            cell(&s[1]),
            cell(&s[2]),
            conf(&s[0]),
            conf(&s[1]),
            conf(&s[2])
        );
    }

    let _ = writeln!(o, "\n### Round trips per append\n");
    let _ = writeln!(
        o,
        "sekiban's own counters (`store.costs()` deltas over the timed rows; NOTIFY is its background notifier, outside the append):\n"
    );
    let _ = writeln!(
        o,
        "| streams | tasks | events/append | Append | all operation kinds | background NOTIFY |"
    );
    let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|");
    for (row, s) in &r.rows {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} |",
            row.label(),
            row.tasks,
            row.events,
            per_append(&s[0], &|c| c.round_trips(OpKind::Append)),
            per_append(&s[0], &|c| c.operation_round_trips()),
            per_append(&s[0], &|c| c.round_trips(OpKind::Notify)),
        );
    }
    if let Some(w) = &r.wire {
        let _ = writeln!(
            o,
            "\nOn the wire (a counting proxy: requests the client waits on — Query, Sync, Flush messages — over {WIRE_APPENDS} appends at 1 task on its own stream, after a warm-up):\n"
        );
        let _ = writeln!(
            o,
            "| events/append | sekiban | sekiban's background NOTIFY (included) | sekiban's own counter | postgres-es | floor |"
        );
        let _ = writeln!(o, "|---:|---:|---:|---:|---:|---:|");
        for k in [1usize, 10] {
            let get = |name: &str| {
                w.appends
                    .iter()
                    .find(|(n, kk, _)| *n == name && *kk == k)
                    .map_or(f64::NAN, |x| x.2)
            };
            let find = |v: &[(usize, f64)]| v.iter().find(|x| x.0 == k).map_or(f64::NAN, |x| x.1);
            let _ = writeln!(
                o,
                "| {k} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                get("sekiban"),
                find(&w.sekiban_notify),
                find(&w.sekiban_counted),
                get("postgres-es"),
                get("floor")
            );
        }
        let _ = writeln!(o);
        for (name, d) in &w.detail {
            let _ = writeln!(o, "- {name}, 1 event/append: {d}");
        }
    } else {
        let _ = writeln!(o, "\nOn the wire: not measured (--no-wire).");
    }

    let mut load_ratio = Vec::new();
    for (title, loads) in [
        ("tables as the run wrote them, no statistics yet", &r.loads),
        ("after ANALYZE", &r.loads_analyzed),
    ] {
        load_ratio.push((title, load_table(&mut o, args, r, loads, title)));
    }

    let _ = writeln!(o, "\n### Targets\n");
    let _ = writeln!(o, "| target | measured | met |");
    let _ = writeln!(o, "|---|---|---|");
    let mut worst = f64::INFINITY;
    let mut cells = Vec::new();
    for (row, s) in r.rows.iter().filter(|(row, _)| row.mode == Mode::Distinct) {
        let ratio = ratio(&s[0], &s[2]);
        worst = worst.min(ratio);
        cells.push(format!("{}×{}: {ratio:.2}", row.tasks, row.events));
    }
    let yes = |b: bool| if b { "yes" } else { "**no**" };
    let _ = writeln!(
        o,
        "| sekiban appends/s ≥ 0.8× floor, every distinct-stream row (tasks×events) | {} | {} |",
        cells.join(", "),
        yes(worst >= 0.8)
    );
    let mut max_rt: f64 = 0.0;
    for (_, s) in r.rows.iter().filter(|(row, _)| row.mode == Mode::Distinct) {
        max_rt = max_rt.max(per_append(&s[0], &|c| c.operation_round_trips()));
    }
    let wire_rt = r.wire.as_ref().map(|w| {
        let notify: f64 = w.sekiban_notify.iter().map(|x| x.1).fold(0.0, f64::max);
        let total: f64 = w
            .appends
            .iter()
            .filter(|x| x.0 == "sekiban")
            .map(|x| x.2)
            .fold(0.0, f64::max);
        (total, notify)
    });
    let _ = writeln!(
        o,
        "| 1 round trip per append (Exact) | counter: {max_rt:.2}{} | {} |",
        wire_rt.map_or(String::new(), |(t, n)| format!(
            "; wire: {t:.2} incl. {n:.2} background NOTIFY = {:.2} for the append",
            t - n
        )),
        yes(max_rt <= 1.0 + 1e-9)
    );
    for (title, (sek, floor_ms)) in &load_ratio {
        let _ = writeln!(
            o,
            "| 1 000-event load ≤ 1.2× the raw SELECT ({title}) | {:.2}× ({sek:.2} ms vs {floor_ms:.2} ms) | {} |",
            sek / floor_ms,
            yes(sek / floor_ms <= 1.2)
        );
    }
    if !r.analysis.is_empty() {
        let _ = writeln!(
            o,
            "\n### Where sekiban's append time goes (distinct streams; appends/s, medians of rounds, and / floor)\n"
        );
        let _ = writeln!(
            o,
            "| tasks | events/append | floor | floor + sekiban's statement | + background NOTIFY | sekiban |"
        );
        let _ = writeln!(o, "|---:|---:|---:|---:|---:|---:|");
        for (row, s) in &r.analysis {
            let cells: Vec<String> = s
                .iter()
                .map(|x| format!("{:.0} ({:.2})", rate(x), ratio(x, &s[0])))
                .collect();
            let _ = writeln!(
                o,
                "| {} | {} | {} |",
                row.tasks,
                row.events,
                cells.join(" | ")
            );
        }
    }
    o
}

/// One table of load times; returns (sekiban read ms, floor SELECT ms).
fn load_table(o: &mut String, args: &Args, r: &Results, loads: &Loads, title: &str) -> (f64, f64) {
    let _ = writeln!(
        o,
        "\n### Loading a {LOAD_EVENTS}-event stream, {title} ({} repetitions after 5 untimed; snapshot at version {SNAPSHOT_AT})\n",
        args.load_reps
    );
    let floor_ms = loads
        .times
        .iter()
        .find(|(w, _)| *w == "floor SELECT")
        .map_or(f64::NAN, |(_, t)| median(t.clone()));
    let _ = writeln!(
        o,
        "| load | events | median ms | p90 ms | / floor SELECT | round trips (wire) | round trips (sekiban's counter) |"
    );
    let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|");
    for (what, t) in &loads.times {
        let mut s = t.clone();
        s.sort_by(f64::total_cmp);
        let p90 = s
            .get(((s.len() as f64 - 1.0) * 0.9).round() as usize)
            .copied()
            .unwrap_or(f64::NAN);
        let m = median(t.clone());
        let wire = r
            .wire
            .as_ref()
            .and_then(|w| w.loads.iter().find(|(n, _)| n == what));
        let counted = loads.sekiban_round_trips.iter().find(|(n, _)| n == what);
        let events = if what.contains("snapshot") {
            LOAD_EVENTS - SNAPSHOT_AT
        } else {
            LOAD_EVENTS
        };
        let _ = writeln!(
            o,
            "| {what} | {events} | {m:.2} | {p90:.2} | {:.2} | {} | {} |",
            m / floor_ms,
            wire.map_or("–".into(), |x| x.1.to_string()),
            counted.map_or("–".into(), |x| format!("{:.2}", x.1))
        );
    }

    let sek = loads
        .times
        .iter()
        .find(|(w, _)| w.starts_with("sekiban read"))
        .map_or(f64::NAN, |(_, t)| median(t.clone()));
    (sek, floor_ms)
}

// ---------------------------------------------------------------------------------------------

fn main() {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench: {e:#}");
            std::process::exit(2);
        }
    };
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
                print!("{}", report(&args, &r));
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
