"""scripts/deploy.sh, the one-command deployment, end to end against moto:

  - run from outside the checkout with the AWS CLI v1 of .venv (AWS_ENDPOINT_URL
    pointing at a moto server), it packages the build's binary with
    scripts/package-lambda.sh, creates the artifacts bucket, uploads the
    package, deploys deploy/template.yaml with `aws cloudformation deploy` and
    prints the buckets and the upload commands; what it printed is checked
    against what moto holds;
  - moto's CloudFormation does not apply the input bucket's
    NotificationConfiguration (test_deploy_template.py lists moto's gaps), so
    deploy.sh finds it missing and prints the command that sets it. The test
    runs that very command (the documented test-only step) and reads the
    notification back: the template's suffixes, the stack's queue;
  - a second run changes nothing and no longer warns;
  - every `aws SERVICE OPERATION --option` in deploy/README.md and deploy.sh
    exists in AWS CLI v1 (the project's; v2 has the same commands but for a few
    v2-only ones such as `logs tail`, which must not be used).
"""
import json
import os
import re
import shlex
import subprocess
import zipfile

import pytest

from conftest import BIN, ROOT
from test_deploy_template import NOTIFIED_SUFFIXES, REGION, VENV_BIN, moto  # noqa: F401  (moto: the server fixture)

DEPLOY = ROOT / "scripts" / "deploy.sh"
STACK, EMAIL = "cm-deploy", "scientist@example.org"


def deploy_env(moto, home):  # noqa: F811
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(PATH=f"{VENV_BIN}:{env['PATH']}", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_ENDPOINT_URL=moto.endpoint, AWS_EC2_METADATA_DISABLED="true", HOME=str(home),
               PYTHONWARNINGS="ignore")
    return env


def run_deploy(moto, tmp_path, *args):  # noqa: F811
    return subprocess.run([str(DEPLOY), STACK, EMAIL, "--region", REGION, "--binary", BIN, "--allow-newer-glibc",
                           "--work-dir", str(tmp_path / "work"), *args],
                          capture_output=True, text=True, env=deploy_env(moto, tmp_path), cwd=tmp_path, timeout=600)


@pytest.fixture(scope="module")
def deployed(moto, tmp_path_factory):  # noqa: F811
    tmp = tmp_path_factory.mktemp("deploy")
    # (The Lambda binary is the build's own, packaged with --allow-newer-glibc: building
    # the static one takes minutes; packaging, upload and deployment are the same.)
    proc = run_deploy(moto, tmp)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return tmp, proc


def printed(stdout, label):
    (value,) = re.findall(rf"^  {label}:\s+(\S+)", stdout, re.M)
    return value


