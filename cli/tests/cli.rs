//! The `sekiban` binary, run as a subprocess against `memory://` and temporary SQLite files.

use std::io::Write;
#[cfg(feature = "sqlite")]
use std::path::Path;
use std::process::{Command, Stdio};

#[cfg(feature = "sqlite")]
use base64::Engine as _;
#[cfg(feature = "sqlite")]
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self) -> Self {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
        self
    }

    fn failed_with(self, code: i32, message: &str) -> Self {
        assert_eq!(self.code, code, "expected exit code {code}: {self:#?}");
        assert!(
            self.stderr.contains(message),
            "stderr should mention {message:?}: {self:#?}"
        );
        self
    }

    fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect()
    }
}

fn run_with(args: &[&str], stdin: Option<&[u8]>, env_store: Option<&str>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sekiban"));
    cmd.args(args)
        .env_remove("SEKIBAN_STORE")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(url) = env_store {
        cmd.env("SEKIBAN_STORE", url);
    }
    let mut child = cmd.spawn().expect("start sekiban");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
    }
    let out = child.wait_with_output().expect("run sekiban");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn sekiban(args: &[&str]) -> Run {
    run_with(args, None, None)
}

#[cfg(feature = "sqlite")]
/// A SQLite URL of a file in a fresh temporary directory (the directory lives as long as the guard).
fn sqlite() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("events.db").display());
    (dir, url)
}

#[cfg(feature = "sqlite")]
fn append(store: &str, stream: &str, expected: &str, extra: &[&str]) -> Run {
    let mut args = vec!["--store", store, "append", stream, "--expected", expected];
    args.extend_from_slice(extra);
    sekiban(&args)
}

/// Every scheme `open_store` opens is in `sekiban --help` and in the CLI's README, so neither
/// drifts from the code again.
#[cfg(all(feature = "sqlite", feature = "postgres", feature = "dynamodb"))]
#[test]
fn help_and_readme_name_every_store_scheme() {
    let help = sekiban(&["--help"]).ok().stdout;
    let readme = include_str!("../README.md");
    for scheme in sekiban_cli::SCHEMES {
        let form = format!("{scheme}://");
        assert!(
            help.contains(&form),
            "`sekiban --help` lacks {form}: {help}"
        );
        assert!(
            readme.contains(&format!("`{form}")),
            "cli/README.md lacks `{form}"
        );
    }
}

#[test]
fn help_lists_every_subcommand_and_the_exit_codes() {
    let r = sekiban(&["--help"]).ok();
    for sub in [
        "init",
        "demo",
        "streams",
        "events",
        "append",
        "tail",
        "conformance",
        "doctor",
        "bench",
    ] {
        assert!(r.stdout.contains(sub), "{sub} missing: {}", r.stdout);
    }
    assert!(r.stdout.contains("Exit codes"), "{}", r.stdout);
    let r = sekiban(&["append", "--help"]).ok();
    assert!(
        r.stdout
            .contains("3  append: the stream is not at the expected version"),
        "{}",
        r.stdout
    );
    let r = sekiban(&["bench", "--help"]).ok();
    assert!(
        r.stdout
            .contains("cargo run --release -p sekiban-cli -- bench"),
        "{}",
        r.stdout
    );
}

#[test]
fn demo_help_works() {
    let r = sekiban(&["demo", "--help"]).ok();
    for flag in [
        "--accounts",
        "--transfers",
        "--concurrency",
        "--tenant",
        "--json",
    ] {
        assert!(r.stdout.contains(flag), "{flag} missing: {}", r.stdout);
    }
}

