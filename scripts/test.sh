#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing (scripts/setup.sh), finds or starts the
# services the tests need, runs every test with nextest and the doctests with cargo test, and
# stops what it started by PID, however it exits. Extra arguments go to `cargo nextest run`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

say() { printf 'test: %s\n' "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# On exit: what the tests left in the services is dropped, what this script started is stopped by
# PID, and its directories are removed.
DROP=()
PIDS=()
DIRS=()
cleanup() {
    local rc=$?
    for c in "${DROP[@]:-}"; do
        if [ -n "$c" ]; then eval "$c" >/dev/null 2>&1 || true; fi
    done
    for pid in "${PIDS[@]:-}"; do
        if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
    done
    for d in "${DIRS[@]:-}"; do
        if [ -n "$d" ]; then rm -rf "$d"; fi
    done
    exit "$rc"
}
trap cleanup EXIT INT TERM

# PostgreSQL: SEKIBAN_POSTGRES_URL when set; else the local server on 127.0.0.1:5432 when it
# answers; else a private cluster on a free port, in a temporary directory.
if [ -z "${SEKIBAN_POSTGRES_URL:-}" ]; then
    if psql "postgres://postgres@127.0.0.1:5432/test" -Atqc 'select 1' >/dev/null 2>&1; then
        export SEKIBAN_POSTGRES_URL="postgres://postgres@127.0.0.1:5432/test"
    else
        bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
        dir=$(mktemp -d /tmp/sekiban-pg.XXXXXX)
        port=$(free_port)
        as_pg=()
        if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; as_pg=(runuser -u postgres --); fi
        "${as_pg[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres >/dev/null
        "${as_pg[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
            -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
        PIDS+=("$(head -n1 "$dir/data/postmaster.pid")")
        DIRS+=("$dir")
        "${as_pg[@]}" "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres test
        export SEKIBAN_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/test"
        say "started PostgreSQL (pid ${PIDS[-1]}) on port $port"
    fi
fi
# Each run works in a schema of its own, dropped afterwards.
export SEKIBAN_POSTGRES_SCHEMA="sekiban_test_$(date +%s)_$$"
for s in "$SEKIBAN_POSTGRES_SCHEMA" "${SEKIBAN_POSTGRES_SCHEMA}_cli"; do
    DROP+=("psql '$SEKIBAN_POSTGRES_URL' -qc 'DROP SCHEMA IF EXISTS $s CASCADE'")
done
say "PostgreSQL at ${SEKIBAN_POSTGRES_URL%%\?*}, schema $SEKIBAN_POSTGRES_SCHEMA"

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Everything in parallel, except the PostgreSQL late-commit and plan tests: they hold
# transactions open (the plan tests load 20 000-event streams), which holds back the
# cluster-wide xmin and so every feed, so they run alone afterwards.
cargo nextest run --workspace --no-fail-fast -E 'not (binary(late_commit) | binary(plans))' "$@"
cargo nextest run -p sekiban-postgres --test late_commit --test plans --test-threads 1 --no-fail-fast
cargo test --workspace --doc