def test_deploy_creates_the_stack_and_prints_its_buckets(moto, deployed):  # noqa: F811
    tmp, proc = deployed
    cf, s3 = moto.client("cloudformation"), moto.client("s3")
    stack = cf.describe_stacks(StackName=STACK)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    params = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    physical = {r["LogicalResourceId"]: r["PhysicalResourceId"]
                for r in cf.list_stack_resources(StackName=STACK)["StackResourceSummaries"] if r["LogicalResourceId"]}
    account = moto.client("sts").get_caller_identity()["Account"]
    assert params["BucketPrefix"] == STACK and params["NotificationEmail"] == EMAIL
    assert params["CodeBucket"] == f"{STACK}-artifacts-{account}-{REGION}"

    # What it printed is what was deployed.
    inb, outb = printed(proc.stdout, "input bucket"), printed(proc.stdout, "output bucket")
    assert (inb, outb) == (physical["InputBucket"], physical["OutputBucket"])
    assert printed(proc.stdout, "email topic") == physical["NotificationTopic"]
    assert printed(proc.stdout, "logs") == "CloudWatch"
    assert f"aws s3 cp x_list.txt s3://{inb}/job1/x_list.txt" in proc.stdout
    assert f"aws s3 cp s3://{outb}/job1/merged.tsv merged.tsv" in proc.stdout
    assert f'input="s3://{inb}/", output="s3://{outb}/"' in proc.stdout
    assert "aws logs tail" not in proc.stdout

    # The package: package-lambda.sh's zip, uploaded under a key per build, which the function uses.
    package = tmp / "work" / "function.zip"
    with zipfile.ZipFile(package) as z:
        names = z.namelist()
        assert "bootstrap" in names and "spark/merge_job.py" in names
        assert (z.getinfo("bootstrap").external_attr >> 16) & 0o111
    assert printed(proc.stdout, "package") == f"s3://{params['CodeBucket']}/{params['CodeKey']}"
    assert re.fullmatch(r"cloudmerge/function-[0-9a-f]{16}\.zip", params["CodeKey"])
    # Read without checking a response checksum: the AWS CLI uploads a package over 8 MB in parts,
    # and moto reports a part's CRC where boto3 expects the whole object's; the bytes are compared below.
    import boto3
    from botocore.config import Config
    raw_s3 = boto3.client("s3", endpoint_url=moto.endpoint, region_name=s3.meta.region_name,
                          config=Config(response_checksum_validation="when_required"))
    body = raw_s3.get_object(Bucket=params["CodeBucket"], Key=params["CodeKey"])["Body"].read()
    assert body == package.read_bytes()
    pab = s3.get_public_access_block(Bucket=params["CodeBucket"])["PublicAccessBlockConfiguration"]
    assert all(pab.values())
    fn = moto.client("lambda").get_function(FunctionName=physical["MergeFunction"])["Configuration"]
    assert fn["Runtime"] == "provided.al2023" and fn["Environment"]["Variables"]["CLOUDMERGE_OUTPUT"] == f"s3://{outb}/"
    subs = moto.client("sns").list_subscriptions_by_topic(TopicArn=physical["NotificationTopic"])["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subs] == [("email", EMAIL)]


def test_the_printed_notification_command_connects_the_bucket_to_the_queue(moto, deployed):  # noqa: F811
    tmp, proc = deployed
    # moto ignored the template's NotificationConfiguration: deploy.sh saw it missing and said how to set it.
    assert "has no event notification" in proc.stderr
    (command,) = [line.strip() for line in proc.stderr.splitlines()
                  if line.strip().startswith("aws s3api put-bucket-notification-configuration")]
    inb = printed(proc.stdout, "input bucket")
    # The test-only step: run that command as printed (on AWS the stack has set it already).
    with moto.function_not_run():  # setting it sends s3:TestEvent to the queue, which moto would hand to the function
        done = subprocess.run(shlex.split(command), capture_output=True, text=True, env=deploy_env(moto, tmp),
                              cwd=tmp, timeout=120)
    assert done.returncode == 0, done.stderr
    cf, sqs = moto.client("cloudformation"), moto.client("sqs")
    queue_url = next(r["PhysicalResourceId"] for r in cf.list_stack_resources(StackName=STACK)["StackResourceSummaries"]
                     if r["LogicalResourceId"] == "JobQueue")
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    got = moto.client("s3").get_bucket_notification_configuration(Bucket=inb)["QueueConfigurations"]
    assert {c["QueueArn"] for c in got} == {queue_arn}
    assert all(c["Events"] == ["s3:ObjectCreated:*"] for c in got)
    assert sorted(r["Value"] for c in got for r in c["Filter"]["Key"]["FilterRules"]) == sorted(NOTIFIED_SUFFIXES)

    # Deploying the same package again (--package: no packaging): nothing to change, and the notification is found.
    def resources_and_parameters():
        stack = cf.describe_stacks(StackName=STACK)["Stacks"][0]
        return ({r["LogicalResourceId"]: r["PhysicalResourceId"]
                 for r in cf.list_stack_resources(StackName=STACK)["StackResourceSummaries"]},
                {p["ParameterKey"]: p.get("ParameterValue") for p in stack["Parameters"]})

    before = resources_and_parameters()
    again = run_deploy(moto, tmp, "--package", str(tmp / "work" / "function.zip"))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "has no event notification" not in again.stderr
    # AWS answers "No changes to deploy"; moto "updates" the stack since the template gained parameters left
    # at their defaults (AllowedCommands, IncompleteWaitSeconds; cause not pinned down): either way nothing
    # may have changed.
    assert "No changes to deploy" in again.stderr or "Successfully created/updated stack" in again.stderr
    assert resources_and_parameters() == before
    assert printed(again.stdout, "input bucket") == inb


@pytest.mark.parametrize("args, message", [
    (["ops@example.org", "--region"], "--region needs a value"),
    (["ops@example.org", "--colour", "blue"], "unknown option --colour"),
    (["not-an-email"], "does not look like an email address"),
    (["ops@example.org", "--prefix", "UPPER"], "bucket prefix"),
])
def test_bad_arguments_fail_before_any_aws_call(tmp_path, args, message):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"  # nothing listens: a call would fail differently
    proc = subprocess.run([str(DEPLOY), STACK, *args], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode != 0
    assert message in proc.stderr and "account and credentials" not in proc.stderr, proc.stderr


# --------------------------------------------------------------------------- AWS CLI v1 compatibility

def aws_commands(text):
    """([words], [--options]) of every `aws ...` command in shell text: the words
    are the service, the operation and a waiter's or subcommand's name."""
    text = text.replace("\\\n", " ")
    out = []
    # A command ends at a line end, a pipe, ;, &, ), ` or a nested $( (that one is a command of its own).
    for m in re.finditer(r"(?:^|[\s($`;|&])aws((?:\s+[a-z0-9-]+\b(?![.:/]))+)((?:(?!\$\()[^\n|;&)`])*)", text):
        words = m[1].split()[:3]
        if len(words) >= 2:  # (a lone `aws word` is prose, not a command)
            out.append((words, re.findall(r"\s--([a-z0-9-]+)", m[2])))
    return out


def code_blocks(markdown):
    return "\n".join(re.findall(r"```(?:sh|bash)?\n(.*?)```", markdown, re.S))


@pytest.mark.parametrize("source", ["deploy/README.md", "scripts/deploy.sh"])
def test_every_aws_command_exists_in_aws_cli_v1(source):
    text = (ROOT / source).read_text()
    commands = aws_commands(code_blocks(text) if source.endswith(".md") else text)
    assert len(commands) > 10, commands
    proc = subprocess.run([str(VENV_BIN / "python"), "-c", """
import json, sys
from awscli.clidriver import create_clidriver
driver = create_clidriver()
table = driver._get_command_table()
global_args = set(driver._get_argument_table())
bad = []
def children(cmd):
    for name in ("subcommand_table", "_get_command_table"):
        kids = getattr(cmd, name, None)
        if kids is not None:
            return kids() if callable(kids) else kids
    return {}
for words, options in json.load(sys.stdin):
    service, op = words[0], words[1]
    if service not in table:
        bad.append(f"aws {service}: no such service"); continue
    if op not in children(table[service]):
        bad.append(f"aws {service} {op}: not in AWS CLI v1"); continue
    node = children(table[service])[op]
    for word in words[2:]:  # a waiter (aws cloudformation wait stack-delete-complete)
        if word in children(node):
            node = children(node)[word]
    known = set(getattr(node, "arg_table", {})) | global_args
    bad += [f"aws {' '.join(words)} --{o}: no such option in AWS CLI v1" for o in options if o not in known]
print(json.dumps(bad))
"""], input=json.dumps(commands), capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [], f"{source}: {proc.stdout}"


def test_deploy_readme_has_no_machine_paths():
    text = (ROOT / "deploy" / "README.md").read_text()
    assert not re.search(r"(?<![\w.])/(work|home|root|Users)/", text), "a machine's absolute path"
    assert "scripts/deploy.sh" in text
