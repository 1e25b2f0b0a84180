//! `sekiban conformance`: the conformance suite against the store, one fresh harness per case.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Instant, SystemTime};

use sekiban_conformance::{CASES, CaseReport, Cleanup, Harness, Report, run_selected};

use crate::args::ConformanceArgs;
use crate::commands::{open, print};
use crate::exit::{Exit, Reported, bad_input};
use crate::open::open_store;
use crate::output::rfc3339;

/// Runs the selected cases, printing a row as each finishes, then the summary.
pub async fn run(url: &str, args: ConformanceArgs) -> anyhow::Result<()> {
    let selected: Vec<&'static str> = CASES
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| args.filter.is_empty() || args.filter.iter().any(|f| name.contains(f)))
        .collect();
    if selected.is_empty() {
        return Err(bad_input(format!(
            "no conformance case name contains {}; `sekiban conformance --list` shows them",
            args.filter.join(" or ")
        )));
    }
    if args.list {
        print(&(selected.join("\n") + "\n"))?;
        return Ok(());
    }
    let first = open(url).await?;
    let kind = first.kind;
    print(&format!(
        "conformance suite on the {kind} store: {} of {} cases, each on a freshly opened store\n\
         it writes streams, snapshots (large ones to the blob store) and checkpoints, each case \
         under a fresh tenant (t + 16 hex digits, and that name + \"-b\"); {}\n",
        selected.len(),
        CASES.len(),
        if args.keep {
            "--keep: they stay"
        } else {
            "they are removed when the run ends (--keep keeps them)"
        }
    ))?;
    // Every case gets the store opened anew, so its cost counters count that case alone; each
    // is closed at the end, after its harness has removed what the case wrote.
    let opened = std::sync::Mutex::new(Vec::new());
    let make = || async {
        let h = match open_store(url).await {
            Ok(o) => Harness::new(o.store, o.blobs),
            Err(e) => {
                eprintln!(
                    "warning: reopening the store failed ({e}); this case runs on the first one"
                );
                Harness::new(first.store.clone(), first.blobs.clone())
            }
        };
        opened
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(h.clone());
        h
    };
    let started = SystemTime::now();
    let clock = Instant::now();
    let mut report = Report::default();
    for name in &selected {
        let one = run_selected(&make, |n| n == *name).await;
        for case in one.cases {
            print(&row(&case))?;
            report.cases.push(case);
        }
    }
    let elapsed = clock.elapsed();
    let harnesses = std::mem::take(&mut *opened.lock().unwrap_or_else(|p| p.into_inner()));
    let cleanup = if args.keep {
        None
    } else {
        Some(clean_up(&harnesses).await)
    };
    for store in harnesses.iter().map(|h| &h.store).chain([&first.store]) {
        if let Err(e) = store.close().await {
            eprintln!("warning: closing the store failed: {e}");
        }
    }
    let failed = report.failed();
    let mut summary = format!(
        "{} passed, {} failed ({:.2} s)\n",
        report.cases.len() - failed.len(),
        failed.len(),
        elapsed.as_secs_f64()
    );
    if !failed.is_empty() {
        writeln!(summary, "failed: {}", failed.join(", "))?;
    }
    if let Some(c) = &cleanup {
        writeln!(
            summary,
            "removed: {c} (hard-deleted streams keep their tombstones and feed deletion markers, which hold no event data)"
        )?;
    }
    print(&summary)?;
    if let Some(path) = &args.junit {
        write_junit(path, kind, &report, started, elapsed.as_secs_f64())?;
    }
    let left = cleanup.map(|c| c.left).unwrap_or_default();
    if !left.is_empty() {
        eprintln!(
            "error: {} things the cases wrote could not be removed:",
            left.len()
        );
        for l in &left {
            eprintln!("  {l}");
        }
    }
    if report.all_passed() && left.is_empty() {
        Ok(())
    } else {
        Err(Reported(Exit::Failure).into())
    }
}

