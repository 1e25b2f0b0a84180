//! Timed appends, straight to the emulator: one row of appends, the rows of a run and their
//! statistics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::sync::Barrier;

use sekiban_bench_dynamodb::contenders::{Contender, Shape};

use crate::args::Args;

/// What each append of a timed row carries.
pub const TIMED_SHAPES: [Shape; 2] = [Shape::One800, Shape::Ten100];

/// A timed row: tasks and what each append carries.
pub type RowKey = (usize, Shape);

/// The rows of a run: (tasks, shape) → samples of each timed contender (one a round).
pub type Rows = Vec<(RowKey, Vec<Vec<Sample>>)>;

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

#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub rate: f64,
    pub appends: usize,
    pub latencies: Vec<Duration>,
    /// Requests the contender's client sent during the row.
    pub requests: u64,
}

/// One timed row: `tasks` tasks after a barrier, each on its own stream, `appends` appends in
/// all.
pub async fn run_row(
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

/// The timed rows of a run: a warm-up of every contender, then `args.rounds` rounds of every
/// row (1 and 16 tasks, each timed shape), the contenders in a different order each row and
/// round.
pub async fn time_rows(args: &Args, timed: &[Arc<dyn Contender>]) -> Result<Rows> {
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
    Ok(rows)
}
