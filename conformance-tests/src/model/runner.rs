//! The runner: runs a plan's regression sequences and seeded runs through proptest, each case on
//! a fresh harness, and reports a failure with its shrunk sequence and the command that replays it.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::future::Future;
use std::time::Instant;

use proptest::test_runner::{Config, RngAlgorithm, RngSeed, TestCaseError, TestError, TestRunner};

use crate::Harness;

use super::ops::{Op, sequences};
use super::regressions::regressions;
use super::run::run_sequence;
use super::{
    CASES_ENV, EXPLORE_ENV, ModelTestConfig, ModelTestPlan, SECONDS_ENV, SEED_ENV, STREAMS,
};

/// The reason a case "fails" with once a run's time budget has passed (not a failure).
const OUT_OF_TIME: &str = "the run's time budget has passed";

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
