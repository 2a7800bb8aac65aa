"""deploy/template.yaml, the CloudFormation stack of the pipeline:

  (a) cfn-lint (AWS's linter, in .venv) accepts it;
  (b) read as data, it grants least privilege (no wildcard action or resource,
      the function's role may read only the input bucket and write only the
      output bucket, ...) and keeps the queue's visibility timeout >= 6x the
      function's timeout. The checks run on the template as CloudFormation
      would create it (effective(): conditions evaluated, Fn::If resolved,
      AWS::NoValue dropped) with EnableEmrServerless false and true, and the
      function's permissions must equal the expected set exactly in each;
  (c) it deploys: a real moto server (a subprocess on 127.0.0.1) creates the
      stack with boto3's CloudFormation client, and every resource is then
      read back through its own service's API;
  (d) the function, run for real under AWS's Runtime Interface Emulator with
      the EMR-enabled environment, hands a job to EMR Serverless on moto and
      every call, object and role it uses is within the template's grants.

moto's CloudFormation does not implement everything the template uses; each
gap is applied by the test through the service API, from the template's own
text, and said where it happens (see MOTO_SKIPPED_TYPES).
"""
import ast
import contextlib
import fnmatch
import io
import json
import os
import pathlib
import re
import subprocess
import sys
import time
import urllib.request
import zipfile

import pytest
import yaml

from conftest import BIN, free_port
from test_lambda_pipeline import recorded_event
from test_lambda_rie import LambdaEmulator

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "template.yaml"
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
CFN_LINT = str(VENV_BIN / "cfn-lint")
REGION = "us-east-1"
STACK = "cm-e2e"

# What moto's CloudFormation (5.1) does not do, and where this file makes up for it:
#   AWS::SQS::QueuePolicy     skipped with a warning     -> test_stack_queues sets it
#   AWS::S3::Bucket           NotificationConfiguration  -> test_stack_input_bucket_notification
#                             LifecycleConfiguration,
#                             PublicAccessBlockConfiguration ignored -> test_stack_buckets
#   AWS::Lambda::Function     EphemeralStorage ignored (512) -> test_function_settings (template)
#   AWS::EMRServerless::Application  not supported: the moto stack is the
#                             EnableEmrServerless=false one; the EMR-enabled
#                             wiring is made through the EMR Serverless and IAM
#                             APIs from the template's properties in
#                             test_function_hands_a_job_to_emr_serverless_within_its_grants
MOTO_SKIPPED_TYPES = {"AWS::SQS::QueuePolicy"}


# --------------------------------------------------------------------------- template as data

class CfnLoader(yaml.SafeLoader):
    """YAML loader for CloudFormation's short forms: !Ref X -> {"Ref": X},
    !GetAtt A.B -> {"Fn::GetAtt": [A, B]}, !Sub s -> {"Fn::Sub": s}, ..."""


def _construct_tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template():
    return yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)


def resources_of_type(tpl, rtype):
    return {k: r for k, r in tpl["Resources"].items() if r["Type"] == rtype}


def as_list(v):
    return v if isinstance(v, list) else [v]


def policy_documents(tpl):
    """(where, document) for every IAM policy document in the template."""
    for name, res in tpl["Resources"].items():
        props = res.get("Properties", {})
        if "AssumeRolePolicyDocument" in props:
            yield f"{name}.AssumeRolePolicyDocument", props["AssumeRolePolicyDocument"]
        for pol in props.get("Policies", []):
            yield f"{name}.Policies.{pol['PolicyName']}", pol["PolicyDocument"]
        if "PolicyDocument" in props:
            yield f"{name}.PolicyDocument", props["PolicyDocument"]


NO_VALUE = object()  # what !Ref AWS::NoValue becomes: the property (or list item) is left out


def evaluate_conditions(tpl, params):
    """{condition name: bool} for these parameter values (defaults for the rest)."""
    values = {k: str(v.get("Default", "")) for k, v in tpl.get("Parameters", {}).items()}
    values.update(params)
    done = {}

    def ev(node):
        if not isinstance(node, dict):
            return node
        ((fn, arg),) = node.items()
        if fn == "Ref":
            return values[arg]
        if fn == "Condition":
            return cond(arg)
        if fn == "Fn::Equals":
            a, b = (ev(x) for x in arg)
            return str(a) == str(b)
        if fn == "Fn::Not":
            return not ev(arg[0])
        if fn == "Fn::And":
            return all(ev(x) for x in arg)
        if fn == "Fn::Or":
            return any(ev(x) for x in arg)
        raise AssertionError(f"condition function {fn} is not evaluated by this test")

    def cond(name):
        if name not in done:
            done[name] = bool(ev(tpl["Conditions"][name]))
        return done[name]

    return {name: cond(name) for name in tpl.get("Conditions", {})}


