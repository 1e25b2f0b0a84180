#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing (scripts/setup.sh), starts the services the
# tests need, runs every test with nextest and the doctests with cargo test, and stops what it
# started by PID, however it exits. Extra arguments go to `cargo nextest run`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

# Services started by this script, stopped by PID on exit.
PIDS=()
cleanup() {
    for pid in "${PIDS[@]:-}"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT INT TERM

# The in-memory store and the conformance suite need no service yet; backends that do start
# their emulators here and export SEKIBAN_* for the tests.

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
cargo nextest run --workspace --no-fail-fast "$@"
cargo test --workspace --doc
