#!/usr/bin/env python3
"""The CloudFormation template, deployed: a stack on the moto server, its table compared with the
DynamoDB backend's own definition, `sekiban doctor` run on the deployment, then the whole
conformance suite run on DynamoDB Local against a table created from the template's own table
properties (key schema, attribute types, stream specification, billing mode).

moto honours the key schema, billing mode and the stream; it ignores point-in-time recovery, TTL,
encryption and the bucket's hardening, which infra/checks asserts statically. The suite does not
run on moto: it copies the whole table per transactional item.

Usage (scripts/infra-check.sh runs it with the moto environment's Python, which has boto3):

    python deploy_aws.py --definition DEF.json --template sekiban.yaml --sekiban BIN \
        --moto http://127.0.0.1:PORT --dynamodb http://127.0.0.1:PORT
"""

import argparse
import json
import os
import subprocess
import sys
import time
import uuid

import boto3
import yaml


def say(msg):
    print(f"deploy-aws: {msg}", flush=True)


class Failed(Exception):
    pass


# --- the template, read as CloudFormation reads it ------------------------------------------


class _Loader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form intrinsics (`!Ref X` -> {"Ref": X}, `!If [...]` ->
    {"Fn::If": [...]})."""


def _intrinsic(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_Loader.add_multi_constructor("!", _intrinsic)


def load_template(path):
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def resolve(value, params, conditions, where):
    """The value a property takes with the parameters' defaults: Ref to a parameter, Fn::If on
    a condition, AWS::NoValue. Anything else intrinsic is refused: the table's shape must not
    depend on what only a deployment knows."""
    if isinstance(value, dict) and len(value) == 1:
        (k, v), = value.items()
        if k == "Ref":
            if v == "AWS::NoValue":
                return None
            if v in params:
                return params[v]
            raise Failed(f"{where}: Ref {v} is not a parameter with a default")
        if k == "Fn::If":
            name, yes, no = v
            branch = yes if conditions[name] else no
            return resolve(branch, params, conditions, where)
        if k.startswith("Fn::"):
            raise Failed(f"{where}: {k} cannot be resolved statically")
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            r = resolve(v, params, conditions, f"{where}.{k}")
            if r is not None:
                out[k] = r
        return out
    if isinstance(value, list):
        return [r for i, v in enumerate(value)
                if (r := resolve(v, params, conditions, f"{where}[{i}]")) is not None]
    return value


def condition(expr, params, conditions):
    """Evaluates a condition with the parameters' defaults (Fn::Equals, Not, And, Or, Condition)."""
    (k, v), = expr.items()
    if k == "Fn::Equals":
        a, b = (resolve(x, params, conditions, "Conditions") for x in v)
        return str(a) == str(b)
    if k == "Fn::Not":
        return not condition(v[0], params, conditions)
    if k == "Fn::And":
        return all(condition(x, params, conditions) for x in v)
    if k == "Fn::Or":
        return any(condition(x, params, conditions) for x in v)
    if k == "Condition":
        return conditions[v]
    raise Failed(f"condition {k} is not supported here")


def table_properties(template):
    """The events table's properties as a deployment with the default parameters gets them."""
    params = {name: p["Default"] for name, p in template.get("Parameters", {}).items() if "Default" in p}
    conditions = {}
    pending = dict(template.get("Conditions", {}))
    while pending:
        progressed = False
        for name, expr in list(pending.items()):
            try:
                conditions[name] = condition(expr, params, conditions)
            except KeyError:
                continue
            del pending[name]
            progressed = True
        if not progressed:
            raise Failed(f"conditions cannot be evaluated: {sorted(pending)}")
    tables = {k: r for k, r in template["Resources"].items() if r["Type"] == "AWS::DynamoDB::Table"}
    if list(tables) != ["EventsTable"]:
        raise Failed(f"the template must declare one table, EventsTable; it declares {sorted(tables)}")
    return resolve(tables["EventsTable"]["Properties"], params, conditions, "EventsTable.Properties")


# --- the crate's definition, and how a described table differs from it ----------------------


def differences(definition, t):
    """Each way the described table `t` differs from the backend's definition."""
    out = []
    types = {a["AttributeName"]: a["AttributeType"] for a in t.get("AttributeDefinitions", [])}
    schema = [(k["AttributeName"], k["KeyType"]) for k in t.get("KeySchema", [])]
    want = [(definition["partition_key"], "HASH"), (definition["sort_key"], "RANGE")]
    if schema != [(k["name"], role) for k, role in want]:
        out.append(f"key schema {schema}, the backend expects "
                   f"{[(k['name'], role) for k, role in want]}")
    for k, _ in want:
        if types.get(k["name"]) != k["kind"]:
            out.append(f"attribute {k['name']} has type {types.get(k['name'])}, the backend expects {k['kind']}")
    billing = t.get("BillingModeSummary", {}).get("BillingMode", t.get("BillingMode"))
    if billing != definition["billing_mode"]:
        out.append(f"billing mode {billing}, the backend's default is {definition['billing_mode']}")
    stream = t.get("StreamSpecification", {})
    if not stream.get("StreamEnabled") or stream.get("StreamViewType") != definition["stream_view_type"]:
        out.append(f"stream {stream}, the backend reads a stream of {definition['stream_view_type']}")
    return out


# --- the steps ------------------------------------------------------------------------------


# moto takes any credentials: these, whatever the environment holds.
MOTO_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"}