def effective(tpl, **params):
    """The template as CloudFormation would create it for these parameters:
    resources and outputs whose Condition is false are gone, every Fn::If is
    replaced by its chosen branch, and values that chose AWS::NoValue are left
    out. The least-privilege checks run on this, once per EMR setting, so a
    conditional grant is checked exactly where it applies."""
    conds = evaluate_conditions(tpl, params)

    def walk(node):
        if isinstance(node, list):
            return [v for v in (walk(x) for x in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if set(node) == {"Ref"} and node["Ref"] == "AWS::NoValue":
            return NO_VALUE
        if set(node) == {"Fn::If"}:
            name, if_true, if_false = node["Fn::If"]
            return walk(if_true if conds[name] else if_false)
        return {k: v for k, v in ((k, walk(v)) for k, v in node.items()) if v is not NO_VALUE}

    out = dict(tpl)
    for section in ("Resources", "Outputs"):
        out[section] = {k: walk(v) for k, v in tpl.get(section, {}).items()
                        if "Condition" not in v or conds[v["Condition"]]}
    return out


WITHOUT_EMR, WITH_EMR = {"EnableEmrServerless": "false"}, {"EnableEmrServerless": "true"}


def statements(doc):
    st = doc["Statement"]
    assert not (isinstance(st, dict) and "Fn::If" in st), "evaluate the template with effective() first"
    return as_list(st)


def render(expr):
    """A resource expression as text with ${...} placeholders:
    !GetAtt InputBucket.Arn -> "${InputBucket.Arn}", !Ref T -> "${T}", !Sub s -> s.
    Fn::If has no single rendering: effective() chooses its branch first."""
    if isinstance(expr, str):
        return expr
    if "Fn::If" in expr:
        raise AssertionError(f"{expr!r}: evaluate the template with effective() before rendering")
    if "Ref" in expr:
        return "${%s}" % expr["Ref"]
    if "Fn::GetAtt" in expr:
        return "${%s}" % ".".join(expr["Fn::GetAtt"])
    if "Fn::Sub" in expr:
        sub = expr["Fn::Sub"]
        assert isinstance(sub, str), f"unexpected !Sub form {sub!r}"
        return sub
    raise AssertionError(f"unexpected resource expression {expr!r}")


def references(node):
    """Logical names a template fragment refers to (Ref, GetAtt, ${...} in Sub)."""
    out = set()
    if isinstance(node, list):
        for v in node:
            out |= references(v)
    elif isinstance(node, dict):
        for k, v in node.items():
            if k == "Ref":
                out.add(v)
            elif k == "Fn::GetAtt":
                out.add(v[0])
            elif k == "Fn::Sub":
                text = v if isinstance(v, str) else v[0]
                out |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text)}
                if not isinstance(v, str):
                    out |= references(v[1])
            else:
                out |= references(v)
    return out


def permissions(doc):
    """{(action, rendered resource)} granted by a policy document's Allow
    statements; a statement with a Condition gives (action, resource,
    condition as canonical JSON), so that an exact comparison covers it too."""
    out = set()
    for st in statements(doc):
        assert st["Effect"] == "Allow", st
        cond = (json.dumps(st["Condition"], sort_keys=True),) if "Condition" in st else ()
        for a in as_list(st["Action"]):
            for r in as_list(st["Resource"]):
                out.add((a, render(r)) + cond)
    return out


def function_role_name(tpl):
    (fn,) = resources_of_type(tpl, "AWS::Lambda::Function").values()
    role = fn["Properties"]["Role"]
    assert role["Fn::GetAtt"][1] == "Arn"
    return role["Fn::GetAtt"][0]


def role_policies(tpl, role):
    """(where, document) for every policy a role gets: its inline Policies and
    each AWS::IAM::Policy resource that names it in Roles."""
    for pol in tpl["Resources"][role]["Properties"].get("Policies", []):
        yield f"{role}.Policies.{pol['PolicyName']}", pol["PolicyDocument"]
    for name, res in resources_of_type(tpl, "AWS::IAM::Policy").items():
        if {"Ref": role} in res["Properties"].get("Roles", []):
            yield name, res["Properties"]["PolicyDocument"]


# --------------------------------------------------------------------------- (a) cfn-lint

