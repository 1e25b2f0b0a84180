//! `sekiban bench`: a fixed workload, measured by the clock and by the store's own cost counters.
//!
//! The workload is described in [`crate::args::BENCH_HELP`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use tokio::task::JoinSet;

use sekiban_core::{
    CostSnapshot, EventData, ExpectedVersion, FeedOptions, FeedStart, OpKind, ReadOptions,
    Snapshot, Store, StreamId, Version,
};

use crate::args::BenchArgs;
use crate::commands::{fresh_temp_dir, print, with_store};
use crate::open::OpenedStore;
use crate::output::table;
use crate::progress;

/// Bytes of every event's payload (a JSON object).
pub const PAYLOAD_BYTES: usize = 100;
/// Events in the stream the load operations read.
pub const LOAD_EVENTS: u64 = 100;

/// What one operation of the workload measured.
#[derive(Debug)]
pub struct Phase {
    /// Letter in the workload's description.
    pub letter: char,
    /// Machine name, e.g. `append_1_new`.
    pub key: &'static str,
    /// What one op does.
    pub what: &'static str,
    /// Ops done.
    pub ops: u64,
    /// Wall time of the phase.
    pub elapsed: Duration,
    /// Latencies, sorted (per op; per batch for the feed).
    pub latencies: Vec<Duration>,
    /// The store's costs during the phase.
    pub costs: CostSnapshot,
    /// Feed batches (feed only).
    pub batches: Option<u64>,
}

impl Phase {
    /// Ops per second of wall time.
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    /// The latency at quantile `q` (nearest rank).
    pub fn latency(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = (q * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1]
    }
    /// Round trips per op, from the store's counters: the operations' own (a connection's
    /// set-up and background notifications are not any op's).
    pub fn round_trips_per_op(&self) -> f64 {
        self.costs.operation_round_trips() as f64 / self.ops.max(1) as f64
    }
    /// Requests the store sent again during the phase after a transient fault.
    pub fn retries(&self) -> u64 {
        self.costs.total().retries
    }
    /// Capacity units per op, when the store reported any.
    pub fn units_per_op(&self) -> Option<f64> {
        let u = self.costs.total().capacity_units;
        (u > 0.0).then(|| u / self.ops.max(1) as f64)
    }
}

#[derive(Serialize)]
struct JsonLine<'a> {
    operation: &'static str,
    description: &'static str,
    store: &'a str,
    build: &'static str,
    concurrency: usize,
    ops: u64,
    seconds: f64,
    ops_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    round_trips_per_op: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    capacity_units_per_op: Option<f64>,
    bytes_sent_per_op: f64,
    bytes_received_per_op: f64,
    round_trips_by_kind: BTreeMap<String, u64>,
    retries: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    batches: Option<u64>,
}

