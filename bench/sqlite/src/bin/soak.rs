//! A soak of one SQLite file: does the store stay as fast, small and cheap to read at a million
//! events as it is when empty?
//!
//! 1. File 1: `--events N` (default 1 000 000) events appended to one stream, 1 000 events per
//!    append with an exact expected version; appends/s over the first 50 appends and the last 50.
//! 2. File 2: `--small N` (default 100 000) one-event appends to 100 streams round-robin, exact
//!    versions; appends/s over the first 5 000 and the last 5 000.
//! 3. After each phase the store is closed; the sizes of the database and its `-wal`, the time
//!    to open it (median of 5), and for file 1 the wall time of a whole
//!    `sekiban events STREAM --json > /dev/null` process, and of the last page only (`--from`).
//! 4. Peak RSS of reading the whole stream of file 1 through `EventStore::read` (in a child
//!    process: this binary re-run with a hidden flag, so the appends' memory does not count) and
//!    through `sekiban events --json > /dev/null`.
//!
//! The WAL file's size is sampled after every 100th append of phases 1 and 2.
//!
//! `bash scripts/bench-sqlite-soak.sh [DIR] [--events N] [--small N]` builds the CLI and runs
//! `cargo run --release --manifest-path bench/sqlite/Cargo.toml --bin soak -- --dir DIR --cli PATH
//! [--events N] [--small N]`.
//! Everything goes into a fresh temporary directory under DIR (default /var/tmp/sekiban-soak,
//! a real disk), removed at the end. Prints markdown on stdout, progress on stderr.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use sekiban_core::{EventData, EventStore, ExpectedVersion, ReadOptions, Store, StreamId, Version};
use sekiban_sqlite::SqliteEventStore;

type Res<T> = Result<T, String>;

const BATCH: usize = 1000;
const STREAMS: usize = 100;
const OPENS: usize = 5;
const READ_CHILD: &str = "--read-child";

#[derive(Debug)]
struct Args {
    dir: PathBuf,
    cli: Option<PathBuf>,
    events: usize,
    small: usize,
}

fn number(it: &mut impl Iterator<Item = String>, flag: &str) -> Res<usize> {
    it.next()
        .and_then(|n| n.replace('_', "").parse().ok())
        .filter(|n| *n > 0)
        .ok_or(format!("{flag} needs a positive number"))
}

