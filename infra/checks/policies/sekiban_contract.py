"""Checkov custom checks: the tables and containers of every template match the crate's definition.

"One source of truth": the definition is what `sekiban init --print-definition` prints (the
DynamoDB table's keys, stream and billing; the Cosmos containers' partition keys and indexing
policy). run.py passes its path in SEKIBAN_DEFINITION. Checks:

  CKV_SEKIBAN_1  DynamoDB events table: key names, key types, HASH/RANGE roles, stream view type,
                 billing mode (CloudFormation AWS::DynamoDB::Table, Terraform aws_dynamodb_table)
  CKV_SEKIBAN_2  Cosmos DB events container: hierarchical partition key paths, kind, version,
                 indexing policy (Bicep .../sqlDatabases/containers, Terraform
                 azurerm_cosmosdb_sql_container)
  CKV_SEKIBAN_3  Cosmos DB checkpoints container (named '<events container>-checkpoints'): its
                 partition key path (same resource types)
  CKV_SEKIBAN_4  DynamoDB events table has no TTL (CloudFormation and Terraform; the guard rules
                 check it for CloudFormation too)

Checkov evaluates parameter and variable defaults before these checks see a resource, so
`BillingMode: !Ref BillingMode` (or `billing_mode = var.billing_mode`) is checked against the
parameter's (variable's) default: a PROVISIONED option is allowed, a PROVISIONED default is not.
A value checkov could not resolve fails (the check cannot prove it matches).

Checkov executes every .py file of the external checks directory once per framework runner (each
in its own process), and logs (does not raise) an import error: run.py therefore checks that these
checks produced results for the resources it expects. Checkov's Terraform parser sorts every list
of strings, so for Terraform only the set of partition key paths is compared here; run.py checks
their order on the source. Checkov's JSON carries a check's `details` for Terraform only, so the
checks also write their findings to the file named by SEKIBAN_CONTRACT_FINDINGS.
"""

from __future__ import annotations

import json
import os
from typing import Any

from checkov.bicep.checks.resource.base_resource_check import BaseResourceCheck as BicepCheck
from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck as CfnCheck
from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.terraform.checks.resource.base_resource_check import BaseResourceCheck as TfCheck

COSMOS_CONTAINER_BICEP = "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers"
CHECKPOINTS_SUFFIX = "-checkpoints"
MISSING = object()


def load_definition() -> dict[str, Any]:
    """The definition JSON, or raises ValueError saying why there is none."""
    path = os.environ.get("SEKIBAN_DEFINITION")
    if not path:
        raise ValueError("SEKIBAN_DEFINITION is not set (run the checks through infra/checks/run.py)")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read the definition {path}: {e}") from e


