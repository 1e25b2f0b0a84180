//! What a model test runs: one seeded run ([`ModelTestConfig`]), the plan of runs
//! ([`ModelTestPlan`]), and how the environment and seeds choose them.

use std::time::Duration;

use crate::CaseFailure;

use super::{
    CASES_ENV, DEFAULT_CASES, DEFAULT_SEED, EXPLORE_CASES, EXPLORE_ENV, EXPLORE_TIME,
    REGRESSION_SEEDS, SECONDS_ENV, SEED_ENV,
};

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
///
/// [`run_model_test`]: super::run_model_test
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
