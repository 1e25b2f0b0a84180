#!/usr/bin/env bash
# sekiban-dynamodb beside dynamo-es 0.5 (cqrs-es), in one run on one DynamoDB Local: appends/s,
# latency, requests on the wire per operation (a counting HTTP proxy), capacity units as the
# emulator reports them and as AWS's published rules charge them, loads with and without a
# snapshot, and a 3 000-event stream written and read back. Builds the benchmark crate
# bench/dynamodb (outside the workspace, release profile), starts a DynamoDB Local of its own on a
# free port (in memory, stopped at the end by its PID), and prints the report as markdown on stdout
# (progress on stderr). DynamoDB Local comes from scripts/setup.sh.
# Usage: bash scripts/bench-dynamodb.sh [--quick] [extra arguments, e.g. --rounds 3]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/emulators.sh
source scripts/emulators.sh

# A port of 8700-8799 nothing listens on.
free_port() {
    python3 - <<'PY'
import socket, sys
for port in range(8700, 8800):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    sys.exit(0)
sys.exit("no free port in 8700-8799")
PY
}

cargo build --release --quiet --manifest-path bench/dynamodb/Cargo.toml

jar_dir=$(emu_dynamodb_local_jar_dir) || { echo "DynamoDB Local is not installed: run scripts/setup.sh" >&2; exit 1; }
java=$(emu_java) || { echo "no Java 17+ for DynamoDB Local: run scripts/setup.sh" >&2; exit 1; }
version=$(python3 - "$jar_dir/DynamoDBLocal.jar" <<'PY'
import sys, zipfile
props = zipfile.ZipFile(sys.argv[1]).read("META-INF/maven/software/amazon/dynamodb/DynamoDBLocal/pom.properties")
print(next((l.split("=", 1)[1] for l in props.decode().splitlines() if l.startswith("version=")), "?"))
PY
)
server="DynamoDB Local $version (in memory, -Xmx256m) on Java $(emu_java_major "$java")"

port=$(free_port)
log=$(mktemp -t sekiban-bench-dynamodb.XXXXXX)
emu_start_dynamodb_local "$port" "$log"
emu_pid=$EMU_PID
stop() {
    kill "$emu_pid" 2>/dev/null || true
    wait "$emu_pid" 2>/dev/null || true
    rm -f "$log"
}
trap stop EXIT
trap 'exit 130' INT TERM
if ! emu_wait_ready dynamodb "http://127.0.0.1:$port/" "$emu_pid" 60; then
    echo "DynamoDB Local did not start on port $port:" >&2
    cat "$log" >&2
    exit 1
fi
echo "bench: $server on port $port (pid $emu_pid)" >&2

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_DYNAMODB
cargo run --release --quiet --manifest-path bench/dynamodb/Cargo.toml -- \
    --endpoint "http://127.0.0.1:$port" --server "$server" "$@"