#[test]
fn conformance_on_memory_prints_a_table_and_a_junit_report() {
    let dir = tempfile::tempdir().expect("temp dir");
    let junit = dir.path().join("report.xml");
    let junit_arg = junit.to_string_lossy().into_owned();
    let r = sekiban(&[
        "--store",
        "memory://",
        "conformance",
        "--filter",
        "expected_",
        "--junit",
        &junit_arg,
    ])
    .ok();
    let rows: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("pass "))
        .collect();
    assert!(rows.len() >= 7, "{}", r.stdout);
    for case in ["expected_no_stream", "expected_exact_above_head_fails"] {
        assert!(
            rows.iter().any(|l| l.ends_with(case)),
            "{case}: {}",
            r.stdout
        );
    }
    let summary = format!("{} passed, 0 failed", rows.len());
    assert!(r.stdout.contains(&summary), "{}", r.stdout);

    let xml = std::fs::read_to_string(&junit).expect("JUnit report written");
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(
        xml.contains(&format!("tests=\"{}\" failures=\"0\"", rows.len())),
        "{xml}"
    );
    assert!(xml.contains("name=\"expected_no_stream\""), "{xml}");
    assert_eq!(xml.matches("<testcase ").count(), rows.len(), "{xml}");
}

/// Events the feed of `url` delivers from the beginning, and the hard-delete markers.
#[cfg(feature = "sqlite")]
fn feed_contents(url: &str) -> (usize, usize) {
    let r = sekiban(&[
        "--store",
        url,
        "tail",
        "--from",
        "beginning",
        "--idle-exit",
        "0.3",
        "--json",
    ])
    .ok();
    let items = r.json_lines();
    let events = items.iter().filter(|i| i["kind"] == "event").count();
    let hard = items
        .iter()
        .filter(|i| i["kind"] == "deleted" && i["mode"] == "hard")
        .count();
    (events, hard)
}

/// Files under a directory, recursively (none when it does not exist).
#[cfg(feature = "sqlite")]
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            let p = e.path();
            if p.is_dir() { files_under(&p) } else { vec![p] }
        })
        .collect()
}

#[cfg(feature = "sqlite")]
#[test]
fn conformance_removes_what_it_wrote_unless_kept() {
    let cases = [
        "conformance",
        "--filter",
        "snapshot_large_offloaded",
        "--filter",
        "checkpoint_",
        "--filter",
        "tenant_isolation_in_reads",
    ];
    let (dir, url) = sqlite();
    let blobs = dir.path().join("events.db.blobs");
    let mut args = vec!["--store", url.as_str()];
    args.extend(cases);
    args.push("--keep");
    let r = sekiban(&args).ok();
    assert!(r.stdout.contains("fresh tenant"), "{}", r.stdout);
    assert!(r.stdout.contains("--keep: they stay"), "{}", r.stdout);
    assert!(!r.stdout.contains("removed:"), "{}", r.stdout);
    let (events, _) = feed_contents(&url);
    assert!(events >= 5, "kept: {events} events");
    assert!(!files_under(&blobs).is_empty(), "kept: no snapshot blob");

    let (dir, url) = sqlite();
    let blobs = dir.path().join("events.db.blobs");
    let mut args = vec!["--store", url.as_str()];
    args.extend(cases);
    let r = sekiban(&args).ok();
    assert!(
        r.stdout.contains("removed when the run ends"),
        "{}",
        r.stdout
    );
    let removed = r
        .stdout
        .lines()
        .find(|l| l.starts_with("removed: "))
        .unwrap_or_else(|| panic!("no clean-up line: {}", r.stdout));
    assert!(!removed.contains(" 0 streams"), "{removed}");
    assert!(!removed.contains(" 0 checkpoints"), "{removed}");
    let (events, hard) = feed_contents(&url);
    assert_eq!(events, 0, "events left on the feed");
    assert!(hard >= 4, "{hard} hard-delete markers");
    assert_eq!(files_under(&blobs), Vec::<std::path::PathBuf>::new());
}

#[test]
fn conformance_filter_matching_nothing_is_bad_input() {
    sekiban(&[
        "--store",
        "memory://",
        "conformance",
        "--filter",
        "no_case_is_called_this",
    ])
    .failed_with(2, "--list");
    let r = sekiban(&["--store", "memory://", "conformance", "--list"]).ok();
    assert!(r.stdout.lines().any(|l| l == "expected_no_stream"));
}

