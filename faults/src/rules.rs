//! Rules: which requests get which fault, decided from a seed and logged so a run replays.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

/// What happens to a request a rule picks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "fault")]
pub enum Fault {
    /// The request goes to the server, which carries it out and answers; the answer is dropped
    /// and the connection closed. The write happened; the client cannot know it.
    DropReply,
    /// The request goes to the server; the first `after` messages of its answer (over HTTP:
    /// the status line, the headers and `after` bytes of the body) reach the client, then the
    /// connection is cut (a connection lost in the middle of a reply).
    CutReply {
        /// Messages (HTTP: body bytes) of the answer relayed before the cut.
        after: usize,
    },
    /// The request is answered with an error without reaching the server: an SQLSTATE for
    /// PostgreSQL (`40001` serialization failure, `40P01` deadlock, `53300` too many
    /// connections, `57P01` admin shutdown).
    Refuse {
        /// The error code.
        code: String,
    },
    /// The connection is closed before the request reaches the server.
    Close,
    /// A DynamoDB batch (`BatchWriteItem`, `BatchGetItem`) is answered with nothing processed:
    /// every item back in `UnprocessedItems` or `UnprocessedKeys`, as the service does under
    /// load. Not forwarded. Other requests, and PostgreSQL's, pass untouched.
    Unprocessed,
    /// A DynamoDB transaction (`TransactWriteItems`) is answered
    /// `TransactionCanceledException` without reaching the table, its first item cancelled for
    /// `reason` (`TransactionConflict`: another transaction was touching it; `ThrottlingError`,
    /// ...) and the others `None`, as the service answers. Other requests, and PostgreSQL's,
    /// pass untouched.
    Cancel {
        /// The first item's cancellation reason code.
        reason: String,
    },
    /// The request waits this long, then goes on as usual.
    Delay {
        /// Milliseconds.
        ms: u64,
    },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::DropReply => f.write_str("drop the reply"),
            Fault::CutReply { after } => {
                write!(f, "cut the reply after {after} messages (HTTP: bytes)")
            }
            Fault::Refuse { code } => write!(f, "refuse with {code}"),
            Fault::Close => f.write_str("close the connection"),
            Fault::Unprocessed => f.write_str("answer the batch unprocessed"),
            Fault::Cancel { reason } => write!(f, "cancel the transaction for {reason}"),
            Fault::Delay { ms } => write!(f, "delay {ms} ms"),
        }
    }
}

/// One rule: a fault for the requests it matches, from the `skip + 1`-th on, at most `times`
/// times, each with chance `rate` drawn from the proxy's seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// The requests: those whose operation (a PostgreSQL statement's text) contains this
    /// text; every request when absent.
    #[serde(default)]
    pub on: Option<String>,
    /// Whether the operation must be `on` exactly, not merely contain it.
    #[serde(default)]
    pub exact: bool,
    /// What happens to them.
    #[serde(flatten)]
    pub fault: Fault,
    /// Matching requests let through before the rule applies.
    #[serde(default)]
    pub skip: u64,
    /// Faults at most (absent: no limit).
    #[serde(default)]
    pub times: Option<u64>,
    /// The chance a matching request gets the fault (1: every one).
    #[serde(default = "always")]
    pub rate: f64,
}

fn always() -> f64 {
    1.0
}

impl Rule {
    /// A rule faulting every request whose operation contains `on`.
    ///
    /// ```
    /// use sekiban_faults::{Fault, Rule};
    /// let r = Rule::on("checkpoints", Fault::DropReply).times(1);
    /// assert_eq!(r.times, Some(1));
    /// ```
    pub fn on(on: impl Into<String>, fault: Fault) -> Self {
        Rule {
            on: Some(on.into()),
            ..Rule::every(fault)
        }
    }

    /// A rule faulting every request whose operation is exactly `on`.
    pub fn exactly(on: impl Into<String>, fault: Fault) -> Self {
        Rule {
            exact: true,
            ..Rule::on(on, fault)
        }
    }

    /// A rule faulting every request.
    pub fn every(fault: Fault) -> Self {
        Rule {
            on: None,
            exact: false,
            fault,
            skip: 0,
            times: None,
            rate: 1.0,
        }
    }