def client(service, endpoint):
    """A client of moto."""
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def dynamodb_client(endpoint):
    """A client of the DynamoDB endpoint, with the environment's credentials (scripts/test.sh
    sets dummy ones for DynamoDB Local)."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name=region)


def deploy_on_moto(args, body, suffix):
    cfn = client("cloudformation", args.moto)
    stack = f"sekiban-ci-{suffix}"
    params = [
        {"ParameterKey": "TableName", "ParameterValue": f"sekiban-ci-{suffix}"},
        {"ParameterKey": "BucketName", "ParameterValue": f"sekiban-ci-{suffix}"},
    ]
    say(f"creating stack {stack} on moto ({args.moto})")
    cfn.create_stack(StackName=stack, TemplateBody=body, Parameters=params,
                     Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"])
    deadline = time.time() + 120
    while True:
        s = cfn.describe_stacks(StackName=stack)["Stacks"][0]
        status = s["StackStatus"]
        if status == "CREATE_COMPLETE":
            break
        if not status.endswith("IN_PROGRESS") or time.time() > deadline:
            events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
            reasons = [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
                       for e in events if e.get("ResourceStatusReason")]
            raise Failed(f"stack {stack} is {status}: {reasons}")
        time.sleep(0.5)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in s.get("Outputs", [])}
    missing = {"TableName", "StreamArn", "BucketName", "PolicyArn"} - set(outputs)
    if missing:
        raise Failed(f"stack outputs lack {sorted(missing)}; it has {sorted(outputs)}")
    say(f"stack created; outputs {json.dumps(outputs, sort_keys=True)}")
    return outputs


def check_stack(args, definition, outputs):
    t = client("dynamodb", args.moto).describe_table(TableName=outputs["TableName"])["Table"]
    diff = differences(definition, t)
    if diff:
        raise Failed("the table the stack created differs from the backend's definition: " + "; ".join(diff))
    if t.get("LatestStreamArn") != outputs["StreamArn"]:
        raise Failed(f"output StreamArn {outputs['StreamArn']} is not the table's stream {t.get('LatestStreamArn')}")
    say(f"DescribeTable on moto matches the backend's definition: {definition}")
    client("s3", args.moto).head_bucket(Bucket=outputs["BucketName"])
    iam = client("iam", args.moto)
    policy = iam.get_policy(PolicyArn=outputs["PolicyArn"])["Policy"]
    doc = iam.get_policy_version(PolicyArn=outputs["PolicyArn"],
                                 VersionId=policy["DefaultVersionId"])["PolicyVersion"]["Document"]
    if isinstance(doc, str):
        doc = json.loads(doc)
    granted = " ".join(json.dumps(s.get("Resource")) for s in doc["Statement"])
    for what in (t["TableArn"], outputs["BucketName"]):
        if what not in granted:
            raise Failed(f"the access policy names no resource for {what}: {granted}")
    say(f"bucket {outputs['BucketName']} exists; policy {policy['PolicyName']} grants on the table and the bucket")
    url = (f"dynamodb://{outputs['TableName']}?endpoint={args.moto}"
           f"&bucket={outputs['BucketName']}&s3_endpoint={args.moto}")
    run([args.sekiban, "doctor", "--store", url], "sekiban doctor on the stack", MOTO_CREDENTIALS)


def conformance_on_template_table(args, definition, props, suffix, bucket):
    name = f"sekiban-infra-{suffix}"
    request = {k: props[k] for k in ("KeySchema", "AttributeDefinitions", "BillingMode",
                                    "ProvisionedThroughput") if k in props}
    # CloudFormation's StreamSpecification is the API's with the stream implied on.
    if "StreamSpecification" in props:
        request["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
    say(f"creating {name} on DynamoDB Local ({args.dynamodb}) from the template's table properties: "
        f"{json.dumps(request, sort_keys=True)}")
    ddb = dynamodb_client(args.dynamodb)
    ddb.create_table(TableName=name, **request)
    try:
        ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300})
        t = ddb.describe_table(TableName=name)["Table"]
        diff = differences(definition, t)
        if diff:
            raise Failed("the table made from the template's properties differs from the backend's definition: "
                         + "; ".join(diff))
        # Large snapshots go to the bucket the stack created (S3 on moto).
        run([args.sekiban, "conformance", "--store",
             f"dynamodb://{name}?endpoint={args.dynamodb}&bucket={bucket}&s3_endpoint={args.moto}"],
            "the conformance suite on that table", {})
    finally:
        ddb.delete_table(TableName=name)


def run(cmd, what, env):
    say(f"{what}: {' '.join(cmd)}")
    started = time.time()
    full = {**os.environ, **env}
    if env:
        full.pop("AWS_PROFILE", None)
    r = subprocess.run(cmd, env=full)
    if r.returncode != 0:
        raise Failed(f"{what} failed (exit {r.returncode})")
    say(f"{what}: passed in {time.time() - started:.1f} s")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--definition", required=True, help="the JSON of `sekiban init --print-definition`")
    p.add_argument("--template", required=True)
    p.add_argument("--sekiban", required=True, help="the sekiban binary")
    p.add_argument("--moto", required=True, help="the moto server's endpoint")
    p.add_argument("--dynamodb", required=True, help="DynamoDB Local's endpoint")
    p.add_argument("--only-properties", action="store_true",
                   help="print the table properties the template declares, and stop")
    args = p.parse_args()
    with open(args.definition, encoding="utf-8") as f:
        definition = json.load(f)["dynamodb"]["table"]
    with open(args.template, encoding="utf-8") as f:
        body = f.read()
    try:
        props = table_properties(load_template(args.template))
        if args.only_properties:
            print(json.dumps(props, indent=2, sort_keys=True))
            return 0
        suffix = uuid.uuid4().hex[:8]
        outputs = deploy_on_moto(args, body, suffix)
        check_stack(args, definition, outputs)
        conformance_on_template_table(args, definition, props, suffix, outputs["BucketName"])
    except Failed as e:
        say(f"FAILED: {e}")
        return 1
    say("passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
