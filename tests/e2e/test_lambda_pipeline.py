"""cloudmerge as an AWS Lambda custom runtime, under AWS's Runtime Interface
Emulator (RIE) on 127.0.0.1, running real jobs against moto (S3, SNS, SQS;
signatures checked): recorded S3 events (direct and SQS-wrapped, with their
bucket and keys pointed at the test's buckets) give the oracle's result, a
report and one success notification; redelivered events change nothing; a
poison SQS record is reported in batchItemFailures; a bad input fails once."""
import json
import shlex

import boto3
import pytest

from conftest import CASES, oracle_agrees
from s3_server import s3  # noqa: F401  (fixture)
from test_lambda_rie import BOOTSTRAP, DATA, lambda_emulator  # noqa: F401

CASE = {c.name: c for c in CASES}


def recorded_event(name, bucket, keys):
    """A recorded event with its bucket and object keys replaced."""
    doc = json.loads((DATA / name).read_text())

    def fix(s3_event):
        for r, key in zip(s3_event["Records"], keys):
            r["s3"]["bucket"]["name"] = bucket
            r["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
            r["s3"]["object"]["key"] = key
        return s3_event

    if doc["Records"][0]["eventSource"] == "aws:sqs":
        for rec, key in zip(doc["Records"], keys):
            body = json.loads(rec["body"])
            body["Records"] = body["Records"][:1]
            body["Records"][0]["s3"]["bucket"]["name"] = bucket
            body["Records"][0]["s3"]["object"]["key"] = key
            rec["body"] = json.dumps(body)
        return doc
    return fix(doc)


@pytest.fixture
def world(s3, lambda_emulator, request):
    sqs = boto3.client("sqs", endpoint_url=s3.endpoint_url, region_name=s3.region,
                       aws_access_key_id=s3.access_key_id, aws_secret_access_key=s3.secret_access_key)
    sns = boto3.client("sns", endpoint_url=s3.endpoint_url, region_name=s3.region,
                       aws_access_key_id=s3.access_key_id, aws_secret_access_key=s3.secret_access_key)
    inb, outb = s3.new_bucket("in"), s3.new_bucket("out")
    topic = sns.create_topic(Name=f"lambda-{inb}")["TopicArn"]
    mailq = sqs.create_queue(QueueName=f"mail-{inb}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=mailq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    env = {k: v for k, v in s3.env().items() if k.startswith("AWS_") or k == "HOME"}
    env.update(CLOUDMERGE_OUTPUT=f"s3://{outb}/", CLOUDMERGE_SNS_TOPIC_ARN=topic)
    env.update(getattr(request, "param", {}))
    timeout_s = int(env.pop("TIMEOUT_S", "60"))
    emu = lambda_emulator(shlex.split(BOOTSTRAP), env=env, timeout_s=timeout_s)

    class W:
        pass

    w = W()
    w.s3, w.sqs, w.inb, w.outb, w.emu, w.mailq = s3, sqs, inb, outb, emu, mailq
    return w


def sns_subjects(w):
    out = []
    while True:
        got = w.sqs.receive_message(QueueUrl=w.mailq, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not got:
            return out
        for m in got:
            out.append(json.loads(m["Body"]).get("Subject", ""))
            w.sqs.delete_message(QueueUrl=w.mailq, ReceiptHandle=m["ReceiptHandle"])


def invoke(w, event):
    status, body = w.emu.invoke(json.dumps(event))
    assert status == 200, (body, w.emu.logs()[-3000:])
    return json.loads(body)


def test_s3_event_runs_the_job_once(world, oracle, tmp_path):
    w = world
    case = CASE["many_to_many"]
    w.s3.client.upload_file(str(case / "x.tsv"), w.inb, "exp42/x_list.txt")
    w.s3.client.upload_file(str(case / "y.tsv"), w.inb, "exp42/y_list.txt")
    answer = invoke(w, recorded_event("s3_put_event.json", w.inb, ["exp42/y_list.txt"]))
    assert answer == {"status": "ok"}, (answer, w.emu.logs()[-3000:])
    w.s3.client.download_file(w.outb, "exp42/merged.tsv", str(tmp_path / "merged.tsv"))
    assert oracle_agrees(oracle, case / "expected.tsv", tmp_path / "merged.tsv")
    report = json.loads(w.s3.client.get_object(Bucket=w.outb, Key="exp42/report.json")["Body"].read())
    assert report["status"] == "succeeded"
    subjects = sns_subjects(w)
    assert sum("result ready" in s for s in subjects) == 1, subjects

    # The same events again, wrapped in SQS (a redelivery): nothing new, no failures.
    answer = invoke(w, recorded_event("sqs_s3_put_event.json", w.inb, ["exp42/x_list.txt", "exp42/y_list.txt"]))
    assert answer == {"batchItemFailures": []}, answer
    assert not [s for s in sns_subjects(w) if "result ready" in s]
    logs = w.emu.json_lines()
    assert sum(l.get("event") == "job.duplicate" for l in logs) >= 2


def test_bad_input_and_poison_record(world):
    w = world
    w.s3.client.put_object(Bucket=w.inb, Key="bad/x_list.txt", Body=b"ID\tvalue\n1\ta\tb\n")
    w.s3.client.put_object(Bucket=w.inb, Key="bad/y_list.txt", Body=b"ID\tvalue\n1\tz\n")
    event = recorded_event("sqs_s3_put_event.json", w.inb, ["bad/x_list.txt", "bad/y_list.txt"])
    event["Records"][1]["body"] = "not an S3 notification"
    answer = invoke(w, event)
    assert answer == {"batchItemFailures": [{"itemIdentifier": event["Records"][1]["messageId"]}]}, answer
    subjects = sns_subjects(w)
    assert sum("failed" in s for s in subjects) == 1, subjects
    assert w.s3.client.list_objects_v2(Bucket=w.outb, Prefix="bad/merged").get("KeyCount", 0) == 0


SLEEP = json.dumps({"slow": ["/usr/bin/python3", "-c", "import time; time.sleep(8)", "{out}"]})


@pytest.mark.parametrize("world", [{"TIMEOUT_S": "4", "CLOUDMERGE_DEADLINE_MARGIN_MS": "2500",
                                    "CLOUDMERGE_COMMANDS": SLEEP}], indirect=True)
def test_deadline_fails_cleanly_before_lambda_kills_it(world):
    """A run that would outlive the function's timeout is reported as an error
    by the runtime itself before the deadline, and leaves no output."""
    w = world
    case = CASE["basic_int"]
    w.s3.client.upload_file(str(case / "x.tsv"), w.inb, "slow/x_list.txt")
    w.s3.client.upload_file(str(case / "y.tsv"), w.inb, "slow/y_list.txt")
    w.s3.client.put_object(Bucket=w.inb, Key="slow/job.json", Body=json.dumps(
        {"engine": "command", "command": "slow"}))
    status, body = w.emu.invoke(json.dumps(recorded_event("s3_put_event.json", w.inb, ["slow/job.json"])))
    answer = json.loads(body)
    assert answer.get("errorType") == "Function.DeadlineExceeded", (status, body, w.emu.logs()[-2000:])
    assert "time limit" in answer["errorMessage"]
    assert w.s3.client.list_objects_v2(Bucket=w.outb, Prefix="slow/merged").get("KeyCount", 0) == 0


def test_malformed_records_are_reported_not_fatal(world):
    """Records that are not objects, or whose fields have the wrong types, fail
    alone (batchItemFailures), and the runtime keeps answering."""
    w = world
    good = recorded_event("sqs_s3_put_event.json", w.inb, ["none/x_list.txt", "none/y_list.txt"])
    event = {"Records": [good["Records"][0], 5, {"eventSource": "aws:sqs", "messageId": 7, "body": ["x"]}]}
    answer = invoke(w, event)
    assert answer == {"batchItemFailures": [{"itemIdentifier": ""}, {"itemIdentifier": ""}]}, answer
    assert invoke(w, good) == {"batchItemFailures": []}


# Issue 15, finding 2: under Lambda too, the command engine runs only what the
# function registers (CLOUDMERGE_COMMANDS), with no credentials in its environment.
ENV_DUMP = json.dumps({"envdump": ["/bin/sh", "-c", 'env > "$0"', "{out}"]})


def put_command_job(w, job):
    w.s3.client.put_object(Bucket=w.inb, Key=f"{job}/x_list.txt", Body=b"ID\tv\n1\ta\n")
    w.s3.client.put_object(Bucket=w.inb, Key=f"{job}/job.json",
                           Body=json.dumps({"engine": "command", "command": "envdump"}).encode())
    w.s3.client.put_object(Bucket=w.inb, Key=f"{job}/y_list.txt", Body=b"ID\tw\n1\tb\n")
    return invoke(w, recorded_event("s3_put_event.json", w.inb, [f"{job}/y_list.txt"]))


def test_command_engine_is_off_unless_the_function_registers_commands(world):
    w = world
    assert put_command_job(world, "cmd") == {"status": "ok"}
    assert sum("failed" in s for s in sns_subjects(w)) == 1
    keys = [o["Key"] for o in w.s3.client.list_objects_v2(Bucket=w.outb).get("Contents", [])]
    (failed,) = [k for k in keys if k.endswith("/failed.json")]
    error = json.loads(w.s3.client.get_object(Bucket=w.outb, Key=failed)["Body"].read())["error"]
    assert "does not offer" in error and "cmd/merged.tsv" not in keys


@pytest.mark.parametrize("world", [{"CLOUDMERGE_COMMANDS": ENV_DUMP}], indirect=True)
def test_registered_command_runs_without_credentials(world):
    w = world
    assert put_command_job(world, "cmd") == {"status": "ok"}
    seen = w.s3.client.get_object(Bucket=w.outb, Key="cmd/merged.tsv")["Body"].read().decode()
    names = {line.split("=", 1)[0] for line in seen.splitlines() if "=" in line}
    assert not [n for n in names if n.startswith(("AWS_", "CLOUDMERGE_", "_X_AMZN", "_LAMBDA"))], names
    assert w.s3.secret_access_key not in seen