def clean(value: Any) -> Any:
    """Without checkov's bookkeeping keys (__file__, __startline__, ...)."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items() if not (isinstance(k, str) and k.startswith("__"))}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def show(value: Any) -> str:
    return "absent" if value is MISSING else json.dumps(clean(value), default=str)


def expect(problems: list[str], what: str, actual: Any, wanted: Any) -> None:
    if actual is MISSING or clean(actual) != wanted:
        problems.append(f"{what}: {show(actual)}, the definition says {show(wanted)}")


# --- DynamoDB -------------------------------------------------------------------------------------


def dynamodb_problems(table: dict[str, Any], definition: dict[str, Any]) -> list[str]:
    """What differs between a neutral table description and definition["dynamodb"]["table"].

    table: keys {role: name}, attributes {name: type}, stream_enabled (bool, or None where the
    format has no such switch), stream_view_type, billing_mode.
    """
    want = definition["dynamodb"]["table"]
    problems: list[str] = []
    wanted_keys = {"HASH": want["partition_key"]["name"], "RANGE": want["sort_key"]["name"]}
    expect(problems, "the key schema", table["keys"], wanted_keys)
    for key in (want["partition_key"], want["sort_key"]):
        expect(problems, f"the type of attribute {key['name']!r}",
               table["attributes"].get(key["name"], MISSING), key["kind"])
    if table["stream_enabled"] is not None:
        expect(problems, "stream_enabled", table["stream_enabled"], True)
    expect(problems, "the stream view type", table["stream_view_type"], want["stream_view_type"])
    expect(problems, "the billing mode (or the default of its parameter)", table["billing_mode"],
           want["billing_mode"])
    return problems


def cfn_get(conf: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(conf, dict) or key not in conf:
            return MISSING
        conf = conf[key]
    return conf


def cfn_table(conf: dict[str, Any]) -> dict[str, Any]:
    props = conf.get("Properties") or {}
    schema = props.get("KeySchema", MISSING)
    keys: Any = {}
    if isinstance(schema, list):
        for k in schema:
            role = str(k.get("KeyType")) if isinstance(k, dict) else "?"
            name = k.get("AttributeName") if isinstance(k, dict) else k
            keys[role if role not in keys else f"{role} (again)"] = name
    else:
        keys = schema
    attributes = {
        a.get("AttributeName"): a.get("AttributeType")
        for a in props.get("AttributeDefinitions") or []
        if isinstance(a, dict)
    }
    return {
        "keys": keys,
        "attributes": attributes,
        "stream_enabled": None,
        "stream_view_type": cfn_get(props, "StreamSpecification", "StreamViewType"),
        # CloudFormation's default is PROVISIONED.
        "billing_mode": props.get("BillingMode", "PROVISIONED"),
    }


def tf_value(conf: dict[str, Any], key: str, default: Any = MISSING) -> Any:
    """An attribute of a checkov Terraform resource: checkov wraps each value in a list."""
    if key not in conf:
        return default
    value = conf[key]
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


def tf_blocks(conf: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """The nested blocks of that type (checkov: a list of dicts, one per block)."""
    value = conf.get(key) or []
    return [b for b in value if isinstance(b, dict)]


def tf_table(conf: dict[str, Any]) -> dict[str, Any]:
    keys = {"HASH": tf_value(conf, "hash_key")}
    if "range_key" in conf:
        keys["RANGE"] = tf_value(conf, "range_key")
    attributes = {tf_value(a, "name"): tf_value(a, "type") for a in tf_blocks(conf, "attribute")}
    return {
        "keys": keys,
        "attributes": attributes,
        "stream_enabled": tf_value(conf, "stream_enabled", False),
        "stream_view_type": tf_value(conf, "stream_view_type"),
        # The AWS provider's default is PROVISIONED.
        "billing_mode": tf_value(conf, "billing_mode", "PROVISIONED"),
    }


def report(check: Any, problems: list[str]) -> None:
    """Records why a check failed. Checkov's JSON carries a check's `details` for Terraform only, so
    the problems also go, one JSON line per resource, to the file named by SEKIBAN_CONTRACT_FINDINGS
    (run.py reads it)."""
    check.details.extend(problems)
    path = os.environ.get("SEKIBAN_CONTRACT_FINDINGS")
    if path and problems:
        # entity_path: "<scanned file>:<resource type>:<resource name>", set by BaseCheck.run.
        scanned_file, _, rest = getattr(check, "entity_path", "::").partition(":")
        entity_type, _, entity_name = rest.rpartition(":")
        line = json.dumps({"check_id": check.id, "file": scanned_file, "type": entity_type,
                           "name": entity_name, "problems": problems})
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


class _Contract:
    """Shared scan logic: subclasses set `describe(conf)` -> (result or None, problems)."""

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:  # type: ignore[override]
        try:
            definition = load_definition()
            result, problems = self.describe(conf, definition)
        except (ValueError, KeyError, TypeError) as e:
            result, problems = None, [f"sekiban contract check could not run: {e!r}"]
        if result is not None:
            return result
        report(self, problems)
        return CheckResult.FAILED if problems else CheckResult.PASSED


class _DynamoDbContract(_Contract):
    table_of = staticmethod(cfn_table)

    def describe(self, conf: dict[str, Any], definition: dict[str, Any]) -> tuple[Any, list[str]]:
        return None, dynamodb_problems(self.table_of(conf), definition)


DDB_NAME = "sekiban: DynamoDB table matches `sekiban init --print-definition` (keys, stream, billing)"
CATEGORIES = [CheckCategories.CONVENTION]


class CfnDynamoDbContract(_DynamoDbContract, CfnCheck):
    table_of = staticmethod(cfn_table)

    def __init__(self) -> None:
        super().__init__(name=DDB_NAME, id="CKV_SEKIBAN_1", categories=CATEGORIES,
                         supported_resources=["AWS::DynamoDB::Table"])


class TfDynamoDbContract(_DynamoDbContract, TfCheck):
    table_of = staticmethod(tf_table)

    def __init__(self) -> None:
        super().__init__(name=DDB_NAME, id="CKV_SEKIBAN_1", categories=CATEGORIES,
                         supported_resources=["aws_dynamodb_table"])


NO_TTL_NAME = "sekiban: the DynamoDB events table has no TTL (an expired event breaks its stream)"


class CfnNoTtl(CfnCheck):
    def __init__(self) -> None:
        super().__init__(name=NO_TTL_NAME, id="CKV_SEKIBAN_4", categories=CATEGORIES,
                         supported_resources=["AWS::DynamoDB::Table"])

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:  # type: ignore[override]
        ttl = cfn_get(conf, "Properties", "TimeToLiveSpecification")
        if ttl is MISSING or cfn_get(ttl, "Enabled") is False:
            return CheckResult.PASSED
        report(self, [f"TimeToLiveSpecification is {show(ttl)}"])
        return CheckResult.FAILED


class TfNoTtl(TfCheck):
    def __init__(self) -> None:
        super().__init__(name=NO_TTL_NAME, id="CKV_SEKIBAN_4", categories=CATEGORIES,
                         supported_resources=["aws_dynamodb_table"])

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:  # type: ignore[override]
        for ttl in tf_blocks(conf, "ttl"):
            if tf_value(ttl, "enabled", False) is not False:
                report(self, [f"a ttl block is enabled: {show(ttl)}"])
                return CheckResult.FAILED
        return CheckResult.PASSED


# --- Cosmos DB ------------------------------------------------------------------------------------


def cosmos_problems(container: dict[str, Any], definition: dict[str, Any], checkpoints: bool) -> list[str]:
    """What differs between a neutral container description and definition["cosmos"]["containers"].

    container: name, paths, kind, version, included (list of paths or MISSING), excluded.
    """
    want = definition["cosmos"]["containers"]
    problems: list[str] = []
    if checkpoints:
        expect(problems, "the partition key paths", container["paths"], [want["checkpoint_partition_key_path"]])
        return problems
    if container.get("unordered"):
        # Checkov's Terraform parser sorts every list of strings, so only the set of paths can be
        # compared here; run.py checks the order of the paths in the .tf source itself.
        paths = container["paths"]
        if not isinstance(paths, list) or sorted(map(show, paths)) != sorted(map(show, want["partition_key_paths"])):
            problems.append(f"the partition key paths: {show(paths)} (in some order), "
                            f"the definition says {show(want['partition_key_paths'])}")
    else:
        expect(problems, "the partition key paths", container["paths"], want["partition_key_paths"])
    expect(problems, "the partition key kind", container["kind"], want["partition_key_kind"])
    expect(problems, "the partition key version", container["version"], want["partition_key_version"])
    for what, actual, wanted in (
        ("the indexing policy's included paths", container["included"], want["indexed_paths"]),
        ("the indexing policy's excluded paths", container["excluded"], want["excluded_paths"]),
    ):
        # Order does not matter to Cosmos DB; duplicates would be a mistake.
        if actual is MISSING or not isinstance(actual, list) or len(actual) != len(set(map(show, actual))) \
                or sorted(map(show, actual)) != sorted(map(show, wanted)):
            problems.append(f"{what}: {show(actual)}, the definition says {show(wanted)}")
    return problems


def is_checkpoints(*names: Any) -> bool:
    return any(isinstance(n, str) and n.endswith(CHECKPOINTS_SUFFIX) for n in names)


def bicep_container(conf: dict[str, Any]) -> dict[str, Any]:
    resource = cfn_get(conf, "properties", "resource")
    pk = cfn_get(resource, "partitionKey")
    policy = cfn_get(resource, "indexingPolicy")

    def paths(key: str) -> Any:
        entries = cfn_get(policy, key)
        if not isinstance(entries, list):
            return entries
        return [cfn_get(e, "path") for e in entries]

    return {
        "name": conf.get("name"),
        "id": cfn_get(resource, "id"),
        "paths": cfn_get(pk, "paths"),
        # Cosmos DB's defaults when absent: Hash, version 1.
        "kind": cfn_get(pk, "kind") if cfn_get(pk, "kind") is not MISSING else "Hash",
        "version": cfn_get(pk, "version") if cfn_get(pk, "version") is not MISSING else 1,
        "included": paths("includedPaths"),
        "excluded": paths("excludedPaths"),
    }


def tf_container(conf: dict[str, Any]) -> dict[str, Any]:
    paths = tf_value(conf, "partition_key_paths")
    if paths is MISSING and "partition_key_path" in conf:  # azurerm 3.x
        paths = [tf_value(conf, "partition_key_path")]
    policies = tf_blocks(conf, "indexing_policy")
    policy = policies[0] if len(policies) == 1 else None
    return {
        "name": tf_value(conf, "name"),
        "id": MISSING,
        "paths": paths,
        "unordered": True,
        "kind": tf_value(conf, "partition_key_kind", "Hash"),
        "version": tf_value(conf, "partition_key_version", 1),
        "included": [tf_value(b, "path") for b in tf_blocks(policy, "included_path")] if policy else MISSING,
        "excluded": [tf_value(b, "path") for b in tf_blocks(policy, "excluded_path")] if policy else MISSING,
    }


class _CosmosContract(_Contract):
    container_of = staticmethod(bicep_container)
    checkpoints = False

    def describe(self, conf: dict[str, Any], definition: dict[str, Any]) -> tuple[Any, list[str]]:
        container = self.container_of(conf)
        if is_checkpoints(container["name"], container["id"]) != self.checkpoints:
            return CheckResult.UNKNOWN, []  # the other check's container
        return None, cosmos_problems(container, definition, self.checkpoints)


EVENTS_NAME = "sekiban: Cosmos DB events container matches `sekiban init --print-definition`"
CHECKPOINTS_NAME = "sekiban: Cosmos DB '<events>-checkpoints' container is keyed as the definition says"


class BicepEventsContainer(_CosmosContract, BicepCheck):
    container_of = staticmethod(bicep_container)

    def __init__(self) -> None:
        super().__init__(name=EVENTS_NAME, id="CKV_SEKIBAN_2", categories=CATEGORIES,
                         supported_resources=[COSMOS_CONTAINER_BICEP])


class BicepCheckpointsContainer(_CosmosContract, BicepCheck):
    container_of = staticmethod(bicep_container)
    checkpoints = True

    def __init__(self) -> None:
        super().__init__(name=CHECKPOINTS_NAME, id="CKV_SEKIBAN_3", categories=CATEGORIES,
                         supported_resources=[COSMOS_CONTAINER_BICEP])


class TfEventsContainer(_CosmosContract, TfCheck):
    container_of = staticmethod(tf_container)

    def __init__(self) -> None:
        super().__init__(name=EVENTS_NAME, id="CKV_SEKIBAN_2", categories=CATEGORIES,
                         supported_resources=["azurerm_cosmosdb_sql_container"])


class TfCheckpointsContainer(_CosmosContract, TfCheck):
    container_of = staticmethod(tf_container)
    checkpoints = True

    def __init__(self) -> None:
        super().__init__(name=CHECKPOINTS_NAME, id="CKV_SEKIBAN_3", categories=CATEGORIES,
                         supported_resources=["azurerm_cosmosdb_sql_container"])


CfnDynamoDbContract()
TfDynamoDbContract()
CfnNoTtl()
TfNoTtl()
BicepEventsContainer()
BicepCheckpointsContainer()
TfEventsContainer()
TfCheckpointsContainer()
