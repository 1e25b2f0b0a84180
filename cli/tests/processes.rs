//! Many short-lived `sekiban` processes on one SQLite file: each closes the store before it
//! exits, so the WAL stays small meanwhile and is gone after the last one; a follower in another
//! process sees their commits within milliseconds.
#![cfg(feature = "sqlite")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{
    assert_no_anomalies, assert_woken_promptly, cross_process_delays, parse_rfc3339,
    race_one_stream, sekiban_ok,
};

fn side_file(db: &Path, suffix: &str) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(suffix);
    p.into()
}

#[test]
fn two_hundred_short_lived_appenders_leave_no_wal() {
    const PROCESSES: usize = 200;
    const AT_ONCE: usize = 4;
    const EVENTS: usize = 1000;
    const WAL_CEILING: u64 = 8_000_000;
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("events.db");
    let url = format!("sqlite://{}", db.display());
    let batch = dir.path().join("batch.jsonl");
    let lines: String = (0..EVENTS)
        .map(|n| {
            format!(
                "{{\"type\":\"Ticked\",\"data\":{{\"n\":{n},\"pad\":\"{}\"}}}}\n",
                "z".repeat(80)
            )
        })
        .collect();
    std::fs::write(&batch, lines).expect("write the batch file");
    sekiban_ok(&url, &["init"]);

    // Samples the WAL's size while the processes run.
    let (done, largest) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let sampler = {
        let (done, largest, wal) = (done.clone(), largest.clone(), side_file(&db, "-wal"));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Ok(m) = std::fs::metadata(&wal) {
                    largest.fetch_max(m.len(), Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let batch_arg = batch.display().to_string();
    let mut running = Vec::new();
    for _ in 0..PROCESSES {
        if running.len() == AT_ONCE {
            let mut first: std::process::Child = running.remove(0);
            let status = first.wait().expect("wait for an appender");
            assert!(status.success(), "an appender failed: {status}");
        }
        running.push(
            Command::new(env!("CARGO_BIN_EXE_sekiban"))
                .args(["--store", &url, "append", "t/load/one", "--expected", "any"])
                .args(["--batch", &batch_arg])
                .env_remove("SEKIBAN_STORE")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .expect("start an appender"),
        );
    }
    for mut c in running {
        let status = c.wait().expect("wait for an appender");
        assert!(status.success(), "an appender failed: {status}");
    }
    done.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    let largest = largest.load(Ordering::Relaxed);
    eprintln!("largest WAL while {PROCESSES} processes ran, {AT_ONCE} at once: {largest} bytes");
    for suffix in ["-wal", "-shm"] {
        assert!(
            !side_file(&db, suffix).exists(),
            "{suffix} is left after the last process exited"
        );
    }
    assert!(
        largest < WAL_CEILING,
        "the WAL reached {largest} bytes while the processes ran"
    );
    let listed = sekiban_ok(&url, &["streams", "--tenant", "t", "--json"]);
    let row: serde_json::Value = serde_json::from_str(listed.trim()).expect("one stream");
    assert_eq!(row["version"], (PROCESSES * EVENTS) as u64, "{row}");
}

#[test]
fn a_follower_in_another_process_sees_short_lived_writers_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("events.db").display());
    sekiban_ok(&url, &["init"]);
    let delays = cross_process_delays(&url, "wake", 10, Duration::from_millis(100));
    assert_woken_promptly(&delays);
}

#[test]
fn parses_the_times_tail_prints() {
    let t = parse_rfc3339("2024-02-29T13:05:09.250000Z");
    let secs = t.duration_since(std::time::UNIX_EPOCH).expect("after 1970");
    assert_eq!(secs, Duration::new(1_709_211_909, 250_000_000));
}

/// Sixteen `sekiban append` processes racing on one stream of one SQLite file, five rounds:
/// each ends with exit 0 or 3, one winner a round.
#[test]
fn sixteen_appenders_racing_on_one_sqlite_file_each_get_an_answer() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("race.db").display());
    race_one_stream(&url, 5, 16);
}

#[test]
fn torture_on_one_sqlite_file_finds_nothing_wrong() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("torture.db").display());
    let out = sekiban_ok(&url, &["torture", "--ops", "300", "--seed", "5", "--json"]);
    let r: serde_json::Value = serde_json::from_str(out.trim()).expect("the report");
    assert_eq!(r["events_stored"], r["acknowledged"], "{r}");
    assert_no_anomalies(&r);
}
