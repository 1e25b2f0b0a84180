//! The real `sekiban` binary against a real PostgreSQL server (`SEKIBAN_POSTGRES_URL`, which
//! `scripts/test.sh` sets).

mod common;

use std::time::{Duration, SystemTime};

use common::{
    Follower, assert_no_anomalies, assert_woken_promptly, cross_process_delays, race_one_stream,
    sekiban_ok, sekiban_on,
};

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

/// The test server's `host:port`.
fn upstream() -> String {
    let u = url::Url::parse(&url()).expect("SEKIBAN_POSTGRES_URL is a URL");
    format!(
        "{}:{}",
        u.host_str().expect("a host"),
        u.port().unwrap_or(5432)
    )
}

#[test]
fn a_one_shot_append_opens_one_connection() {
    ok(&["init"]);
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let proxy = rt
        .block_on(sekiban_faults::PgProxy::start(
            &upstream(),
            sekiban_faults::Faults::new(1),
        ))
        .expect("start the proxy");
    let through = proxy.url(&url());
    let stream = format!(
        "one{}/order/1",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let (code, out, err) = sekiban_on(
        &through,
        &[
            "append",
            &stream,
            "--expected",
            "no-stream",
            "--type",
            "Placed",
            "--data",
            "{}",
        ],
    );
    assert_eq!(code, 0, "append: {err}\n{out}");
    assert_eq!(
        proxy.connections(),
        1,
        "connections a one-shot append opened"
    );
}

/// A role of its own, at most 20 connections, owning a schema of its own; dropped with it.
struct Limited {
    role: String,
    schema: String,
    admin: sekiban_postgres::tokio_postgres::Client,
    rt: tokio::runtime::Runtime,
}

impl Limited {
    fn new() -> Limited {
        let rt = tokio::runtime::Runtime::new().expect("a runtime");
        let base = std::env::var("SEKIBAN_POSTGRES_URL").expect("SEKIBAN_POSTGRES_URL");
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..12];
        let (role, schema) = (format!("sekiban_limited_{tag}"), format!("limited_{tag}"));
        let admin = rt.block_on(async {
            let (client, connection) = sekiban_postgres::tokio_postgres::connect(
                &base,
                sekiban_postgres::tokio_postgres::NoTls,
            )
            .await
            .expect("connect as the test's user");
            tokio::spawn(connection);
            let db: String = client
                .query_one("SELECT current_database()", &[])
                .await
                .expect("the database")
                .get(0);
            client
                .batch_execute(&format!(
                    "CREATE ROLE {role} LOGIN CONNECTION LIMIT 20; \
                     GRANT CREATE ON DATABASE \"{db}\" TO {role}"
                ))
                .await
                .expect("create the role");
            client
        });
        Limited {
            role,
            schema,
            admin,
            rt,
        }
    }

    /// The store's URL as the role, on its schema.
    fn url(&self) -> String {
        let mut u =
            url::Url::parse(&std::env::var("SEKIBAN_POSTGRES_URL").expect("URL")).expect("a URL");
        u.set_username(&self.role).expect("a user");
        u.set_password(None).expect("no password");
        u.query_pairs_mut().append_pair("schema", &self.schema);
        u.to_string()
    }
}

impl Drop for Limited {
    fn drop(&mut self) {
        let (schema, role) = (&self.schema, &self.role);
        let _ = self.rt.block_on(self.admin.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; DROP OWNED BY {role}; DROP ROLE IF EXISTS {role}"
        )));
    }
}

#[test]
fn sixteen_appenders_racing_as_a_role_limited_to_twenty_connections_each_get_an_answer() {
    let limited = Limited::new();
    let url = limited.url();
    sekiban_ok(&url, &["init"]);
    race_one_stream(&url, 5, 16);
}

/// Terminates every server connection named `app`, twice a second, until stopped.
struct Killer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<i64>>,
}

