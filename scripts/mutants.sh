#!/usr/bin/env bash
# Mutation testing: mutates the memory store and the core helpers it shares with the other
# stores, and runs the conformance suite on the memory store (plain, windowed, partitioned, and
# with feed partitions of its own) and the core's unit tests against every mutant. A mutant the suite does not catch is either killed by a new or stronger
# case or listed in conformance-tests/README.md with why it is harmless.
#
#   scripts/mutants.sh                      # every file below (about 230 mutants, under an hour on 2 cores)
#   scripts/mutants.sh --file core/src/paging.rs   # one file
#   scripts/mutants.sh --list               # what would be tried
#   scripts/mutants.sh --iterate            # only the mutants not caught by the previous run
#
# Needs `cargo install cargo-mutants`. Results go to target/mutants/mutants.out (`caught.txt`,
# `missed.txt`, `timeout.txt`, `unviable.txt`). Not part of CI: it takes hours.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-mutants >/dev/null || {
    echo "cargo-mutants is missing; install it with: cargo install --locked cargo-mutants" >&2
    exit 2
}
files=()
if [[ " $* " != *" --file "* ]]; then
    for f in core/src/memory/mod.rs core/src/memory/feed.rs core/src/backend/feed/driver.rs \
        core/src/paging.rs core/src/idempotency.rs core/src/store.rs core/src/snapshot.rs; do
        files+=(--file "$f")
    done
fi
# Debug info off: the mutants' builds link faster and the suite does not need it.
export CARGO_PROFILE_DEV_DEBUG=0
# The suite's test binaries of sekiban-conformance and the unit tests of sekiban-core (`--lib`),
# named after `--` (cargo-mutants would otherwise run only the mutated package's own tests).
exec cargo mutants "${files[@]}" --test-tool nextest --timeout 60 --output "${MUTANTS_OUT:-target/mutants}" \
    "$@" -- --package sekiban-conformance --lib --test conformance --test windowed --test partitioned \
    --test memory_partitions
