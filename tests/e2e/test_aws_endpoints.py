"""Each AWS service's calls go to that service's endpoint (aws/endpoints.h):
S3 on one moto server, SQS, SNS and CloudWatch Logs on another.

- `serve --queue-url` with `--endpoint-url` = the S3 server and
  AWS_ENDPOINT_URL = the other: the queue is consumed, the result lands in S3,
  the SNS notification and the log lines reach the other server (before, SQS,
  SNS and Logs calls all went to --endpoint-url: "The specified queue does not
  exist", and serve still exited 0).
- `serve` on a queue that does not exist stops at once with a clear error and
  a non-zero exit instead of polling until idle and exiting 0.
- The Lambda runtime with AWS_ENDPOINT_URL = the S3 server and
  AWS_ENDPOINT_URL_SNS = the other: the notification is published there
  (before, AWS_ENDPOINT_URL_SNS was ignored).
- The Lambda runtime with only per-service variables (AWS_ENDPOINT_URL_S3 =
  the S3 server; _SQS, _SNS, _LOGS = the other) and AWS_ENDPOINT_URL pointing
  at a closed port, fed an SQS batch: the result lands in S3 and the
  notification on the other server, so no call fell back to the shared
  variable.

The second server runs with signature checking off: a process has one set of
credentials, the first server's."""
import json
import shlex
import subprocess
import time

import boto3
import pytest

from conftest import BIN, CASES
from s3_server import S3Server, s3  # noqa: F401  (fixture)
from test_lambda_pipeline import recorded_event
from test_lambda_rie import BOOTSTRAP, lambda_emulator  # noqa: F401

CASE = {c.name: c for c in CASES}["basic_int"]


class _OpenServer(S3Server):
    def _set_up_identity(self):
        pass  # checking stays off: any well-formed signature is accepted


@pytest.fixture(scope="module")
def other(s3):
    server = _OpenServer(s3.region).start()
    server.access_key_id, server.secret_access_key = s3.access_key_id, s3.secret_access_key
    yield server
    server.stop()


def client(server, service):
    return boto3.client(service, endpoint_url=server.endpoint_url, region_name=server.region,
                        aws_access_key_id=server.access_key_id, aws_secret_access_key=server.secret_access_key)


def topic_with_inbox(server, name):
    """An SNS topic on `server` whose messages land in an SQS queue there."""
    sqs, sns = client(server, "sqs"), client(server, "sns")
    topic = sns.create_topic(Name=name)["TopicArn"]
    inbox = sqs.create_queue(QueueName=f"inbox-{name}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    return topic, inbox


def subjects(server, inbox):
    got = client(server, "sqs").receive_message(QueueUrl=inbox, MaxNumberOfMessages=10,
                                                 WaitTimeSeconds=0).get("Messages", [])
    return [json.loads(m["Body"]).get("Subject", "") for m in got]


def upload_inputs(s3, bucket, prefix):
    s3.client.upload_file(str(CASE / "x.tsv"), bucket, f"{prefix}/x_list.txt")
    s3.client.upload_file(str(CASE / "y.tsv"), bucket, f"{prefix}/y_list.txt")


def serve(s3, other, queue, inb, outb, *extra, idle_s=2):
    cmd = [BIN, "serve", "--queue-url", queue, "--input", f"s3://{inb}/", "--output", f"s3://{outb}/",
           "--endpoint-url", s3.endpoint_url, "--wait-seconds", "1", "--idle-exit-seconds", str(idle_s), *extra]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, env=s3.env(AWS_ENDPOINT_URL=other.endpoint_url), timeout=120)
    return proc, time.monotonic() - started


