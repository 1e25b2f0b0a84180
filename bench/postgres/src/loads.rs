//! The load of a 1 000-event stream: the stream written once, then every contender's load timed.

use std::time::Instant;

use anyhow::{Result, bail};

use sekiban_bench_postgres::contenders::{Contender, Floor, PostgresEs, Sekiban, stream_id};

pub const LOAD_STREAM: &str = "load-1000";
pub const LOADS: [&str; 6] = [
    "sekiban read (all pages)",
    "sekiban load_snapshot + tail",
    "postgres-es get_events",
    "postgres-es get_snapshot + get_last_events",
    "floor SELECT",
    "floor with sekiban's read statement (one page of 1 000)",
];
pub const LOAD_EVENTS: u64 = 1000;
pub const SNAPSHOT_AT: u64 = 950;

#[derive(Debug, Default, Clone)]
pub struct Loads {
    /// (what, milliseconds of each repetition).
    pub times: Vec<(&'static str, Vec<f64>)>,
    /// sekiban's own round trips per load: (what, count).
    pub sekiban_round_trips: Vec<(&'static str, f64)>,
}

pub async fn prepare_loads(sekiban: &Sekiban, pges: &PostgresEs) -> Result<()> {
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

pub async fn time_loads(
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
