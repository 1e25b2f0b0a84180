//! What a deployment check found: one [`Finding`] per thing checked (a table's keys, its
//! stream, a bucket, a permission), each passed, a warning or failed. The cloud backends
//! diagnose their deployments with it (`sekiban doctor`).
//!
//! ```
//! use sekiban_core::doctor::{Diagnosis, Verdict};
//!
//! let mut d = Diagnosis::default();
//! d.ok("table", "events exists and is active");
//! d.warn("point-in-time recovery", "off: a deleted table cannot be restored");
//! d.fail("stream", "not enabled: the change feed reads it");
//! assert_eq!(d.count(Verdict::Failed), 1);
//! assert!(d.failed());
//! assert!(d.to_string().contains("FAIL  stream: not enabled"));
//! ```

use std::fmt;

/// How one check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// As the backend expects.
    Ok,
    /// Works, but not as recommended (or could not be checked).
    Warning,
    /// The store will not work, or not correctly, on this deployment.
    Failed,
}

/// One thing checked.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// How it came out.
    pub verdict: Verdict,
    /// What was checked ("table", "keys", "stream", "bucket", "permission: write", …).
    pub check: String,
    /// What was found, and on a warning or failure what to do about it.
    pub detail: String,
}

/// Every finding of one deployment check, in the order they were made.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Diagnosis {
    /// The findings.
    pub findings: Vec<Finding>,
}

impl Diagnosis {
    /// Adds a finding.
    pub fn add(&mut self, verdict: Verdict, check: impl Into<String>, detail: impl Into<String>) {
        self.findings.push(Finding {
            verdict,
            check: check.into(),
            detail: detail.into(),
        });
    }

    /// Adds a passed check.
    pub fn ok(&mut self, check: impl Into<String>, detail: impl Into<String>) {
        self.add(Verdict::Ok, check, detail);
    }

    /// Adds a warning.
    pub fn warn(&mut self, check: impl Into<String>, detail: impl Into<String>) {
        self.add(Verdict::Warning, check, detail);
    }

    /// Adds a failed check.
    pub fn fail(&mut self, check: impl Into<String>, detail: impl Into<String>) {
        self.add(Verdict::Failed, check, detail);
    }

    /// How many findings have `verdict`.
    pub fn count(&self, verdict: Verdict) -> usize {
        self.findings
            .iter()
            .filter(|f| f.verdict == verdict)
            .count()
    }

    /// Whether any check failed.
    pub fn failed(&self) -> bool {
        self.count(Verdict::Failed) > 0
    }

    /// The finding of `check`, if it was made.
    pub fn get(&self, check: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.check == check)
    }
}

impl fmt::Display for Diagnosis {
    /// One line per finding (`ok    keys: …`, `WARN  …`, `FAIL  …`), then the counts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for x in &self.findings {
            let tag = match x.verdict {
                Verdict::Ok => "ok  ",
                Verdict::Warning => "WARN",
                Verdict::Failed => "FAIL",
            };
            writeln!(f, "{tag}  {}: {}", x.check, x.detail)?;
        }
        let warnings = self.count(Verdict::Warning);
        write!(
            f,
            "{} passed, {warnings} {}, {} failed",
            self.count(Verdict::Ok),
            if warnings == 1 { "warning" } else { "warnings" },
            self.count(Verdict::Failed)
        )
    }
}
