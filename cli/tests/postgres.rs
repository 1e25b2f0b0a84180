//! The real `sekiban` binary against a real PostgreSQL server (`SEKIBAN_POSTGRES_URL`, which
//! `scripts/test.sh` sets).

use std::process::Command;

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
    let out = Command::new(env!("CARGO_BIN_EXE_sekiban"))
        .arg("--store")
        .arg(url())
        .args(args)
        .env_remove("SEKIBAN_STORE")
        .output()
        .expect("run sekiban");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
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
