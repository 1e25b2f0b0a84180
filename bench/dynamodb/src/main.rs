//! sekiban-dynamodb beside dynamo-es 0.5 (cqrs-es), in one run on one DynamoDB Local: appends
//! per second at 1 and 16 tasks (distinct streams) with one 800-byte event and ten 100-byte
//! events per append; p50/p99 latency; per operation, the requests on the wire (a counting HTTP
//! proxy between the SDK and the emulator), the capacity units the emulator reports and the ones
//! AWS's published rules charge for the items written and read; the load of a 1 000-event stream,
//! with and without a snapshot; a 3 000-event stream written and read back. Prints markdown
//! tables on stdout, progress on stderr.
//!
//! `cargo run --release --manifest-path bench/dynamodb/Cargo.toml -- --endpoint http://127.0.0.1:8000`
//! (`scripts/bench-dynamodb.sh` starts an emulator of its own and runs it). Everything is written
//! into fresh tables `bench-<random>-{sekiban,dynamoes-events,dynamoes-snapshots,floor}`, deleted
//! at the end, also after an error or Ctrl-C (`--keep` keeps them).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tokio::sync::Barrier;

use sekiban_bench_dynamodb::contenders::{
    self, Contender, DynamoEs, Floor, FloorKind, Sekiban, Shape, create_dynamo_es_tables,
    create_floor_table, delete_table,
};
use sekiban_bench_dynamodb::proxy::{Counted, Proxy, fmt_count};
use sekiban_bench_dynamodb::units::{Accountant, Units, write_units};

const USAGE: &str = "usage: sekiban-bench-dynamodb [--endpoint URL] [--server TEXT] [--appends-1 N] \
[--appends-16 N] [--rounds R] [--load-reps N] [--wire-appends N] [--long N] [--no-analysis] [--keep] [--quick]";

#[derive(Clone, Debug)]
struct Args {
    endpoint: String,
    /// What the emulator is, for the report's first line.
    server: String,
    /// Appends per row at 1 task.
    appends_1: usize,
    /// Appends per row at 16 tasks.
    appends_16: usize,
    rounds: usize,
    load_reps: usize,
    /// Appends counted on the wire per contender and shape.
    wire_appends: usize,
    /// Events of the long stream (one 800-byte event an append).
    long: usize,
    /// Time the floors (raw SDK writes of sekiban's item) beside the contenders.
    analysis: bool,
    keep: bool,
}