#[test]
fn bench_on_memory_reports_all_six_operations() {
    let r = sekiban(&["--store", "memory://", "bench", "--ops", "50"]).ok();
    for op in [
        "append_1_new",
        "append_10_new",
        "append_1_existing",
        "load_100",
        "load_100_snapshot",
        "feed_catch_up",
    ] {
        assert!(r.stdout.contains(op), "{op} missing: {}", r.stdout);
    }
    assert!(r.stdout.contains("ROUND TRIPS/OP"), "{}", r.stdout);

    let r = sekiban(&[
        "--store",
        "memory://",
        "bench",
        "--ops",
        "20",
        "--concurrency",
        "3",
        "--json",
    ])
    .ok();
    let lines = r.json_lines();
    assert_eq!(lines.len(), 6, "{}", r.stdout);
    let by_name = |name: &str| {
        lines
            .iter()
            .find(|l| l["operation"] == name)
            .unwrap_or_else(|| panic!("{name} missing: {}", r.stdout))
    };
    // The memory store models one request per append and per page: measured, not assumed.
    assert_eq!(by_name("append_1_new")["round_trips_per_op"], 1.0);
    assert_eq!(by_name("append_10_new")["round_trips_per_op"], 1.0);
    assert_eq!(by_name("load_100")["round_trips_per_op"], 1.0);
    assert_eq!(by_name("load_100_snapshot")["round_trips_per_op"], 2.0);
    assert_eq!(by_name("append_1_new")["ops"], 20);
    assert_eq!(by_name("feed_catch_up")["ops"], 20 * 12 + 200);
}

#[test]
fn streams_on_memory() {
    let r = sekiban(&["--store", "memory://", "streams"]).ok();
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(r.stderr.contains("no streams"), "{}", r.stderr);
    let r = sekiban(&[
        "--store",
        "memory://",
        "streams",
        "--json",
        "--tenant",
        "acme",
    ])
    .ok();
    assert!(r.stdout.is_empty(), "{}", r.stdout);
}

#[cfg(feature = "sqlite")]
#[test]
fn init_twice_and_on_memory() {
    let (_dir, url) = sqlite();
    let first = sekiban(&["--store", &url, "init"]).ok();
    assert!(first.stdout.contains("created"), "{}", first.stdout);
    let second = sekiban(&["--store", &url, "init"]).ok();
    assert!(
        second.stdout.contains("already existed"),
        "{}",
        second.stdout
    );
    let m = sekiban(&["--store", "memory://", "init"]).ok();
    assert!(m.stdout.contains("nothing to create"), "{}", m.stdout);
}

#[cfg(feature = "sqlite")]
#[test]
fn append_with_every_expected_form_on_sqlite() {
    let (_dir, url) = sqlite();
    let s = "acme/order/1";
    let data = ["--type", "T", "--data", "x"];
    let r = append(&url, s, "no-stream", &data).ok();
    assert!(r.stdout.contains("at version 1"), "{}", r.stdout);
    let r = append(&url, s, "exists", &data).ok();
    assert!(r.stdout.contains("at version 2"), "{}", r.stdout);
    let r = append(&url, s, "any", &data).ok();
    assert!(r.stdout.contains("at version 3"), "{}", r.stdout);
    let r = append(&url, s, "3", &data).ok();
    assert!(r.stdout.contains("at version 4"), "{}", r.stdout);

    append(&url, s, "2", &data).failed_with(3, "at version 4");
    append(&url, s, "no-stream", &data).failed_with(3, "at version 4");
    append(&url, "acme/order/missing", "exists", &data).failed_with(3, "at version 0");
    let mut json = data.to_vec();
    json.push("--json");
    let r = append(&url, s, "5", &json);
    assert_eq!(r.code, 3, "{r:#?}");
    let conflict = &r.json_lines()[0];
    assert_eq!(conflict["error"], "wrong_expected_version");
    assert_eq!(conflict["actual"], 4);
    assert_eq!(conflict["expected"], "5");

    let r = append(&url, s, "4", &json).ok();
    let outcome = &r.json_lines()[0];
    assert_eq!(
        (
            &outcome["first"],
            &outcome["last"],
            &outcome["deduplicated"]
        ),
        (&Value::from(5), &Value::from(5), &Value::from(false))
    );

    let r = sekiban(&["--store", &url, "streams", "--tenant", "acme"]).ok();
    assert!(r.stdout.contains("acme/order/1"), "{}", r.stdout);
    let r = sekiban(&["--store", &url, "streams", "--tenant", "acme", "--json"]).ok();
    let streams = r.json_lines();
    assert_eq!(streams.len(), 1, "{}", r.stdout);
    assert_eq!(streams[0]["version"], 5);
    assert_eq!(streams[0]["deleted"], false);
}

