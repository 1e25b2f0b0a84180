//! A model-based property test: random sequences of operations run against a store and against a
//! plain model (a few `Vec`s and maps per stream, not the memory store), and every result is
//! compared.
//!
//! A backend runs it with one plain `#[test]` (not `#[tokio::test]`: the runner builds its own
//! runtime) and a function that builds a fresh [`Harness`] for each generated case:
//!
//! ```no_run
//! use std::sync::Arc;
//! use sekiban_conformance::{Harness, model::run_model_test};
//! use sekiban_core::{BlobStore, MemoryStore, ObjectBlobStore, memory::default_memory_limits};
//!
//! #[test]
//! fn model_matches_store() {
//!     run_model_test("model_matches_store", || async {
//!         let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::memory());
//!         let store = MemoryStore::with_config(default_memory_limits(), blobs.clone());
//!         Harness::new(Arc::new(store), blobs)
//!     });
//! }
//! # fn main() {}
//! ```
//!
//! # What a case does
//!
//! A case is a sequence of up to [`MAX_OPS`] operations on [`STREAMS`] streams of the harness's
//! tenant (`model/s0` … `model/s3`):
//!
//! * appends of 1–5 fresh events under every [`ExpectedVersion`]: `Any`, `NoStream`,
//!   `StreamExists`, and `Exact(v)` with `v` at the head, below it, above it, at 0, or inside an
//!   earlier multi-event append;
//! * re-sends of an earlier batch of the same stream (the same [`EventData`], ids included) under a
//!   random expected version, and re-sends with one field changed (data, type, schema, metadata),
//!   with events dropped, added, swapped, or two batches joined;
//! * refused input: an empty batch, an event over `Limits::max_event_bytes`, a batch over
//!   `max_append_events` or `max_append_bytes`, an id twice, an empty event type;
//! * reads forward and backward with `from` and `max_count`, and `stream_version`;
//! * snapshot saves (inline and over `max_inline_snapshot_bytes`, at valid and invalid versions,
//!   with an empty state type) and loads, with the stream's blobs counted after each load;
//! * soft and hard deletes;
//! * catch-up reads of the tenant's change feed from the beginning or after a checkpoint an
//!   earlier read handed out, in batches of a random size;
//! * rounds of 2–8 concurrent appenders on one stream (see below).
//!
//! After the last operation every stream is read whole and the feed from the beginning.
//!
//! # The model
//!
//! Per stream: its events (version = index + 1), the appends they came from, the version up to
//! which a soft delete hid them, an erased flag and the latest snapshot; for the tenant: the log of
//! committed events and deletion markers. The rules it keeps are those of the store traits and
//! `DESIGN.md`:
//!
//! * input is checked first (empty batch, empty type, an id twice → `InvalidInput`; event size →
//!   `EventTooLarge`; count or bytes → `BatchTooLarge`), before the stream is looked at;
//! * an erased stream refuses appends (re-sends included), reads, `stream_version`, snapshot
//!   saves and loads with `StreamDeleted { version: last version }`;
//! * when any id of a batch is stored in the stream: a batch equal to one earlier append (same ids
//!   and content, in order, the whole append) returns that append's versions with
//!   `deduplicated: true` whatever the expected version — also when a soft delete hid it; anything
//!   else is an `IdempotencyConflict` naming an id of the batch. This comes before the
//!   expected-version check, which gives `WrongExpectedVersion { expected, actual: head }`;
//! * a soft delete hides the events from reads and the feed, keeps the version (a later append
//!   continues it), drops the snapshot and puts a marker on the feed; a hard delete erases and puts
//!   a marker; deleting a missing or erased stream does nothing;
//! * a snapshot save at version 0, with an empty state type, on a missing stream, above the head
//!   or at or below the soft-deleted version is `InvalidInput`; an older snapshot never replaces
//!   a newer one (the save is silently `Ok`); one at the same version replaces it; a stream has one
//!   blob when its snapshot is over the inline limit and none otherwise;
//! * the feed, filtered to the tenant, carries the visible events and every deletion marker in
//!   commit order (per stream when the store declares more than one feed partition), and a read
//!   after a checkpoint carries exactly what that checkpoint had not yet covered.
//!
//! Error variants and their data are compared (`stream`, `expected`, `actual`, `version`, sizes
//! and limits), never messages. Re-sends are only generated for batches whose stored events lie
//! inside the store's idempotency window, where the rules above hold on every backend.
//!
//! # Concurrent rounds
//!
//! A round starts 2–8 appenders at once on one stream, each with 1–3 fresh events and a random
//! expected version around the head. The round is linearizable when the winners' version ranges
//! tile `head + 1 ..= new head` without gap or overlap, each winner's expected version accepts the
//! head just below its range, each loser's `WrongExpectedVersion` names a head that existed during
//! the round (the initial one or a winner's last version) and that its expectation refuses, and
//! the stream read back holds exactly the winners' events in that order.
//!
//! # Running it
//!
//! By default ([`ModelTestPlan::standard`]): the shrunk sequences of earlier failures; then
//! [`DEFAULT_CASES`] cases from [`DEFAULT_SEED`] and each of [`REGRESSION_SEEDS`]; then a random
//! exploration of at most [`EXPLORE_CASES`] cases within [`EXPLORE_TIME`] from a fresh seed, printed
//! before it starts. `SEKIBAN_PROPTEST_EXPLORE` (cases, 0 skips it) and `SEKIBAN_PROPTEST_SECONDS`
//! change the exploration. `SEKIBAN_PROPTEST_SEED` (decimal, `0x…` hex, or `random`) or
//! `SEKIBAN_PROPTEST_CASES` run only the cases they ask for (within `SEKIBAN_PROPTEST_SECONDS` when
//! set), e.g. `SEKIBAN_PROPTEST_CASES=5000 SEKIBAN_PROPTEST_SEED=random cargo nextest run -p …
//! --test …`. A failure is shrunk to a minimal sequence, printed with the store's and the model's
//! results for every step, the number of the failing case and the command that runs the cases up
//! to it again. No failure files are written. The sequence replays exactly from the seed; the
//! interleaving of a concurrent round does not.
//!
//! Every event a read, the feed or a round's read-back returns is compared with the model (all but
//! the recorded time) and, in full, with every earlier sighting of it (recorded time included). A
//! catch-up read of the feed that ends early is read again for a few poll intervals, as a store
//! may make a commit visible only once older transactions have finished.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::{self, Write as _};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::{Just, Strategy, any, prop_oneof};
use proptest::test_runner::{Config, RngAlgorithm, RngSeed, TestCaseError, TestError, TestRunner};
use sekiban_core::snapshot::stream_blob_prefix;
use sekiban_core::{
    AppendResult, ChangeBatch, Checkpoint, DeleteMode, EventData, ExpectedVersion, FeedItem,
    FeedOptions, FeedStart, Limits, Metadata, ReadOptions, RecordedEvent, Snapshot, StoreError,
    StreamId, Version,
};
use tokio::sync::Barrier;

use crate::{CaseFailure, Harness, catch_up, read_with};

/// Cases of the fixed run, and of a run `SEKIBAN_PROPTEST_SEED` asks for without
/// `SEKIBAN_PROPTEST_CASES`.
pub const DEFAULT_CASES: u32 = 64;
/// The seed of the fixed run, and of a run `SEKIBAN_PROPTEST_CASES` asks for without a seed.
pub const DEFAULT_SEED: u64 = 0x5e6b_1ba2_0000_0001;
/// Seeds that once generated a failing case, each with the number of cases that reaches it; the
/// default plan runs them after the fixed run. A seed stands for what the generator made of it
/// when it was added (a change to the generator makes other sequences of it), so the shrunk
/// failing sequence is kept too, as an explicit regression that needs no generator.
pub const REGRESSION_SEEDS: &[(u64, u32)] = &[
    // Issue 10: an erased stream read with `max_count` 0 or backward from version 0 returned no
    // events instead of `StreamDeleted` (its 10th case).
    (0x9c30_1f68_e144_3737, 10),
];
/// Most cases of the default plan's random exploration.
pub const EXPLORE_CASES: u32 = 3000;
/// Wall-clock budget of the default plan's random exploration: no case starts after it.
pub const EXPLORE_TIME: Duration = Duration::from_secs(20);
/// The variable that sets the number of cases (with or without a seed: then only that run).
pub const CASES_ENV: &str = "SEKIBAN_PROPTEST_CASES";
/// The variable that sets the seed: decimal, `0x`-prefixed hex, or `random` (then only that run).
pub const SEED_ENV: &str = "SEKIBAN_PROPTEST_SEED";
/// The variable that sets the most cases of the default plan's random exploration; 0 skips it.
pub const EXPLORE_ENV: &str = "SEKIBAN_PROPTEST_EXPLORE";
/// The variable that sets a wall-clock budget in seconds: of the exploration in the default plan,
/// of the one run `SEKIBAN_PROPTEST_SEED` or `SEKIBAN_PROPTEST_CASES` ask for.
pub const SECONDS_ENV: &str = "SEKIBAN_PROPTEST_SECONDS";
/// Most operations in one generated sequence.
pub const MAX_OPS: usize = 40;
/// Streams a case works on.
pub const STREAMS: u8 = 4;
/// The reason a case "fails" with once a run's time budget has passed (not a failure).
const OUT_OF_TIME: &str = "the run's time budget has passed";
/// How long one operation may take before the case fails.
pub const OP_TIMEOUT: Duration = Duration::from_secs(120);