fn args() -> Result<Args> {
    let mut a = Args {
        endpoint: "http://127.0.0.1:8000".into(),
        server: "DynamoDB Local".into(),
        appends_1: 300,
        appends_16: 1600,
        rounds: 5,
        load_reps: 30,
        wire_appends: 40,
        long: 3000,
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
            "--endpoint" => {
                a.endpoint = it.next().ok_or_else(|| anyhow!("--endpoint needs a URL"))?
            }
            "--server" => a.server = it.next().ok_or_else(|| anyhow!("--server needs a text"))?,
            "--appends-1" => a.appends_1 = num(it.next(), "--appends-1")?,
            "--appends-16" => a.appends_16 = num(it.next(), "--appends-16")?,
            "--rounds" => a.rounds = num(it.next(), "--rounds")?,
            "--load-reps" => a.load_reps = num(it.next(), "--load-reps")?,
            "--wire-appends" => a.wire_appends = num(it.next(), "--wire-appends")?,
            "--long" => a.long = num(it.next(), "--long")?,
            "--no-analysis" => a.analysis = false,
            "--keep" => a.keep = true,
            "--quick" => {
                a.appends_1 = 40;
                a.appends_16 = 160;
                a.rounds = 1;
                a.load_reps = 3;
                a.wire_appends = 5;
                a.long = 300;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    Ok(a)
}

/// The emulator's address, which must be on this machine: the benchmark is a load generator.
async fn upstream(endpoint: &str) -> Result<std::net::SocketAddr> {
    let rest = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("the endpoint must be http://HOST:PORT"))?;
    let hostport = rest.split('/').next().unwrap_or(rest);
    let addr = tokio::net::lookup_host(hostport)
        .await
        .with_context(|| format!("resolve {hostport}"))?
        .next()
        .ok_or_else(|| anyhow!("{hostport} does not resolve"))?;
    if !addr.ip().is_loopback() {
        bail!(
            "{hostport} is not a loopback address: this benchmark only sends load to this machine"
        );
    }
    Ok(addr)
}

#[derive(Debug, Clone)]
struct Names {
    sekiban: String,
    events: String,
    snapshots: String,
    floor: String,
}

impl Names {
    fn all(&self) -> [&String; 4] {
        [&self.sekiban, &self.events, &self.snapshots, &self.floor]
    }
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

fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

// ---------------------------------------------------------------------------------------------
// Counted operations (through the proxy)

/// The proxy and what applies AWS's rules to what it saw. Every exchange the proxy captures is
/// charged, counted or not, so the accountant knows each item's size before it is updated.
struct Meter {
    proxy: Proxy,
    accountant: Accountant,
}

/// What some operations cost, counted through the proxy.
#[derive(Clone, Debug, Default)]
struct Cost {
    /// Operations counted.
    ops: usize,
    wire: Counted,
    units: Units,
    /// The most write units one operation cost (AWS's rules).
    max_write: f64,
    /// sekiban's own counter (requests, capacity units), when the contender is sekiban.
    own: Option<(u64, f64)>,
    /// Events read (loads).
    events: usize,
    /// Time of the operations (through the proxy; the accountant's work left out).
    elapsed: Duration,
}

impl Cost {
    fn per(&self, x: f64) -> f64 {
        x / self.ops.max(1) as f64
    }
    fn requests(&self) -> f64 {
        self.per(self.wire.total().requests as f64)
    }
}

impl Meter {
    /// Charges what passed since the last call.
    async fn settle(&mut self) -> Result<Units> {
        let x = self.proxy.take();
        self.accountant.charge(&x).await
    }

    /// Appends `n` times `shape` to `stream` (from `head`) one by one, counting each; the new
    /// head and the cost.
    async fn appends(
        &mut self,
        c: &dyn Contender,
        sekiban: Option<&Sekiban>,
        stream: &str,
        mut head: u64,
        shape: Shape,
        n: usize,
    ) -> Result<(u64, Cost)> {
        self.settle().await?;
        let before = self.proxy.counted();
        let own = sekiban.map(own_costs);
        let mut cost = Cost::default();
        for _ in 0..n {
            let t0 = Instant::now();
            head = c.append(stream, head, shape).await?;
            cost.elapsed += t0.elapsed();
            let u = self.settle().await?;
            cost.max_write = cost.max_write.max(u.write);
            cost.units = cost.units + u;
            cost.ops += 1;
        }
        cost.wire = &self.proxy.counted() - &before;
        cost.own = sekiban.zip(own).map(|(s, b)| {
            let a = own_costs(s);
            (a.0 - b.0, a.1 - b.1)
        });
        Ok((head, cost))
    }

    /// One counted run of `f` (a load); the events it read.
    async fn load<F>(&mut self, sekiban: Option<&Sekiban>, f: F) -> Result<Cost>
    where
        F: std::future::Future<Output = Result<usize>>,
    {
        self.settle().await?;
        let before = self.proxy.counted();
        let own = sekiban.map(own_costs);
        let t0 = Instant::now();
        let events = f.await?;
        let elapsed = t0.elapsed();
        let units = self.settle().await?;
        Ok(Cost {
            ops: 1,
            wire: &self.proxy.counted() - &before,
            units,
            max_write: units.write,
            own: sekiban.zip(own).map(|(s, b)| {
                let a = own_costs(s);
                (a.0 - b.0, a.1 - b.1)
            }),
            events,
            elapsed,
        })
    }
}

/// sekiban's own counter: requests of operations, capacity units reported.
fn own_costs(s: &Sekiban) -> (u64, f64) {
    let c = s.costs();
    (c.operation_round_trips(), c.total().capacity_units)
}

// ---------------------------------------------------------------------------------------------
// Timed appends (straight to the emulator)

#[derive(Clone, Debug, Default)]
struct Sample {
    rate: f64,
    appends: usize,
    latencies: Vec<Duration>,
    /// Requests the contender's client sent during the row.
    requests: u64,
}

/// One timed row: `tasks` tasks after a barrier, each on its own stream, `appends` appends in
/// all.
async fn run_row(
    c: Arc<dyn Contender>,
    tasks: usize,
    shape: Shape,
    appends: usize,
    tag: &str,
) -> Result<Sample> {
    let per = (appends / tasks).max(1);
    // Warm-up, not timed: each stream created and appended to once (all of them before any
    // task waits, so a failure ends the row instead of leaving the others at the barrier).
    let warm = (0..tasks).map(|t| {
        let c = c.clone();
        let own = format!("{tag}-t{t}");
        async move {
            let head = c.append(&own, 0, shape).await?;
            let head = c.append(&own, head, shape).await?;
            Ok::<_, anyhow::Error>((own, head))
        }
    });
    let streams = futures::future::try_join_all(warm).await?;
    let go = Arc::new(Barrier::new(tasks + 1));
    let mut handles = Vec::new();
    for (own, mut head) in streams {
        let (c, go) = (c.clone(), go.clone());
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            go.wait().await;
            for _ in 0..per {
                let t0 = Instant::now();
                head = c.append(&own, head, shape).await?;
                lat.push(t0.elapsed());
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let before = c.requests();
    let start = Instant::now();
    go.wait().await;
    let mut s = Sample::default();
    for h in handles {
        s.latencies.extend(h.await??);
    }
    let secs = start.elapsed().as_secs_f64();
    s.requests = c.requests() - before;
    s.appends = s.latencies.len();
    s.rate = s.appends as f64 / secs;
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// The run

const LOAD_STREAM: &str = "load-1000";
const LOAD_EVENTS: u64 = 1000;
const SNAPSHOT_AT: u64 = 950;
const LOADS: [&str; 4] = [
    "sekiban read (all pages)",
    "sekiban load_snapshot + tail",
    "dynamo-es get_events",
    "dynamo-es get_snapshot + get_last_events",
];
const WIRE_SHAPES: [Shape; 3] = [Shape::One800, Shape::Ten100, Shape::Ten100Random];
const TIMED_SHAPES: [Shape; 2] = [Shape::One800, Shape::Ten100];

fn snapshot_state() -> String {
    format!(
        r#"{{"deposits":{SNAPSHOT_AT},"pad":"{}"}}"#,
        "s".repeat(200)
    )
}

/// A timed row: tasks and what each append carries.
type RowKey = (usize, Shape);

struct Results {
    /// The timed contenders: sekiban, dynamo-es, then the floors (with the analysis).
    names: Vec<&'static str>,
    /// (tasks, shape) → samples of each timed contender.
    rows: Vec<(RowKey, Vec<Vec<Sample>>)>,
    /// (shape, contender) → cost of `wire_appends` appends.
    appends: Vec<(Shape, &'static str, Cost)>,
    /// (load, cost of one) in `LOADS` order.
    loads: Vec<(&'static str, Cost)>,
    /// Load times straight to the emulator, ms, in `LOADS` order.
    load_times: Vec<Vec<f64>>,
    /// The long stream: (what, contender, cost).
    long: Vec<(&'static str, &'static str, Cost)>,
    load_avg: (String, String),
}

async fn run(args: &Args, names: &Names, admin: &aws_sdk_dynamodb::Client) -> Result<Results> {
    let load_start = load_avg();
    let addr = upstream(&args.endpoint).await?;

    // Tables: sekiban's through its own `init`, dynamo-es's as its create_tables.sh makes them.
    let sekiban = Arc::new(Sekiban::connect(&args.endpoint, &names.sekiban).await?);
    sekiban.table.init().await.context("sekiban init")?;
    create_dynamo_es_tables(admin, &names.events, &names.snapshots).await?;
    let direct = contenders::client(&args.endpoint, false).await;
    let dynamoes = Arc::new(DynamoEs::new(direct, &names.events, &names.snapshots));
    let mut timed: Vec<Arc<dyn Contender>> = vec![sekiban.clone(), dynamoes.clone()];
    if args.analysis {
        create_floor_table(admin, &names.floor).await?;
        for kind in [
            FloorKind::PutItem,
            FloorKind::Transact1,
            FloorKind::Transact2,
        ] {
            let client = contenders::client(&args.endpoint, false).await;
            timed.push(Arc::new(Floor::new(client, &names.floor, kind)));
        }
    }

    // The 1 000-event streams: ten events an append (dynamo-es: one transaction of ten puts),
    // the snapshot at 950 (dynamo-es: its snapshot row written with the append that ends there).
    eprintln!("bench: writing the {LOAD_EVENTS}-event streams");
    let mut head = 0;
    while head < LOAD_EVENTS {
        head = sekiban.append(LOAD_STREAM, head, Shape::Ten100).await?;
    }
    sekiban
        .save_snapshot(LOAD_STREAM, SNAPSHOT_AT, snapshot_state())
        .await?;
    let mut head = 0;
    while head < LOAD_EVENTS {
        head = if head + 10 == SNAPSHOT_AT {
            let state: serde_json::Value = serde_json::from_str(&snapshot_state())?;
            dynamoes
                .append_with_snapshot(LOAD_STREAM, head, Shape::Ten100, state)
                .await?
        } else {
            dynamoes.append(LOAD_STREAM, head, Shape::Ten100).await?
        };
    }

    // Counted phase, through the proxy.
    eprintln!("bench: counting on the wire");
    let proxy = Proxy::start(addr).await?;
    proxy.capture(true);
    let via = proxy.endpoint();
    let sekiban_p = Sekiban::connect(&via, &names.sekiban).await?;
    let dynamoes_p = DynamoEs::new(
        contenders::client(&via, true).await,
        &names.events,
        &names.snapshots,
    );
    let mut meter = Meter {
        proxy,
        accountant: Accountant::new(admin.clone()),
    };
    let mut appends = Vec::new();
    for shape in WIRE_SHAPES {
        for (c, s) in [
            (&sekiban_p as &dyn Contender, Some(&sekiban_p)),
            (&dynamoes_p as &dyn Contender, None),
        ] {
            let stream = format!("wire-{}", shape.tag());
            // Warm-up, charged but not reported: the stream is created and appended to once.
            let (head, _) = meter.appends(c, s, &stream, 0, shape, 2).await?;
            let (_, cost) = meter
                .appends(c, s, &stream, head, shape, args.wire_appends)
                .await?;
            eprintln!(
                "bench: {:>9} {:<24} {:.2} requests, {:.2} WCU (AWS rules) per append",
                c.name(),
                shape.label(),
                cost.requests(),
                cost.per(cost.units.write)
            );
            appends.push((shape, c.name(), cost));
        }
    }
    let mut loads = Vec::new();
    for counted in [false, true] {
        let costs = [
            meter
                .load(Some(&sekiban_p), sekiban_p.load(LOAD_STREAM))
                .await?,
            meter
                .load(Some(&sekiban_p), sekiban_p.load_with_snapshot(LOAD_STREAM))
                .await?,
            meter.load(None, dynamoes_p.load(LOAD_STREAM)).await?,
            meter
                .load(None, dynamoes_p.load_with_snapshot(LOAD_STREAM))
                .await?,
        ];
        if counted {
            loads = LOADS.iter().copied().zip(costs).collect();
        }
    }

    // The long stream, through the proxy: written one 800-byte event an append, read back.
    eprintln!("bench: the {}-event stream", args.long);
    let mut long = Vec::new();
    let stream = format!("long-{}", args.long);
    for (c, s) in [
        (&sekiban_p as &dyn Contender, Some(&sekiban_p)),
        (&dynamoes_p as &dyn Contender, None),
    ] {
        let (_, cost) = meter
            .appends(c, s, &stream, 0, Shape::One800, args.long)
            .await?;
        long.push(("write", c.name(), cost));
    }
    long.push((
        "read (all pages)",
        "sekiban",
        meter
            .load(Some(&sekiban_p), sekiban_p.load(&stream))
            .await?,
    ));
    long.push((
        "get_events",
        "dynamo-es",
        meter.load(None, dynamoes_p.load(&stream)).await?,
    ));
    long.push((
        "stream_events (its paginated replay)",
        "dynamo-es",
        meter.load(None, dynamoes_p.replay(&stream)).await?,
    ));
    drop(meter);

    // Timed appends, straight to the emulator.
    eprintln!("bench: warm-up");
    for (i, c) in timed.iter().enumerate() {
        for shape in TIMED_SHAPES {
            let tag = format!("warm-v{i}-{}", shape.tag());
            run_row(c.clone(), 16, shape, 160, &tag).await?;
        }
    }
    let mut rows = Vec::new();
    for tasks in [1usize, 16] {
        for shape in TIMED_SHAPES {
            rows.push(((tasks, shape), vec![Vec::new(); timed.len()]));
        }
    }
    let started = Instant::now();
    for round in 0..args.rounds {
        for (r, ((tasks, shape), samples)) in rows.iter_mut().enumerate() {
            for j in 0..timed.len() {
                // A different order each row and round.
                let i = (j + r + round) % timed.len();
                let appends = if *tasks == 1 {
                    args.appends_1
                } else {
                    args.appends_16
                };
                let tag = format!("r{round}-v{i}-c{tasks}-{}", shape.tag());
                let s = run_row(timed[i].clone(), *tasks, *shape, appends, &tag).await?;
                eprintln!(
                    "bench: round {} {:>2} tasks, {:<12} {:>36} {:>7.0} appends/s",
                    round + 1,
                    tasks,
                    shape.label(),
                    timed[i].name(),
                    s.rate
                );
                samples[i].push(s);
            }
        }
    }
    eprintln!(
        "bench: appends took {:.0} s; timing loads",
        started.elapsed().as_secs_f64()
    );

    // Timed loads, straight to the emulator, in rotating order.
    let mut load_times = vec![Vec::new(); LOADS.len()];
    let warm = 3;
    for rep in 0..warm + args.load_reps {
        for j in 0..LOADS.len() {
            let i = (j + rep) % LOADS.len();
            let t0 = Instant::now();
            let n = match i {
                0 => sekiban.load(LOAD_STREAM).await?,
                1 => sekiban.load_with_snapshot(LOAD_STREAM).await?,
                2 => dynamoes.load(LOAD_STREAM).await?,
                _ => dynamoes.load_with_snapshot(LOAD_STREAM).await?,
            };
            let ms = t0.elapsed().as_secs_f64() * 1000.0;
            let expected = if i % 2 == 1 {
                LOAD_EVENTS - SNAPSHOT_AT
            } else {
                LOAD_EVENTS
            };
            if n as u64 != expected {
                bail!("{}: read {n} events, expected {expected}", LOADS[i]);
            }
            if rep >= warm {
                load_times[i].push(ms);
            }
        }
    }
    Ok(Results {
        names: timed.iter().map(|c| c.name()).collect(),
        rows,
        appends,
        loads,
        load_times,
        long,
        load_avg: (load_start, load_avg()),
    })
}

// ---------------------------------------------------------------------------------------------
// The report

fn report(args: &Args, r: &Results) -> String {
    let mut o = String::new();
    let rate = |s: &[Sample]| median(s.iter().map(|x| x.rate).collect());
    let ratio = |a: &[Sample], b: &[Sample]| {
        median(a.iter().zip(b).map(|(x, y)| x.rate / y.rate).collect())
    };
    let lat = |s: &[Sample]| {
        let mut all: Vec<Duration> = s.iter().flat_map(|x| x.latencies.iter().copied()).collect();
        all.sort();
        format!(
            "{:.2} / {:.2}",
            percentile(&all, 0.5),
            percentile(&all, 0.99)
        )
    };
    let rt = |s: &[Sample]| {
        let n: usize = s.iter().map(|x| x.appends).sum();
        let q: u64 = s.iter().map(|x| x.requests).sum();
        q as f64 / n.max(1) as f64
    };
    let _ = writeln!(
        o,
        "{} on 127.0.0.1, {} cores, load average {} at the start and {} at the end (the client shares the machine with the emulator); {}; {} round(s), medians of rounds. Figures from an emulator, not AWS latency.\n",
        args.server,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        r.load_avg.0,
        r.load_avg.1,
        env!("BENCH_LOCKED_VERSIONS"),
        args.rounds
    );

    let _ = writeln!(
        o,
        "### Appends per second, distinct streams (straight to the emulator; medians of the rounds; ratio: median of the rounds' ratios)\n"
    );
    let _ = writeln!(
        o,
        "| tasks | events/append | appends | sekiban | dynamo-es | sekiban/dynamo-es | p50 / p99 ms sekiban | p50 / p99 ms dynamo-es | requests per append (own counters) sekiban / dynamo-es |"
    );
    let _ = writeln!(o, "|---:|---|---:|---:|---:|---:|---:|---:|---|");
    for ((tasks, shape), s) in &r.rows {
        let _ = writeln!(
            o,
            "| {tasks} | {} | {} | {:.0} | {:.0} | {:.2} | {} | {} | {:.2} / {:.2} |",
            shape.label(),
            s[0].first().map_or(0, |x| x.appends),
            rate(&s[0]),
            rate(&s[1]),
            ratio(&s[0], &s[1]),
            lat(&s[0]),
            lat(&s[1]),
            rt(&s[0]),
            rt(&s[1]),
        );
    }

    let _ = writeln!(
        o,
        "\n### What an append costs ({} appends at 1 task on one stream each, through the counting proxy; per append)\n",
        args.wire_appends
    );
    let _ = writeln!(
        o,
        "| events/append | contender | requests on the wire | sekiban's own counter: requests / CU | WCU reported by the emulator | WCU by AWS's rules, mean / max | physical minimum (the event bytes once, one PutItem) | items written: count × mean size (largest) | body bytes sent / received |"
    );
    let _ = writeln!(o, "|---|---|---|---:|---:|---:|---:|---|---:|");
    let own_cell = |c: &Cost| {
        c.own.map_or("–".into(), |(q, u)| {
            format!("{} / {:.2}", fmt_count(c.per(q as f64)), c.per(u))
        })
    };
    for (shape, name, c) in &r.appends {
        let event_bytes = shape.events() * shape.event_bytes();
        let mut kinds = Vec::new();
        for (what, w) in [("put", c.units.puts), ("update", c.units.updates)] {
            if w.items > 0 {
                kinds.push(format!(
                    "{what} {} × {:.0} B ({} B)",
                    fmt_count(c.per(w.items as f64)),
                    w.bytes as f64 / w.items as f64,
                    w.largest
                ));
            }
        }
        let items = kinds.join(", ");
        let t = c.wire.total();
        let _ = writeln!(
            o,
            "| {} | {name} | {} | {} | {:.2} | {:.2} / {:.0} | {:.0} ({event_bytes} B) | {} | {:.0} / {:.0} |",
            shape.label(),
            c.wire.by_target(c.ops as f64),
            own_cell(c),
            c.per(t.reported_units),
            c.per(c.units.write),
            c.max_write,
            write_units(event_bytes),
            items,
            c.per(t.bytes_sent as f64),
            c.per(t.bytes_received as f64),
        );
    }

    let _ = writeln!(
        o,
        "\n### Loading a {LOAD_EVENTS}-event stream (ten 100-byte events an append; snapshot at version {SNAPSHOT_AT})\n"
    );
    let _ = writeln!(
        o,
        "Requests and units: one load through the counting proxy (after one untimed). Times: {} loads straight to the emulator after 3 untimed, the four loads in rotating order.\n",
        args.load_reps
    );
    let _ = writeln!(
        o,
        "| load | events | requests on the wire | sekiban's own counter: requests / CU | RCU reported by the emulator | RCU by AWS's rules | items read (bytes) | median ms | p90 ms |"
    );
    let _ = writeln!(o, "|---|---:|---|---:|---:|---:|---|---:|---:|");
    for ((what, c), times) in r.loads.iter().zip(&r.load_times) {
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        let p90 = sorted
            .get(((sorted.len() as f64 - 1.0) * 0.9).round() as usize)
            .copied()
            .unwrap_or(f64::NAN);
        let _ = writeln!(
            o,
            "| {what} | {} | {} | {} | {:.1} | {:.1} | {} ({} KB) | {:.2} | {p90:.2} |",
            c.events,
            c.wire.by_target(1.0),
            c.own.map_or("–".into(), |(q, u)| format!("{q} / {u:.1}")),
            c.wire.total().reported_units,
            c.units.read,
            c.units.items_read,
            c.units.bytes_read.div_ceil(1024),
            median(times.clone()),
        );
    }

    let _ = writeln!(
        o,
        "\n### A {}-event stream (one 800-byte event an append), written and read back through the counting proxy\n",
        args.long
    );
    let _ = writeln!(
        o,
        "| step | contender | events | requests on the wire | sekiban's own counter: requests / CU | CU reported by the emulator | CU by AWS's rules | items (bytes) | seconds |"
    );
    let _ = writeln!(o, "|---|---|---:|---|---:|---:|---:|---|---:|");
    for (what, name, c) in &r.long {
        let write = *what == "write";
        let events = if write { args.long } else { c.events };
        let (units, items, bytes) = if write {
            (
                format!(
                    "{:.0} WCU ({:.2} an append)",
                    c.units.write,
                    c.per(c.units.write)
                ),
                c.units.written().items,
                c.units.written().bytes,
            )
        } else {
            (
                format!("{:.1} RCU", c.units.read),
                c.units.items_read,
                c.units.bytes_read,
            )
        };
        let _ = writeln!(
            o,
            "| {what} | {name} | {events} | {} | {} | {:.1} | {units} | {items} ({} KB) | {:.2} |",
            c.wire.by_target(1.0),
            c.own.map_or("–".into(), |(q, u)| format!("{q} / {u:.1}")),
            c.wire.total().reported_units,
            bytes.div_ceil(1024),
            c.elapsed.as_secs_f64(),
        );
    }

    for (what, name, c) in r.long.iter().filter(|(w, _, _)| *w != "write") {
        if c.events != args.long {
            let _ = writeln!(
                o,
                "\n**{name} {what} returned {} of the {} events written.**",
                c.events, args.long
            );
        }
    }

    if r.names.len() > 2 {
        let _ = writeln!(
            o,
            "\n### Where the append time goes (straight to the emulator; appends/s, medians of the rounds, and / the PutItem floor)\n"
        );
        let _ = writeln!(
            o,
            "The floors write sekiban's own append item (`encode_events` of the same events, the same attributes) with the SDK, on the same client stack, into a table of sekiban's key schema.\n"
        );
        let order: Vec<usize> = (2..r.names.len()).chain([0, 1]).collect();
        let heads: Vec<&str> = order.iter().map(|i| r.names[*i]).collect();
        let _ = writeln!(o, "| tasks | events/append | {} |", heads.join(" | "));
        let _ = writeln!(o, "|---:|---|{}", "---:|".repeat(order.len()));
        for ((tasks, shape), s) in &r.rows {
            let cells: Vec<String> = order
                .iter()
                .map(|i| format!("{:.0} ({:.2})", rate(&s[*i]), ratio(&s[*i], &s[2])))
                .collect();
            let _ = writeln!(o, "| {tasks} | {} | {} |", shape.label(), cells.join(" | "));
        }
    }

    let _ = writeln!(o, "\n### Targets\n");
    let _ = writeln!(o, "| target | measured | met |");
    let _ = writeln!(o, "|---|---|---|");
    let yes = |b: bool| if b { "yes" } else { "**no**" };
    let sek = |shape: Shape| {
        r.appends
            .iter()
            .find(|(s, n, _)| *s == shape && *n == "sekiban")
            .map(|x| &x.2)
    };
    let mut cells = Vec::new();
    let mut ok = true;
    for shape in WIRE_SHAPES {
        if let Some(c) = sek(shape) {
            let q = c.requests();
            ok &= q <= 1.0 + 1e-9;
            cells.push(format!("{}: {}", shape.label(), fmt_count(q)));
        }
    }
    let _ = writeln!(
        o,
        "| sekiban: 1 round trip per append on the wire | {} | {} |",
        cells.join("; "),
        yes(ok)
    );
    for shape in WIRE_SHAPES {
        if let Some(c) = sek(shape) {
            let _ = writeln!(
                o,
                "| sekiban: ≤ 4 WCU by AWS's rules per append, {} | max {:.0}, mean {:.2} (emulator: {:.2}) | {} |",
                shape.label(),
                c.max_write,
                c.per(c.units.write),
                c.per(c.wire.total().reported_units),
                if shape == Shape::Ten100Random {
                    if c.max_write <= 4.0 {
                        "yes"
                    } else {
                        "no (not a target: random text does not deflate under 1 KB)"
                    }
                } else {
                    yes(c.max_write <= 4.0)
                }
            );
        }
    }
    if let Some((_, c)) = r.loads.get(1) {
        let q = c.wire.total().requests;
        let _ = writeln!(
            o,
            "| sekiban: ≤ 2 round trips per load with a snapshot | {q} ({}) | {} |",
            c.wire.by_target(1.0),
            yes(q <= 2)
        );
    }
    o
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
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
        || std::env::var_os("AWS_SECRET_ACCESS_KEY").is_none()
    {
        eprintln!(
            "bench: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (any values for DynamoDB Local, e.g. test and test); scripts/bench-dynamodb.sh does"
        );
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let code = rt.block_on(async {
        if let Err(e) = upstream(&args.endpoint).await {
            eprintln!("bench: {e:#}");
            return 2;
        }
        let run_id = uuid::Uuid::new_v4().simple().to_string();
        let base = format!("bench-{}", &run_id[..8]);
        let names = Names {
            sekiban: format!("{base}-sekiban"),
            events: format!("{base}-dynamoes-events"),
            snapshots: format!("{base}-dynamoes-snapshots"),
            floor: format!("{base}-floor"),
        };
        let admin = contenders::client(&args.endpoint, false).await.client;
        if let Err(e) = admin.list_tables().limit(1).send().await {
            eprintln!(
                "bench: DynamoDB Local does not answer at {}: {e:?}",
                args.endpoint
            );
            return 1;
        }
        let tables = names.all().map(String::as_str).join(", ");
        eprintln!("bench: tables {tables}");
        let result = tokio::select! {
            r = run(&args, &names, &admin) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        };
        if args.keep {
            eprintln!("bench: kept tables {tables}");
        } else {
            for t in names.all() {
                if let Err(e) = delete_table(&admin, t).await {
                    eprintln!("bench: could not delete table {t}: {e:#}");
                }
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
