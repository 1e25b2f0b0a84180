//! The real `sekiban` binary against a real PostgreSQL server (`SEKIBAN_POSTGRES_URL`, which
//! `scripts/test.sh` sets).

mod common;

use std::time::{Duration, SystemTime};

use common::{Follower, assert_woken_promptly, cross_process_delays, sekiban_on};

fn url() -> String {
    let base = std::env::var("SEKIBAN_POSTGRES_URL").unwrap_or_else(|_| {
        panic!("SEKIBAN_POSTGRES_URL is not set: run `bash scripts/test.sh` (it finds or starts PostgreSQL; `bash scripts/setup.sh` installs it)")
    });
    let schema = std::env::var("SEKIBAN_POSTGRES_SCHEMA").unwrap_or_else(|_| "sekiban_test".into());
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}schema={schema}_cli")
}

/// Runs `sekiban --store URL args…`; returns (exit code, stdout, stderr).
fn sekiban(args: &[&str]) -> (i32, String, String) {
    sekiban_on(&url(), args)
}

fn ok(args: &[&str]) -> String {
    let (code, out, err) = sekiban(args);
    assert_eq!(code, 0, "sekiban {args:?} failed: {err}\n{out}");
    out
}

#[test]
fn the_cli_works_on_postgres() {
    ok(&["init"]);
    ok(&["init"]);
    let tenant = format!("cli{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let stream = format!("{tenant}/order/1");
    ok(&[
        "append",
        &stream,
        "--expected",
        "no-stream",
        "--type",
        "Placed",
        "--data",
        "{ \"a\" : 1 }",
    ]);
    let (code, _, err) = sekiban(&[
        "append",
        &stream,
        "--expected",
        "no-stream",
        "--type",
        "Placed",
        "--data",
        "{}",
    ]);
    assert_eq!(code, 3, "a wrong expected version exits 3: {err}");
    let events = ok(&["events", &stream, "--json"]);
    assert!(
        events.contains("\"data_b64\":\"eyAiYSIgOiAxIH0=\""),
        "exact bytes back: {events}"
    );
    let tail = ok(&[
        "tail",
        "--from",
        "beginning",
        "--tenant",
        &tenant,
        "--max",
        "1",
        "--json",
    ]);
    assert!(tail.contains("\"checkpoint\":\"pg:"), "{tail}");
    let streams = ok(&["streams", "--tenant", &tenant]);
    assert!(streams.contains(&stream), "{streams}");
    let conformance = ok(&["conformance", "--filter", "expected_exact"]);
    assert!(conformance.contains(" passed, 0 failed"), "{conformance}");
    let bench = ok(&["bench", "--ops", "20", "--concurrency", "2"]);
    assert!(bench.lines().count() >= 6, "{bench}");
    let demo = ok(&[
        "demo",
        "--accounts",
        "4",
        "--transfers",
        "20",
        "--tenant",
        &tenant,
    ]);
    assert!(demo.contains("transfers finished:    20"), "{demo}");
}

/// A follower in another process is woken by each short-lived writer's commit well inside one
/// feed poll interval (1 s): the writer's process sends its pending NOTIFY before it exits (the
/// CLI closes the store), instead of taking it with it, which leaves the follower to find the
/// event at its next poll.
#[test]
fn a_short_lived_writer_wakes_a_follower_in_another_process() {
    ok(&["init"]);
    // Small pools: these processes need one connection each (and the suite runs beside them).
    let small = format!("{}&pool=2", url());
    let tenant = format!("cli{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let delays = cross_process_delays(&small, &tenant, 10, Duration::from_millis(100));
    assert_woken_promptly(&delays);
}

/// A writer that exits while its last commits wait for the notifier's throttle (`notify_ms`)
/// still wakes a follower in another process at once: closing sends the pending NOTIFY instead
/// of dropping it with the process, which leaves the follower to find the last events at its
/// next poll (1 s later, at worst).
#[test]
fn a_writer_exiting_mid_throttle_still_wakes_a_follower_in_another_process() {
    ok(&["init"]);
    let small = format!("{}&pool=2", url());
    let tenant = format!("cli{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let follower = Follower::following(&small, &tenant);
    // Many commits, announced at most every 500 ms: the last ones are pending at exit.
    let throttled = format!("{small}&notify_ms=500");
    let args = [
        "demo",
        "--accounts",
        "2",
        "--transfers",
        "4",
        "--tenant",
        &tenant,
        "--json",
    ];
    let (code, out, err) = sekiban_on(&throttled, &args);
    let exited = SystemTime::now();
    assert_eq!(code, 0, "demo: {err}\n{out}");
    let last = follower
        .last_until_quiet(Duration::from_millis(1500))
        .expect("the demo's events reach the follower");
    let late = last.duration_since(exited).unwrap_or(Duration::ZERO);
    assert!(
        late < Duration::from_millis(300),
        "the last event of a writer that exited mid-throttle reached the follower {late:?} \
         after the writer exited: its pending NOTIFY was not sent before exit"
    );
}

/// `sekiban doctor` on the migrated schema: the server, the schema's version and the role's
/// privileges pass; the missing blob directory is a warning (exit code 0).
#[test]
fn doctor_checks_the_schema() {
    ok(&["init"]);
    let out = ok(&["doctor"]);
    assert!(out.contains("ok    schema:"), "{out}");
    assert!(out.contains("ok    permissions:"), "{out}");
    assert!(out.contains("WARN  snapshot blobs:"), "{out}");
    assert!(out.contains(", 0 failed"), "{out}");
}