fn args() -> Res<Args> {
    let mut a = Args {
        dir: PathBuf::from("/var/tmp/sekiban-soak"),
        cli: None,
        events: 1_000_000,
        small: 100_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--dir" => a.dir = it.next().ok_or("--dir needs a directory")?.into(),
            "--cli" => a.cli = Some(it.next().ok_or("--cli needs the sekiban binary")?.into()),
            "--events" => a.events = number(&mut it, "--events")?,
            "--small" => a.small = number(&mut it, "--small")?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

/// 100 bytes of JSON.
fn payload(n: usize) -> String {
    sekiban_bench_sqlite::payload("soak", n)
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    s.into()
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn kib_to_mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// `VmHWM` (peak resident set) of this process, in KiB.
fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// WAL sizes sampled during a phase.
#[derive(Debug, Default)]
struct WalSamples(Vec<u64>);

impl WalSamples {
    fn max(&self) -> u64 {
        self.0.iter().copied().max().unwrap_or(0)
    }
    fn median(&self) -> u64 {
        let mut v = self.0.clone();
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0)
    }
    fn last(&self) -> u64 {
        self.0.last().copied().unwrap_or(0)
    }
}

/// One append phase's figures.
#[derive(Debug)]
struct Phase {
    name: &'static str,
    appends: usize,
    events: usize,
    window: usize,
    /// (appends/s, events/s) over the first and the last `window` appends.
    start: (f64, f64),
    end: (f64, f64),
    /// Appends/s over each tenth of the phase, in order.
    tenths: Vec<f64>,
    total: Duration,
    wal: WalSamples,
}

/// Rates over a window of appends: (appends/s, events/s).
fn rates(durations: &[Duration], events: &[usize]) -> (f64, f64) {
    let secs: f64 = durations.iter().map(Duration::as_secs_f64).sum();
    let n: usize = events.iter().sum();
    (durations.len() as f64 / secs, n as f64 / secs)
}

fn phase_of(
    name: &'static str,
    durations: &[Duration],
    sizes: &[usize],
    window: usize,
    total: Duration,
    wal: WalSamples,
) -> Phase {
    let w = window.min(durations.len() / 2).max(1);
    let k = durations.len();
    Phase {
        name,
        appends: k,
        events: sizes.iter().sum(),
        window: w,
        start: rates(&durations[..w], &sizes[..w]),
        end: rates(&durations[k - w..], &sizes[k - w..]),
        tenths: (0..10)
            .map(|t| {
                let (a, b) = (k * t / 10, (k * (t + 1) / 10).max(k * t / 10 + 1).min(k));
                rates(&durations[a..b], &sizes[a..b]).0
            })
            .collect(),
        total,
        wal,
    }
}

fn url_of(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

fn progress(what: &str, done: usize, of: usize, started: Instant) {
    if of >= 10 && done.is_multiple_of(of / 10) {
        eprintln!(
            "soak: {what}: {done}/{of} appends, {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
}

/// Phase 1: `events` events to one stream, `BATCH` per append.
async fn phase_big(path: &Path, stream: &StreamId, events: usize) -> Res<Phase> {
    let store = SqliteEventStore::from_url(&url_of(path))
        .await
        .map_err(err)?;
    let wal_path = with_suffix(path, "-wal");
    let appends = events.div_ceil(BATCH);
    let (mut durations, mut sizes) = (Vec::with_capacity(appends), Vec::with_capacity(appends));
    let mut wal = WalSamples::default();
    let mut version = 0usize;
    let started = Instant::now();
    for i in 1..=appends {
        let n = BATCH.min(events - version);
        let batch: Vec<_> = (1..=n)
            .map(|j| EventData::new("Ticked", payload(version + j)))
            .collect();
        let t0 = Instant::now();
        store
            .append(
                stream,
                ExpectedVersion::Exact(Version(version as u64)),
                batch,
            )
            .await
            .map_err(err)?;
        durations.push(t0.elapsed());
        sizes.push(n);
        version += n;
        if i % 100 == 0 {
            wal.0.push(file_len(&wal_path));
        }
        progress("phase 1", i, appends, started);
    }
    let total = started.elapsed();
    Store::close(&store).await.map_err(err)?;
    drop(store);
    Ok(phase_of(
        "1: one stream, 1 000 events per append",
        &durations,
        &sizes,
        50,
        total,
        wal,
    ))
}

/// Phase 2: `appends` one-event appends to `STREAMS` streams round-robin.
async fn phase_small(path: &Path, streams: &[StreamId], appends: usize) -> Res<Phase> {
    let store = SqliteEventStore::from_url(&url_of(path))
        .await
        .map_err(err)?;
    let wal_path = with_suffix(path, "-wal");
    let mut durations = Vec::with_capacity(appends);
    let mut versions = vec![0u64; streams.len()];
    let mut wal = WalSamples::default();
    let started = Instant::now();
    for i in 1..=appends {
        let s = (i - 1) % streams.len();
        let e = EventData::new("Ticked", payload(i));
        let t0 = Instant::now();
        store
            .append(
                &streams[s],
                ExpectedVersion::Exact(Version(versions[s])),
                vec![e],
            )
            .await
            .map_err(err)?;
        durations.push(t0.elapsed());
        versions[s] += 1;
        if i % 100 == 0 {
            wal.0.push(file_len(&wal_path));
        }
        progress("phase 2", i, appends, started);
    }
    let total = started.elapsed();
    Store::close(&store).await.map_err(err)?;
    drop(store);
    Ok(phase_of(
        "2: 100 streams, 1 event per append",
        &durations,
        &vec![1; appends],
        5000,
        total,
        wal,
    ))
}

/// The size of a closed database, its WAL, and the median time of `OPENS` opens (each until a
/// first `stream_version` answers, closed after).
#[derive(Debug)]
struct AtRest {
    db: u64,
    wal: u64,
    open_median: Duration,
    open_max: Duration,
}

async fn at_rest(path: &Path, stream: &StreamId) -> Res<AtRest> {
    let (db, wal) = (file_len(path), file_len(&with_suffix(path, "-wal")));
    let mut opens = Vec::new();
    for _ in 0..OPENS {
        let t0 = Instant::now();
        let store = SqliteEventStore::from_url(&url_of(path))
            .await
            .map_err(err)?;
        store.stream_version(stream).await.map_err(err)?;
        opens.push(t0.elapsed());
        Store::close(&store).await.map_err(err)?;
    }
    opens.sort();
    Ok(AtRest {
        db,
        wal,
        open_median: opens[opens.len() / 2],
        open_max: opens[opens.len() - 1],
    })
}

/// What one read of the big stream cost.
#[derive(Debug)]
struct ReadCost {
    what: String,
    events: Option<u64>,
    wall: Duration,
    first_10k_per_s: Option<f64>,
    peak_rss_kib: Option<u64>,
}

/// The hidden child mode: reads `stream` of `url` to its end through `EventStore::read`, keeping
/// nothing, and prints one JSON line: events, seconds, seconds to the 10 000th event, VmHWM.
async fn read_child(url: &str, stream: &str) -> Res<()> {
    let stream: StreamId = stream.parse().map_err(err)?;
    let store = SqliteEventStore::from_url(url).await.map_err(err)?;
    let hwm_opened = vm_hwm_kib().unwrap_or(0);
    let started = Instant::now();
    let mut first = None;
    let mut count = 0u64;
    {
        let mut events = store.read(&stream, ReadOptions::forward());
        while let Some(e) = events.next().await {
            e.map_err(err)?;
            count += 1;
            if count == 10_000 {
                first = Some(started.elapsed());
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let hwm = vm_hwm_kib().unwrap_or(0);
    Store::close(&store).await.map_err(err)?;
    let first = first.map_or("null".to_string(), |d| format!("{:.6}", d.as_secs_f64()));
    println!(
        r#"{{"events":{count},"secs":{secs:.6},"first_10k_secs":{first},"vm_hwm_kib":{hwm},"vm_hwm_opened_kib":{hwm_opened}}}"#
    );
    Ok(())
}

fn json_u64(v: &serde_json::Value, key: &str) -> Option<u64> {
    v.get(key).and_then(serde_json::Value::as_u64)
}

fn json_f64(v: &serde_json::Value, key: &str) -> Option<f64> {
    v.get(key).and_then(serde_json::Value::as_f64)
}

/// Phase 4 (a): the store's paged read in a child process.
fn read_in_child(url: &str, stream: &StreamId) -> Res<ReadCost> {
    let exe = std::env::current_exe().map_err(err)?;
    let out = Command::new(exe)
        .args([READ_CHILD, url, &stream.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .map_err(err)?;
    if !out.status.success() {
        return Err(format!("the read child failed: {}", out.status));
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(line.trim()).map_err(err)?;
    let events = json_u64(&v, "events");
    let secs = json_f64(&v, "secs").unwrap_or(f64::NAN);
    eprintln!(
        "soak: read child: VmHWM {} KiB after open, {} KiB at the end",
        json_u64(&v, "vm_hwm_opened_kib").unwrap_or(0),
        json_u64(&v, "vm_hwm_kib").unwrap_or(0)
    );
    Ok(ReadCost {
        what: "`store.read(forward)` in a child process, counting".into(),
        events,
        wall: Duration::from_secs_f64(secs),
        first_10k_per_s: json_f64(&v, "first_10k_secs").map(|s| 10_000.0 / s),
        peak_rss_kib: json_u64(&v, "vm_hwm_kib"),
    })
}

/// Runs the command with stdout to /dev/null under a small Python parent that reports the wall
/// time and the child's `ru_maxrss` (RUSAGE_CHILDREN: its only child). Without python3, the wall
/// time is measured here and the RSS is unknown.
const RUSAGE_PY: &str = r#"
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
r = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
wall = time.perf_counter() - t0
print(json.dumps({"rc": r.returncode, "wall": wall,
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"#;

fn run_measured(what: String, cmd: &[String], events: Option<u64>) -> Res<ReadCost> {
    let py = Command::new("python3")
        .arg("-c")
        .arg(RUSAGE_PY)
        .args(cmd)
        .stderr(Stdio::inherit())
        .output();
    match py {
        Ok(out) if out.status.success() => {
            let v: serde_json::Value =
                serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).map_err(err)?;
            if v.get("rc").and_then(serde_json::Value::as_i64) != Some(0) {
                return Err(format!("{} exited with {}", cmd.join(" "), v["rc"]));
            }
            Ok(ReadCost {
                what,
                events,
                wall: Duration::from_secs_f64(json_f64(&v, "wall").unwrap_or(f64::NAN)),
                first_10k_per_s: None,
                peak_rss_kib: json_u64(&v, "maxrss_kib"),
            })
        }
        _ => {
            eprintln!(
                "soak: python3 not usable; timing {} without its RSS",
                cmd[0]
            );
            let t0 = Instant::now();
            let status = Command::new(&cmd[0])
                .args(&cmd[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .status()
                .map_err(err)?;
            let wall = t0.elapsed();
            if !status.success() {
                return Err(format!("{} exited with {status}", cmd.join(" ")));
            }
            Ok(ReadCost {
                what,
                events,
                wall,
                first_10k_per_s: None,
                peak_rss_kib: None,
            })
        }
    }
}

fn commit() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let head = Command::new("git")
        .args(["-C", dir, "rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let dirty = Command::new("git")
        .args(["-C", dir, "status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .is_some_and(|o| !o.stdout.is_empty());
    match head {
        Some(h) if dirty => format!("`{h}` (with uncommitted changes)"),
        Some(h) => format!("`{h}`"),
        None => "unknown".into(),
    }
}

fn print_phases(phases: &[&Phase]) {
    println!("### Appends");
    println!();
    println!(
        "| phase | appends | events | window | start appends/s | start events/s | end appends/s | end events/s | end/start | total s | WAL max | WAL median | WAL last |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for p in phases {
        println!(
            "| {} | {} | {} | {} appends | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {:.1} | {} | {} | {} |",
            p.name,
            p.appends,
            p.events,
            p.window,
            p.start.0,
            p.start.1,
            p.end.0,
            p.end.1,
            p.end.0 / p.start.0,
            p.total.as_secs_f64(),
            mib(p.wal.max()),
            mib(p.wal.median()),
            mib(p.wal.last()),
        );
    }
    println!();
    println!("Appends/s over each tenth of a phase, in order:");
    println!();
    println!("| phase | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10 |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for p in phases {
        let cells: Vec<String> = p.tenths.iter().map(|r| format!("{r:.0}")).collect();
        println!("| {} | {} |", p.name, cells.join(" | "));
    }
    println!();
    println!(
        "WAL sizes are of the `-wal` file after every 100th append ({} and {} samples).",
        phases.first().map_or(0, |p| p.wal.0.len()),
        phases.get(1).map_or(0, |p| p.wal.0.len()),
    );
    println!();
}

fn print_at_rest(rows: &[(&str, usize, &AtRest)]) {
    println!("### Files after close");
    println!();
    println!(
        "| file | events | database | `-wal` | open until first `stream_version`, median of 5 | max of 5 |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, events, r) in rows {
        println!(
            "| {name} | {events} | {} | {} | {:.1} ms | {:.1} ms |",
            mib(r.db),
            mib(r.wal),
            r.open_median.as_secs_f64() * 1000.0,
            r.open_max.as_secs_f64() * 1000.0,
        );
    }
    println!();
}

fn print_reads(events: usize, reads: &[ReadCost]) {
    println!("### Reads of the {events}-event stream (file 1)");
    println!();
    println!("| read | events | wall s | events/s | first 10 000 events/s | peak RSS |");
    println!("|---|---|---|---|---|---|");
    for r in reads {
        let secs = r.wall.as_secs_f64();
        println!(
            "| {} | {} | {:.3} | {} | {} | {} |",
            r.what,
            r.events.map_or("?".into(), |e| e.to_string()),
            secs,
            r.events
                .map_or("?".into(), |e| format!("{:.0}", e as f64 / secs)),
            r.first_10k_per_s.map_or("–".into(), |v| format!("{v:.0}")),
            r.peak_rss_kib.map_or("?".into(), kib_to_mib),
        );
    }
    println!();
    println!(
        "Goal: peak RSS of a whole read under 64 MiB. The `sekiban` rows are whole processes \
         (start, open, read, exit) with stdout to /dev/null; their RSS is `ru_maxrss`. The store \
         row's RSS is the child's `VmHWM` at the end of the read (it includes opening the store)."
    );
}

async fn run(a: &Args, tmp: &Path) -> Res<()> {
    // The commit the benchmark was built from (as near as can be told): taken before it runs.
    let commit = commit();
    let big = tmp.join("soak-1.db");
    let small = tmp.join("soak-2.db");
    let stream = StreamId::new("soak", "c", "big").map_err(err)?;
    let streams = (0..STREAMS)
        .map(|i| StreamId::new("soak", "small", format!("s{i}")))
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;

    eprintln!("soak: phase 1: {} events into {}", a.events, big.display());
    let p1 = phase_big(&big, &stream, a.events).await?;
    let rest1 = at_rest(&big, &stream).await?;

    eprintln!(
        "soak: phase 2: {} appends into {}",
        a.small,
        small.display()
    );
    let p2 = phase_small(&small, &streams, a.small).await?;
    let rest2 = at_rest(&small, &streams[0]).await?;

    eprintln!("soak: reads of {stream}");
    let url = url_of(&big);
    let mut reads = vec![read_in_child(&url, &stream)?];
    if let Some(cli) = &a.cli {
        let last_from = a.events.saturating_sub(999).max(1);
        let base = |extra: &[&str]| {
            let mut c = vec![
                cli.display().to_string(),
                "--store".into(),
                url.clone(),
                "events".into(),
                stream.to_string(),
                "--json".into(),
            ];
            c.extend(extra.iter().map(|s| s.to_string()));
            c
        };
        reads.push(run_measured(
            "`sekiban events STREAM --json > /dev/null`".into(),
            &base(&[]),
            Some(a.events as u64),
        )?);
        reads.push(run_measured(
            format!("`sekiban events STREAM --from {last_from} --json > /dev/null`"),
            &base(&["--from", &last_from.to_string()]),
            Some((a.events + 1 - last_from) as u64),
        )?);
    } else {
        eprintln!("soak: no --cli given: the `sekiban events` reads are skipped");
    }

    eprintln!("soak: the full file beside an empty one");
    let side = beside_empty(&big, &stream, a.events, &tmp.join("soak-empty.db")).await?;

    println!("## SQLite soak");
    println!();
    println!(
        "Commit {}, {} cores, files in {} (default store configuration: WAL, `synchronous=FULL`).",
        commit,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        a.dir.display()
    );
    println!();
    let cmd: Vec<String> = std::env::args().collect();
    println!("`{}`", cmd.join(" "));
    println!();
    print_phases(&[&p1, &p2]);
    print_at_rest(&[
        ("1 (one stream)", p1.events, &rest1),
        ("2 (100 streams)", p2.events, &rest2),
    ]);
    print_reads(a.events, &reads);
    print_beside(a.events, &side);
    Ok(())
}

/// Rounds of [`BESIDE_APPENDS`] appends of [`BATCH`] events, alternating the full file and an
/// empty one.
const BESIDE_ROUNDS: usize = 10;
const BESIDE_APPENDS: usize = 5;

/// Appends/s of the full file and of an empty one, measured in alternating rounds (so a machine
/// that speeds up or slows down over the run weighs on both alike): per round (full, empty).
async fn beside_empty(
    big: &Path,
    stream: &StreamId,
    events: usize,
    empty: &Path,
) -> Res<Vec<(f64, f64)>> {
    let full_store = SqliteEventStore::from_url(&url_of(big))
        .await
        .map_err(err)?;
    let empty_store = SqliteEventStore::from_url(&url_of(empty))
        .await
        .map_err(err)?;
    let mut heads = [events as u64, 0];
    let mut rounds = Vec::new();
    for round in 0..BESIDE_ROUNDS {
        let mut rate = [0.0; 2];
        for k in 0..2 {
            // Which goes first alternates too.
            let which = (k + round) % 2;
            let store = if which == 0 {
                &full_store
            } else {
                &empty_store
            };
            let t0 = Instant::now();
            for _ in 0..BESIDE_APPENDS {
                let batch: Vec<_> = (1..=BATCH)
                    .map(|j| EventData::new("Ticked", payload(heads[which] as usize + j)))
                    .collect();
                store
                    .append(stream, ExpectedVersion::Exact(Version(heads[which])), batch)
                    .await
                    .map_err(err)?;
                heads[which] += BATCH as u64;
            }
            rate[which] = BESIDE_APPENDS as f64 / t0.elapsed().as_secs_f64();
        }
        rounds.push((rate[0], rate[1]));
    }
    Store::close(&full_store).await.map_err(err)?;
    Store::close(&empty_store).await.map_err(err)?;
    Ok(rounds)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn print_beside(events: usize, rounds: &[(f64, f64)]) {
    let full = median(rounds.iter().map(|r| r.0).collect());
    let empty = median(rounds.iter().map(|r| r.1).collect());
    let ratio = median(rounds.iter().map(|r| r.0 / r.1).collect());
    println!();
    println!("### The full file beside an empty one");
    println!();
    println!(
        "{BESIDE_ROUNDS} rounds of {BESIDE_APPENDS} appends of {BATCH} events to the {events}-event \
         stream and to a new file, alternating (medians over the rounds):"
    );
    println!();
    println!(
        "| full file appends/s | empty file appends/s | full / empty, median of the rounds' ratios |"
    );
    println!("|---|---|---|");
    println!("| {full:.0} | {empty:.0} | {ratio:.2} |");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some(READ_CHILD) {
        let (Some(url), Some(stream)) = (argv.get(2), argv.get(3)) else {
            eprintln!("soak: {READ_CHILD} URL STREAM");
            std::process::exit(2);
        };
        if let Err(e) = runtime().block_on(read_child(url, stream)) {
            eprintln!("soak: read child: {e}");
            std::process::exit(1);
        }
        return;
    }
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(2);
        }
    };
    let created_dir = !a.dir.exists();
    if let Err(e) = std::fs::create_dir_all(&a.dir) {
        eprintln!("soak: cannot create {}: {e}", a.dir.display());
        std::process::exit(1);
    }
    let tmp = match tempfile::Builder::new()
        .prefix("sekiban-soak-")
        .tempdir_in(&a.dir)
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "soak: cannot create a directory in {}: {e}",
                a.dir.display()
            );
            std::process::exit(1);
        }
    };
    let result = runtime().block_on(run(&a, tmp.path()));
    let path = tmp.path().to_owned();
    if let Err(e) = tmp.close() {
        eprintln!("soak: could not remove {}: {e}", path.display());
    }
    if created_dir {
        // Only when empty: nothing else was put there meanwhile.
        let _ = std::fs::remove_dir(&a.dir);
    }
    if let Err(e) = result {
        eprintln!("soak: {e}");
        std::process::exit(1);
    }
}