def test_serve_sends_each_service_to_its_own_endpoint(s3, other):
    inb, outb = s3.new_bucket("in"), s3.new_bucket("out")
    upload_inputs(s3, inb, "e1")
    queue = client(other, "sqs").create_queue(QueueName=f"events-{inb}")["QueueUrl"]
    # The S3 server cannot notify a queue on another server: send its event ourselves.
    event = recorded_event("s3_put_event.json", inb, ["e1/y_list.txt"])
    client(other, "sqs").send_message(QueueUrl=queue, MessageBody=json.dumps(event))
    topic, inbox = topic_with_inbox(other, f"notify-{inb}")
    group = f"/cloudmerge/{inb}"

    proc, _ = serve(s3, other, queue, inb, outb, "--sns-topic-arn", topic, "--cloudwatch-log-group", group,
                    "--cloudwatch-log-stream", "w1", "--max-messages", "1")
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert b"does not exist" not in proc.stdout + proc.stderr
    report = json.loads(s3.client.get_object(Bucket=outb, Key="e1/report.json")["Body"].read())
    assert report["status"] == "succeeded"
    assert s3.client.list_objects_v2(Bucket=outb, Prefix="e1/merged").get("KeyCount", 0) == 1
    assert any("result ready" in s for s in subjects(other, inbox))
    # The message was deleted from the queue on the other server.
    attrs = client(other, "sqs").get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "0" and attrs["ApproximateNumberOfMessagesNotVisible"] == "0"
    events = client(other, "logs").get_log_events(logGroupName=group, logStreamName="w1")["events"]
    assert any(json.loads(e["message"]).get("event") == "queue.message_done" for e in events)


def test_serve_stops_on_a_queue_that_does_not_exist(s3, other):
    inb, outb = s3.new_bucket("in"), s3.new_bucket("out")
    missing = f"{other.endpoint_url}/123456789012/no-such-queue"
    proc, seconds = serve(s3, other, missing, inb, outb, idle_s=30)
    err = proc.stderr.decode()
    assert proc.returncode == 4, (proc.returncode, err)
    assert "does not exist" in err and "no-such-queue" in err and "AWS_ENDPOINT_URL_SQS" in err, err
    assert seconds < 20, seconds  # at the first answer, not after the idle exit


def test_lambda_publishes_to_the_sns_endpoint(s3, other, lambda_emulator):  # noqa: F811
    inb, outb = s3.new_bucket("in"), s3.new_bucket("out")
    upload_inputs(s3, inb, "e2")
    topic, inbox = topic_with_inbox(other, f"lambda-{inb}")
    env = {k: v for k, v in s3.env().items() if k.startswith("AWS_") or k == "HOME"}
    env.update(AWS_ENDPOINT_URL_SNS=other.endpoint_url, CLOUDMERGE_OUTPUT=f"s3://{outb}/",
               CLOUDMERGE_SNS_TOPIC_ARN=topic)
    emu = lambda_emulator(shlex.split(BOOTSTRAP), env=env)
    status, body = emu.invoke(json.dumps(recorded_event("s3_put_event.json", inb, ["e2/y_list.txt"])))
    assert status == 200 and json.loads(body) == {"status": "ok"}, (body, emu.logs()[-3000:])
    assert any("result ready" in s for s in subjects(other, inbox)), emu.logs()[-3000:]


def test_lambda_sends_each_service_to_its_own_variable(s3, other, lambda_emulator):  # noqa: F811
    inb, outb = s3.new_bucket("in"), s3.new_bucket("out")
    upload_inputs(s3, inb, "e3")
    topic, inbox = topic_with_inbox(other, f"lambda-svc-{inb}")
    env = {k: v for k, v in s3.env().items() if (k.startswith("AWS_") and "ENDPOINT" not in k) or k == "HOME"}
    env.update(AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_ENDPOINT_URL_S3=s3.endpoint_url,
               AWS_ENDPOINT_URL_SQS=other.endpoint_url, AWS_ENDPOINT_URL_SNS=other.endpoint_url,
               AWS_ENDPOINT_URL_LOGS=other.endpoint_url, AWS_MAX_ATTEMPTS="2",
               CLOUDMERGE_OUTPUT=f"s3://{outb}/", CLOUDMERGE_SNS_TOPIC_ARN=topic)
    emu = lambda_emulator(shlex.split(BOOTSTRAP), env=env)
    batch = recorded_event("sqs_s3_put_event.json", inb, ["e3/y_list.txt"])
    batch["Records"] = batch["Records"][:1]
    status, body = emu.invoke(json.dumps(batch))
    assert status == 200 and json.loads(body) == {"batchItemFailures": []}, (body, emu.logs()[-3000:])
    report = json.loads(s3.client.get_object(Bucket=outb, Key="e3/report.json")["Body"].read())
    assert report["status"] == "succeeded", report
    assert any("result ready" in s for s in subjects(other, inbox)), emu.logs()[-3000:]
