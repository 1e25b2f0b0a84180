#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing (scripts/setup.sh), finds or starts the
# services the tests need, runs every test with nextest and the doctests with cargo test, and
# stops what it started by PID, however it exits. Extra arguments go to `cargo nextest run`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
# The emulators' installs and how to start them, and emu_free_port.
. scripts/emulators.sh

say() { printf 'test: %s\n' "$*"; }

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
trap cleanup EXIT
# A signal ends the script with its conventional status; the EXIT trap then cleans up.
trap 'exit 130' INT
trap 'exit 143' TERM

# PostgreSQL: SEKIBAN_POSTGRES_URL when set; else the local server on 127.0.0.1:5432 when it
# answers; else a private cluster on a free port, in a temporary directory.
if [ -z "${SEKIBAN_POSTGRES_URL:-}" ]; then
    if psql "postgres://postgres@127.0.0.1:5432/test" -Atqc 'select 1' >/dev/null 2>&1; then
        export SEKIBAN_POSTGRES_URL="postgres://postgres@127.0.0.1:5432/test"
    else
        bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
        dir=$(mktemp -d /tmp/sekiban-pg.XXXXXX)
        port=$(emu_free_port)
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
for s in "$SEKIBAN_POSTGRES_SCHEMA" "${SEKIBAN_POSTGRES_SCHEMA}_cli" "${SEKIBAN_POSTGRES_SCHEMA}_sql" "${SEKIBAN_POSTGRES_SCHEMA}_doctor" "${SEKIBAN_POSTGRES_SCHEMA}_alone"; do
    DROP+=("psql '$SEKIBAN_POSTGRES_URL' -qc 'DROP SCHEMA IF EXISTS $s CASCADE'")
done
say "PostgreSQL at ${SEKIBAN_POSTGRES_URL%%\?*}, schema $SEKIBAN_POSTGRES_SCHEMA"

# DynamoDB, S3 and Azure Blob: SEKIBAN_DYNAMODB_ENDPOINT, SEKIBAN_S3_ENDPOINT and
# SEKIBAN_AZURE_BLOB_ENDPOINT when set (a real account, or emulators started by hand); else
# DynamoDB Local, moto server and Azurite (installed by scripts/setup.sh, see scripts/emulators.sh),
# each started once on a free port, all at once, logging into a temporary directory. (Cosmos DB
# needs none: its tests run the SDK's in-process emulator.)
emu_dir=
emu_started=()
# start_emulator NAME KIND PORT: launches one (emu_start_dynamodb_local or emu_start_moto, after KIND).
start_emulator() {
    if [ -z "$emu_dir" ]; then
        emu_dir=$(mktemp -d /tmp/sekiban-emulators.XXXXXX)
        DIRS+=("$emu_dir")
    fi
    case $2 in
        dynamodb) emu_start_dynamodb_local "$3" "$emu_dir/$2.log" ;;
        s3) emu_start_moto "$3" "$emu_dir/$2.log" ;;
        blob) emu_start_azurite "$3" "$emu_dir/$2.log" ;;
    esac
    PIDS+=("$EMU_PID")
    emu_started+=("$1|$2|$3|$EMU_PID|$(date +%s%N)")
}
if [ -z "${SEKIBAN_DYNAMODB_ENDPOINT:-}" ]; then
    port=$(emu_free_port)
    start_emulator "DynamoDB Local" dynamodb "$port"
    export SEKIBAN_DYNAMODB_ENDPOINT="http://127.0.0.1:$port"
fi
if [ -z "${SEKIBAN_S3_ENDPOINT:-}" ]; then
    port=$(emu_free_port)
    start_emulator "moto server (S3)" s3 "$port"
    export SEKIBAN_S3_ENDPOINT="http://127.0.0.1:$port"
fi
if [ -z "${SEKIBAN_AZURE_BLOB_ENDPOINT:-}" ]; then
    port=$(emu_free_port)
    start_emulator "Azurite (Azure Blob)" blob "$port"
    export SEKIBAN_AZURE_BLOB_ENDPOINT="http://127.0.0.1:$port/devstoreaccount1"
fi
for e in "${emu_started[@]:-}"; do
    [ -n "$e" ] || continue
    IFS='|' read -r name kind port pid t0 <<<"$e"
    rc=0
    emu_wait_ready "$kind" "http://127.0.0.1:$port/" "$pid" 60 || rc=$?
    if [ "$rc" != 0 ]; then
        if [ "$rc" = 2 ]; then why="exited"; else why="did not answer within 60 s"; fi
        say "$name (pid $pid, port $port) $why; the end of its log, $emu_dir/$kind.log:" >&2
        tail -n 40 "$emu_dir/$kind.log" >&2 || true
        exit 1
    fi
    say "started $name (pid $pid) on port $port, ready in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
done
# The emulators take any credentials: dummy ones, and a region, unless the user has their own.
if [ "${#emu_started[@]}" -gt 0 ]; then
    if [ -z "${AWS_ACCESS_KEY_ID:-}" ] && [ -z "${AWS_PROFILE:-}" ]; then
        export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
    fi
    if [ -z "${AWS_REGION:-}" ] && [ -z "${AWS_DEFAULT_REGION:-}" ]; then export AWS_REGION=us-east-1; fi
fi
say "DynamoDB at $SEKIBAN_DYNAMODB_ENDPOINT, S3 at $SEKIBAN_S3_ENDPOINT, Azure Blob at $SEKIBAN_AZURE_BLOB_ENDPOINT"

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Everything in parallel, except the PostgreSQL late-commit and plan tests: they hold
# transactions open (the plan tests load 20 000-event streams), which holds back the
# cluster-wide xmin and so every feed, so they run alone afterwards, in a schema of their own
# (the plans the planner picks depend on the statistics of the tables: other tests' rows must
# not change them).
cargo nextest run --workspace --no-fail-fast -E 'not (binary(late_commit) | binary(plans))' "$@"
SEKIBAN_POSTGRES_SCHEMA="${SEKIBAN_POSTGRES_SCHEMA}_alone" \
    cargo nextest run -p sekiban-postgres --test late_commit --test plans --test-threads 1 --no-fail-fast
cargo test --workspace --doc
# infra/: the templates checked against the backends' definitions, and the CloudFormation stack
# deployed on moto with the conformance suite run on a table made from its properties.
bash scripts/infra-check.sh
