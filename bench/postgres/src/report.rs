//! The markdown report.

use std::fmt::Write as _;
use std::time::Duration;

use sekiban_core::{CostSnapshot, OpKind};

use crate::Results;
use crate::args::Args;
use crate::loads::{LOAD_EVENTS, Loads, SNAPSHOT_AT};
use crate::rows::{Mode, Sample, median, percentile};
use crate::wire::WIRE_APPENDS;

/// The run's report: markdown tables and the targets.
pub fn report(args: &Args, r: &Results) -> String {
    let mut o = String::new();
    let rate = |s: &[Sample]| median(s.iter().map(|x| x.rate).collect());
    // A ratio is the median of the rounds' ratios: each round runs the contenders back to back,
    // so a burst of other load on the machine touches both sides of a ratio alike.
    let ratio = |a: &[Sample], b: &[Sample]| {
        median(a.iter().zip(b).map(|(x, y)| x.rate / y.rate).collect())
    };
    let lat = |s: &[Sample]| {
        let mut all: Vec<Duration> = s.iter().flat_map(|x| x.latencies.iter().copied()).collect();
        all.sort();
        (percentile(&all, 0.5), percentile(&all, 0.99))
    };
    let per_append = |s: &[Sample], f: &dyn Fn(&CostSnapshot) -> u64| {
        let n: usize = s.iter().map(|x| x.appends).sum();
        let rt: u64 = s.iter().filter_map(|x| x.costs.as_ref()).map(f).sum();
        rt as f64 / n.max(1) as f64
    };
    let _ = writeln!(
        o,
        "PostgreSQL {} on 127.0.0.1 ({}), {} cores, load average {} at the start and {} at the end (the client shares the machine with the server); {}; {} round(s), medians of rounds; pool {} connections each.\n",
        r.server,
        r.settings,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        r.load_avg.0,
        r.load_avg.1,
        env!("BENCH_LOCKED_VERSIONS"),
        args.rounds,
        args.pool
    );
    let _ = writeln!(
        o,
        "### Appends per second (medians of the rounds; ratios: medians of the rounds' ratios)\n"
    );
    let _ = writeln!(
        o,
        "| streams | tasks | events/append | appends | sekiban | postgres-es | floor | sekiban/floor | postgres-es/floor | sekiban/postgres-es |"
    );
    let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (row, s) in &r.rows {
        let (a, b, f) = (rate(&s[0]), rate(&s[1]), rate(&s[2]));
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {a:.0} | {b:.0} | {f:.0} | {:.2} | {:.2} | {:.2} |",
            row.label(),
            row.tasks,
            row.events,
            s[0].first().map_or(0, |x| x.appends),
            ratio(&s[0], &s[2]),
            ratio(&s[1], &s[2]),
            ratio(&s[0], &s[1])
        );
    }
    let _ = writeln!(o, "\n### Latency per append, p50 / p99 ms (all rounds)\n");
    let _ = writeln!(
        o,
        "| streams | tasks | events/append | sekiban | postgres-es | floor | conflicts per append: sekiban / postgres-es / floor |"
    );
    let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---|");
    for (row, s) in &r.rows {
        let cell = |x: &[Sample]| {
            let (p50, p99) = lat(x);
            format!("{p50:.2} / {p99:.2}")
        };
        let conf = |x: &[Sample]| {
            let n: usize = x.iter().map(|y| y.appends).sum();
            let c: u64 = x.iter().map(|y| y.conflicts).sum();
            format!("{:.2}", c as f64 / n.max(1) as f64)
        };
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} / {} / {} |",
            row.label(),
            row.tasks,
            row.events,
            cell(&s[0]),
            cell(&s[1]),
            cell(&s[2]),
            conf(&s[0]),
            conf(&s[1]),
            conf(&s[2])
        );
    }

    let _ = writeln!(o, "\n### Round trips per append\n");
    let _ = writeln!(
        o,
        "sekiban's own counters (`store.costs()` deltas over the timed rows; NOTIFY is its background notifier, outside the append):\n"
    );
    let _ = writeln!(
        o,
        "| streams | tasks | events/append | Append | all operation kinds | background NOTIFY |"
    );
    let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|");
    for (row, s) in &r.rows {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} |",
            row.label(),
            row.tasks,
            row.events,
            per_append(&s[0], &|c| c.round_trips(OpKind::Append)),
            per_append(&s[0], &|c| c.operation_round_trips()),
            per_append(&s[0], &|c| c.round_trips(OpKind::Notify)),
        );
    }
    if let Some(w) = &r.wire {
        let _ = writeln!(
            o,
            "\nOn the wire (a counting proxy: requests the client waits on — Query, Sync, Flush messages — over {WIRE_APPENDS} appends at 1 task on its own stream, after a warm-up):\n"
        );
        let _ = writeln!(
            o,
            "| events/append | sekiban | sekiban's background NOTIFY (included) | sekiban's own counter | postgres-es | floor |"
        );
        let _ = writeln!(o, "|---:|---:|---:|---:|---:|---:|");
        for k in [1usize, 10] {
            let get = |name: &str| {
                w.appends
                    .iter()
                    .find(|(n, kk, _)| *n == name && *kk == k)
                    .map_or(f64::NAN, |x| x.2)
            };
            let find = |v: &[(usize, f64)]| v.iter().find(|x| x.0 == k).map_or(f64::NAN, |x| x.1);
            let _ = writeln!(
                o,
                "| {k} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                get("sekiban"),
                find(&w.sekiban_notify),
                find(&w.sekiban_counted),
                get("postgres-es"),
                get("floor")
            );
        }
        let _ = writeln!(o);
        for (name, d) in &w.detail {
            let _ = writeln!(o, "- {name}, 1 event/append: {d}");
        }
    } else {
        let _ = writeln!(o, "\nOn the wire: not measured (--no-wire).");
    }

    let mut load_ratio = Vec::new();
    for (title, loads) in [
        ("tables as the run wrote them, no statistics yet", &r.loads),
        ("after ANALYZE", &r.loads_analyzed),
    ] {
        load_ratio.push((title, load_table(&mut o, args, r, loads, title)));
    }

    let _ = writeln!(o, "\n### Targets\n");
    let _ = writeln!(o, "| target | measured | met |");
    let _ = writeln!(o, "|---|---|---|");
    let mut worst = f64::INFINITY;
    let mut cells = Vec::new();
    for (row, s) in r.rows.iter().filter(|(row, _)| row.mode == Mode::Distinct) {
        let ratio = ratio(&s[0], &s[2]);
        worst = worst.min(ratio);
        cells.push(format!("{}×{}: {ratio:.2}", row.tasks, row.events));
    }
    let yes = |b: bool| if b { "yes" } else { "**no**" };
    let _ = writeln!(
        o,
        "| sekiban appends/s ≥ 0.8× floor, every distinct-stream row (tasks×events) | {} | {} |",
        cells.join(", "),
        yes(worst >= 0.8)
    );
    let mut max_rt: f64 = 0.0;
    for (_, s) in r.rows.iter().filter(|(row, _)| row.mode == Mode::Distinct) {
        max_rt = max_rt.max(per_append(&s[0], &|c| c.operation_round_trips()));
    }
    let wire_rt = r.wire.as_ref().map(|w| {
        let notify: f64 = w.sekiban_notify.iter().map(|x| x.1).fold(0.0, f64::max);
        let total: f64 = w
            .appends
            .iter()
            .filter(|x| x.0 == "sekiban")
            .map(|x| x.2)
            .fold(0.0, f64::max);
        (total, notify)
    });
    let _ = writeln!(
        o,
        "| 1 round trip per append (Exact) | counter: {max_rt:.2}{} | {} |",
        wire_rt.map_or(String::new(), |(t, n)| format!(
            "; wire: {t:.2} incl. {n:.2} background NOTIFY = {:.2} for the append",
            t - n
        )),
        yes(max_rt <= 1.0 + 1e-9)
    );
    for (title, (sek, floor_ms)) in &load_ratio {
        let _ = writeln!(
            o,
            "| 1 000-event load ≤ 1.2× the raw SELECT ({title}) | {:.2}× ({sek:.2} ms vs {floor_ms:.2} ms) | {} |",
            sek / floor_ms,
            yes(sek / floor_ms <= 1.2)
        );
    }
    if !r.analysis.is_empty() {
        let _ = writeln!(
            o,
            "\n### Where sekiban's append time goes (distinct streams; appends/s, medians of rounds, and / floor)\n"
        );
        let _ = writeln!(
            o,
            "| tasks | events/append | floor | floor + sekiban's statement | + background NOTIFY | sekiban |"
        );
        let _ = writeln!(o, "|---:|---:|---:|---:|---:|---:|");
        for (row, s) in &r.analysis {
            let cells: Vec<String> = s
                .iter()
                .map(|x| format!("{:.0} ({:.2})", rate(x), ratio(x, &s[0])))
                .collect();
            let _ = writeln!(
                o,
                "| {} | {} | {} |",
                row.tasks,
                row.events,
                cells.join(" | ")
            );
        }
    }
    o
}

