#!/usr/bin/env bash
# sekiban-postgres beside postgres-es 0.5 (cqrs-es) and a raw tokio-postgres floor, in one run on
# one server: appends/s, latency, round trips per append, and the load of a 1 000-event stream.
# Builds the benchmark crate bench/postgres (outside the workspace, release profile) and prints
# the report as markdown on stdout (progress on stderr). Writes only into fresh schemas
# bench_<random>_{sekiban,floor,pges}, dropped at the end. The server must be on this machine.
# Usage: bash scripts/bench-postgres.sh [URL] [extra arguments, e.g. --rounds 5 or --quick]
#   URL defaults to $SEKIBAN_POSTGRES_URL, else postgres://postgres@127.0.0.1:5432/test.
set -euo pipefail
cd "$(dirname "$0")/.."
url="${SEKIBAN_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
if [ $# -gt 0 ] && [[ "$1" == postgres* ]]; then
    url="$1"
    shift
fi
cargo build --release --quiet --manifest-path bench/postgres/Cargo.toml
exec cargo run --release --quiet --manifest-path bench/postgres/Cargo.toml -- --url "$url" "$@"