/// Removes what every case wrote, through the store the case ran on.
async fn clean_up(harnesses: &[Harness]) -> Cleanup {
    let bar = crate::progress::bar(harnesses.len() as u64, "removing what it wrote", false);
    let mut total = Cleanup::default();
    for h in harnesses {
        total.add(h.clean_up().await);
        bar.inc(1);
    }
    bar.finish_and_clear();
    total
}

fn row(c: &CaseReport) -> String {
    let status = if c.failure.is_some() { "FAIL" } else { "pass" };
    let mut s = format!("{status}  {:>8.3}s  {}\n", c.duration.as_secs_f64(), c.name);
    if let Some(m) = &c.failure {
        for line in m.lines() {
            s.push_str("      ");
            s.push_str(line);
            s.push('\n');
        }
    }
    s
}

fn write_junit(
    path: &Path,
    kind: &str,
    report: &Report,
    started: SystemTime,
    seconds: f64,
) -> anyhow::Result<()> {
    let xml = junit_xml(kind, report, started, seconds);
    std::fs::write(path, xml).map_err(|e| {
        bad_input(format!(
            "cannot write the JUnit report {}: {e}",
            path.display()
        ))
    })
}

/// The report as JUnit XML: one `<testsuite>` named after the store kind, one `<testcase>` per
/// case, a `<failure>` with the message for each failed case.
pub fn junit_xml(kind: &str, report: &Report, started: SystemTime, seconds: f64) -> String {
    let tests = report.cases.len();
    let failures = report.failed().len();
    let suite = format!("sekiban-conformance ({kind})");
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" time=\"{seconds:.3}\">",
        xml_escape(&suite)
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{seconds:.3}\" timestamp=\"{}\">",
        xml_escape(&suite),
        rfc3339(started)
            .trim_end_matches('Z')
            .split('.')
            .next()
            .unwrap_or_default()
    );
    for c in &report.cases {
        let open = format!(
            "    <testcase classname=\"sekiban_conformance.{}\" name=\"{}\" time=\"{:.3}\"",
            xml_escape(kind),
            xml_escape(c.name),
            c.duration.as_secs_f64()
        );
        match &c.failure {
            None => {
                let _ = writeln!(x, "{open}/>");
            }
            Some(m) => {
                let first = m.lines().next().unwrap_or_default();
                let _ = writeln!(
                    x,
                    "{open}>\n      <failure message=\"{}\" type=\"failure\">{}</failure>\n    </testcase>",
                    xml_escape(first),
                    xml_escape(m)
                );
            }
        }
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

/// Text made safe for XML 1.0 attributes and content: markup characters as entities, characters
/// XML 1.0 cannot hold at all (most controls, unpaired surrogates never occur in `str`) as `\u{..}`.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn escaping() {
        assert_eq!(
            xml_escape("a<b>&\"c\"'d'\u{1}\n"),
            "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;\\u{1}\n"
        );
    }

    #[test]
    fn junit_report() {
        let report = Report {
            cases: vec![
                CaseReport {
                    name: "ok_case",
                    failure: None,
                    duration: Duration::from_millis(12),
                },
                CaseReport {
                    name: "bad_case",
                    failure: Some("expected <1> & got \"2\"\nsecond line".into()),
                    duration: Duration::from_millis(3),
                },
            ],
        };
        let x = junit_xml("memory", &report, UNIX_EPOCH, 0.015);
        assert!(x.contains("tests=\"2\" failures=\"1\""), "{x}");
        assert!(x.contains("timestamp=\"1970-01-01T00:00:00\""), "{x}");
        assert!(x.contains("<testcase classname=\"sekiban_conformance.memory\" name=\"ok_case\" time=\"0.012\"/>"), "{x}");
        assert!(
            x.contains("<failure message=\"expected &lt;1&gt; &amp; got &quot;2&quot;\" type=\"failure\">expected &lt;1&gt; &amp; got &quot;2&quot;\nsecond line</failure>"),
            "{x}"
        );
    }
}