/// One table of load times; returns (sekiban read ms, floor SELECT ms).
fn load_table(o: &mut String, args: &Args, r: &Results, loads: &Loads, title: &str) -> (f64, f64) {
    let _ = writeln!(
        o,
        "\n### Loading a {LOAD_EVENTS}-event stream, {title} ({} repetitions after 5 untimed; snapshot at version {SNAPSHOT_AT})\n",
        args.load_reps
    );
    let floor_ms = loads
        .times
        .iter()
        .find(|(w, _)| *w == "floor SELECT")
        .map_or(f64::NAN, |(_, t)| median(t.clone()));
    let _ = writeln!(
        o,
        "| load | events | median ms | p90 ms | / floor SELECT | round trips (wire) | round trips (sekiban's counter) |"
    );
    let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|");
    for (what, t) in &loads.times {
        let mut s = t.clone();
        s.sort_by(f64::total_cmp);
        let p90 = s
            .get(((s.len() as f64 - 1.0) * 0.9).round() as usize)
            .copied()
            .unwrap_or(f64::NAN);
        let m = median(t.clone());
        let wire = r
            .wire
            .as_ref()
            .and_then(|w| w.loads.iter().find(|(n, _)| n == what));
        let counted = loads.sekiban_round_trips.iter().find(|(n, _)| n == what);
        let events = if what.contains("snapshot") {
            LOAD_EVENTS - SNAPSHOT_AT
        } else {
            LOAD_EVENTS
        };
        let _ = writeln!(
            o,
            "| {what} | {events} | {m:.2} | {p90:.2} | {:.2} | {} | {} |",
            m / floor_ms,
            wire.map_or("–".into(), |x| x.1.to_string()),
            counted.map_or("–".into(), |x| format!("{:.2}", x.1))
        );
    }

    let sek = loads
        .times
        .iter()
        .find(|(w, _)| w.starts_with("sekiban read"))
        .map_or(f64::NAN, |(_, t)| median(t.clone()));
    (sek, floor_ms)
}
