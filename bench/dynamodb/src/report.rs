//! The markdown report.

use std::fmt::Write as _;
use std::time::Duration;

use sekiban_bench_dynamodb::contenders::Shape;
use sekiban_bench_dynamodb::proxy::fmt_count;
use sekiban_bench_dynamodb::units::write_units;

use crate::Results;
use crate::args::Args;
use crate::loads::{LOAD_EVENTS, SNAPSHOT_AT};
use crate::meter::{Cost, WIRE_SHAPES};
use crate::rows::{Sample, median, percentile};

/// The run's report: markdown tables and the targets.
pub fn report(args: &Args, r: &Results) -> String {
    let mut o = String::new();
    let rate = |s: &[Sample]| median(s.iter().map(|x| x.rate).collect());
    let ratio = |a: &[Sample], b: &[Sample]| {
        median(a.iter().zip(b).map(|(x, y)| x.rate / y.rate).collect())
    };
    let lat = |s: &[Sample]| {
        let mut all: Vec<Duration> = s.iter().flat_map(|x| x.latencies.iter().copied()).collect();
        all.sort();
        format!(
            "{:.2} / {:.2}",
            percentile(&all, 0.5),
            percentile(&all, 0.99)
        )
    };
    let rt = |s: &[Sample]| {
        let n: usize = s.iter().map(|x| x.appends).sum();
        let q: u64 = s.iter().map(|x| x.requests).sum();
        q as f64 / n.max(1) as f64
    };
    let _ = writeln!(
        o,
        "{} on 127.0.0.1, {} cores, load average {} at the start and {} at the end (the client shares the machine with the emulator); {}; {} round(s), medians of rounds. Figures from an emulator, not AWS latency.\n",
        args.server,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        r.load_avg.0,
        r.load_avg.1,
        env!("BENCH_LOCKED_VERSIONS"),
        args.rounds
    );

    let _ = writeln!(
        o,
        "### Appends per second, distinct streams (straight to the emulator; medians of the rounds; ratio: median of the rounds' ratios)\n"
    );
    let _ = writeln!(
        o,
        "| tasks | events/append | appends | sekiban | dynamo-es | sekiban/dynamo-es | p50 / p99 ms sekiban | p50 / p99 ms dynamo-es | requests per append (own counters) sekiban / dynamo-es |"
    );
    let _ = writeln!(o, "|---:|---|---:|---:|---:|---:|---:|---:|---|");
    for ((tasks, shape), s) in &r.rows {
        let _ = writeln!(
            o,
            "| {tasks} | {} | {} | {:.0} | {:.0} | {:.2} | {} | {} | {:.2} / {:.2} |",
            shape.label(),
            s[0].first().map_or(0, |x| x.appends),
            rate(&s[0]),
            rate(&s[1]),
            ratio(&s[0], &s[1]),
            lat(&s[0]),
            lat(&s[1]),
            rt(&s[0]),
            rt(&s[1]),
        );
    }

    let _ = writeln!(
        o,
        "\n### What an append costs ({} appends at 1 task on one stream each, through the counting proxy; per append)\n",
        args.wire_appends
    );
    let _ = writeln!(
        o,
        "| events/append | contender | requests on the wire | sekiban's own counter: requests / CU | WCU reported by the emulator | WCU by AWS's rules, mean / max | physical minimum (the event bytes once, one PutItem) | items written: count × mean size (largest) | body bytes sent / received |"
    );
    let _ = writeln!(o, "|---|---|---|---:|---:|---:|---:|---|---:|");
    let own_cell = |c: &Cost| {
        c.own.map_or("–".into(), |(q, u)| {
            format!("{} / {:.2}", fmt_count(c.per(q as f64)), c.per(u))
        })
    };
    for (shape, name, c) in &r.appends {
        let event_bytes = shape.events() * shape.event_bytes();
        let mut kinds = Vec::new();
        for (what, w) in [("put", c.units.puts), ("update", c.units.updates)] {
            if w.items > 0 {
                kinds.push(format!(
                    "{what} {} × {:.0} B ({} B)",
                    fmt_count(c.per(w.items as f64)),
                    w.bytes as f64 / w.items as f64,
                    w.largest
                ));
            }
        }
        let items = kinds.join(", ");
        let t = c.wire.total();
        let _ = writeln!(
            o,
            "| {} | {name} | {} | {} | {:.2} | {:.2} / {:.0} | {:.0} ({event_bytes} B) | {} | {:.0} / {:.0} |",
            shape.label(),
            c.wire.by_target(c.ops as f64),
            own_cell(c),
            c.per(t.reported_units),
            c.per(c.units.write),
            c.max_write,
            write_units(event_bytes),
            items,
            c.per(t.bytes_sent as f64),
            c.per(t.bytes_received as f64),
        );
    }

    let _ = writeln!(
        o,
        "\n### Loading a {LOAD_EVENTS}-event stream (ten 100-byte events an append; snapshot at version {SNAPSHOT_AT})\n"
    );
    let _ = writeln!(
        o,
        "Requests and units: one load through the counting proxy (after one untimed). Times: {} loads straight to the emulator after 3 untimed, the four loads in rotating order.\n",
        args.load_reps
    );
    let _ = writeln!(
        o,
        "| load | events | requests on the wire | sekiban's own counter: requests / CU | RCU reported by the emulator | RCU by AWS's rules | items read (bytes) | median ms | p90 ms |"
    );
    let _ = writeln!(o, "|---|---:|---|---:|---:|---:|---|---:|---:|");
    for ((what, c), times) in r.loads.iter().zip(&r.load_times) {
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        let p90 = sorted
            .get(((sorted.len() as f64 - 1.0) * 0.9).round() as usize)
            .copied()
            .unwrap_or(f64::NAN);
        let _ = writeln!(
            o,
            "| {what} | {} | {} | {} | {:.1} | {:.1} | {} ({} KB) | {:.2} | {p90:.2} |",
            c.events,
            c.wire.by_target(1.0),
            c.own.map_or("–".into(), |(q, u)| format!("{q} / {u:.1}")),
            c.wire.total().reported_units,
            c.units.read,
            c.units.items_read,
            c.units.bytes_read.div_ceil(1024),
            median(times.clone()),
        );
    }

    let _ = writeln!(
        o,
        "\n### A {}-event stream (one 800-byte event an append), written and read back through the counting proxy\n",
        args.long
    );
    let _ = writeln!(
        o,
        "| step | contender | events | requests on the wire | sekiban's own counter: requests / CU | CU reported by the emulator | CU by AWS's rules | items (bytes) | seconds |"
    );
    let _ = writeln!(o, "|---|---|---:|---|---:|---:|---:|---|---:|");
    for (what, name, c) in &r.long {
        let write = *what == "write";
        let events = if write { args.long } else { c.events };
        let (units, items, bytes) = if write {
            (
                format!(
                    "{:.0} WCU ({:.2} an append)",
                    c.units.write,
                    c.per(c.units.write)
                ),
                c.units.written().items,
                c.units.written().bytes,
            )
        } else {
            (
                format!("{:.1} RCU", c.units.read),
                c.units.items_read,
                c.units.bytes_read,
            )
        };
        let _ = writeln!(
            o,
            "| {what} | {name} | {events} | {} | {} | {:.1} | {units} | {items} ({} KB) | {:.2} |",
            c.wire.by_target(1.0),
            c.own.map_or("–".into(), |(q, u)| format!("{q} / {u:.1}")),
            c.wire.total().reported_units,
            bytes.div_ceil(1024),
            c.elapsed.as_secs_f64(),
        );
    }

    for (what, name, c) in r.long.iter().filter(|(w, _, _)| *w != "write") {
        if c.events != args.long {
            let _ = writeln!(
                o,
                "\n**{name} {what} returned {} of the {} events written.**",
                c.events, args.long
            );
        }
    }

    if r.names.len() > 2 {
        let _ = writeln!(
            o,
            "\n### Where the append time goes (straight to the emulator; appends/s, medians of the rounds, and / the PutItem floor)\n"
        );
        let _ = writeln!(
            o,
            "The floors write sekiban's own append item (`encode_events` of the same events, the same attributes) with the SDK, on the same client stack, into a table of sekiban's key schema.\n"
        );
        let order: Vec<usize> = (2..r.names.len()).chain([0, 1]).collect();
        let heads: Vec<&str> = order.iter().map(|i| r.names[*i]).collect();
        let _ = writeln!(o, "| tasks | events/append | {} |", heads.join(" | "));
        let _ = writeln!(o, "|---:|---|{}", "---:|".repeat(order.len()));
        for ((tasks, shape), s) in &r.rows {
            let cells: Vec<String> = order
                .iter()
                .map(|i| format!("{:.0} ({:.2})", rate(&s[*i]), ratio(&s[*i], &s[2])))
                .collect();
            let _ = writeln!(o, "| {tasks} | {} | {} |", shape.label(), cells.join(" | "));
        }
    }

    let _ = writeln!(o, "\n### Targets\n");
    let _ = writeln!(o, "| target | measured | met |");
    let _ = writeln!(o, "|---|---|---|");
    let yes = |b: bool| if b { "yes" } else { "**no**" };
    let sek = |shape: Shape| {
        r.appends
            .iter()
            .find(|(s, n, _)| *s == shape && *n == "sekiban")
            .map(|x| &x.2)
    };
    let mut cells = Vec::new();
    let mut ok = true;
    for shape in WIRE_SHAPES {
        if let Some(c) = sek(shape) {
            let q = c.requests();
            ok &= q <= 1.0 + 1e-9;
            cells.push(format!("{}: {}", shape.label(), fmt_count(q)));
        }
    }
    let _ = writeln!(
        o,
        "| sekiban: 1 round trip per append on the wire | {} | {} |",
        cells.join("; "),
        yes(ok)
    );
    for shape in WIRE_SHAPES {
        if let Some(c) = sek(shape) {
            let _ = writeln!(
                o,
                "| sekiban: ≤ 4 WCU by AWS's rules per append, {} | max {:.0}, mean {:.2} (emulator: {:.2}) | {} |",
                shape.label(),
                c.max_write,
                c.per(c.units.write),
                c.per(c.wire.total().reported_units),
                if shape == Shape::Ten100Random {
                    if c.max_write <= 4.0 {
                        "yes"
                    } else {
                        "no (not a target: random text does not deflate under 1 KB)"
                    }
                } else {
                    yes(c.max_write <= 4.0)
                }
            );
        }
    }
    if let Some((_, c)) = r.loads.get(1) {
        let q = c.wire.total().requests;
        let _ = writeln!(
            o,
            "| sekiban: ≤ 2 round trips per load with a snapshot | {q} ({}) | {} |",
            c.wire.by_target(1.0),
            yes(q <= 2)
        );
    }
    o
}