fn build() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// Runs the workload on `store` (default: a SQLite file in a fresh temporary directory, removed
/// afterwards) and prints a table or JSON lines.
pub async fn run(store: Option<String>, args: BenchArgs) -> anyhow::Result<()> {
    let (url, temp) = match store {
        Some(url) => (url, None),
        None => {
            let dir = fresh_temp_dir("sekiban-bench")?;
            (
                format!("sqlite://{}", dir.join("bench.db").display()),
                Some(dir),
            )
        }
    };
    let result = bench(&url, temp.is_some(), &args).await;
    if let Some(dir) = temp {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

async fn bench(url: &str, made_here: bool, args: &BenchArgs) -> anyhow::Result<()> {
    with_store(url, async |opened| {
        measure(opened, url, made_here, args).await
    })
    .await
}

async fn measure(
    opened: &OpenedStore,
    url: &str,
    made_here: bool,
    args: &BenchArgs,
) -> anyhow::Result<()> {
    let opened = opened.clone();
    let kind = opened.kind;
    let store = opened.store;
    let tenant = format!("bench{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    if !args.json {
        let place = if made_here {
            format!(" ({url}, removed afterwards)")
        } else {
            String::new()
        };
        print(&format!(
            "bench: {kind} store{place}; {} ops per operation on {} tasks; tenant {tenant}; {} build\n",
            args.ops,
            args.concurrency,
            build()
        ))?;
        if cfg!(debug_assertions) {
            eprintln!(
                "note: a debug build's figures are not representative; run `cargo run --release -p sekiban-cli -- bench`"
            );
        }
    }
    let payload = Bytes::from(format!(r#"{{"pad":"{}"}}"#, "x".repeat(PAYLOAD_BYTES - 10)));
    let mut phases = Vec::new();
    let ops = args.ops;
    let ctx = Ctx {
        store: store.clone(),
        tenant: tenant.clone(),
        payload: payload.clone(),
    };

    phases.push(
        ctx.phase(
            'a',
            "append_1_new",
            "append 1 event to a new stream",
            args,
            |c, i| async move {
                let s = c.stream("bench_a", i)?;
                c.store
                    .append(&s, ExpectedVersion::NoStream, c.events(1))
                    .await?;
                Ok(())
            },
        )
        .await?,
    );
    phases.push(
        ctx.phase(
            'b',
            "append_10_new",
            "append 10 events to a new stream",
            args,
            |c, i| async move {
                let s = c.stream("bench_b", i)?;
                c.store
                    .append(&s, ExpectedVersion::NoStream, c.events(10))
                    .await?;
                Ok(())
            },
        )
        .await?,
    );
    phases.push(
        ctx.phase(
            'c',
            "append_1_existing",
            "append 1 event to a stream of (a), exact expected version",
            args,
            |c, i| async move {
                let s = c.stream("bench_a", i)?;
                c.store
                    .append(&s, ExpectedVersion::Exact(Version(1)), c.events(1))
                    .await?;
                Ok(())
            },
        )
        .await?,
    );

    // Set-up of the loads, not measured: two streams of 100 events, a snapshot on the second.
    let plain = ctx.stream("bench_load", 0)?;
    let snapped = ctx.stream("bench_load", 1)?;
    for s in [&plain, &snapped] {
        ctx.fill(s, LOAD_EVENTS).await?;
    }
    store
        .save_snapshot(Snapshot {
            stream: snapped.clone(),
            version: Version(LOAD_EVENTS),
            state_type: "BenchState".into(),
            schema_version: 1,
            state: Bytes::from(format!(
                r#"{{"count":{LOAD_EVENTS},"pad":"{}"}}"#,
                "s".repeat(180)
            )),
        })
        .await
        .context("bench set-up: save the snapshot")?;

    let load = plain.clone();
    phases.push(
        ctx.phase(
            'd',
            "load_100",
            "read a 100-event stream without snapshot",
            args,
            move |c, _| {
                let s = load.clone();
                async move {
                    let n = c
                        .store
                        .read(&s, ReadOptions::forward())
                        .try_fold(0u64, |n, _| async move { Ok(n + 1) })
                        .await?;
                    if n != LOAD_EVENTS {
                        return Err(anyhow!("read {n} events of {s}, expected {LOAD_EVENTS}"));
                    }
                    Ok(())
                }
            },
        )
        .await?,
    );
    let load = snapped.clone();
    phases.push(
        ctx.phase(
            'e',
            "load_100_snapshot",
            "load the snapshot at version 100, then read the tail after it",
            args,
            move |c, _| {
                let s = load.clone();
                async move {
                    let snap = c
                        .store
                        .load_snapshot(&s)
                        .await?
                        .ok_or_else(|| anyhow!("the snapshot of {s} is missing"))?;
                    if snap.version != Version(LOAD_EVENTS) {
                        return Err(anyhow!(
                            "the snapshot of {s} is at version {}, expected {LOAD_EVENTS}",
                            snap.version
                        ));
                    }
                    let tail = c
                        .store
                        .read(&s, ReadOptions::forward().from(snap.version.plus(1)))
                        .try_fold(0u64, |n, _| async move { Ok(n + 1) })
                        .await?;
                    if tail != 0 {
                        return Err(anyhow!(
                            "{tail} events after the snapshot of {s}, expected none"
                        ));
                    }
                    Ok(())
                }
            },
        )
        .await?,
    );
    let expected = (ops as u64) * 12 + 2 * LOAD_EVENTS;
    phases.push(ctx.feed_phase(expected, args.json).await?);

    if args.json {
        let mut out = String::new();
        for p in &phases {
            let total = p.costs.total();
            let per = |x: u64| x as f64 / p.ops.max(1) as f64;
            let by_kind = OpKind::ALL
                .iter()
                .filter(|k| p.costs.round_trips(**k) > 0)
                .map(|k| (format!("{k:?}").to_lowercase(), p.costs.round_trips(*k)))
                .collect();
            out.push_str(&serde_json::to_string(&JsonLine {
                operation: p.key,
                description: p.what,
                store: kind,
                build: build(),
                concurrency: args.concurrency,
                ops: p.ops,
                seconds: p.elapsed.as_secs_f64(),
                ops_per_sec: p.ops_per_sec(),
                p50_ms: p.latency(0.5).as_secs_f64() * 1000.0,
                p99_ms: p.latency(0.99).as_secs_f64() * 1000.0,
                round_trips_per_op: p.round_trips_per_op(),
                capacity_units_per_op: p.units_per_op(),
                bytes_sent_per_op: per(total.bytes_sent),
                bytes_received_per_op: per(total.bytes_received),
                round_trips_by_kind: by_kind,
                retries: p.retries(),
                batches: p.batches,
            })?);
            out.push('\n');
        }
        print(&out)?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = phases
        .iter()
        .map(|p| {
            vec![
                p.letter.to_string(),
                p.key.to_string(),
                p.ops.to_string(),
                format!("{:.1}", p.ops_per_sec()),
                ms(p.latency(0.5)),
                ms(p.latency(0.99)),
                format!("{:.3}", p.round_trips_per_op()),
                p.units_per_op().map_or("-".into(), |u| format!("{u:.2}")),
                p.retries().to_string(),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "",
            "OPERATION",
            "OPS",
            "OPS/S",
            "P50",
            "P99",
            "ROUND TRIPS/OP",
            "UNITS/OP",
            "RETRIES",
        ],
        &rows,
    );
    out.push('\n');
    for p in &phases {
        writeln!(out, "{}  {}", p.letter, p.what)?;
    }
    writeln!(
        out,
        "f counts one op per event delivered; its latencies are per batch ({} batches)",
        phases.last().and_then(|p| p.batches).unwrap_or_default()
    )?;
    print(&out)?;
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// What every op closure needs; cheap to clone.
#[derive(Clone)]
struct Ctx {
    store: Arc<dyn Store>,
    tenant: String,
    payload: Bytes,
}

impl Ctx {
    fn stream(&self, category: &str, i: usize) -> anyhow::Result<StreamId> {
        Ok(StreamId::new(&self.tenant, category, format!("s{i}"))?)
    }

    fn events(&self, n: usize) -> Vec<EventData> {
        (0..n)
            .map(|_| EventData::new("BenchEvent", self.payload.clone()))
            .collect()
    }

    /// Appends `n` events to a new stream, in appends as large as the store takes.
    async fn fill(&self, s: &StreamId, n: u64) -> anyhow::Result<()> {
        let per = (self.store.limits().max_append_events.max(1) as u64).min(n);
        let mut head = 0;
        while head < n {
            let k = per.min(n - head);
            self.store
                .append(
                    s,
                    ExpectedVersion::Exact(Version(head)),
                    self.events(k as usize),
                )
                .await
                .with_context(|| format!("bench set-up: fill {s}"))?;
            head += k;
        }
        Ok(())
    }

    /// Runs `op` `args.ops` times on `args.concurrency` tasks, measuring each op and the store's
    /// costs over the whole phase.
    async fn phase<F, Fut>(
        &self,
        letter: char,
        key: &'static str,
        what: &'static str,
        args: &BenchArgs,
        op: F,
    ) -> anyhow::Result<Phase>
    where
        F: Fn(Ctx, usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let ops = args.ops;
        let bar = progress::bar(ops as u64, &format!("{letter} {key}"), args.json);
        let op = Arc::new(op);
        let next = Arc::new(AtomicUsize::new(0));
        let before = self.store.costs();
        let start = Instant::now();
        let mut tasks = JoinSet::new();
        for _ in 0..args.concurrency.min(ops) {
            let (op, next, bar, ctx) = (op.clone(), next.clone(), bar.clone(), self.clone());
            tasks.spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= ops {
                        break;
                    }
                    let t = Instant::now();
                    op(ctx.clone(), i)
                        .await
                        .with_context(|| format!("bench {key}: operation {i}"))?;
                    latencies.push(t.elapsed());
                    bar.inc(1);
                }
                Ok::<_, anyhow::Error>(latencies)
            });
        }
        let mut latencies = Vec::with_capacity(ops);
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(l)) => latencies.extend(l),
                Ok(Err(e)) => {
                    tasks.abort_all();
                    bar.abandon();
                    return Err(e);
                }
                Err(e) => {
                    tasks.abort_all();
                    bar.abandon();
                    return Err(anyhow!("bench {key}: a task failed: {e}"));
                }
            }
        }
        let elapsed = start.elapsed();
        let costs = self.store.costs() - before;
        bar.finish_and_clear();
        latencies.sort();
        Ok(Phase {
            letter,
            key,
            what,
            ops: latencies.len() as u64,
            elapsed,
            latencies,
            costs,
            batches: None,
        })
    }

    /// Reads the tenant's change feed from the beginning to its end, once.
    async fn feed_phase(&self, expected: u64, quiet: bool) -> anyhow::Result<Phase> {
        let bar = progress::bar(expected, "f feed_catch_up", quiet);
        let before = self.store.costs();
        let start = Instant::now();
        let mut feed = self.store.changes(
            FeedStart::Beginning,
            FeedOptions::catch_up().tenant(self.tenant.clone()),
        );
        let (mut events, mut latencies) = (0u64, Vec::new());
        loop {
            let t = Instant::now();
            let Some(batch) = feed.next().await else {
                break;
            };
            let batch = batch.context("bench feed_catch_up")?;
            latencies.push(t.elapsed());
            let n = batch
                .items
                .iter()
                .filter(|i| i.as_event().is_some())
                .count() as u64;
            events += n;
            bar.inc(n);
        }
        let elapsed = start.elapsed();
        let costs = self.store.costs() - before;
        bar.finish_and_clear();
        if events != expected {
            return Err(anyhow!(
                "bench feed_catch_up: the feed delivered {events} events of the tenant, expected {expected}"
            ));
        }
        latencies.sort();
        Ok(Phase {
            letter: 'f',
            key: "feed_catch_up",
            what: "read the tenant's change feed from the beginning to its end (once)",
            ops: events,
            elapsed,
            batches: Some(latencies.len() as u64),
            latencies,
            costs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let p = Phase {
            letter: 'a',
            key: "k",
            what: "w",
            ops: 100,
            elapsed: Duration::from_secs(2),
            latencies: (1..=100).map(Duration::from_millis).collect(),
            costs: CostSnapshot::default(),
            batches: None,
        };
        assert_eq!(p.latency(0.5), Duration::from_millis(50));
        assert_eq!(p.latency(0.99), Duration::from_millis(99));
        assert_eq!(p.ops_per_sec(), 50.0);
        assert_eq!(p.units_per_op(), None);
    }
}