impl Killer {
    fn start(app: &str) -> Killer {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, app) = (stop.clone(), app.to_owned());
        let base = std::env::var("SEKIBAN_POSTGRES_URL").expect("SEKIBAN_POSTGRES_URL");
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("a runtime");
            rt.block_on(async {
                let (client, connection) = sekiban_postgres::tokio_postgres::connect(
                    &base,
                    sekiban_postgres::tokio_postgres::NoTls,
                )
                .await
                .expect("connect the killer");
                tokio::spawn(connection);
                let mut killed = 0;
                while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                    let row = client
                        .query_one(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                             WHERE application_name = $1",
                            &[&app],
                        )
                        .await
                        .expect("terminate the connections");
                    killed += row.get::<_, i64>(0);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                killed
            })
        });
        Killer {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops; the connections it terminated.
    fn stop(mut self) -> i64 {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread
            .take()
            .map_or(0, |t| t.join().expect("the killer"))
    }
}

impl Drop for Killer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn bench_demo_and_tail_ride_out_their_connections_killed_twice_a_second() {
    ok(&["init"]);
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let app = format!("killed_{tag}");
    let killed_url = format!("{}&application_name={app}", url());
    let killer = Killer::start(&app);

    // bench: every phase does all its ops, and the retries show in its report.
    let (code, out, err) = sekiban_on(
        &killed_url,
        &["bench", "--ops", "300", "--concurrency", "4", "--json"],
    );
    assert_eq!(code, 0, "bench under connection kills: {err}\n{out}");
    let phases: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    for p in phases.iter().filter(|p| p["operation"] != "feed_catch_up") {
        assert_eq!(p["ops"], 300, "{p}");
    }
    let retries: u64 = phases
        .iter()
        .map(|p| p["retries"].as_u64().expect("retries"))
        .sum();
    assert!(retries > 0, "bench counted no retries: {out}");

    // demo: its own checks (every transfer finished, the money adds up) pass, retries counted.
    let tenant = format!("killed{tag}");
    let (code, out, err) = sekiban_on(
        &killed_url,
        &[
            "demo",
            "--json",
            "--accounts",
            "20",
            "--transfers",
            "500",
            "--concurrency",
            "4",
            "--tenant",
            &tenant,
        ],
    );
    assert_eq!(code, 0, "demo under connection kills: {err}\n{out}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).expect("the demo's JSON");
    assert_eq!(report["transfers_finished"], 500, "{report}");
    assert!(
        report["requests_retried"]
            .as_u64()
            .expect("requests_retried")
            > 0,
        "{report}"
    );

    // tail: a follower whose connections are killed sees every event once.
    let followed = format!("tail{tag}");
    let follower = Follower::following(&killed_url, &followed);
    for k in 0..30 {
        common::append_one(&url(), &format!("{followed}/t/{k}"));
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut seen = Vec::new();
    while let Some((_, line)) = follower.next(Duration::from_secs(3)) {
        if let Some(s) = line["stream"].as_str()
            && s.starts_with(&format!("{followed}/t/"))
        {
            seen.push(s.to_owned());
        }
    }
    drop(follower);
    let want: Vec<String> = (0..30).map(|k| format!("{followed}/t/{k}")).collect();
    assert_eq!(seen, want, "every event once, in order");
    let killed = killer.stop();
    assert!(killed >= 4, "connections terminated: {killed}");
}

#[test]
fn torture_through_lost_replies_finds_nothing_wrong() {
    ok(&["init"]);
    let (code, out, err) = sekiban(&[
        "torture",
        "--ops",
        "400",
        "--writers",
        "6",
        "--seed",
        "5",
        "--lost",
        "0.08",
        "--json",
    ]);
    assert_eq!(code, 0, "torture: {err}\n{out}");
    let r: serde_json::Value = serde_json::from_str(out.trim()).expect("the report");
    assert!(r["faults_injected"].as_u64().expect("faults") > 0, "{r}");
    assert!(r["retries"].as_u64().expect("retries") > 0, "{r}");
    assert!(
        r["refused"].as_u64().expect("refused") > 0,
        "writers raced: {r}"
    );
    assert_no_anomalies(&r);
}
