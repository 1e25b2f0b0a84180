//! What the CLI test binaries share: following the feed in one `sekiban` process while
//! short-lived `sekiban append` processes write, and timing how late each event arrives.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// Runs `sekiban --store URL args…` to its end; returns (exit code, stdout, stderr).
pub fn sekiban_on(url: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sekiban"))
        .arg("--store")
        .arg(url)
        .args(args)
        .env_remove("SEKIBAN_STORE")
        .stdin(Stdio::null())
        .output()
        .expect("run sekiban");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

/// Runs `sekiban --store URL args…` to its end; panics unless it exits 0; its stdout.
pub fn sekiban_ok(url: &str, args: &[&str]) -> String {
    let (code, out, err) = sekiban_on(url, args);
    assert_eq!(code, 0, "sekiban {args:?} failed: {err}\n{out}");
    out
}

/// Seconds since the Unix epoch of an RFC 3339 UTC time as `sekiban` prints it
/// (`2026-11-28T14:40:46.319551Z`).
pub fn parse_rfc3339(s: &str) -> SystemTime {
    let bad = || -> ! { panic!("{s:?} is not an RFC 3339 UTC time") };
    let (date, time) = s
        .strip_suffix('Z')
        .and_then(|t| t.split_once('T'))
        .unwrap_or_else(|| bad());
    let d: Vec<i64> = date
        .split('-')
        .map(|p| p.parse().unwrap_or_else(|_| bad()))
        .collect();
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<u64> = hms
        .split(':')
        .map(|p| p.parse().unwrap_or_else(|_| bad()))
        .collect();
    let [y, m, day] = d[..] else { bad() };
    let [hh, mm, ss] = t[..] else { bad() };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).unwrap_or_else(|_| bad());
    let nanos: u32 = format!("{frac:0<9}")[..9].parse().unwrap_or_else(|_| bad());
    UNIX_EPOCH + Duration::new(days * 86_400 + hh * 3600 + mm * 60 + ss, nanos)
}

/// A `sekiban tail --from now --json --tenant T` process whose lines arrive, with their arrival
/// times, on a channel; killed on drop.
pub struct Follower {
    child: Child,
    lines: mpsc::Receiver<(SystemTime, Value)>,
}

impl Follower {
    pub fn start(url: &str, tenant: &str) -> Follower {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sekiban"))
            .args([
                "--store", url, "tail", "--from", "now", "--json", "--tenant", tenant,
            ])
            .env_remove("SEKIBAN_STORE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start sekiban tail");
        let out = child.stdout.take().expect("tail stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                let arrived = SystemTime::now();
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("tail printed {line:?}: {e}"));
                if tx.send((arrived, value)).is_err() {
                    return;
                }
            }
        });
        Follower { child, lines }
    }

    /// The next event line within `wait`.
    pub fn next(&self, wait: Duration) -> Option<(SystemTime, Value)> {
        self.lines.recv_timeout(wait).ok()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Follower {
    /// Starts a follower of `tenant` and makes sure it follows: `--from now` starts when the
    /// follower has opened the store, so warm-up events are appended until one shows.
    pub fn following(url: &str, tenant: &str) -> Follower {
        let follower = Follower::start(url, tenant);
        for k in 0..20 {
            append_one(url, &format!("{tenant}/warm/{k}"));
            if follower.next(Duration::from_secs(1)).is_some() {
                while follower.next(Duration::from_millis(300)).is_some() {}
                return follower;
            }
        }
        panic!("the follower printed nothing for 20 appends");
    }

    /// Reads lines until none came for `quiet`; the arrival of the last one.
    pub fn last_until_quiet(&self, quiet: Duration) -> Option<SystemTime> {
        let mut last = None;
        while let Some((arrived, _)) = self.next(quiet) {
            last = Some(arrived);
        }
        last
    }
}

/// One short-lived `sekiban append` process writing one event to `stream`.
pub fn append_one(url: &str, stream: &str) {
    sekiban_ok(
        url,
        &[
            "append",
            stream,
            "--expected",
            "any",
            "--type",
            "Ticked",
            "--data",
            "{}",
        ],
    );
}

/// Starts a follower of `tenant`, makes sure it follows, then runs `n` short-lived
/// `sekiban append` processes one after the other, `gap` apart, and returns how late each
/// event reached the follower (arrival − `recorded_at`), sorted.
pub fn cross_process_delays(url: &str, tenant: &str, n: usize, gap: Duration) -> Vec<Duration> {
    let follower = Follower::following(url, tenant);
    let mut delays = Vec::new();
    for k in 0..n {
        let stream = format!("{tenant}/acct/e-{k}");
        append_one(url, &stream);
        let (arrived, line) = follower
            .next(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("event {k} did not reach the follower within 10 s"));
        assert_eq!(line["stream"], stream.as_str(), "{line}");
        let recorded = parse_rfc3339(line["recorded_at"].as_str().expect("recorded_at"));
        delays.push(arrived.duration_since(recorded).unwrap_or_default());
        std::thread::sleep(gap);
    }
    delays.sort();
    delays
}

/// Asserts a follower in another process saw short-lived writers' commits well inside one feed
/// poll interval (1 s): a follower that only polls sees half of them more than 300 ms late.
pub fn assert_woken_promptly(delays: &[Duration]) {
    let median = delays[delays.len() / 2];
    let max = delays[delays.len() - 1];
    assert!(
        median < Duration::from_millis(150) && max < Duration::from_millis(600),
        "cross-process feed delays (sorted): {delays:?}"
    );
}

/// `racers` `sekiban append` processes at once on one new stream of the store at `url`, each
/// expecting the version the round starts from, for `rounds` rounds: every process ends with
/// exit 0 or exit 3 (`WrongExpectedVersion`), one winner a round, and the stream holds one
/// event a round.
pub fn race_one_stream(url: &str, rounds: u64, racers: usize) {
    let stream = format!(
        "race{}/order/1",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    for round in 0..rounds {
        let expected = if round == 0 {
            "no-stream".to_string()
        } else {
            round.to_string()
        };
        let running: Vec<_> = (0..racers)
            .map(|i| {
                let (url, stream, expected) = (url.to_owned(), stream.clone(), expected.clone());
                std::thread::spawn(move || {
                    sekiban_on(
                        &url,
                        &[
                            "append",
                            &stream,
                            "--expected",
                            &expected,
                            "--type",
                            "Raced",
                            "--data",
                            &format!("{{\"racer\":{i}}}"),
                        ],
                    )
                })
            })
            .collect();
        let answers: Vec<(i32, String, String)> = running
            .into_iter()
            .map(|r| r.join().expect("a racer"))
            .collect();
        for (code, _, err) in &answers {
            assert!(
                *code == 0 || *code == 3,
                "round {round}: every racer wins or is told the version moved (exit 3), got {code}: {err}"
            );
        }
        let winners = answers.iter().filter(|(code, _, _)| *code == 0).count();
        assert_eq!(winners, 1, "round {round}: one winner");
    }
    let events = sekiban_ok(url, &["events", &stream, "--json"]);
    assert_eq!(
        events.lines().count() as u64,
        rounds,
        "one event a round: {events}"
    );
}

/// Asserts a `sekiban torture --json` report counts no anomaly of any kind.
pub fn assert_no_anomalies(report: &Value) {
    for anomaly in [
        "duplicates",
        "losses",
        "phantoms",
        "gaps",
        "feed_misses",
        "feed_disorder",
        "errors",
    ] {
        assert_eq!(report[anomaly], 0, "{anomaly}: {report}");
    }
}
