"""deploy/template.yaml, the CloudFormation stack of the pipeline:

  (a) cfn-lint (AWS's linter, in .venv) accepts it;
  (b) read as data, it grants least privilege (no wildcard action or resource,
      the function's role may read only the input bucket and write only the
      output bucket, ...) and keeps the queue's visibility timeout >= 6x the
      function's timeout;
  (c) it deploys: a real moto server (a subprocess on 127.0.0.1) creates the
      stack with boto3's CloudFormation client, and every resource is then
      read back through its own service's API.

moto's CloudFormation does not implement everything the template uses; each
gap is applied by the test through the service API, from the template's own
text, and said where it happens (see MOTO_SKIPPED_TYPES).
"""
import ast
import contextlib
import io
import json
import os
import pathlib
import re
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile

import pytest
import yaml

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


def statements(doc):
    return as_list(doc["Statement"])


def render(expr):
    """A resource expression as text with ${...} placeholders:
    !GetAtt InputBucket.Arn -> "${InputBucket.Arn}", !Ref T -> "${T}", !Sub s -> s."""
    if isinstance(expr, str):
        return expr
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
    """{(action, rendered resource)} granted by a policy document's Allow statements."""
    out = set()
    for st in statements(doc):
        assert st["Effect"] == "Allow", st
        for a in as_list(st["Action"]):
            for r in as_list(st["Resource"]):
                out.add((a, render(r)))
    return out


def function_role_name(tpl):
    (fn,) = resources_of_type(tpl, "AWS::Lambda::Function").values()
    role = fn["Properties"]["Role"]
    assert role["Fn::GetAtt"][1] == "Arn"
    return role["Fn::GetAtt"][0]


# --------------------------------------------------------------------------- (a) cfn-lint

def test_cfn_lint_accepts_template():
    proc = subprocess.run([CFN_LINT, str(TEMPLATE)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"cfn-lint exit {proc.returncode}:\n{proc.stdout}{proc.stderr}"


# --------------------------------------------------------------------------- (b) least privilege, timeouts

def test_no_wildcard_actions_or_resources():
    docs = list(policy_documents(load_template()))
    assert len(docs) >= 5, [w for w, _ in docs]
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
S3_READ_ACTIONS = {"s3:GetObject", "s3:ListBucket"}


def test_function_role_is_least_privilege():
    tpl = load_template()
    role = tpl["Resources"][function_role_name(tpl)]["Properties"]
    assert "ManagedPolicyArns" not in role, "no managed policies: everything is spelled out"
    trust = statements(role["AssumeRolePolicyDocument"])
    assert [s["Principal"] for s in trust] == [{"Service": "lambda.amazonaws.com"}]
    assert [s["Action"] for s in trust] == ["sts:AssumeRole"]

    granted = set()
    for pol in role["Policies"]:
        doc = pol["PolicyDocument"]
        granted |= permissions(doc)
        for st in statements(doc):
            actions = set(as_list(st["Action"]))
            s3_actions = {a for a in actions if a.startswith("s3:")}
            if not s3_actions:
                continue
            assert s3_actions == actions, f"{st.get('Sid')}: S3 and other actions in one statement"
            resources = [render(r) for r in as_list(st["Resource"])]
            if s3_actions - S3_READ_ACTIONS:  # writes: the output bucket only
                assert all(r.startswith("${OutputBucket.Arn}") for r in resources), (st.get("Sid"), resources)
            if any("InputBucket" in r for r in resources):  # the input bucket: read only
                assert s3_actions <= S3_READ_ACTIONS, (st.get("Sid"), s3_actions)
                assert all(r.startswith("${InputBucket.Arn}") for r in resources), (st.get("Sid"), resources)
    assert granted == FUNCTION_ROLE_PERMISSIONS, (
        f"extra: {sorted(granted - FUNCTION_ROLE_PERMISSIONS)}; missing: {sorted(FUNCTION_ROLE_PERMISSIONS - granted)}")


def test_emr_job_role_reads_input_and_writes_output_only():
    tpl = load_template()
    role = tpl["Resources"]["EmrJobRole"]
    assert role["Condition"] == "CreateEmrServerless"
    assert tpl["Resources"]["EmrApplication"]["Condition"] == "CreateEmrServerless"
    assert tpl["Parameters"]["EnableEmrServerless"]["Default"] == "false"
    granted = set()
    for pol in role["Properties"]["Policies"]:
        granted |= permissions(pol["PolicyDocument"])
    for action, resource in granted:
        assert action.startswith("s3:"), action
        if action not in S3_READ_ACTIONS:
            assert resource.startswith("${OutputBucket.Arn}"), (action, resource)
    assert ("s3:GetObject", "${InputBucket.Arn}/*") in granted
    assert ("s3:PutObject", "${OutputBucket.Arn}/*") in granted


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

def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Moto:
    def __init__(self, endpoint):
        self.endpoint = endpoint

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
    port = _free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "w+")
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
            yield Moto(endpoint)
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
    (Ref, GetAtt, Sub) against what moto created."""

    def __init__(self, moto, tpl, physical, outputs, account):
        self.moto, self.tpl, self.physical, self.outputs, self.account = moto, tpl, physical, outputs, account
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
    assert not {"EmrApplication", "EmrJobRole"} & set(stack.physical)
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
    # is checked in test_function_settings.)
    assert cfg["Environment"]["Variables"] == {
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
