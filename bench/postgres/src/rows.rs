//! One timed row of appends: its shape, its sample, and the statistics the report takes of them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use sekiban_core::CostSnapshot;
use tokio::sync::Barrier;

use sekiban_bench_postgres::contenders::{Contender, Sekiban};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Distinct,
    Contended,
}

#[derive(Clone, Copy, Debug)]
pub struct Row {
    pub mode: Mode,
    pub tasks: usize,
    pub events: usize,
    pub appends: usize,
}

impl Row {
    pub fn label(&self) -> &'static str {
        match self.mode {
            Mode::Distinct => "distinct",
            Mode::Contended => "one contended",
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub rate: f64,
    pub appends: usize,
    pub latencies: Vec<Duration>,
    pub conflicts: u64,
    pub costs: Option<CostSnapshot>,
}

pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// One timed row of one contender: `row.tasks` tasks after a barrier, each with its own stream
/// (or all on one), `row.appends` appends in all, each of `row.events` events.
pub async fn run_row(
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
