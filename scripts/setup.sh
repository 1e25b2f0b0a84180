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
say "ready: $(cargo --version), $(cargo nextest --version | head -n1)"
