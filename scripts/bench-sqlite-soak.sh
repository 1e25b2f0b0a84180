#!/usr/bin/env bash
# A soak of one SQLite file (bench/sqlite/src/bin/soak.rs): 1 000 000 events to one stream in
# appends of 1 000, then 100 000 one-event appends to 100 streams; appends/s at the start and the
# end, the WAL's size during the appends, file sizes and open time after close, the cost of reading
# the 1 M-event stream (wall time, peak RSS) through the store and through `sekiban events`.
# Prints markdown on stdout, progress on stderr.
# Usage: bash scripts/bench-sqlite-soak.sh [DIR] [--events N] [--small N]
#   DIR on a real disk, not tmpfs (default /var/tmp/sekiban-soak); the benchmark works in a fresh
#   temporary directory inside it and removes it at the end.
#   Quick run: bash scripts/bench-sqlite-soak.sh --events 100000 --small 10000
set -euo pipefail
cd "$(dirname "$0")/.."
dir=/var/tmp/sekiban-soak
if [ $# -gt 0 ] && [[ "$1" != --* ]]; then
    dir="$1"
    shift
fi
cargo build --release --quiet -p sekiban-cli
target="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
exec cargo run --release --quiet --manifest-path bench/sqlite/Cargo.toml --bin soak -- --dir "$dir" --cli "$target/release/sekiban" "$@"