def test_cfn_lint_accepts_template():
    proc = subprocess.run([CFN_LINT, str(TEMPLATE)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"cfn-lint exit {proc.returncode}:\n{proc.stdout}{proc.stderr}"


# --------------------------------------------------------------------------- (b) least privilege, timeouts

@pytest.mark.parametrize("params", [WITHOUT_EMR, WITH_EMR], ids=["without-emr", "with-emr"])
def test_no_wildcard_actions_or_resources(params):
    docs = list(policy_documents(effective(load_template(), **params)))
    assert len(docs) == (3 if params is WITHOUT_EMR else 6), [w for w, _ in docs]
    for where, doc in docs:
        for st in statements(doc):
            assert "NotAction" not in st and "NotResource" not in st and "NotPrincipal" not in st, (where, st)
            for a in as_list(st["Action"]):
                assert isinstance(a, str) and "*" not in a, f"{where}: wildcard action {a!r}"
            for r in as_list(st.get("Resource", [])):
                text = render(r)
                assert text.strip() != "*", f"{where}: Resource '*'"
                assert not text.endswith(":*") or "log-group" in text, f"{where}: wildcard resource {text!r}"
            principal = st.get("Principal", {})
            assert principal != "*" and "*" not in as_list(principal.get("AWS", [])), f"{where}: public principal"


LOG_STREAMS = "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${FunctionLogGroup}:*"
# What the function's role may do, exactly (deploy/README.md has the table).
FUNCTION_ROLE_PERMISSIONS = {
    ("s3:ListBucket", "${InputBucket.Arn}"),
    ("s3:GetObject", "${InputBucket.Arn}/*"),
    ("s3:ListBucket", "${OutputBucket.Arn}"),
    ("s3:ListBucketMultipartUploads", "${OutputBucket.Arn}"),
    ("s3:GetObject", "${OutputBucket.Arn}/*"),
    ("s3:PutObject", "${OutputBucket.Arn}/*"),
    ("s3:DeleteObject", "${OutputBucket.Arn}/*"),
    ("s3:AbortMultipartUpload", "${OutputBucket.Arn}/*"),
    ("s3:ListMultipartUploadParts", "${OutputBucket.Arn}/*"),
    ("sns:Publish", "${NotificationTopic}"),
    ("sqs:ReceiveMessage", "${JobQueue.Arn}"),
    ("sqs:DeleteMessage", "${JobQueue.Arn}"),
    ("sqs:GetQueueAttributes", "${JobQueue.Arn}"),
    ("sqs:ChangeMessageVisibility", "${JobQueue.Arn}"),
    ("logs:CreateLogStream", LOG_STREAMS),
    ("logs:PutLogEvents", LOG_STREAMS),
}
# The job script: the function uploads it (CLOUDMERGE_SPARK_ARTIFACTS + merge_job.py,
# spark_engine.cc UploadJob) and the EMR job role reads it; that one object and no other.
JOB_SCRIPT = "arn:${AWS::Partition}:s3:::${CodeBucket}/emr/merge_job.py"
# ... and the binary the job's tasks run (shipped with spark-submit --files), beside it.
JOB_BINARY = "arn:${AWS::Partition}:s3:::${CodeBucket}/emr/cloudmerge"
# What EnableEmrServerless=true adds to the function's role, exactly: the calls
# the emr-serverless engine makes (PutObject of the script, StartJobRun, GetJobRun;
# it never cancels) and passing the job role to EMR Serverless only.
FUNCTION_ROLE_EMR_PERMISSIONS = {
    ("s3:PutObject", JOB_SCRIPT),
    ("s3:PutObject", JOB_BINARY),
    ("emr-serverless:StartJobRun", "${EmrApplication.Arn}"),
    ("emr-serverless:GetJobRun", "${EmrApplication.Arn}/jobruns/*"),
    ("iam:PassRole", "${EmrJobRole.Arn}",
     json.dumps({"StringEquals": {"iam:PassedToService": "emr-serverless.amazonaws.com"}}, sort_keys=True)),
}
S3_READ_ACTIONS = {"s3:GetObject", "s3:ListBucket"}


@pytest.mark.parametrize("params, expected", [
    (WITHOUT_EMR, FUNCTION_ROLE_PERMISSIONS),
    (WITH_EMR, FUNCTION_ROLE_PERMISSIONS | FUNCTION_ROLE_EMR_PERMISSIONS),
], ids=["without-emr", "with-emr"])
def test_function_role_is_least_privilege(params, expected):
    tpl = effective(load_template(), **params)
    role_name = function_role_name(tpl)
    role = tpl["Resources"][role_name]["Properties"]
    assert "ManagedPolicyArns" not in role, "no managed policies: everything is spelled out"
    trust = statements(role["AssumeRolePolicyDocument"])
    assert [s["Principal"] for s in trust] == [{"Service": "lambda.amazonaws.com"}]
    assert [s["Action"] for s in trust] == ["sts:AssumeRole"]

    granted = set()
    for _, doc in role_policies(tpl, role_name):
        granted |= permissions(doc)
        for st in statements(doc):
            actions = set(as_list(st["Action"]))
            s3_actions = {a for a in actions if a.startswith("s3:")}
            if not s3_actions:
                continue
            assert s3_actions == actions, f"{st.get('Sid')}: S3 and other actions in one statement"
            resources = [render(r) for r in as_list(st["Resource"])]
            if s3_actions - S3_READ_ACTIONS:  # writes: the output bucket, and the job script's one object
                assert all(r.startswith("${OutputBucket.Arn}") or (r in (JOB_SCRIPT, JOB_BINARY) and s3_actions == {"s3:PutObject"})
                           for r in resources), (st.get("Sid"), resources)
            if any("InputBucket" in r for r in resources):  # the input bucket: read only
                assert s3_actions <= S3_READ_ACTIONS, (st.get("Sid"), s3_actions)
                assert all(r.startswith("${InputBucket.Arn}") for r in resources), (st.get("Sid"), resources)
    assert granted == expected, (
        f"extra: {sorted(granted - expected)}; missing: {sorted(expected - granted)}")


def test_function_passes_only_the_emr_job_role_only_to_emr_serverless():
    tpl = effective(load_template(), **WITH_EMR)
    passes = [(where, st) for where, doc in role_policies(tpl, function_role_name(tpl)) for st in statements(doc)
              if any(a.startswith("iam:") for a in as_list(st["Action"]))]
    assert len(passes) == 1, passes
    where, st = passes[0]
    assert tpl["Resources"][where]["Condition"] == "CreateEmrServerless"
    assert st["Action"] == "iam:PassRole"
    assert st["Resource"] == {"Fn::GetAtt": ["EmrJobRole", "Arn"]}
    assert st["Condition"] == {"StringEquals": {"iam:PassedToService": "emr-serverless.amazonaws.com"}}
    # and without EMR Serverless the function may pass no role at all
    off = effective(load_template(), **WITHOUT_EMR)
    assert not [st for _, doc in role_policies(off, function_role_name(off)) for st in statements(doc)
                if any(a.startswith(("iam:", "emr-serverless:")) for a in as_list(st["Action"]))]


EMR_ENVIRONMENT = {"CLOUDMERGE_EMR_APPLICATION_ID", "CLOUDMERGE_EMR_EXECUTION_ROLE_ARN", "CLOUDMERGE_SPARK_ARTIFACTS"}


def test_function_environment_names_the_emr_resources():
    """With EMR Serverless the function gets the application, the job role and
    the artifacts prefix (the very values of the stack's outputs and grants);
    without it, none of them (a job asking for a cluster then fails naming them)."""
    on, off = (effective(load_template(), **p) for p in (WITH_EMR, WITHOUT_EMR))
    env_on = on["Resources"]["MergeFunction"]["Properties"]["Environment"]["Variables"]
    env_off = off["Resources"]["MergeFunction"]["Properties"]["Environment"]["Variables"]
    assert set(env_off) == {"CLOUDMERGE_OUTPUT", "CLOUDMERGE_SNS_TOPIC_ARN", "CLOUDMERGE_LOG_FORMAT",
                            "CLOUDMERGE_INCOMPLETE_WAIT_SECONDS"}
    assert set(env_on) == set(env_off) | EMR_ENVIRONMENT
    assert env_on["CLOUDMERGE_EMR_APPLICATION_ID"] == {"Fn::GetAtt": ["EmrApplication", "ApplicationId"]}
    assert env_on["CLOUDMERGE_EMR_APPLICATION_ID"] == on["Outputs"]["EmrApplicationId"]["Value"]
    assert env_on["CLOUDMERGE_EMR_EXECUTION_ROLE_ARN"] == {"Fn::GetAtt": ["EmrJobRole", "Arn"]}
    assert env_on["CLOUDMERGE_EMR_EXECUTION_ROLE_ARN"] == on["Outputs"]["EmrJobRoleArn"]["Value"]
    assert not {"EmrApplicationId", "EmrJobRoleArn"} & set(off["Outputs"])
    # The script's key is the artifacts prefix + merge_job.py: the function may
    # write exactly that object and the job role read exactly it.
    artifacts = render(env_on["CLOUDMERGE_SPARK_ARTIFACTS"])
    assert artifacts.startswith("s3://") and artifacts.endswith("/")
    script = "arn:${AWS::Partition}:s3:::" + artifacts[len("s3://"):] + "merge_job.py"
    assert script == JOB_SCRIPT
    fn_grants = set().union(*(permissions(d) for _, d in role_policies(on, function_role_name(on))))
    job_grants = set().union(*(permissions(d) for _, d in role_policies(on, "EmrJobRole")))
    assert {(a, r) for a, r, *_ in fn_grants if r == script} == {("s3:PutObject", script)}
    assert {(a, r) for a, r, *_ in job_grants if "CodeBucket" in r} == {("s3:GetObject", script),
                                                                        ("s3:GetObject", JOB_BINARY)}
    # The names are the ones the function reads.
    read = lambda_variables()
    assert set(env_on) - {"CLOUDMERGE_LOG_FORMAT"} <= read, set(env_on) - read


def lambda_variables():
    """The variables the Lambda runtime reads: the variable column of docs/configuration.md's table,
    which pipeline_config_test checks against the settings table (PipelineConfigBuilder::FromEnvironment)."""
    read = set()
    for line in (ROOT / "docs" / "configuration.md").read_text().splitlines():
        cells = line.split(" | ")
        if line.startswith("| `") and len(cells) >= 5 and "(serve)" not in cells[2]:
            read |= set(re.findall(r"`(CLOUDMERGE_[A-Z0-9_]+)`", cells[2] + cells[4]))
    return read


def test_command_engine_is_off_unless_commands_are_allowed():
    """Issue 15, finding 2: the function offers the command engine only when the
    AllowedCommands parameter registers commands (CLOUDMERGE_COMMANDS, read by
    the Lambda runtime); by default the variable is absent, not empty."""
    raw = load_template()
    assert raw["Parameters"]["AllowedCommands"]["Default"] == ""
    off = effective(raw, **WITHOUT_EMR)["Resources"]["MergeFunction"]["Properties"]["Environment"]["Variables"]
    assert "CLOUDMERGE_COMMANDS" not in off
    commands = '{"v2": ["/var/task/v2", "{x}", "{y}", "{out}"]}'
    on = effective(raw, AllowedCommands=commands)["Resources"]["MergeFunction"]["Properties"]["Environment"]["Variables"]
    assert on["CLOUDMERGE_COMMANDS"] == {"Ref": "AllowedCommands"}
    assert "CLOUDMERGE_COMMANDS" in lambda_variables()


def test_emr_resources_exist_only_when_enabled():
    raw = load_template()
    assert raw["Parameters"]["EnableEmrServerless"]["Default"] == "false"
    conditional = {k for k, r in raw["Resources"].items() if r.get("Condition") == "CreateEmrServerless"}
    assert conditional == {"EmrApplication", "EmrJobRole", "FunctionEmrServerlessPolicy"}
    assert not conditional & set(effective(raw, **WITHOUT_EMR)["Resources"])
    assert conditional <= set(effective(raw, **WITH_EMR)["Resources"])
    # Nothing unconditional may name them except through Fn::If (or the stack
    # without EMR would not deploy): check every other resource's references.
    off = effective(raw, **WITHOUT_EMR)
    for name, res in off["Resources"].items():
        assert not references(res) & conditional, (name, references(res) & conditional)


def test_emr_job_role_reads_input_and_writes_output_only():
    tpl = effective(load_template(), **WITH_EMR)
    role = tpl["Resources"]["EmrJobRole"]
    trust = statements(role["Properties"]["AssumeRolePolicyDocument"])
    assert [s["Principal"] for s in trust] == [{"Service": "emr-serverless.amazonaws.com"}]
    granted = set().union(*(permissions(d) for _, d in role_policies(tpl, "EmrJobRole")))
    for action, resource in granted:
        assert action.startswith("s3:"), action
        if action not in S3_READ_ACTIONS:
            assert resource.startswith("${OutputBucket.Arn}"), (action, resource)
    assert ("s3:GetObject", "${InputBucket.Arn}/*") in granted
    assert ("s3:PutObject", "${OutputBucket.Arn}/*") in granted
    assert ("s3:GetObject", JOB_SCRIPT) in granted and ("s3:GetObject", JOB_BINARY) in granted


def test_queue_visibility_timeout_covers_six_function_timeouts():
    tpl = load_template()
    fn = tpl["Resources"]["MergeFunction"]["Properties"]
    queue = tpl["Resources"]["JobQueue"]["Properties"]
    assert fn["Timeout"] == 900
    assert int(queue["VisibilityTimeout"]) >= 6 * int(fn["Timeout"])
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
                                      "maxReceiveCount": 5}


def test_function_settings():
    tpl = load_template()
    fn = tpl["Resources"]["MergeFunction"]["Properties"]
    assert fn["Runtime"] == "provided.al2023" and fn["Handler"] == "bootstrap"
    assert fn["Architectures"] == ["x86_64"]
    assert fn["EphemeralStorage"] == {"Size": 10240}  # moto does not apply it: checked here
    assert fn["MemorySize"] == {"Ref": "MemorySize"} and tpl["Parameters"]["MemorySize"]["Default"] == 10240
    assert fn["Code"] == {"S3Bucket": {"Ref": "CodeBucket"}, "S3Key": {"Ref": "CodeKey"}}
    assert tpl["Parameters"]["LogRetentionDays"]["Default"] == 30
    (esm,) = resources_of_type(tpl, "AWS::Lambda::EventSourceMapping").values()
    assert esm["Properties"]["BatchSize"] == 1
    assert esm["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_buckets_are_private_and_encrypted():
    tpl = load_template()
    buckets = resources_of_type(tpl, "AWS::S3::Bucket")
    assert set(buckets) == {"InputBucket", "OutputBucket"}
    for name, b in buckets.items():
        p = b["Properties"]
        assert p["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True}, name
        (rule,) = p["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}, name
    rules = buckets["OutputBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert {"DaysAfterInitiation": 1} in [r.get("AbortIncompleteMultipartUpload") for r in rules]


NOTIFIED_SUFFIXES = {f"{n}{c}" for n in ("x_list.txt", "y_list.txt", "job.json") for c in ("", ".gz", ".zst")}


def test_notification_wiring_avoids_the_circular_dependency():
    """The input bucket notifies the queue; the queue policy names the bucket by
    its (built) name, and the bucket waits for the policy."""
    tpl = load_template()
    bucket = tpl["Resources"]["InputBucket"]
    assert "JobQueuePolicy" in as_list(bucket["DependsOn"])
    confs = bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    suffixes = set()
    for c in confs:
        assert c["Event"] == "s3:ObjectCreated:*"
        assert c["Queue"] == {"Fn::GetAtt": ["JobQueue", "Arn"]}
        (rule,) = c["Filter"]["S3Key"]["Rules"]
        assert rule["Name"] == "suffix"
        suffixes.add(rule["Value"])
    assert suffixes == NOTIFIED_SUFFIXES and len(confs) == len(suffixes)

    policy = tpl["Resources"]["JobQueuePolicy"]["Properties"]
    assert policy["Queues"] == [{"Ref": "JobQueue"}]
    (st,) = statements(policy["PolicyDocument"])
    assert st["Principal"] == {"Service": "s3.amazonaws.com"} and st["Action"] == "sqs:SendMessage"
    assert st["Resource"] == {"Fn::GetAtt": ["JobQueue", "Arn"]}
    bucket_name = bucket["Properties"]["BucketName"]["Fn::Sub"]
    assert st["Condition"]["ArnLike"]["aws:SourceArn"] == {"Fn::Sub": "arn:${AWS::Partition}:s3:::" + bucket_name}
    assert st["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert "InputBucket" not in references(policy), "the queue policy must not name the bucket resource (cycle)"


# --------------------------------------------------------------------------- (c) deploy on moto

class Moto:
    def __init__(self, endpoint, log_path):
        self.endpoint = endpoint
        self.log_path = log_path  # the server's output: one line per request it served

    def client(self, service):
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION)

    def _lambda_docker(self, on):
        req = urllib.request.Request(f"{self.endpoint}/moto-api/config", method="POST",
                                     data=json.dumps({"lambda": {"use_docker": on}}).encode())
        urllib.request.urlopen(req, timeout=10).read()

    @contextlib.contextmanager
    def function_not_run(self):
        """A message on the job queue makes moto invoke the mapped function, by
        default in a Docker container (pulling an image). Inside this block moto's
        Docker-less Lambda answers instead; outside it, functions created by
        CloudFormation are visible to the Lambda API again (moto 5.1 keeps them
        in the Docker backend)."""
        self._lambda_docker(False)
        try:
            yield
        finally:
            self._lambda_docker(True)


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    """A moto server in its own process (no authentication: any key is accepted)."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    log = open(log_path, "w+")
    env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_DEFAULT_REGION=REGION, AWS_EC2_METADATA_DISABLED="true")
    proc = subprocess.Popen([PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"moto server did not start:\n{log.read()}")
                time.sleep(0.2)
        with pytest.MonkeyPatch.context() as mp:  # dummy credentials; never the machine's
            for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_EC2_METADATA_DISABLED"):
                mp.setenv(k, env[k])
            for k in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
                mp.delenv(k, raising=False)
            yield Moto(endpoint, log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


PARAMETERS = {
    "BucketPrefix": "cm-e2e",
    "CodeBucket": "cm-e2e-artifacts",
    "CodeKey": "cloudmerge/function.zip",
    "NotificationEmail": "ops@example.org",
    "LogRetentionDays": "14",
}


@pytest.fixture(scope="module")
def stack(moto):
    """Uploads a stand-in function.zip, creates the stack, waits for CREATE_COMPLETE."""
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=PARAMETERS["CodeBucket"])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        z.writestr(info, "#!/bin/sh\necho stand-in for the cloudmerge binary\n")
    s3.put_object(Bucket=PARAMETERS["CodeBucket"], Key=PARAMETERS["CodeKey"], Body=buf.getvalue())

    cf = moto.client("cloudformation")
    cf.create_stack(StackName=STACK, TemplateBody=TEMPLATE.read_text(),
                    Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in PARAMETERS.items()],
                    Capabilities=["CAPABILITY_NAMED_IAM"])
    cf.get_waiter("stack_create_complete").wait(StackName=STACK, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    desc = cf.describe_stacks(StackName=STACK)["Stacks"][0]
    assert desc["StackStatus"] == "CREATE_COMPLETE", desc
    physical = {r["LogicalResourceId"]: r["PhysicalResourceId"]
                for r in cf.list_stack_resources(StackName=STACK)["StackResourceSummaries"]
                if r["LogicalResourceId"]}
    outputs = {o["OutputKey"]: o["OutputValue"] for o in desc.get("Outputs", [])}
    account = moto.client("sts").get_caller_identity()["Account"]
    return Stack(moto, load_template(), physical, outputs, account)


class Stack:
    """The deployed stack, with a resolver for the template's intrinsics
    (Ref, GetAtt, Sub) against what moto created. `attributes` supplies
    {(resource, attribute): value} for resources moto's CloudFormation cannot
    create (the EMR Serverless application), made by the test instead."""

    def __init__(self, moto, tpl, physical, outputs, account, attributes=None):
        self.moto, self.tpl, self.physical, self.outputs, self.account = moto, tpl, physical, outputs, account
        self.attributes = dict(attributes or {})
        self.params = {k: str(v.get("Default", "")) for k, v in tpl["Parameters"].items()}
        self.params.update(PARAMETERS)
        self.pseudo = {"AWS::AccountId": account, "AWS::Region": REGION, "AWS::Partition": "aws",
                       "AWS::StackName": STACK, "AWS::URLSuffix": "amazonaws.com"}

    def ref(self, name):
        for table in (self.pseudo, self.params, self.physical):
            if name in table:
                return table[name]
        raise KeyError(name)

    def getatt(self, name, attr):
        if (name, attr) in self.attributes:
            return self.attributes[(name, attr)]
        rtype = self.tpl["Resources"][name]["Type"]
        assert attr == "Arn", (name, attr)
        if rtype == "AWS::SQS::Queue":
            return self.moto.client("sqs").get_queue_attributes(
                QueueUrl=self.physical[name], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        if rtype == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{self.physical[name]}"
        raise AssertionError(f"no resolver for {rtype}.{attr}")

    def resolve(self, node):
        if isinstance(node, list):
            return [self.resolve(v) for v in node]
        if not isinstance(node, dict):
            return node
        if set(node) == {"Ref"}:
            return self.ref(node["Ref"])
        if set(node) == {"Fn::GetAtt"}:
            return self.getatt(*node["Fn::GetAtt"])
        if set(node) == {"Fn::Sub"}:
            def one(m):
                name = m.group(1)
                return self.getatt(*name.split(".", 1)) if "." in name else self.ref(name)
            return re.sub(r"\$\{([^}!]+)\}", one, node["Fn::Sub"])
        return {k: self.resolve(v) for k, v in node.items()}

    def props(self, name):
        return self.resolve(self.tpl["Resources"][name]["Properties"])


def test_stack_created_every_resource(stack):
    tpl = stack.tpl
    wanted = {k for k, r in tpl["Resources"].items() if "Condition" not in r}  # EnableEmrServerless=false
    skipped = {k for k in wanted if tpl["Resources"][k]["Type"] in MOTO_SKIPPED_TYPES}
    assert set(stack.physical) == wanted - skipped
    assert not {"EmrApplication", "EmrJobRole", "FunctionEmrServerlessPolicy"} & set(stack.physical)
    assert set(stack.outputs) == {k for k, o in tpl["Outputs"].items() if "Condition" not in o}


def test_stack_buckets(stack):
    s3 = stack.moto.client("s3")
    assert stack.physical["InputBucket"] == f"cm-e2e-input-{stack.account}-{REGION}"
    assert stack.physical["OutputBucket"] == f"cm-e2e-output-{stack.account}-{REGION}"
    assert stack.outputs["InputBucketName"] == stack.physical["InputBucket"]
    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    for logical in ("InputBucket", "OutputBucket"):
        bucket = stack.physical[logical]
        assert bucket in names
        enc = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        assert enc[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        # moto's CloudFormation ignores PublicAccessBlockConfiguration and
        # LifecycleConfiguration: apply the template's own through the S3 API
        # (which checks their shape) and read them back.
        props = stack.props(logical)
        s3.put_public_access_block(Bucket=bucket,
                                   PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"])
        pab = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert all(pab[k] for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"))
        rules = [{"ID": r["Id"], "Status": r["Status"], "Filter": {"Prefix": ""},
                  "AbortIncompleteMultipartUpload": r["AbortIncompleteMultipartUpload"]}
                 for r in props["LifecycleConfiguration"]["Rules"]]
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
        got = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
        assert got[0]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}


def test_stack_queues(stack):
    sqs = stack.moto.client("sqs")
    attrs = sqs.get_queue_attributes(QueueUrl=stack.physical["JobQueue"], AttributeNames=["All"])["Attributes"]
    dlq = sqs.get_queue_attributes(QueueUrl=stack.physical["DeadLetterQueue"], AttributeNames=["All"])["Attributes"]
    assert int(attrs["VisibilityTimeout"]) == 5400
    assert json.loads(attrs["RedrivePolicy"]) == {"deadLetterTargetArn": dlq["QueueArn"], "maxReceiveCount": 5}
    assert attrs["SqsManagedSseEnabled"] == "true" and dlq["SqsManagedSseEnabled"] == "true"
    assert int(dlq["MessageRetentionPeriod"]) == 14 * 86400

    # moto's CloudFormation skips AWS::SQS::QueuePolicy: set the template's
    # policy document (resolved against this stack) on the queue and check that
    # the bucket ARN it built from the bucket's name is the real bucket's.
    props = stack.props("JobQueuePolicy")
    assert props["Queues"] == [stack.physical["JobQueue"]]
    sqs.set_queue_attributes(QueueUrl=stack.physical["JobQueue"],
                             Attributes={"Policy": json.dumps(props["PolicyDocument"])})
    policy = json.loads(sqs.get_queue_attributes(QueueUrl=stack.physical["JobQueue"],
                                                 AttributeNames=["Policy"])["Attributes"]["Policy"])
    (st,) = policy["Statement"]
    assert st["Resource"] == attrs["QueueArn"]
    assert st["Condition"]["ArnLike"]["aws:SourceArn"] == f"arn:aws:s3:::{stack.physical['InputBucket']}"
    assert st["Condition"]["StringEquals"]["aws:SourceAccount"] == stack.account


def test_stack_topic_and_email_subscription(stack):
    sns = stack.moto.client("sns")
    topic = stack.physical["NotificationTopic"]
    assert topic in [t["TopicArn"] for t in sns.list_topics()["Topics"]]
    subs = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subs] == [("email", PARAMETERS["NotificationEmail"])]


def test_stack_function(stack):
    lam = stack.moto.client("lambda")
    cfg = lam.get_function(FunctionName=stack.physical["MergeFunction"])["Configuration"]
    assert cfg["FunctionName"] == f"{STACK}-merge"
    assert cfg["Runtime"] == "provided.al2023" and cfg["Handler"] == "bootstrap"
    assert cfg["Architectures"] == ["x86_64"]
    assert cfg["Timeout"] == 900 and cfg["MemorySize"] == 10240
    # (EphemeralStorage: moto's CloudFormation reports 512; the template's 10240
    # is checked in test_function_settings.) EnableEmrServerless=false: the
    # EMR variables' Fn::If chose AWS::NoValue, so they are absent, not empty.
    variables = dict(cfg["Environment"]["Variables"])
    # The IncompleteWaitSeconds parameter (a Number: moto passes it on as one, AWS as its text).
    assert str(variables.pop("CLOUDMERGE_INCOMPLETE_WAIT_SECONDS")) == "900"
    assert variables == {
        "CLOUDMERGE_OUTPUT": f"s3://{stack.physical['OutputBucket']}/",
        "CLOUDMERGE_SNS_TOPIC_ARN": stack.physical["NotificationTopic"],
        "CLOUDMERGE_LOG_FORMAT": "json",
    }
    assert cfg["Role"].endswith("/" + stack.physical["FunctionRole"])

    (esm,) = lam.list_event_source_mappings(FunctionName=cfg["FunctionName"])["EventSourceMappings"]
    queue_arn = stack.getatt("JobQueue", "Arn")
    assert esm["EventSourceArn"] == queue_arn and esm["FunctionArn"] == cfg["FunctionArn"]
    assert esm["BatchSize"] == 1 and esm["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert esm["State"] == "Enabled"


def test_stack_log_group(stack):
    logs = stack.moto.client("logs")
    name = f"/aws/lambda/{STACK}-merge"
    assert stack.physical["FunctionLogGroup"] == name
    (group,) = [g for g in logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"] if g["logGroupName"] == name]
    assert group["retentionInDays"] == int(PARAMETERS["LogRetentionDays"])


def test_stack_function_role_policy_names_only_this_stack(stack):
    """The deployed role policy, resolved: S3 writes only to the output bucket,
    S3 reads only from the input bucket (and the output bucket's own state)."""
    iam = stack.moto.client("iam")
    role = stack.physical["FunctionRole"]
    (name,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
    doc = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    if isinstance(doc, str):  # moto (5.1) keeps a CloudFormation-made role policy as a Python repr
        doc = ast.literal_eval(doc)
    inb, outb = (f"arn:aws:s3:::{stack.physical[b]}" for b in ("InputBucket", "OutputBucket"))
    for st in statements(doc):
        resources = as_list(st["Resource"])
        actions = set(as_list(st["Action"]))
        if any(a.startswith("s3:") for a in actions):
            if actions - S3_READ_ACTIONS:
                assert all(r in (outb, outb + "/*") for r in resources), st
            else:
                assert all(r in (inb, inb + "/*", outb, outb + "/*") for r in resources), st
        assert "*" not in resources


def test_stack_input_bucket_notification(stack):
    """moto's CloudFormation ignores AWS::S3::Bucket NotificationConfiguration:
    apply the template's own (resolved, converted to the S3 API's shape) with
    put_bucket_notification_configuration and read it back."""
    s3 = stack.moto.client("s3")
    bucket = stack.physical["InputBucket"]
    assert s3.get_bucket_notification_configuration(Bucket=bucket).get("QueueConfigurations") is None
    confs = stack.props("InputBucket")["NotificationConfiguration"]["QueueConfigurations"]
    api = {"QueueConfigurations": [
        {"QueueArn": c["Queue"], "Events": [c["Event"]],
         "Filter": {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in c["Filter"]["S3Key"]["Rules"]]}}}
        for c in confs]}
    # Setting it sends an s3:TestEvent to the queue, which the mapping hands to the function.
    with stack.moto.function_not_run():
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=api)
    got = s3.get_bucket_notification_configuration(Bucket=bucket)["QueueConfigurations"]
    queue_arn = stack.getatt("JobQueue", "Arn")
    assert {c["QueueArn"] for c in got} == {queue_arn}
    assert all(c["Events"] == ["s3:ObjectCreated:*"] for c in got)
    suffixes = [r["Value"] for c in got for r in c["Filter"]["Key"]["FilterRules"] if r["Name"].lower() == "suffix"]
    assert sorted(suffixes) == sorted(NOTIFIED_SUFFIXES)


# --------------------------------------------------------------------------- (d) the function on EMR Serverless

def allowed(grants, action, arn):
    """The statements of resolved policy documents that allow `action` on `arn`
    (IAM matches resources with * and ? wildcards, as fnmatchcase does)."""
    return [st for st in grants if action in as_list(st["Action"])
            and any(fnmatch.fnmatchcase(arn, r) for r in as_list(st["Resource"]))]


def s3_arn(uri):
    assert uri.startswith("s3://"), uri
    return "arn:aws:s3:::" + uri[len("s3://"):]


# The EMR Serverless REST calls as moto's server logs them ("GET /path HTTP/1.1" status),
# and the IAM action each one needs.
EMR_SERVERLESS_CALLS = [
    (re.compile(r'"POST /applications/([^/ ?]+)/jobruns HTTP'), "emr-serverless:StartJobRun"),
    (re.compile(r'"GET /applications/([^/ ?]+)/jobruns/([^/ ?]+) HTTP'), "emr-serverless:GetJobRun"),
]


def test_function_hands_a_job_to_emr_serverless_within_its_grants(stack, tmp_path):
    """The real function (`cloudmerge lambda` under AWS's Runtime Interface
    Emulator) with the environment the template gives it when
    EnableEmrServerless=true runs a job.json "engine": "emr-serverless" job
    against moto. Every EMR Serverless call it makes, every object it writes
    outside the output bucket, the role it passes, and the script and paths it
    hands the job run are allowed by the template's grants (the function
    role's and the EMR job role's), resolved against this stack.

    moto's CloudFormation has no AWS::EMRServerless::Application, so the stack
    deployed above is the EnableEmrServerless=false one: the application is
    made through the EMR Serverless API and the job role through IAM, each
    from the template's own properties, and stand in for the two resources."""
    moto = stack.moto
    tpl = effective(load_template(), **WITH_EMR)
    props = stack.resolve(tpl["Resources"]["EmrApplication"]["Properties"])
    app = moto.client("emr-serverless").create_application(
        name=props["Name"], releaseLabel=props["ReleaseLabel"], type=props["Type"],
        architecture=props["Architecture"])
    iam = moto.client("iam")
    props = stack.resolve(tpl["Resources"]["EmrJobRole"]["Properties"])
    role = iam.create_role(RoleName=f"{STACK}-EmrJobRole",
                           AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"]))["Role"]
    emr = Stack(moto, tpl, stack.physical, stack.outputs, stack.account, attributes={
        ("EmrApplication", "Arn"): app["arn"],
        ("EmrApplication", "ApplicationId"): app["applicationId"],
        ("EmrJobRole", "Arn"): role["Arn"]})
    fn_grants = [st for _, doc in role_policies(tpl, function_role_name(tpl)) for st in statements(emr.resolve(doc))]
    job_grants = [st for _, doc in role_policies(tpl, "EmrJobRole") for st in statements(emr.resolve(doc))]

    s3 = moto.client("s3")
    inb, outb, code = stack.physical["InputBucket"], stack.physical["OutputBucket"], PARAMETERS["CodeBucket"]
    code_before = {o["Key"] for o in s3.list_objects_v2(Bucket=code).get("Contents", [])}
    with moto.function_not_run():  # the bucket may notify the queue (test_stack_input_bucket_notification)
        s3.put_object(Bucket=inb, Key="emrjob/job.json", Body=json.dumps({"engine": "emr-serverless"}).encode())
        s3.put_object(Bucket=inb, Key="emrjob/x_list.txt", Body=b"ID\ta\n1\tx\n")
        s3.put_object(Bucket=inb, Key="emrjob/y_list.txt", Body=b"ID\tb\n1\ty\n")

    env = emr.resolve(tpl["Resources"]["MergeFunction"]["Properties"]["Environment"]["Variables"])
    assert EMR_ENVIRONMENT <= set(env)
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION=REGION,
               AWS_ENDPOINT_URL=moto.endpoint, AWS_EC2_METADATA_DISABLED="true", HOME=str(tmp_path))
    log_start = moto.log_path.stat().st_size
    event = recorded_event("sqs_s3_put_event.json", inb, ["emrjob/y_list.txt"])
    with LambdaEmulator([BIN, "lambda"], env=env, log_path=tmp_path / "rie.log", timeout_s=120) as emu:
        status, body = emu.invoke(event)
        logs = emu.logs()
    assert status == 200, (body, logs[-3000:])
    with open(moto.log_path, errors="replace") as f:
        f.seek(log_start)
        served = f.read()

    # The one job run, as moto keeps it (this server checks no signatures, so boto3 may ask).
    emrs = moto.client("emr-serverless")
    runs = emrs.list_job_runs(applicationId=app["applicationId"])["jobRuns"]
    assert len(runs) == 1, (runs, logs[-3000:])
    run = emrs.get_job_run(applicationId=app["applicationId"], jobRunId=runs[0]["id"])["jobRun"]
    run_arn = run["arn"]
    assert run_arn == f"{app['arn']}/jobruns/{run['jobRunId']}"

    # Every EMR Serverless call it made is granted, on the resource it was made on.
    calls = [(action, m) for line in served.splitlines() for rx, action in EMR_SERVERLESS_CALLS
             if (m := rx.search(line))]
    assert {a for a, _ in calls} == {"emr-serverless:StartJobRun", "emr-serverless:GetJobRun"}, served[-3000:]
    assert not [line for line in served.splitlines() if "/applications" in line
                and not any(rx.search(line) for rx, _ in EMR_SERVERLESS_CALLS)], "an EMR Serverless call not granted"
    for action, m in calls:
        target = app["arn"] if action.endswith("StartJobRun") else f"{app['arn']}/jobruns/{m.group(2)}"
        assert m.group(1) == app["applicationId"]
        assert allowed(fn_grants, action, target), (action, target)
    assert allowed(fn_grants, "emr-serverless:GetJobRun", run_arn)
    assert not allowed(fn_grants, "emr-serverless:StartJobRun", app["arn"].replace(app["applicationId"], "00other"))

    # The role it passed: the job role, only to EMR Serverless.
    assert run["executionRole"] == role["Arn"]
    (passing,) = allowed(fn_grants, "iam:PassRole", role["Arn"])
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "emr-serverless.amazonaws.com"}}

    # What it wrote outside the output bucket: the job script, where it may and the job role reads it.
    driver = run["jobDriver"]["sparkSubmit"]
    new_code = {o["Key"] for o in s3.list_objects_v2(Bucket=code)["Contents"]} - code_before
    script = env["CLOUDMERGE_SPARK_ARTIFACTS"] + "merge_job.py"
    binary = env["CLOUDMERGE_SPARK_ARTIFACTS"] + "cloudmerge"
    assert {f"s3://{code}/{k}" for k in new_code} == {driver["entryPoint"], binary} and driver["entryPoint"] == script
    assert driver["sparkSubmitParameters"].startswith(f"--files {binary} ")
    for uri in (script, binary):
        assert allowed(fn_grants, "s3:PutObject", s3_arn(uri))
        assert allowed(job_grants, "s3:GetObject", s3_arn(uri))
    uploaded = s3.get_object(Bucket=code, Key=script[len(f"s3://{code}/"):])["Body"].read()
    assert uploaded == (ROOT / "spark" / "merge_job.py").read_bytes()

    # What the job run is told to read and write, the job role may.
    args = driver["entryPointArguments"]
    x, y, out = args[0], args[1], args[args.index("-o") + 1]
    stats = args[args.index("--stats-file") + 1]
    assert (x, y) == (f"s3://{inb}/emrjob/x_list.txt", f"s3://{inb}/emrjob/y_list.txt")
    assert out == f"s3://{outb}/emrjob/merged.tsv" and stats.startswith(f"s3://{outb}/emrjob/_state/")
    for uri in (x, y):
        assert allowed(job_grants, "s3:GetObject", s3_arn(uri)), uri
    for uri in (out, stats):
        assert allowed(job_grants, "s3:PutObject", s3_arn(uri)), uri

    # moto ends the run SUCCESS at once and runs nothing: no result, so the job failed (once), naming the run.
    failed = [json.loads(s3.get_object(Bucket=outb, Key=o["Key"])["Body"].read())
              for o in s3.list_objects_v2(Bucket=outb, Prefix="emrjob/_state/")["Contents"]
              if o["Key"].endswith("/failed.json")]
    assert len(failed) == 1 and run["jobRunId"] in failed[0]["error"], failed