/// One run of generated cases: how many, from which seed, within which time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelTestConfig {
    /// Generated sequences to run.
    pub cases: u32,
    /// Seed of the generator: the same seed generates the same sequences, in the same order.
    pub seed: u64,
    /// Wall-clock budget: no case starts once it has passed (`None`: every case runs).
    pub time_limit: Option<Duration>,
}

impl Default for ModelTestConfig {
    fn default() -> Self {
        ModelTestConfig {
            cases: DEFAULT_CASES,
            seed: DEFAULT_SEED,
            time_limit: None,
        }
    }
}

impl ModelTestConfig {
    /// The one run `SEKIBAN_PROPTEST_CASES`, `SEKIBAN_PROPTEST_SEED` and
    /// `SEKIBAN_PROPTEST_SECONDS` ask for, over the defaults.
    pub fn from_env() -> Result<Self, CaseFailure> {
        let mut config = Self::default();
        if let Some(cases) = env_cases(CASES_ENV, 1)? {
            config.cases = cases;
        }
        if let Some(v) = env_value(SEED_ENV) {
            config.seed = parse_seed(&v).ok_or_else(|| CaseFailure {
                message: format!(
                    "{SEED_ENV}={v:?} is not a seed: give a decimal number, 0x-prefixed hex, or `random`"
                ),
            })?;
        }
        config.time_limit = env_seconds()?;
        Ok(config)
    }
}

/// What [`run_model_test`] runs: the explicit regression sequences, then seeded runs in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelTestPlan {
    /// Whether the shrunk sequences of earlier failures run first.
    pub regressions: bool,
    /// Seeded runs, each with a label for the output.
    pub runs: Vec<(String, ModelTestConfig)>,
}

impl ModelTestPlan {
    /// The default plan: the regression sequences; [`DEFAULT_CASES`] from [`DEFAULT_SEED`];
    /// each of [`REGRESSION_SEEDS`]; then a random exploration from a fresh seed of at most
    /// `explore` cases within `time`.
    pub fn standard(explore: u32, time: Duration) -> Self {
        let mut runs = vec![("fixed seed".to_string(), ModelTestConfig::default())];
        for &(seed, cases) in REGRESSION_SEEDS {
            let config = ModelTestConfig {
                cases,
                seed,
                time_limit: None,
            };
            runs.push(("regression seed".into(), config));
        }
        if explore > 0 {
            let config = ModelTestConfig {
                cases: explore,
                seed: random_seed(),
                time_limit: Some(time),
            };
            runs.push(("random exploration".into(), config));
        }
        ModelTestPlan {
            regressions: true,
            runs,
        }
    }

    /// The plan the environment asks for: with `SEKIBAN_PROPTEST_SEED` or
    /// `SEKIBAN_PROPTEST_CASES` only that run ([`ModelTestConfig::from_env`], which is how a
    /// failure replays); else [`ModelTestPlan::standard`] with `SEKIBAN_PROPTEST_EXPLORE` cases
    /// (default [`EXPLORE_CASES`]) within `SEKIBAN_PROPTEST_SECONDS` (default [`EXPLORE_TIME`]).
    pub fn from_env() -> Result<Self, CaseFailure> {
        if env_value(SEED_ENV).is_some() || env_value(CASES_ENV).is_some() {
            return Ok(ModelTestPlan {
                regressions: false,
                runs: vec![("requested run".into(), ModelTestConfig::from_env()?)],
            });
        }
        let explore = env_cases(EXPLORE_ENV, 0)?.unwrap_or(EXPLORE_CASES);
        let time = env_seconds()?.unwrap_or(EXPLORE_TIME);
        Ok(Self::standard(explore, time))
    }
}

fn env_value(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn env_cases(name: &str, least: u32) -> Result<Option<u32>, CaseFailure> {
    env_value(name)
        .map(|v| {
            v.replace('_', "")
                .parse()
                .ok()
                .filter(|n| *n >= least)
                .ok_or_else(|| CaseFailure {
                    message: format!("{name}={v:?} is not a number of cases (at least {least})"),
                })
        })
        .transpose()
}

fn env_seconds() -> Result<Option<Duration>, CaseFailure> {
    env_value(SECONDS_ENV)
        .map(|v| {
            v.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| CaseFailure {
                    message: format!("{SECONDS_ENV}={v:?} is not a positive number of seconds"),
                })
        })
        .transpose()
}

fn random_seed() -> u64 {
    let (hi, lo) = uuid::Uuid::new_v4().as_u64_pair();
    hi ^ lo
}

fn parse_seed(v: &str) -> Option<u64> {
    if v.eq_ignore_ascii_case("random") {
        return Some(random_seed());
    }
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16).ok(),
        None => v.replace('_', "").parse().ok(),
    }
}

