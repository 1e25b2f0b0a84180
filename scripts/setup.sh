#!/usr/bin/env bash
# Installs what the tests need. Idempotent: safe to run again; installs only what is missing.
set -euo pipefail

say() { printf 'setup: %s\n' "$*"; }

if ! command -v cargo >/dev/null 2>&1; then
    say "cargo is missing; install a stable Rust toolchain (https://rustup.rs) and run this again" >&2
    exit 1
fi
for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        say "installing the $component component"
        rustup component add "$component"
    fi
done
if ! cargo nextest --version >/dev/null 2>&1; then
    say "installing cargo-nextest from crates.io"
    cargo install --locked cargo-nextest
fi

# PostgreSQL: the server binaries (a private cluster is started by scripts/test.sh when no server
# answers) and the client.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing PostgreSQL from Debian's packages"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-client >/dev/null
    else
        say "PostgreSQL is missing: install the 'postgresql' package (server and client), or set SEKIBAN_POSTGRES_URL to a server" >&2
        exit 1
    fi
fi
say "ready: $(cargo --version), $(cargo nextest --version | head -n1), $(psql --version)"