#[cfg(feature = "sqlite")]
#[test]
fn batch_appends_atomically_and_events_return_the_exact_bytes() {
    let (dir, url) = sqlite();
    let binary: Vec<u8> = (0..=255u8).collect();
    let batch = dir.path().join("batch.jsonl");
    let text = format!(
        "{{\"type\": \"Placed\", \"data\": {{\"b\": 2, \"a\": [1, 2.50], \"s\": \"x  y\"}}}}\n\n{{\"id\": \"6f9619ff-8b86-d011-b42d-00cf4fc964ff\", \"type\": \"Blob\", \"data_b64\": \"{}\", \"schema_version\": 2}}\n",
        STANDARD.encode(&binary)
    );
    std::fs::write(&batch, text).expect("write batch");
    let batch_arg = batch.to_string_lossy().into_owned();
    let r = append(&url, "acme/cart/7", "no-stream", &["--batch", &batch_arg]).ok();
    assert!(r.stdout.contains("versions 1..2"), "{}", r.stdout);

    let r = sekiban(&["--store", &url, "events", "acme/cart/7", "--json"]).ok();
    let events = r.json_lines();
    assert_eq!(events.len(), 2, "{}", r.stdout);
    let bytes = |e: &Value| {
        STANDARD
            .decode(e["data_b64"].as_str().expect("data_b64"))
            .expect("base64")
    };
    assert_eq!(bytes(&events[0]), br#"{"b":2,"a":[1,2.50],"s":"x  y"}"#);
    assert_eq!(events[0]["data"]["s"], "x  y");
    assert_eq!(events[0]["type"], "Placed");
    assert_eq!(events[0]["stream"], "acme/cart/7");
    assert_eq!(events[0]["version"], 1);
    assert_eq!(bytes(&events[1]), binary);
    assert!(events[1].get("data").is_none(), "binary data is not JSON");
    assert_eq!(events[1]["schema_version"], 2);
    assert_eq!(events[1]["id"], "6f9619ff-8b86-d011-b42d-00cf4fc964ff");
    let recorded = events[1]["recorded_at"].as_str().expect("recorded_at");
    assert!(
        recorded.len() == 27 && recorded.ends_with('Z') && recorded.as_bytes()[10] == b'T',
        "{recorded}"
    );

    // A line that breaks the batch writes nothing of it.
    std::fs::write(
        &batch,
        "{\"type\":\"A\",\"data\":1}\n{\"type\":\"\",\"data\":2}\n",
    )
    .expect("write batch");
    append(&url, "acme/cart/7", "any", &["--batch", &batch_arg]).failed_with(2, "empty event type");
    let r = sekiban(&["--store", &url, "events", "acme/cart/7"]).ok();
    assert_eq!(
        r.stdout.lines().count(),
        3,
        "header and two events: {}",
        r.stdout
    );
    assert!(r.stdout.starts_with("VERSION"), "{}", r.stdout);

    // Exact bytes from a file and from standard input, and a backward read.
    let raw = dir.path().join("raw.bin");
    std::fs::write(&raw, [0xff, 0x00, b'\n', b' ']).expect("write raw");
    let raw_arg = raw.to_string_lossy().into_owned();
    append(
        &url,
        "acme/cart/8",
        "no-stream",
        &["--type", "Raw", "--data-file", &raw_arg],
    )
    .ok();
    let r = run_with(
        &[
            "--store",
            &url,
            "append",
            "acme/cart/8",
            "--expected",
            "1",
            "--type",
            "Piped",
            "--data-file",
            "-",
        ],
        Some(b"  spaced {\"json\" : true}\n"),
        None,
    )
    .ok();
    assert!(r.stdout.contains("at version 2"), "{}", r.stdout);
    let r = sekiban(&[
        "--store",
        &url,
        "events",
        "acme/cart/8",
        "--json",
        "--backward",
    ])
    .ok();
    let events = r.json_lines();
    assert_eq!(bytes(&events[0]), b"  spaced {\"json\" : true}\n");
    assert_eq!(bytes(&events[1]), [0xff, 0x00, b'\n', b' ']);
    let r = sekiban(&[
        "--store",
        &url,
        "events",
        "acme/cart/8",
        "--json",
        "--from",
        "2",
        "--limit",
        "1",
    ])
    .ok();
    assert_eq!(r.json_lines().len(), 1);
}

#[cfg(feature = "sqlite")]
#[test]
fn resend_with_the_same_id_is_exit_zero_and_reported() {
    let (_dir, url) = sqlite();
    let id = "0b7c7cf2-4d4b-4c8e-9b43-2f1f6a8e0c11";
    let event = ["--type", "Paid", "--id", id, "--data", "{\"amount\":5}"];
    let r = append(&url, "acme/order/9", "no-stream", &event).ok();
    assert!(r.stdout.contains("appended"), "{}", r.stdout);
    let r = append(&url, "acme/order/9", "no-stream", &event).ok();
    assert!(r.stdout.contains("idempotent re-send"), "{}", r.stdout);
    let mut json = event.to_vec();
    json.push("--json");
    let r = append(&url, "acme/order/9", "any", &json).ok();
    let outcome = &r.json_lines()[0];
    assert_eq!(outcome["deduplicated"], true);
    assert_eq!(outcome["first"], 1);
    assert_eq!(outcome["ids"][0], id);
    // The same id with other content is refused as bad input.
    append(
        &url,
        "acme/order/9",
        "any",
        &["--type", "Paid", "--id", id, "--data", "{\"amount\":6}"],
    )
    .failed_with(2, "other content");
}

#[cfg(feature = "sqlite")]
#[test]
fn tail_follows_the_feed_and_resumes_from_its_checkpoint() {
    let (_dir, url) = sqlite();
    for (stream, expected) in [
        ("acme/order/1", "no-stream"),
        ("acme/order/1", "1"),
        ("acme/order/2", "no-stream"),
        ("other/order/1", "no-stream"),
    ] {
        append(&url, stream, expected, &["--type", "T", "--data", "{}"]).ok();
    }
    let r = sekiban(&[
        "--store",
        &url,
        "tail",
        "--from",
        "beginning",
        "--max",
        "4",
        "--json",
    ])
    .ok();
    let items = r.json_lines();
    assert_eq!(items.len(), 4, "{}", r.stdout);
    assert!(items.iter().all(|i| i["kind"] == "event"), "{}", r.stdout);
    assert_eq!(items[0]["stream"], "acme/order/1");
    let checkpoint = items[3]["checkpoint"]
        .as_str()
        .expect("the last item of a batch carries its checkpoint")
        .to_string();

    let r = sekiban(&[
        "--store",
        &url,
        "tail",
        "--from",
        &checkpoint,
        "--idle-exit",
        "0.3",
        "--json",
    ])
    .ok();
    assert!(
        r.stdout.is_empty(),
        "nothing after the checkpoint: {}",
        r.stdout
    );

    append(
        &url,
        "acme/order/2",
        "1",
        &["--type", "Late", "--data", "{}"],
    )
    .ok();
    let r = sekiban(&[
        "--store",
        &url,
        "tail",
        "--from",
        &checkpoint,
        "--max",
        "1",
        "--json",
    ])
    .ok();
    let items = r.json_lines();
    assert_eq!(items.len(), 1, "{}", r.stdout);
    assert_eq!(items[0]["type"], "Late");

    let r = sekiban(&[
        "--store",
        &url,
        "tail",
        "--from",
        "beginning",
        "--tenant",
        "other",
        "--idle-exit",
        "0.3",
    ])
    .ok();
    assert_eq!(r.stdout.lines().count(), 1, "{}", r.stdout);
    assert!(r.stdout.contains("other/order/1"), "{}", r.stdout);
    assert!(r.stderr.contains("resume with --from"), "{}", r.stderr);

    sekiban(&[
        "--store",
        &url,
        "tail",
        "--from",
        "not-a-checkpoint",
        "--idle-exit",
        "0.1",
    ])
    .failed_with(2, "checkpoint");
}

#[cfg(feature = "sqlite")]
#[test]
fn the_store_can_come_from_the_environment() {
    let (_dir, url) = sqlite();
    run_with(
        &[
            "append",
            "acme/order/1",
            "--expected",
            "no-stream",
            "--type",
            "T",
            "--data",
            "x",
        ],
        None,
        Some(&url),
    )
    .ok();
    let r = run_with(&["streams", "--tenant", "acme"], None, Some(&url)).ok();
    assert!(r.stdout.contains("acme/order/1"), "{}", r.stdout);
}

#[test]
fn store_url_errors_are_clear() {
    sekiban(&["--store", "memory://?colour=blue", "streams"]).failed_with(2, "unknown parameter");
    let r = sekiban(&["--store", "nosuch://x", "streams"]).failed_with(2, "\"nosuch\"");
    assert!(
        r.stderr.contains("memory://")
            && (r.stderr.contains("sqlite://") || !cfg!(feature = "sqlite")),
        "lists the schemes this build supports: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains("dynamodb://") || !cfg!(feature = "dynamodb"),
        "{}",
        r.stderr
    );
    sekiban(&["--store", "cosmos://x", "streams"])
        .failed_with(2, "name the database and the container");
    sekiban(&["--store", "cosmos://x/db/c?nosuch=1", "streams"])
        .failed_with(2, "unknown parameter");
    sekiban(&["--store", "cosmos://u:k@x/db/c", "init"]).failed_with(2, "key in the environment");
    sekiban(&["--store", "dynamodb://t", "init"]).failed_with(2, "3 to 255 characters");
    sekiban(&["--store", "dynamodb://t", "streams"]).failed_with(2, "3 to 255 characters");
    // Nothing listens on port 1: the server is unavailable (exit 1), said clearly.
    let down = "postgres://postgres@127.0.0.1:1/db?connect_timeout_ms=2000";
    sekiban(&["--store", down, "init"]).failed_with(1, "running and reachable");
    sekiban(&["--store", "postgres://x@h/db?schema=Bad-Name", "init"])
        .failed_with(2, "schema name");
    sekiban(&["--store", "/tmp/events.db", "init"]).failed_with(2, "sqlite:///tmp/events.db");
    sekiban(&["--store", "", "init"]).failed_with(2, "empty");
    sekiban(&["streams"]).failed_with(2, "SEKIBAN_STORE");

    #[cfg(feature = "sqlite")]
    {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = format!(
            "sqlite://{}",
            dir.path().join("no/such/dir/events.db").display()
        );
        let r = sekiban(&["--store", &missing, "init"]).failed_with(2, "does not exist");
        assert!(!Path::new(&missing["sqlite://".len()..]).exists(), "{r:#?}");
    }
}

#[cfg(feature = "sqlite")]
#[test]
fn bad_input_exits_with_two() {
    let (dir, url) = sqlite();
    append(&url, "acme/order", "any", &["--type", "T", "--data", "x"])
        .failed_with(2, "tenant/category/id");
    append(
        &url,
        "acme/or|der/1",
        "any",
        &["--type", "T", "--data", "x"],
    )
    .failed_with(2, "invalid stream id");
    sekiban(&["--store", &url, "events", "bad"]).failed_with(2, "invalid stream id");
    let file = dir.path().join("d.txt");
    std::fs::write(&file, "x").expect("write");
    let file_arg = file.to_string_lossy().into_owned();
    append(
        &url,
        "acme/order/1",
        "any",
        &["--type", "T", "--data", "x", "--data-file", &file_arg],
    )
    .failed_with(2, "cannot be used with");
    append(&url, "acme/order/1", "any", &["--type", "T"]).failed_with(2, "required");
    append(
        &url,
        "acme/order/1",
        "sometimes",
        &["--type", "T", "--data", "x"],
    )
    .failed_with(2, "sometimes");
    append(
        &url,
        "acme/order/1",
        "any",
        &["--type", "T", "--data-file", "/no/such/file"],
    )
    .failed_with(2, "cannot read");
    std::fs::write(&file, "{\"type\":\"A\",\"data\":1}\nnot json\n").expect("write");
    append(&url, "acme/order/1", "any", &["--batch", &file_arg]).failed_with(2, "line 2");
    std::fs::write(&file, "{\"type\":\"A\",\"data\":1,\"data_b64\":\"AA==\"}\n").expect("write");
    append(&url, "acme/order/1", "any", &["--batch", &file_arg])
        .failed_with(2, "both data and data_b64");
    // Over the store's limits (SQLite: 1 MiB per event).
    let big = dir.path().join("big.bin");
    std::fs::write(&big, vec![b'x'; 1024 * 1024 + 1]).expect("write");
    let big_arg = big.to_string_lossy().into_owned();
    append(
        &url,
        "acme/order/1",
        "any",
        &["--type", "T", "--data-file", &big_arg],
    )
    .failed_with(2, "limit");
    // Nothing of the refused appends was written.
    let r = sekiban(&["--store", &url, "streams", "--tenant", "acme"]).ok();
    assert!(r.stdout.is_empty(), "{}", r.stdout);
}

/// `cosmos://` URLs: a missing key and an account nothing answers at are refused clearly (the
/// in-process emulator the backend's tests use cannot be reached from another process).
#[cfg(feature = "cosmos")]
#[test]
fn cosmos_urls_without_a_key_or_an_account() {
    let run = |key: Option<&str>, args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sekiban"));
        cmd.args(args)
            .env_remove("SEKIBAN_COSMOS_KEY")
            .env_remove("OTHER_KEY");
        if let Some(k) = key {
            cmd.env("OTHER_KEY", k);
        }
        let out = cmd.output().expect("sekiban runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Nothing listens on port 1.
    let down = "cosmos://127.0.0.1:1/db/events?tls=false&key_env=OTHER_KEY";
    let (code, err) = run(None, &["--store", down, "streams"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("OTHER_KEY, which is not set"), "{err}");
    // An Entra ID credential that cannot get a token (no Azure CLI here) says so.
    let (code, err) = run(
        None,
        &["--store", &format!("{down}&credential=cli"), "streams"],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("get an Entra ID token"), "{err}");
    for command in ["init", "streams"] {
        let (code, err) = run(Some("dGVzdGtleQ=="), &["--store", down, command]);
        assert_eq!(code, Some(1), "{command}: {err}");
        assert!(
            err.contains("running and reachable") && err.contains("http://127.0.0.1:1/"),
            "{command}: {err}"
        );
    }
    // doctor reports an account nothing answers at as a failed check (exit code 1), on stdout.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sekiban"))
        .args(["--store", down, "doctor"])
        .env("OTHER_KEY", "dGVzdGtleQ==")
        .output()
        .expect("sekiban runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL  account:") && stdout.contains("http://127.0.0.1:1/"),
        "{stdout}"
    );
}

/// `sekiban init --print-definition` prints what the cloud backends expect, as JSON, from the
/// crates' own definitions, and opens no store.
#[cfg(all(feature = "dynamodb", feature = "cosmos"))]
#[test]
fn init_prints_the_backends_definitions() {
    let out = sekiban(&["init", "--print-definition"]).ok().stdout;
    let printed: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        printed["dynamodb"]["table"],
        serde_json::to_value(sekiban_dynamodb::TABLE).unwrap()
    );
    assert_eq!(
        printed["cosmos"]["containers"],
        serde_json::to_value(sekiban_cosmos::DEFINITION).unwrap()
    );
    assert_eq!(
        printed["cosmos"]["containers"]["partition_key_paths"][0],
        "/t"
    );
}

/// `sekiban doctor` does not check SQLite (nothing to deploy), and says so (exit code 2).
#[cfg(feature = "sqlite")]
#[test]
fn doctor_refuses_stores_it_does_not_check() {
    let (_dir, url) = sqlite();
    sekiban(&["--store", &url, "doctor"]).failed_with(2, "doctor checks deployments");
}