    /// At most `n` faults.
    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }

    /// Lets the first `n` matching requests through.
    pub fn skip(mut self, n: u64) -> Self {
        self.skip = n;
        self
    }

    /// Faults a matching request with chance `rate`.
    pub fn rate(mut self, rate: f64) -> Self {
        self.rate = rate;
        self
    }

    fn matches(&self, operation: &str) -> bool {
        match self.on.as_deref() {
            None => true,
            Some(on) if self.exact => operation == on,
            Some(on) => operation.contains(on),
        }
    }
}

/// One fault injected, as logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injected {
    /// Its number in this proxy's run (1, 2, ...).
    pub n: u64,
    /// The seed the run's decisions come from.
    pub seed: u64,
    /// The rule's index in the rules set last.
    pub rule: usize,
    /// The client connection's number.
    pub connection: u64,
    /// The fault.
    pub fault: Fault,
    /// The operation, shortened to one line.
    pub operation: String,
}

impl fmt::Display for Injected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fault #{} (seed {}, rule {}, connection {}): {} on {}",
            self.n, self.seed, self.rule, self.connection, self.fault, self.operation
        )
    }
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<(Rule, u64, u64)>,
    log: Vec<Injected>,
    seen: Vec<Arc<str>>,
}

/// The rules a proxy applies, changed while it runs, and what it did: every operation it saw
/// and every fault it injected. Decisions are a function of the seed, the rule and how many
/// requests the rule has matched, so a run with the same seed and the same requests injects the
/// same faults.
#[derive(Debug)]
pub struct Faults {
    seed: u64,
    quiet: bool,
    state: Mutex<State>,
}

impl Faults {
    /// No rules yet, decisions drawn from `seed`. Every injected fault is printed to stderr
    /// with the seed.
    pub fn new(seed: u64) -> Arc<Self> {
        Arc::new(Faults {
            seed,
            quiet: false,
            state: Mutex::new(State::default()),
        })
    }

    /// The same, printing nothing: for a tool that reports the faults itself (from
    /// [`Faults::log`]).
    pub fn new_quiet(seed: u64) -> Arc<Self> {
        Arc::new(Faults {
            seed,
            quiet: true,
            state: Mutex::new(State::default()),
        })
    }

