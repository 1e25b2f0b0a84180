#!/usr/bin/env bash
# Appends/s of sekiban-sqlite against the Python eventsourcing library's SQLite recorder (9.5.6),
# in one run, on the same disk, both with WAL and synchronous=FULL, at concurrency 1 and 16.
# Builds the benchmark crate bench/sqlite (outside the workspace, release profile) and runs its
# `appends` binary and bench/sqlite/eventsourcing_sqlite.py.
# Usage: bash scripts/bench-sqlite.sh [DIR]   (DIR on a real disk, not tmpfs; default /var/tmp/sekiban-bench)
# APPENDS=N sets the appends per level (default 4000).
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-/var/tmp/sekiban-bench}"
appends="${APPENDS:-4000}"
mkdir -p "$dir"
if ! python3 -c 'import eventsourcing, sys; sys.exit(eventsourcing.__version__ != "9.5.6")' 2>/dev/null; then
    pip install --quiet eventsourcing==9.5.6
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cargo run --release --quiet --manifest-path bench/sqlite/Cargo.toml --bin appends -- --dir "$dir" --appends "$appends" --concurrency 1,16 --json >"$out/rust.jsonl"
python3 bench/sqlite/eventsourcing_sqlite.py --dir "$dir" --appends "$appends" --concurrency 1,16 --json >"$out/python.jsonl"
python3 - "$out/rust.jsonl" "$out/python.jsonl" <<'PY'
import json, sys
rust = {r["concurrency"]: r for r in map(json.loads, open(sys.argv[1]))}
py = {r["concurrency"]: r for r in map(json.loads, open(sys.argv[2]))}
print("| concurrency | sekiban-sqlite appends/s | eventsourcing 9.5.6 appends/s | ratio | sekiban p50 / p99 ms | eventsourcing p50 / p99 ms |")
print("|---|---|---|---|---|---|")
for c in sorted(rust):
    r, p = rust[c], py[c]
    print(f"| {c} | {r['appends_per_s']:.0f} | {p['appends_per_s']:.0f} | {r['appends_per_s'] / p['appends_per_s']:.2f}x "
          f"| {r['p50_ms']:.2f} / {r['p99_ms']:.2f} | {p['p50_ms']:.2f} / {p['p99_ms']:.2f} |")
PY