/// Runs the plan the environment asks for ([`ModelTestPlan::from_env`]); see
/// [`run_model_plan`].
pub fn run_model_test<F, Fut>(name: &str, make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Harness>,
{
    let plan = ModelTestPlan::from_env().unwrap_or_else(|e| panic!("{e}"));
    run_model_plan(name, &plan, make);
}

/// Runs one seeded run; see [`run_model_plan`].
pub fn run_model_test_with<F, Fut>(name: &str, config: ModelTestConfig, make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Harness>,
{
    let plan = ModelTestPlan {
        regressions: false,
        runs: vec![("run".into(), config)],
    };
    run_model_plan(name, &plan, make);
}

/// Runs a plan, each case on a fresh harness from `make`, on a runtime of its own (multi-thread,
/// 2 workers); call it from a plain `#[test]`. `name` labels the output and names the test in the
/// printed command when the test thread does not carry a name.
///
/// Prints each run's seed before it starts. Panics on the first failing case, after shrinking it,
/// with the minimal sequence, what the store and the model returned at each step, the seed and
/// the command that runs the same cases again (up to the failing one).
pub fn run_model_plan<F, Fut>(name: &str, plan: &ModelTestPlan, make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Harness>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("model test {name}: cannot build a tokio runtime: {e}"));
    let coverage = RefCell::new(BTreeMap::<String, u64>::new());
    let add = |seen: BTreeMap<String, u64>| {
        let mut total = coverage.borrow_mut();
        for (k, n) in seen {
            *total.entry(k).or_default() += n;
        }
    };
    if plan.regressions {
        let started = Instant::now();
        let all = regressions();
        for (what, ops) in &all {
            match rt.block_on(run_sequence(&make, ops)) {
                Ok(seen) => add(seen),
                Err(e) => panic!(
                    "{}",
                    failure_report(
                        name,
                        &format!("regression ({what})"),
                        &match e {
                            TestCaseError::Fail(r) | TestCaseError::Reject(r) => r,
                        }
                        .message(),
                        ops,
                        &replay_line(name, None)
                    )
                ),
            }
        }
        println!(
            "model test {name}: {} regression sequences passed in {:.1?}",
            all.len(),
            started.elapsed()
        );
    }
    for (label, config) in &plan.runs {
        println!(
            "model test {name}: {label}: {} cases from seed {:#x}{} ({CASES_ENV}, {SEED_ENV} and {SECONDS_ENV} change them)",
            config.cases,
            config.seed,
            config
                .time_limit
                .map_or(String::new(), |t| format!(", at most {t:.0?}"))
        );
        let mut runner = TestRunner::new(Config {
            cases: config.cases,
            rng_seed: RngSeed::Fixed(config.seed),
            rng_algorithm: RngAlgorithm::ChaCha,
            failure_persistence: None,
            source_file: None,
            test_name: None,
            max_shrink_iters: 2048,
            ..Config::default()
        });
        let started = Instant::now();
        // Cases run, and the number of the first failing case (1-based): the same seed generates
        // the same cases in the same order, so that many cases replay it.
        let (ran, failed_at) = (Cell::new(0u32), Cell::new(None));
        // Once the time budget has passed, the next case "fails" with this reason and so do the
        // shrinks of it (at once), which ends the run without generating the remaining cases.
        let out_of_time = Cell::new(false);
        let result = runner.run(&sequences(), |ops| {
            if failed_at.get().is_none() {
                if out_of_time.get() || config.time_limit.is_some_and(|t| started.elapsed() >= t) {
                    out_of_time.set(true);
                    return Err(TestCaseError::fail(OUT_OF_TIME));
                }
                ran.set(ran.get() + 1);
            }
            let r = rt.block_on(run_sequence(&make, &ops));
            if r.is_err() && failed_at.get().is_none() {
                failed_at.set(Some(ran.get()));
            }
            add(r?);
            Ok(())
        });
        let elapsed = started.elapsed();
        match result {
            Err(TestError::Fail(reason, _))
                if out_of_time.get()
                    && failed_at.get().is_none()
                    && reason.message() == OUT_OF_TIME =>
            {
                println!(
                    "model test {name}: {label}: {} of {} cases passed in {elapsed:.1?} ({:.1} cases/s), stopped at the time budget",
                    ran.get(),
                    config.cases,
                    f64::from(ran.get()) / elapsed.as_secs_f64().max(1e-3),
                )
            }
            Ok(()) => println!(
                "model test {name}: {label}: {} cases passed in {elapsed:.1?} ({:.1} cases/s)",
                ran.get(),
                f64::from(ran.get()) / elapsed.as_secs_f64().max(1e-3),
            ),
            Err(TestError::Fail(reason, ops)) => {
                let replay = ModelTestConfig {
                    cases: failed_at.get().unwrap_or(config.cases),
                    seed: config.seed,
                    time_limit: None,
                };
                panic!(
                    "{}",
                    failure_report(
                        name,
                        &format!(
                            "{label}, case {} from seed {:#x}",
                            replay.cases, replay.seed
                        ),
                        &reason,
                        &ops,
                        &replay_line(name, Some(replay)),
                    )
                )
            }
            Err(TestError::Abort(reason)) => panic!(
                "model test {name} aborted: {reason}\n{}",
                replay_line(name, Some(*config))
            ),
        }
    }
    println!("model test {name}: outcomes seen:");
    for (k, n) in coverage.into_inner() {
        println!("  {n:>7}  {k}");
    }
}

fn failure_report(
    name: &str,
    which: &str,
    reason: &impl fmt::Display,
    ops: &[Op],
    replay: &str,
) -> String {
    let mut out = format!("model test {name} failed ({which}): {reason}\n\n");
    let _ = writeln!(
        out,
        "minimal failing sequence ({} operation(s) on streams model/s0..s{} of a fresh tenant):",
        ops.len(),
        STREAMS - 1
    );
    for (i, op) in ops.iter().enumerate() {
        let _ = writeln!(out, "  [{i}] {op:?}");
    }
    let _ = write!(out, "\n{replay}");
    out
}

/// The command that runs the same cases again (`None`: the default plan, without exploration),
/// from what cargo and nextest tell the process.
fn replay_line(name: &str, config: Option<ModelTestConfig>) -> String {
    let package = std::env::var("CARGO_PKG_NAME").unwrap_or_else(|_| "<package>".into());
    let target = match std::env::var("NEXTEST_BINARY_ID") {
        Ok(id) => match id.split_once("::") {
            Some((_, bin)) => format!("--test {bin}"),
            None => "--lib".into(),
        },
        Err(_) => std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .and_then(|s| s.rsplit_once('-').map(|(bin, _)| bin.to_string()))
            .map_or_else(
                || "--test <test file>".into(),
                |bin| format!("--test {bin}"),
            ),
    };
    let thread = std::thread::current();
    let test = thread.name().filter(|n| *n != "main").unwrap_or(name);
    let command = format!("cargo nextest run -p {package} {target} {test}");
    match config {
        Some(c) => format!(
            "seed {seed:#x}, {cases} cases; reproduce with:\n  {SEED_ENV}={seed:#x} {CASES_ENV}={cases} {command}",
            seed = c.seed,
            cases = c.cases,
        ),
        None => format!("reproduce with:\n  {EXPLORE_ENV}=0 {command}"),
    }
}

/// Shrunk failing sequences found earlier, replayed as they are by the default plan (they do not
/// depend on the generator, unlike [`REGRESSION_SEEDS`]).
fn regressions() -> Vec<(&'static str, Vec<Op>)> {
    let read = |backward, from, max_count| Op::Read {
        s: 0,
        backward,
        from,
        max_count,
    };
    let erased = |read: Op| {
        vec![
            Op::Bulk {
                s: 0,
                exp: Exp::Head,
                count: 20,
            },
            Op::Delete { s: 0, hard: true },
            read,
        ]
    };
    vec![
        (
            "issue 10: an erased stream read backward from version 0",
            erased(read(true, Some(At::Zero), None)),
        ),
        (
            "issue 10: an erased stream read with max_count 0",
            erased(read(false, None, Some(0))),
        ),
        (
            "issue 10: an erased stream read backward with max_count 0",
            erased(read(true, Some(At::Above(1)), Some(0))),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Operations, as generated. They refer to the run's state only relatively (an offset from the head,
// the n-th earlier batch), so a shrunk sequence still means something.

/// An expected version, relative to the stream's head when the operation runs.
#[derive(Clone, Debug)]
enum Exp {
    Any,
    NoStream,
    StreamExists,
    Head,
    Below(u8),
    Above(u8),
    /// A version inside an earlier multi-event append (falls back to head - 1).
    Inside(u16),
    Zero,
}

/// A version, relative to the stream when the operation runs.
#[derive(Clone, Debug)]
enum At {
    Head,
    Below(u8),
    Above(u8),
    Zero,
    /// The last version a soft delete hid (0 when none).
    Hidden,
}

/// A fresh event: its type, schema, data and metadata are drawn; its id is new when it runs.
#[derive(Clone, Debug)]
struct Ev {
    ty: u8,
    schema: u8,
    data: Vec<u8>,
    meta: u8,
}

/// How a re-sent batch is changed.
#[derive(Clone, Debug)]
enum Alter {
    Data(u8),
    Type(u8),
    Schema(u8),
    Metadata(u8),
    DropFirst,
    DropLast,
    AddFresh,
    PrependFresh,
    Swap,
    /// Joined with the next batch sent to the stream.
    WithNext,
}

/// Input the store must refuse before writing.
#[derive(Clone, Debug)]
enum Bad {
    Empty,
    EventTooLarge { count: u8, index: u8 },
    TooManyEvents,
    TooManyBytes,
    DuplicateId,
    EmptyType,
}

#[derive(Clone, Debug)]
enum Op {
    Append {
        s: u8,
        exp: Exp,
        events: Vec<Ev>,
    },
    /// An append of many small events (up to the store's `max_append_events`), so reads and the
    /// feed cross page boundaries.
    Bulk {
        s: u8,
        exp: Exp,
        count: u8,
    },
    Resend {
        s: u8,
        pick: u16,
        exp: Exp,
    },
    ResendAltered {
        s: u8,
        pick: u16,
        alter: Alter,
        exp: Exp,
    },
    BadAppend {
        s: u8,
        bad: Bad,
        exp: Exp,
    },
    Read {
        s: u8,
        backward: bool,
        from: Option<At>,
        max_count: Option<u8>,
    },
    Version {
        s: u8,
    },
    SaveSnapshot {
        s: u8,
        at: At,
        large: bool,
        tag: u8,
        bad_type: bool,
    },
    LoadSnapshot {
        s: u8,
    },
    Delete {
        s: u8,
        hard: bool,
    },
    Feed {
        after: Option<u16>,
        max_batch: Option<u8>,
    },
    Concurrent {
        s: u8,
        writers: Vec<(Exp, u8)>,
    },
}

fn exp() -> impl Strategy<Value = Exp> {
    prop_oneof![
        3 => Just(Exp::Any),
        2 => Just(Exp::NoStream),
        2 => Just(Exp::StreamExists),
        4 => Just(Exp::Head),
        2 => (1..=3u8).prop_map(Exp::Below),
        2 => (1..=3u8).prop_map(Exp::Above),
        2 => any::<u16>().prop_map(Exp::Inside),
        1 => Just(Exp::Zero),
    ]
}

fn at() -> impl Strategy<Value = At> {
    prop_oneof![
        5 => Just(At::Head),
        3 => (1..=3u8).prop_map(At::Below),
        1 => (1..=2u8).prop_map(At::Above),
        1 => Just(At::Zero),
        1 => Just(At::Hidden),
    ]
}

fn ev() -> impl Strategy<Value = Ev> {
    (
        any::<u8>(),
        any::<u8>(),
        vec(any::<u8>(), 0..12),
        any::<u8>(),
    )
        .prop_map(|(ty, schema, data, meta)| Ev {
            ty,
            schema,
            data,
            meta,
        })
}

fn alter() -> impl Strategy<Value = Alter> {
    prop_oneof![
        any::<u8>().prop_map(Alter::Data),
        any::<u8>().prop_map(Alter::Type),
        any::<u8>().prop_map(Alter::Schema),
        any::<u8>().prop_map(Alter::Metadata),
        Just(Alter::DropFirst),
        Just(Alter::DropLast),
        Just(Alter::AddFresh),
        Just(Alter::PrependFresh),
        Just(Alter::Swap),
        Just(Alter::WithNext),
    ]
}

fn bad() -> impl Strategy<Value = Bad> {
    prop_oneof![
        Just(Bad::Empty),
        (1..=3u8, any::<u8>()).prop_map(|(count, index)| Bad::EventTooLarge { count, index }),
        Just(Bad::TooManyEvents),
        Just(Bad::TooManyBytes),
        Just(Bad::DuplicateId),
        Just(Bad::EmptyType),
    ]
}

/// A stream index, busier streams first (so most operations meet earlier ones).
fn stream() -> impl Strategy<Value = u8> {
    prop_oneof![4 => Just(0u8), 2 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8)]
}

fn op() -> impl Strategy<Value = Op> {
    let s = stream;
    let writes = prop_oneof![
        8 => (s(), exp(), vec(ev(), 1..=5))
            .prop_map(|(s, exp, events)| Op::Append { s, exp, events }),
        4 => (s(), any::<u16>(), exp()).prop_map(|(s, pick, exp)| Op::Resend { s, pick, exp }),
        3 => (s(), any::<u16>(), alter(), exp())
            .prop_map(|(s, pick, alter, exp)| Op::ResendAltered { s, pick, alter, exp }),
        1 => (s(), bad(), exp()).prop_map(|(s, bad, exp)| Op::BadAppend { s, bad, exp }),
        1 => (s(), exp(), 20..=100u8).prop_map(|(s, exp, count)| Op::Bulk { s, exp, count }),
        1 => (s(), vec((exp(), 1..=3u8), 2..=8))
            .prop_map(|(s, writers)| Op::Concurrent { s, writers }),
    ];
    let others = prop_oneof![
        3 => (s(), any::<bool>(), proptest::option::of(at()), proptest::option::of(0..8u8))
            .prop_map(|(s, backward, from, max_count)| Op::Read { s, backward, from, max_count }),
        1 => s().prop_map(|s| Op::Version { s }),
        3 => (s(), at(), any::<bool>(), any::<u8>(), proptest::bool::weighted(0.1))
            .prop_map(|(s, at, large, tag, bad_type)| Op::SaveSnapshot { s, at, large, tag, bad_type }),
        1 => s().prop_map(|s| Op::LoadSnapshot { s }),
        1 => (s(), proptest::bool::weighted(0.2)).prop_map(|(s, hard)| Op::Delete { s, hard }),
        2 => (proptest::option::weighted(0.7, any::<u16>()), proptest::option::of(1..=4u8))
            .prop_map(|(after, max_batch)| Op::Feed { after, max_batch }),
    ];
    prop_oneof![18 => writes, 11 => others]
}

fn sequences() -> impl Strategy<Value = Vec<Op>> {
    vec(op(), 1..=MAX_OPS)
}

// ---------------------------------------------------------------------------------------------
// The model.

/// An error as the model predicts it: the variant and its data, never the message.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Fault {
    WrongExpectedVersion {
        stream: StreamId,
        expected: ExpectedVersion,
        actual: Version,
    },
    EventTooLarge {
        stream: StreamId,
        index: usize,
        size: usize,
        limit: usize,
    },
    BatchTooLarge {
        stream: StreamId,
        count: usize,
        bytes: usize,
        max_count: usize,
        max_bytes: usize,
    },
    InvalidInput,
    StreamDeleted {
        stream: StreamId,
        version: Version,
    },
    /// `id_in_batch`: the error names an id of the refused batch.
    IdempotencyConflict {
        stream: StreamId,
        id_in_batch: bool,
    },
    /// Any error the model never predicts.
    Unexpected(String),
}

impl Fault {
    fn of(e: StoreError, batch: &[EventData]) -> Fault {
        match e {
            StoreError::WrongExpectedVersion {
                stream,
                expected,
                actual,
            } => Fault::WrongExpectedVersion {
                stream,
                expected,
                actual,
            },
            StoreError::EventTooLarge {
                stream,
                index,
                size,
                limit,
            } => Fault::EventTooLarge {
                stream,
                index,
                size,
                limit,
            },
            StoreError::BatchTooLarge {
                stream,
                count,
                bytes,
                max_count,
                max_bytes,
            } => Fault::BatchTooLarge {
                stream,
                count,
                bytes,
                max_count,
                max_bytes,
            },
            StoreError::InvalidInput { .. } => Fault::InvalidInput,
            StoreError::StreamDeleted { stream, version } => {
                Fault::StreamDeleted { stream, version }
            }
            StoreError::IdempotencyConflict { stream, event_id } => Fault::IdempotencyConflict {
                stream,
                id_in_batch: batch.iter().any(|e| e.id == event_id),
            },
            other => Fault::Unexpected(format!("{other:?}")),
        }
    }
}

/// One stream of the model.
#[derive(Debug, Default)]
struct ModelStream {
    /// Every event ever appended; version = index + 1 (kept after erasure: the flag rules).
    events: Vec<EventData>,
    /// (first version, number of events) of each append.
    appends: Vec<(u64, usize)>,
    /// Versions up to here are hidden by a soft delete.
    hidden_upto: u64,
    erased: bool,
    snapshot: Option<Snapshot>,
}

impl ModelStream {
    fn head(&self) -> u64 {
        self.events.len() as u64
    }
    fn version_of(&self, id: sekiban_core::EventId) -> Option<u64> {
        self.events
            .iter()
            .position(|e| e.id == id)
            .map(|i| i as u64 + 1)
    }
}

/// An entry of the tenant's feed, in commit order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    Event(StreamId, u64),
    Deleted(StreamId, u64, DeleteMode),
}

/// What a feed item shows, without the store's clock.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Event {
        stream: StreamId,
        version: u64,
        event: EventData,
    },
    Deleted {
        stream: StreamId,
        version: u64,
        mode: DeleteMode,
    },
}