    /// The seed `SEKIBAN_FAULT_SEED` names, else one from the clock; printed, so a failing run
    /// can be replayed with `SEKIBAN_FAULT_SEED=<seed>`.
    pub fn seed_from_env() -> u64 {
        let seed = std::env::var("SEKIBAN_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        eprintln!("faults: seed {seed} (replay with SEKIBAN_FAULT_SEED={seed})");
        seed
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the rules (their counts start again).
    pub fn set(&self, rules: Vec<Rule>) {
        self.state().rules = rules.into_iter().map(|r| (r, 0, 0)).collect();
    }

    /// Adds `rule` after the rules set before (their counts go on).
    pub fn add(&self, rule: Rule) {
        self.state().rules.push((rule, 0, 0));
    }

    /// Removes every rule: requests pass untouched from now on.
    pub fn clear(&self) {
        self.set(Vec::new());
    }

    /// Every fault injected so far.
    pub fn log(&self) -> Vec<Injected> {
        self.state().log.clone()
    }

    /// How many requests whose operation contains `text` the proxy has seen (faulted or not).
    pub fn seen(&self, text: &str) -> usize {
        self.state()
            .seen
            .iter()
            .filter(|o| o.contains(text))
            .count()
    }

    /// How many requests whose operation is exactly `text` the proxy has seen.
    pub fn seen_exactly(&self, text: &str) -> usize {
        self.state().seen.iter().filter(|o| ***o == *text).count()
    }

    /// The fault for one request of `connection` doing `operation`, if a rule picks it: the
    /// first rule that matches and fires. Recorded and logged.
    pub fn decide(&self, connection: u64, operation: &Arc<str>) -> Option<Fault> {
        let mut st = self.state();
        st.seen.push(operation.clone());
        let mut chosen = None;
        for (i, (rule, matched, fired)) in st.rules.iter_mut().enumerate() {
            if !rule.matches(operation) {
                continue;
            }
            *matched += 1;
            if *matched <= rule.skip || rule.times.is_some_and(|t| *fired >= t) {
                continue;
            }
            if rule.rate < 1.0 && draw(self.seed, i as u64, *matched) >= rule.rate {
                continue;
            }
            *fired += 1;
            chosen = Some((i, rule.fault.clone()));
            break;
        }
        let (rule, fault) = chosen?;
        let injected = Injected {
            n: st.log.len() as u64 + 1,
            seed: self.seed,
            rule,
            connection,
            fault: fault.clone(),
            operation: one_line(operation),
        };
        if !self.quiet {
            eprintln!("faults: {injected}");
        }
        st.log.push(injected);
        Some(fault)
    }
}

/// A number in [0, 1) from the seed, the rule and the rule's match count (SplitMix64).
fn draw(seed: u64, rule: u64, matched: u64) -> f64 {
    let mut z = seed
        ^ rule.wrapping_mul(0xA24B_AED4_963E_E407)
        ^ matched.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// The operation on one line, at most 100 characters.
fn one_line(op: &str) -> String {
    let flat: String = op.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(100) {
        Some((at, _)) => format!("{}…", &flat[..at]),
        None => flat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[test]
    fn skip_times_and_first_matching_rule() {
        let f = Faults::new(7);
        f.set(vec![
            Rule::on("INSERT", Fault::DropReply).skip(1).times(2),
            Rule::exactly("SELECT", Fault::Delay { ms: 1 }).times(1),
            Rule::every(Fault::Close).times(1),
        ]);
        let got: Vec<_> = [
            "INSERT a", "INSERT b", "SELECT 1", "INSERT c", "INSERT d", "SELECT",
        ]
        .iter()
        .map(|o| f.decide(1, &op(o)))
        .collect();
        assert_eq!(
            got,
            [
                // Skipped by the first rule, so the last one's.
                Some(Fault::Close),
                Some(Fault::DropReply),
                None,
                Some(Fault::DropReply),
                None,
                Some(Fault::Delay { ms: 1 })
            ]
        );
        assert_eq!(f.seen("INSERT"), 4);
        assert_eq!((f.seen("SELECT"), f.seen_exactly("SELECT")), (2, 1));
        assert_eq!(f.log().len(), 4);
        assert!(f.log()[0].to_string().contains("seed 7"));
    }

    #[test]
    fn a_rule_added_goes_after_the_others_whose_counts_go_on() {
        let f = Faults::new(7);
        f.set(vec![Rule::on("PUT", Fault::DropReply).times(1)]);
        assert_eq!(f.decide(1, &op("PUT a")), Some(Fault::DropReply));
        f.add(Rule::on("PUT", Fault::Close).times(1));
        // The first rule has fired its one time: the added one decides.
        assert_eq!(f.decide(1, &op("PUT b")), Some(Fault::Close));
        assert_eq!(f.decide(1, &op("PUT c")), None);
    }

    #[test]
    fn rates_come_from_the_seed_and_replay() {
        let run = |seed| {
            let f = Faults::new(seed);
            f.set(vec![Rule::every(Fault::Close).rate(0.1)]);
            (0..2000)
                .map(|i| f.decide(1, &op(&i.to_string())).is_some())
                .collect::<Vec<_>>()
        };
        let a = run(42);
        assert_eq!(a, run(42));
        assert_ne!(a, run(43));
        let hits = a.iter().filter(|h| **h).count();
        assert!((120..280).contains(&hits), "{hits} of 2000 at rate 0.1");
    }

    #[test]
    fn rules_read_from_json() {
        let rules: Vec<Rule> = serde_json::from_str(
            r#"[{"on": "checkpoints", "fault": "drop_reply", "times": 1},
                {"fault": "refuse", "code": "40001", "rate": 0.05},
                {"fault": "cut_reply", "after": 3}]"#,
        )
        .unwrap();
        assert_eq!(rules[0], Rule::on("checkpoints", Fault::DropReply).times(1));
        assert_eq!(
            rules[1],
            Rule::every(Fault::Refuse {
                code: "40001".into()
            })
            .rate(0.05)
        );
        assert_eq!(rules[2].fault, Fault::CutReply { after: 3 });
    }
}
