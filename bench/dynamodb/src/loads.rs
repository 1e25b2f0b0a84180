//! The 1 000-event stream both contenders load, with and without a snapshot: written once, then
//! its loads timed straight to the emulator (counted through the proxy in `meter`).

use anyhow::{Result, bail};
use std::time::Instant;

use sekiban_bench_dynamodb::contenders::{Contender, DynamoEs, Sekiban, Shape};

pub const LOAD_STREAM: &str = "load-1000";
pub const LOAD_EVENTS: u64 = 1000;
pub const SNAPSHOT_AT: u64 = 950;
/// The loads, in the order of the report.
pub const LOADS: [&str; 4] = [
    "sekiban read (all pages)",
    "sekiban load_snapshot + tail",
    "dynamo-es get_events",
    "dynamo-es get_snapshot + get_last_events",
];

fn snapshot_state() -> String {
    format!(
        r#"{{"deposits":{SNAPSHOT_AT},"pad":"{}"}}"#,
        "s".repeat(200)
    )
}

/// The 1 000-event streams: ten events an append (dynamo-es: one transaction of ten puts), the
/// snapshot at 950 (dynamo-es: its snapshot row written with the append that ends there).
pub async fn write_load_streams(sekiban: &Sekiban, dynamoes: &DynamoEs) -> Result<()> {
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
    Ok(())
}

/// Timed loads, straight to the emulator, in rotating order: `reps` of each after 3 untimed;
/// the times in ms, in `LOADS` order.
pub async fn time_loads(
    reps: usize,
    sekiban: &Sekiban,
    dynamoes: &DynamoEs,
) -> Result<Vec<Vec<f64>>> {
    let mut load_times = vec![Vec::new(); LOADS.len()];
    let warm = 3;
    for rep in 0..warm + reps {
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
    Ok(load_times)
}