impl Seen {
    fn of(item: &FeedItem) -> Seen {
        match item {
            FeedItem::Event(e) => Seen::Event {
                stream: e.stream.clone(),
                version: e.version.0,
                event: e.to_event_data(),
            },
            FeedItem::Deleted {
                stream,
                version,
                mode,
            } => Seen::Deleted {
                stream: stream.clone(),
                version: version.0,
                mode: *mode,
            },
        }
    }
}

fn accepts(expected: ExpectedVersion, head: u64) -> bool {
    match expected {
        ExpectedVersion::Any => true,
        ExpectedVersion::NoStream => head == 0,
        ExpectedVersion::StreamExists => head > 0,
        ExpectedVersion::Exact(v) => v.0 == head,
    }
}

#[derive(Debug, Default)]
struct Model {
    streams: BTreeMap<StreamId, ModelStream>,
    log: Vec<Entry>,
}

impl Model {
    fn live(&self, stream: &StreamId) -> Result<Option<&ModelStream>, Fault> {
        match self.streams.get(stream) {
            Some(s) if s.erased => Err(Fault::StreamDeleted {
                stream: stream.clone(),
                version: Version(s.head()),
            }),
            other => Ok(other),
        }
    }

    fn check_input(limits: &Limits, stream: &StreamId, batch: &[EventData]) -> Result<(), Fault> {
        if batch.is_empty() {
            return Err(Fault::InvalidInput);
        }
        let mut bytes = 0;
        for (index, e) in batch.iter().enumerate() {
            if e.event_type.is_empty() {
                return Err(Fault::InvalidInput);
            }
            let size = e.size();
            if size > limits.max_event_bytes {
                return Err(Fault::EventTooLarge {
                    stream: stream.clone(),
                    index,
                    size,
                    limit: limits.max_event_bytes,
                });
            }
            if batch[..index].iter().any(|p| p.id == e.id) {
                return Err(Fault::InvalidInput);
            }
            bytes += size;
        }
        if batch.len() > limits.max_append_events || bytes > limits.max_append_bytes {
            return Err(Fault::BatchTooLarge {
                stream: stream.clone(),
                count: batch.len(),
                bytes,
                max_count: limits.max_append_events,
                max_bytes: limits.max_append_bytes,
            });
        }
        Ok(())
    }

    fn append(
        &mut self,
        limits: &Limits,
        stream: &StreamId,
        expected: ExpectedVersion,
        batch: &[EventData],
    ) -> Result<AppendResult, Fault> {
        Self::check_input(limits, stream, batch)?;
        let current = self.live(stream)?;
        let head = current.map_or(0, ModelStream::head);
        if let Some(s) = current
            && batch.iter().any(|e| s.version_of(e.id).is_some())
        {
            let same = s
                .appends
                .iter()
                .find(|(first, n)| s.events[*first as usize - 1..][..*n] == *batch);
            return match same {
                Some(&(first, n)) => Ok(AppendResult {
                    first: Version(first),
                    last: Version(first + n as u64 - 1),
                    deduplicated: true,
                }),
                None => Err(Fault::IdempotencyConflict {
                    stream: stream.clone(),
                    id_in_batch: true,
                }),
            };
        }
        if !accepts(expected, head) {
            return Err(Fault::WrongExpectedVersion {
                stream: stream.clone(),
                expected,
                actual: Version(head),
            });
        }
        let s = self.streams.entry(stream.clone()).or_default();
        s.appends.push((head + 1, batch.len()));
        for e in batch {
            s.events.push(e.clone());
            self.log.push(Entry::Event(stream.clone(), s.head()));
        }
        Ok(AppendResult {
            first: Version(head + 1),
            last: Version(s.head()),
            deduplicated: false,
        })
    }

    fn read(
        &self,
        stream: &StreamId,
        backward: bool,
        from: Option<u64>,
        max_count: Option<u64>,
    ) -> Result<Vec<(StreamId, u64, EventData)>, Fault> {
        let Some(s) = self.live(stream)? else {
            return Ok(Vec::new());
        };
        let visible = (s.hidden_upto + 1..=s.head()).map(|v| (v, &s.events[v as usize - 1]));
        let max = max_count.map_or(usize::MAX, |m| m as usize);
        let picked: Vec<_> = if backward {
            visible
                .rev()
                .filter(|(v, _)| from.is_none_or(|f| *v <= f))
                .take(max)
                .collect()
        } else {
            visible
                .filter(|(v, _)| from.is_none_or(|f| *v >= f))
                .take(max)
                .collect()
        };
        Ok(picked
            .into_iter()
            .map(|(v, e)| (stream.clone(), v, e.clone()))
            .collect())
    }

    fn version(&self, stream: &StreamId) -> Result<u64, Fault> {
        Ok(self.live(stream)?.map_or(0, ModelStream::head))
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), Fault> {
        let v = snapshot.version.0;
        if v == 0 || snapshot.state_type.is_empty() {
            return Err(Fault::InvalidInput);
        }
        let Some(s) = self.live(&snapshot.stream)? else {
            return Err(Fault::InvalidInput);
        };
        if v > s.head() || v <= s.hidden_upto {
            return Err(Fault::InvalidInput);
        }
        if let Some(s) = self.streams.get_mut(&snapshot.stream)
            && s.snapshot
                .as_ref()
                .is_none_or(|c| c.version <= snapshot.version)
        {
            s.snapshot = Some(snapshot.clone());
        }
        Ok(())
    }

    fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, Fault> {
        Ok(self.live(stream)?.and_then(|s| s.snapshot.clone()))
    }

    fn delete(&mut self, stream: &StreamId, mode: DeleteMode) {
        let Some(s) = self.streams.get_mut(stream).filter(|s| !s.erased) else {
            return;
        };
        s.snapshot = None;
        match mode {
            DeleteMode::Soft => s.hidden_upto = s.head(),
            DeleteMode::Hard => s.erased = true,
        }
        self.log
            .push(Entry::Deleted(stream.clone(), s.head(), mode));
    }

    fn visible(&self, entry: &Entry) -> bool {
        match entry {
            Entry::Event(stream, v) => self
                .streams
                .get(stream)
                .is_some_and(|s| !s.erased && *v > s.hidden_upto),
            Entry::Deleted(..) => true,
        }
    }

    fn seen(&self, entry: &Entry) -> Seen {
        match entry {
            Entry::Event(stream, v) => Seen::Event {
                stream: stream.clone(),
                version: *v,
                event: self
                    .streams
                    .get(stream)
                    .and_then(|s| s.events.get(*v as usize - 1))
                    .cloned()
                    .unwrap_or_else(|| EventData::new("missing-from-model", "")),
            },
            Entry::Deleted(stream, v, mode) => Seen::Deleted {
                stream: stream.clone(),
                version: *v,
                mode: *mode,
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Running a sequence against a store and the model.

/// Runs one sequence on a fresh harness; returns how often each kind of outcome was seen.
async fn run_sequence<F, Fut>(make: &F, ops: &[Op]) -> Result<BTreeMap<String, u64>, TestCaseError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Harness>,
{
    let h = make().await;
    let mut run = Run::new(&h);
    for (i, op) in ops.iter().enumerate() {
        run.step_checked(&format!("[{i}]"), op).await?;
    }
    for s in 0..STREAMS {
        run.step_checked("[end]", &Op::Version { s }).await?;
        let all = Op::Read {
            s,
            backward: false,
            from: None,
            max_count: None,
        };
        run.step_checked("[end]", &all).await?;
        run.step_checked("[end]", &Op::LoadSnapshot { s }).await?;
    }
    let feed = Op::Feed {
        after: None,
        max_batch: None,
    };
    run.step_checked("[end]", &feed).await?;
    Ok(run.outcomes)
}

/// A check that failed: what was done and what differed.
type Step = Result<(), String>;

/// Why a catch-up read does not match the model.
enum FeedCheck {
    /// It delivered what the model expects, in order, but not all of it: commits a store may not
    /// make visible yet.
    EndedEarly(String),
    /// Anything else.
    Differs(String),
}

fn mismatch<T: fmt::Debug>(what: &str, store: &T, model: &T) -> String {
    format!("{what}\n      store returned {store:?}\n      model expects  {model:?}")
}

fn compare<T: fmt::Debug + PartialEq>(what: &str, store: T, model: T) -> Step {
    if store == model {
        Ok(())
    } else {
        Err(mismatch(what, &store, &model))
    }
}

/// Compares two lists of events; a difference shows the versions of both and the first pair that
/// differs, not every event.
fn compare_events<T: fmt::Debug + PartialEq>(
    what: &str,
    store: &[T],
    model: &[T],
    version: impl Fn(&T) -> u64,
) -> Step {
    if store == model {
        return Ok(());
    }
    let i = store
        .iter()
        .zip(model)
        .position(|(a, b)| a != b)
        .unwrap_or(store.len().min(model.len()));
    let versions = |l: &[T]| l.iter().map(&version).collect::<Vec<_>>();
    Err(format!(
        "{what}\n      store returned versions {:?}\n      model expects  versions {:?}\n      first difference at position {i}:\n      store returned {:?}\n      model expects  {:?}",
        versions(store),
        versions(model),
        store.get(i),
        model.get(i)
    ))
}

fn ids(batch: &[EventData]) -> String {
    let short: Vec<String> = batch
        .iter()
        .map(|e| e.id.0.simple().to_string()[..8].to_string())
        .collect();
    format!("[{}]", short.join(" "))
}

struct Run<'h> {
    h: &'h Harness,
    limits: Limits,
    streams: Vec<StreamId>,
    model: Model,
    /// Every batch sent to each stream (fresh, re-sent or changed), for re-sends.
    sent: Vec<Vec<Vec<EventData>>>,
    /// Checkpoints the feed handed out, with the model entries delivered up to each.
    checkpoints: Vec<(Checkpoint, BTreeSet<usize>)>,
    trace: Vec<String>,
    /// How often each kind of outcome was seen.
    outcomes: BTreeMap<String, u64>,
    /// Every event a read, the feed or a round's read-back returned, by stream and version, as
    /// first returned: later sightings must equal it in full (recorded time included).
    recorded: BTreeMap<(StreamId, u64), RecordedEvent>,
}

/// The variant of a result, for counting outcomes.
fn outcome<T>(r: &Result<T, Fault>) -> &'static str {
    match r {
        Ok(_) => "Ok",
        Err(Fault::WrongExpectedVersion { .. }) => "WrongExpectedVersion",
        Err(Fault::EventTooLarge { .. }) => "EventTooLarge",
        Err(Fault::BatchTooLarge { .. }) => "BatchTooLarge",
        Err(Fault::InvalidInput) => "InvalidInput",
        Err(Fault::StreamDeleted { .. }) => "StreamDeleted",
        Err(Fault::IdempotencyConflict { .. }) => "IdempotencyConflict",
        Err(Fault::Unexpected(_)) => "unexpected error",
    }
}

impl<'h> Run<'h> {
    fn count(&mut self, what: impl Into<String>) {
        *self.outcomes.entry(what.into()).or_default() += 1;
    }

    fn new(h: &'h Harness) -> Self {
        Run {
            h,
            limits: h.store.limits().clone(),
            streams: (0..STREAMS)
                .map(|i| h.stream("model", &format!("s{i}")))
                .collect(),
            model: Model::default(),
            sent: vec![Vec::new(); STREAMS as usize],
            checkpoints: Vec::new(),
            trace: Vec::new(),
            outcomes: BTreeMap::new(),
            recorded: BTreeMap::new(),
        }
    }

    async fn step_checked(&mut self, label: &str, op: &Op) -> Result<(), TestCaseError> {
        let result = match tokio::time::timeout(OP_TIMEOUT, self.step(op)).await {
            Ok(r) => r,
            Err(_) => Err(format!("{op:?} did not finish within {OP_TIMEOUT:?}")),
        };
        result.map_err(|failure| {
            let mut msg = format!(
                "step {label}: {failure}\n\nsteps before it (all as the model expected):\n"
            );
            for line in &self.trace {
                let _ = writeln!(msg, "  {line}");
            }
            if self.trace.is_empty() {
                msg.push_str("  (none)\n");
            }
            TestCaseError::fail(msg)
        })?;
        if let Some(line) = self.trace.last_mut() {
            line.insert_str(0, &format!("{label} "));
        }
        Ok(())
    }

    fn stream(&self, s: u8) -> StreamId {
        self.streams[usize::from(s) % self.streams.len()].clone()
    }

    fn name(s: u8) -> String {
        format!("s{}", s % STREAMS)
    }

    fn head(&self, stream: &StreamId) -> u64 {
        self.model.streams.get(stream).map_or(0, ModelStream::head)
    }

    fn expected(&self, exp: &Exp, stream: &StreamId) -> ExpectedVersion {
        let head = self.head(stream);
        match exp {
            Exp::Any => ExpectedVersion::Any,
            Exp::NoStream => ExpectedVersion::NoStream,
            Exp::StreamExists => ExpectedVersion::StreamExists,
            Exp::Head => ExpectedVersion::Exact(Version(head)),
            Exp::Below(k) => ExpectedVersion::Exact(Version(head.saturating_sub(u64::from(*k)))),
            Exp::Above(k) => ExpectedVersion::Exact(Version(head + u64::from(*k))),
            Exp::Zero => ExpectedVersion::Exact(Version(0)),
            Exp::Inside(pick) => {
                let multi: Vec<(u64, usize)> = self
                    .model
                    .streams
                    .get(stream)
                    .map(|s| s.appends.iter().copied().filter(|(_, n)| *n > 1).collect())
                    .unwrap_or_default();
                let v = if multi.is_empty() {
                    head.saturating_sub(1)
                } else {
                    let pick = usize::from(*pick);
                    let (first, n) = multi[pick % multi.len()];
                    first + (pick / multi.len()) as u64 % (n as u64 - 1)
                };
                ExpectedVersion::Exact(Version(v))
            }
        }
    }

    fn version_at(&self, at: &At, stream: &StreamId) -> u64 {
        let head = self.head(stream);
        match at {
            At::Head => head,
            At::Below(k) => head.saturating_sub(u64::from(*k)),
            At::Above(k) => head + u64::from(*k),
            At::Zero => 0,
            At::Hidden => self.model.streams.get(stream).map_or(0, |s| s.hidden_upto),
        }
    }

    /// Whether every stored event of `batch` lies inside the store's idempotency window, where a
    /// re-send is recognised on every backend.
    fn in_window(&self, stream: &StreamId, batch: &[EventData]) -> bool {
        let Some(s) = self.model.streams.get(stream) else {
            return true;
        };
        let oldest = s.head().saturating_sub(self.limits.idempotency_window);
        batch
            .iter()
            .all(|e| s.version_of(e.id).is_none_or(|v| v > oldest))
    }

    fn remember(&mut self, s: u8, batch: &[EventData]) {
        let sent = &mut self.sent[usize::from(s % STREAMS)];
        if !batch.is_empty() && !sent.iter().any(|b| b == batch) {
            sent.push(batch.to_vec());
        }
    }

    async fn step(&mut self, op: &Op) -> Step {
        match op {
            Op::Append { s, exp, events } => {
                let batch: Vec<EventData> = events.iter().map(fresh).collect();
                self.append(*s, exp, batch, "append", "append").await
            }
            Op::Bulk { s, exp, count } => {
                let count = usize::from(*count).min(self.limits.max_append_events);
                let batch = (0..count)
                    .map(|i| EventData::new("Bulk", Bytes::from(format!("{{\"i\":{i}}}"))))
                    .collect();
                self.append(*s, exp, batch, "bulk append", "bulk append")
                    .await
            }
            Op::Resend { s, pick, exp } => {
                let Some(batch) = self.pick_sent(*s, *pick) else {
                    return self.first_append(*s, exp).await;
                };
                self.append(*s, exp, batch, "re-send", "re-send").await
            }
            Op::ResendAltered {
                s,
                pick,
                alter,
                exp,
            } => {
                let Some(batch) = self.pick_sent(*s, *pick) else {
                    return self.first_append(*s, exp).await;
                };
                let next = self.next_sent(*s, *pick);
                let changed = altered(&batch, next.as_deref(), alter);
                self.append(
                    *s,
                    exp,
                    changed,
                    "changed re-send",
                    &format!("re-send with {alter:?}"),
                )
                .await
            }
            Op::BadAppend { s, bad, exp } => {
                let Some(batch) = self.bad_batch(bad) else {
                    self.count("refused input skipped: too large to build");
                    self.trace.push(format!(
                        "{bad:?}: too large for this store's limits to build, skipped"
                    ));
                    return Ok(());
                };
                self.append(*s, exp, batch, "refused input", &format!("{bad:?}"))
                    .await
            }
            Op::Read {
                s,
                backward,
                from,
                max_count,
            } => {
                let stream = self.stream(*s);
                let from = from.as_ref().map(|a| self.version_at(a, &stream));
                let max_count = max_count.map(u64::from);
                let mut opts = if *backward {
                    ReadOptions::backward()
                } else {
                    ReadOptions::forward()
                };
                if let Some(f) = from {
                    opts = opts.from(Version(f));
                }
                if let Some(m) = max_count {
                    opts = opts.max_count(m);
                }
                let what = format!(
                    "read {} {} from {from:?} max {max_count:?}",
                    Self::name(*s),
                    if *backward { "backward" } else { "forward" }
                );
                let want = self.model.read(&stream, *backward, from, max_count);
                let (got, read) = match read_with(&*self.h.store, &stream, opts).await {
                    Ok(events) => (
                        Ok(events
                            .iter()
                            .map(|e| (e.stream.clone(), e.version.0, e.to_event_data()))
                            .collect::<Vec<_>>()),
                        events,
                    ),
                    Err(e) => (Err(Fault::of(e, &[])), Vec::new()),
                };
                let versions = format!(
                    "{:?}",
                    got.as_ref()
                        .map(|v| v.iter().map(|e| e.1).collect::<Vec<_>>())
                );
                let result = match &got {
                    Ok(v) if v.is_empty() => "Ok, empty",
                    other => outcome(other),
                };
                self.count(format!("read → {result}"));
                match (&got, &want) {
                    (Ok(g), Ok(w)) => compare_events(&what, g, w, |e| e.1)?,
                    _ => compare(&what, got, want)?,
                }
                for e in &read {
                    self.same_event(&what, e)?;
                }
                self.trace.push(format!("{what} → versions {versions}"));
                Ok(())
            }
            Op::Version { s } => {
                let stream = self.stream(*s);
                let what = format!("stream_version {}", Self::name(*s));
                let want = self.model.version(&stream);
                let got = self
                    .h
                    .store
                    .stream_version(&stream)
                    .await
                    .map(|v| v.0)
                    .map_err(|e| Fault::of(e, &[]));
                compare(&what, got.clone(), want)?;
                self.count(format!("stream_version → {}", outcome(&got)));
                self.trace.push(format!("{what} → {got:?}"));
                Ok(())
            }
            Op::SaveSnapshot {
                s,
                at,
                large,
                tag,
                bad_type,
            } => {
                let stream = self.stream(*s);
                let version = self.version_at(at, &stream);
                let max_inline = self.limits.max_inline_snapshot_bytes;
                let large = *large && max_inline < 16 << 20;
                let state = if large {
                    Bytes::from(vec![b'a' + tag % 26; max_inline + 1 + usize::from(*tag)])
                } else {
                    Bytes::from(format!("state {tag} at {version}"))
                };
                let snapshot = Snapshot {
                    stream: stream.clone(),
                    version: Version(version),
                    state_type: if *bad_type {
                        String::new()
                    } else {
                        "ModelState".into()
                    },
                    schema_version: 1 + u32::from(tag % 3),
                    state,
                };
                let what = format!(
                    "save snapshot of {} at {version} ({} bytes{})",
                    Self::name(*s),
                    snapshot.state.len(),
                    if *bad_type { ", empty state type" } else { "" }
                );
                let want = self.model.save_snapshot(&snapshot);
                let got = self
                    .h
                    .store
                    .save_snapshot(snapshot)
                    .await
                    .map_err(|e| Fault::of(e, &[]));
                compare(&what, got.clone(), want)?;
                let size = if large { "large" } else { "inline" };
                self.count(format!("save snapshot ({size}) → {}", outcome(&got)));
                self.trace.push(format!("{what} → {got:?}"));
                Ok(())
            }
            Op::LoadSnapshot { s } => {
                let stream = self.stream(*s);
                let what = format!("load snapshot of {}", Self::name(*s));
                let want = self.model.load_snapshot(&stream);
                let got = self
                    .h
                    .store
                    .load_snapshot(&stream)
                    .await
                    .map_err(|e| Fault::of(e, &[]));
                let shown = format!(
                    "{:?}",
                    got.as_ref()
                        .map(|s| s.as_ref().map(|s| (s.version.0, s.state.len())))
                );
                let result = match &got {
                    Ok(None) => "Ok, none",
                    other => outcome(other),
                };
                self.count(format!("load snapshot → {result}"));
                if got != want {
                    return Err(format!(
                        "{what}\n      store returned {}\n      model expects  {}",
                        show_snapshot(&got),
                        show_snapshot(&want)
                    ));
                }
                let blobs = self
                    .h
                    .blobs
                    .list(&stream_blob_prefix(&stream))
                    .await
                    .map_err(|e| format!("listing the blobs of {stream}: {e:?}"))?;
                let large = want
                    .ok()
                    .flatten()
                    .is_some_and(|s| s.state.len() > self.limits.max_inline_snapshot_bytes);
                compare(
                    &format!(
                        "snapshot blobs of {} (one for an offloaded latest snapshot, none else)",
                        Self::name(*s)
                    ),
                    blobs.len(),
                    usize::from(large),
                )?;
                self.trace.push(format!(
                    "{what} → (version, bytes) {shown}, {} blobs",
                    blobs.len()
                ));
                Ok(())
            }
            Op::Delete { s, hard } => {
                let stream = self.stream(*s);
                let mode = if *hard {
                    DeleteMode::Hard
                } else {
                    DeleteMode::Soft
                };
                let what = format!("delete {} {mode:?}", Self::name(*s));
                self.model.delete(&stream, mode);
                let got = self
                    .h
                    .store
                    .delete_stream(&stream, mode)
                    .await
                    .map_err(|e| Fault::of(e, &[]));
                compare(&what, got, Ok(()))?;
                self.count(format!("delete {mode:?}"));
                self.trace.push(format!("{what} → Ok"));
                Ok(())
            }
            Op::Feed { after, max_batch } => self.feed(*after, *max_batch).await,
            Op::Concurrent { s, writers } => self.race(*s, writers).await,
        }
    }

    /// What a re-send does on a stream nothing was sent to yet: append one fresh event.
    async fn first_append(&mut self, s: u8, exp: &Exp) -> Step {
        let batch = vec![EventData::new("First", Bytes::from_static(b"{}"))];
        let kind = "append (a re-send with nothing sent yet)";
        self.append(s, exp, batch, "append", kind).await
    }

    fn pick_sent(&self, s: u8, pick: u16) -> Option<Vec<EventData>> {
        let stream = self.stream(s);
        let usable: Vec<&Vec<EventData>> = self.sent[usize::from(s % STREAMS)]
            .iter()
            .filter(|b| self.in_window(&stream, b))
            .collect();
        if usable.is_empty() {
            return None;
        }
        Some(usable[usize::from(pick) % usable.len()].clone())
    }

    fn next_sent(&self, s: u8, pick: u16) -> Option<Vec<EventData>> {
        let stream = self.stream(s);
        let usable: Vec<&Vec<EventData>> = self.sent[usize::from(s % STREAMS)]
            .iter()
            .filter(|b| self.in_window(&stream, b))
            .collect();
        (usable.len() > 1).then(|| usable[(usize::from(pick) + 1) % usable.len()].clone())
    }

    fn bad_batch(&self, bad: &Bad) -> Option<Vec<EventData>> {
        const CAP: usize = 64 << 20;
        let l = &self.limits;
        let small = |i: usize| EventData::new("Small", Bytes::from(format!("{{\"i\":{i}}}")));
        let sized = |size: usize| EventData::new("Big", Bytes::from(vec![b'x'; size - 3]));
        let too_many = || {
            (l.max_append_events < 100_000).then(|| (0..=l.max_append_events).map(small).collect())
        };
        match bad {
            Bad::Empty => Some(Vec::new()),
            Bad::EventTooLarge { count, index } => {
                if l.max_event_bytes >= CAP {
                    return None;
                }
                let count = usize::from(*count).max(1);
                let index = usize::from(*index) % count;
                Some(
                    (0..count)
                        .map(|i| {
                            if i == index {
                                sized(l.max_event_bytes + 1)
                            } else {
                                small(i)
                            }
                        })
                        .collect(),
                )
            }
            Bad::TooManyEvents => too_many(),
            Bad::TooManyBytes => {
                let per = l.max_event_bytes.min(l.max_append_bytes).max(4);
                let n = l.max_append_bytes / per + 1;
                if n > l.max_append_events || n.saturating_mul(per) > CAP {
                    return too_many();
                }
                Some((0..n).map(|_| sized(per)).collect())
            }
            Bad::DuplicateId => {
                let first = small(0);
                let twin = small(1).with_id(first.id);
                Some(vec![first, small(2), twin])
            }
            Bad::EmptyType => Some(vec![small(0), EventData::new("", "{}")]),
        }
    }

    async fn append(
        &mut self,
        s: u8,
        exp: &Exp,
        batch: Vec<EventData>,
        label: &str,
        kind: &str,
    ) -> Step {
        let stream = self.stream(s);
        let expected = self.expected(exp, &stream);
        let what = format!(
            "{kind} on {} under {expected:?}: {} events {}",
            Self::name(s),
            batch.len(),
            if batch.len() <= 8 {
                ids(&batch)
            } else {
                String::new()
            }
        );
        let want = self.model.append(&self.limits, &stream, expected, &batch);
        if Model::check_input(&self.limits, &stream, &batch).is_ok() {
            self.remember(s, &batch);
        }
        let got = self
            .h
            .store
            .append(&stream, expected, batch.clone())
            .await
            .map_err(|e| Fault::of(e, &batch));
        compare(&what, got.clone(), want)?;
        let result = match &got {
            Ok(r) if r.deduplicated => "Ok, deduplicated",
            other => outcome(other),
        };
        self.count(format!("{label} → {result}"));
        self.trace.push(format!("{what} → {got:?}"));
        Ok(())
    }

    async fn feed(&mut self, after: Option<u16>, max_batch: Option<u8>) -> Step {
        let resume = after
            .filter(|_| !self.checkpoints.is_empty())
            .map(|k| usize::from(k) % self.checkpoints.len());
        let (start, delivered, what) = match resume {
            Some(k) => {
                let (cp, d) = &self.checkpoints[k];
                (
                    FeedStart::After(cp.clone()),
                    d.clone(),
                    format!("feed after checkpoint {cp}"),
                )
            }
            None => (
                FeedStart::Beginning,
                BTreeSet::new(),
                "feed from the beginning".to_string(),
            ),
        };
        let what = format!("{what}, max_batch {max_batch:?}");
        let mut opts = FeedOptions::catch_up().tenant(&self.h.tenant);
        if let Some(m) = max_batch {
            opts = opts.max_batch(usize::from(m));
        }
        // A store may deliver a commit only once every older transaction has finished
        // (PostgreSQL's feed reads below the cluster's xmin, which other clients hold back): a
        // read that ends early is read again, as `catch_up_settled` does, for a few poll
        // intervals; anything else that differs fails at once.
        let deadline = tokio::time::Instant::now()
            + self.limits.feed_poll_interval * 3
            + Duration::from_secs(5);
        let mut retries = 0u64;
        let (batches, count) = loop {
            let batches = catch_up(&*self.h.store, start.clone(), opts.clone())
                .await
                .map_err(|e| format!("{what}: the store failed with {e:?}"))?;
            match self.check_feed(&what, &batches, delivered.clone(), max_batch) {
                Ok((upto, count)) => {
                    for (batch, upto) in batches.iter().zip(upto) {
                        self.checkpoints.push((batch.checkpoint.clone(), upto));
                    }
                    break (batches, count);
                }
                Err(FeedCheck::EndedEarly(_)) if tokio::time::Instant::now() < deadline => {
                    retries += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(FeedCheck::EndedEarly(e) | FeedCheck::Differs(e)) => return Err(e),
            }
        };
        let excess = self.checkpoints.len().saturating_sub(16);
        self.checkpoints.drain(..excess);
        self.count(if resume.is_some() {
            "feed after a checkpoint"
        } else {
            "feed from the beginning"
        });
        if retries > 0 {
            self.count("feed read again until it delivered everything (commits not yet visible)");
        }
        *self
            .outcomes
            .entry("feed items delivered".into())
            .or_default() += count as u64;
        self.trace.push(format!(
            "{what} → {count} items in {} batches{}",
            batches.len(),
            if retries > 0 {
                format!(" ({retries} earlier reads ended early)")
            } else {
                String::new()
            }
        ));
        Ok(())
    }

    /// Checks one catch-up read against the model: items in the model's order (per stream with
    /// several partitions), each equal to what the model holds and, in full, recorded time
    /// included, to every earlier read of the same event; batches within `max_batch`; and nothing
    /// missing at the end. Returns the model entries delivered up to each batch's checkpoint (one
    /// set per batch), and the number of items.
    fn check_feed(
        &mut self,
        what: &str,
        batches: &[ChangeBatch],
        mut delivered: BTreeSet<usize>,
        max_batch: Option<u8>,
    ) -> Result<(Vec<BTreeSet<usize>>, usize), FeedCheck> {
        if batches.is_empty() {
            return Err(FeedCheck::Differs(format!(
                "{what}: a catch-up read yielded no batch; it must end with one carrying the checkpoint"
            )));
        }
        // One queue of undelivered visible entries, or one per stream when the feed has several
        // partitions (then only each stream's order is promised).
        let per_stream = self.h.store.capabilities().feed_partitions > 1;
        let mut queues: BTreeMap<Option<StreamId>, VecDeque<usize>> = BTreeMap::new();
        for (i, entry) in self.model.log.iter().enumerate() {
            if !delivered.contains(&i) && self.model.visible(entry) {
                let key = per_stream.then(|| match entry {
                    Entry::Event(s, _) | Entry::Deleted(s, _, _) => s.clone(),
                });
                queues.entry(key).or_default().push_back(i);
            }
        }
        let mut upto = Vec::new();
        let mut count = 0;
        for (b, batch) in batches.iter().enumerate() {
            if let Some(m) = max_batch
                && batch.items.len() > usize::from(m)
            {
                return Err(FeedCheck::Differs(format!(
                    "{what}: batch {b} carries {} items, over max_batch {m}",
                    batch.items.len()
                )));
            }
            for item in &batch.items {
                let seen = Seen::of(item);
                let key = per_stream.then(|| item.stream().clone());
                let Some(i) = queues.get_mut(&key).and_then(VecDeque::pop_front) else {
                    return Err(FeedCheck::Differs(format!(
                        "{what}: item {count} is {seen:?}; the model expects nothing more{}",
                        if per_stream { " of that stream" } else { "" }
                    )));
                };
                let at = format!("{what}: item {count} (batch {b})");
                compare(&at, seen, self.model.seen(&self.model.log[i]))
                    .map_err(FeedCheck::Differs)?;
                if let FeedItem::Event(e) = item {
                    self.same_event(&at, e).map_err(FeedCheck::Differs)?;
                }
                delivered.insert(i);
                count += 1;
            }
            upto.push(delivered.clone());
        }
        let missing: Vec<Seen> = queues
            .values()
            .flatten()
            .map(|i| self.model.seen(&self.model.log[*i]))
            .collect();
        if !missing.is_empty() {
            return Err(FeedCheck::EndedEarly(format!(
                "{what}: delivered {count} items, then ended without {missing:?}"
            )));
        }
        Ok((upto, count))
    }

    /// Checks an event a read, the feed or a round's read-back returned against every earlier
    /// sighting of the same (stream, version), in full: what the model compares and the store's
    /// recorded time too, which must also lie within an hour of this machine's clock.
    fn same_event(&mut self, what: &str, e: &RecordedEvent) -> Step {
        let now = SystemTime::now();
        let skew = match e.recorded_at.duration_since(now) {
            Ok(ahead) => ahead,
            Err(behind) => behind.duration(),
        };
        if skew > Duration::from_secs(3600) {
            return Err(format!(
                "{what}: version {} of {} was recorded at {:?}, {skew:.0?} away from this machine's clock ({now:?})",
                e.version, e.stream, e.recorded_at
            ));
        }
        match self.recorded.get(&(e.stream.clone(), e.version.0)) {
            Some(before) if before != e => Err(format!(
                "{what}: version {} of {} differs from an earlier read of it\n      now     {e:?}\n      earlier {before:?}",
                e.version, e.stream
            )),
            Some(_) => Ok(()),
            None => {
                self.recorded
                    .insert((e.stream.clone(), e.version.0), e.clone());
                Ok(())
            }
        }
    }

    /// A round of concurrent appenders on one stream, checked for linearizability.
    async fn race(&mut self, s: u8, writers: &[(Exp, u8)]) -> Step {
        let stream = self.stream(s);
        let start = self.head(&stream);
        let plans: Vec<(ExpectedVersion, Vec<EventData>)> = writers
            .iter()
            .enumerate()
            .map(|(w, (exp, n))| {
                let batch = (0..*n)
                    .map(|i| {
                        EventData::new("Raced", Bytes::from(format!("{{\"w\":{w},\"i\":{i}}}")))
                    })
                    .collect();
                (self.expected(exp, &stream), batch)
            })
            .collect();
        for (_, batch) in &plans {
            self.remember(s, batch);
        }
        let what = format!(
            "race of {} appenders on {} at head {start}",
            plans.len(),
            Self::name(s)
        );
        let barrier = Arc::new(Barrier::new(plans.len()));
        let mut tasks = Vec::new();
        for (expected, batch) in &plans {
            let (store, stream, barrier) = (self.h.store.clone(), stream.clone(), barrier.clone());
            let (expected, batch) = (*expected, batch.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                store.append(&stream, expected, batch).await
            }));
        }
        let mut results = Vec::new();
        for t in tasks {
            results.push(
                t.await
                    .map_err(|e| format!("{what}: an appender task failed: {e}"))?,
            );
        }
        let outcome: Vec<String> = plans
            .iter()
            .zip(&results)
            .map(|((exp, batch), r)| match r {
                Ok(r) => format!("{exp:?}+{} → {}..={}", batch.len(), r.first, r.last),
                Err(e) => format!("{exp:?}+{} → {:?}", batch.len(), brief(e)),
            })
            .collect();
        let what = format!("{what}: {}", outcome.join(", "));

        if let Err(deleted) = self.model.live(&stream) {
            for (w, r) in results.into_iter().enumerate() {
                let got = r.map_err(|e| Fault::of(e, &plans[w].1));
                compare(&format!("{what}: appender {w}"), got, Err(deleted.clone()))?;
            }
            self.count("race on an erased stream");
            self.trace.push(what);
            return Ok(());
        }

        let mut winners = Vec::new();
        let mut losers = Vec::new();
        for (w, r) in results.into_iter().enumerate() {
            let (expected, batch) = &plans[w];
            match r {
                Ok(r) => {
                    if r.deduplicated
                        || r.last < r.first
                        || r.last.0 - r.first.0 + 1 != batch.len() as u64
                    {
                        return Err(format!(
                            "{what}: appender {w} of {} fresh events got {r:?}",
                            batch.len()
                        ));
                    }
                    winners.push((r.first.0, r.last.0, w));
                }
                Err(StoreError::WrongExpectedVersion {
                    stream: s2,
                    expected: e2,
                    actual,
                }) if s2 == stream && e2 == *expected => losers.push((w, actual.0)),
                Err(e) => {
                    return Err(format!(
                        "{what}: appender {w} failed with {e:?}; only WrongExpectedVersion naming its stream and expectation may refuse it"
                    ));
                }
            }
        }
        winners.sort_unstable();
        let mut head = start;
        let mut heads = vec![start];
        for &(first, last, w) in &winners {
            if first != head + 1 {
                return Err(format!(
                    "{what}: the winners' versions do not tile {}..: appender {w} got {first}..={last} after head {head}",
                    start + 1
                ));
            }
            if !accepts(plans[w].0, head) {
                return Err(format!(
                    "{what}: appender {w} won at head {head}, which its {:?} refuses",
                    plans[w].0
                ));
            }
            head = last;
            heads.push(last);
        }
        for &(w, actual) in &losers {
            if !heads.contains(&actual) {
                return Err(format!(
                    "{what}: appender {w} was refused at version {actual}, which the stream never had during the round (heads {heads:?})"
                ));
            }
            if accepts(plans[w].0, actual) {
                return Err(format!(
                    "{what}: appender {w} was refused at version {actual}, which its {:?} accepts",
                    plans[w].0
                ));
            }
        }
        let version = self
            .h
            .store
            .stream_version(&stream)
            .await
            .map_err(|e| format!("{what}: stream_version afterwards failed: {e:?}"))?;
        compare(
            &format!("{what}: stream_version afterwards"),
            version.0,
            head,
        )?;
        let stored = read_with(
            &*self.h.store,
            &stream,
            ReadOptions::forward().from(Version(start + 1)),
        )
        .await
        .map_err(|e| format!("{what}: reading the stream back failed: {e:?}"))?;
        let got: Vec<(u64, EventData)> = stored
            .iter()
            .map(|e| (e.version.0, e.to_event_data()))
            .collect();
        let want: Vec<(u64, EventData)> = winners
            .iter()
            .flat_map(|&(first, _, w)| {
                plans[w]
                    .1
                    .iter()
                    .enumerate()
                    .map(move |(i, e)| (first + i as u64, e.clone()))
            })
            .collect();
        compare_events(&format!("{what}: the stream read back"), &got, &want, |e| {
            e.0
        })?;
        for e in &stored {
            self.same_event(&format!("{what}: the stream read back"), e)?;
        }
        for &(first, last, w) in &winners {
            let (_, batch) = &plans[w];
            let applied = self
                .model
                .append(&self.limits, &stream, ExpectedVersion::Any, batch);
            compare(
                &format!("{what}: the model taking appender {w}"),
                applied.map(|r| (r.first.0, r.last.0)),
                Ok((first, last)),
            )?;
        }
        self.count("race");
        *self.outcomes.entry("race winners".into()).or_default() += winners.len() as u64;
        *self.outcomes.entry("race losers".into()).or_default() += losers.len() as u64;
        self.trace.push(what);
        Ok(())
    }
}

/// A loaded snapshot for a message: a long state is cut to its length and first bytes.
fn show_snapshot(r: &Result<Option<Snapshot>, Fault>) -> String {
    match r {
        Ok(Some(s)) if s.state.len() > 64 => format!(
            "Ok(Some(Snapshot {{ stream: {}, version: {}, state_type: {:?}, schema_version: {}, state: {} bytes starting {:?} }}))",
            s.stream,
            s.version,
            s.state_type,
            s.schema_version,
            s.state.len(),
            s.state.slice(..16)
        ),
        other => format!("{other:?}"),
    }
}

/// A store error in a few words, for the trace of a concurrent round.
fn brief(e: &StoreError) -> String {
    {
        match e {
            StoreError::WrongExpectedVersion { actual, .. } => {
                format!("WrongExpectedVersion(actual {actual})")
            }
            other => format!("{other:?}"),
        }
    }
}

const TYPES: [&str; 4] = ["Placed", "Shipped", "Cancelled", "Noted"];

/// A new event with a fresh id from a generated description.
fn fresh(ev: &Ev) -> EventData {
    let metadata = match ev.meta % 4 {
        0 => Metadata::default(),
        1 => Metadata {
            correlation_id: Some(format!("corr-{}", ev.meta)),
            causation_id: Some(format!("cause-{}", ev.meta / 4)),
            ..Metadata::default()
        },
        2 => Metadata {
            actor: Some(format!("user-{}", ev.meta)),
            ..Metadata::default()
        },
        _ => Metadata {
            extra: [
                ("k".to_string(), format!("v{}", ev.meta)),
                ("z".into(), String::new()),
            ]
            .into_iter()
            .collect(),
            ..Metadata::default()
        },
    };
    EventData::new(
        TYPES[usize::from(ev.ty) % TYPES.len()],
        Bytes::from(ev.data.clone()),
    )
    .with_schema_version(1 + u32::from(ev.schema % 3))
    .with_metadata(metadata)
}

/// `batch` changed as `alter` says (the result may be empty, or unchanged for a one-event swap).
fn altered(batch: &[EventData], next: Option<&[EventData]>, alter: &Alter) -> Vec<EventData> {
    let mut b = batch.to_vec();
    let new = || EventData::new("Extra", Bytes::from_static(b"{}"));
    let at = |k: u8, len: usize| usize::from(k) % len.max(1);
    match alter {
        Alter::Data(k) => {
            let i = at(*k, b.len());
            let mut data = b[i].data.to_vec();
            data.push(b'!');
            b[i].data = Bytes::from(data);
        }
        Alter::Type(k) => {
            let i = at(*k, b.len());
            b[i].event_type.push('X');
        }
        Alter::Schema(k) => {
            let i = at(*k, b.len());
            b[i].schema_version += 1;
        }
        Alter::Metadata(k) => {
            let i = at(*k, b.len());
            let actor = b[i].metadata.actor.take().unwrap_or_default();
            b[i].metadata.actor = Some(format!("{actor}~"));
        }
        Alter::DropFirst => {
            b.remove(0);
        }
        Alter::DropLast => {
            b.pop();
        }
        Alter::AddFresh => b.push(new()),
        Alter::PrependFresh => b.insert(0, new()),
        Alter::Swap => {
            let last = b.len() - 1;
            b.swap(0, last);
        }
        Alter::WithNext => match next {
            Some(next) => b.extend(next.iter().cloned()),
            None => b.push(new()),
        },
    }
    b
}
