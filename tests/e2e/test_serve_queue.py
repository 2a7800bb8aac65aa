"""`cloudmerge serve --queue-url`: the event-driven pipeline against real
servers on 127.0.0.1: moto (S3, SQS, SNS, IAM; signatures checked) and an SMTP
server (aiosmtpd). The input bucket notifies the queue; x and y are uploaded
with boto3; the result is checked with the oracle; emails arrive by SMTP and
by SNS (recorded through an SQS subscription); every event delivered twice
still gives one result and one success email; a poison message ends in the
dead-letter queue; an output inside the input is refused."""
import json
import subprocess
import time

import pytest

from conftest import BIN, CASES, aws_client as client, drain, oracle_agrees, event_queue, topic_with_mail_queue
from s3_server import s3  # noqa: F401  (fixture)

CASE = {c.name: c for c in CASES}


@pytest.fixture
def pipeline(s3):
    sqs, sns = client(s3, "sqs"), client(s3, "sns")
    inb, outb = s3.new_bucket("in"), s3.new_bucket("out")
    dlq = sqs.create_queue(QueueName=f"dlq-{inb}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    q = event_queue(s3, sqs, inb, {
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})})
    topic, mailq = topic_with_mail_queue(sqs, sns, inb)

    class P:
        pass

    p = P()
    p.sqs, p.inb, p.outb, p.queue, p.dlq, p.topic, p.mailq = sqs, inb, outb, q, dlq, topic, mailq
    return p


def serve(s3, p, smtp, **overrides):
    opts = {"--wait-seconds": "1", "--idle-exit-seconds": "3", "--visibility-timeout": "30"}
    opts.update({f"--{k.replace('_', '-')}": str(v) for k, v in overrides.items()})
    cmd = [BIN, "serve", "--queue-url", p.queue, "--input", f"s3://{p.inb}/", "--output", f"s3://{p.outb}/",
           "--sns-topic-arn", p.topic, "--smtp-url", smtp.url, "--mail-to", "scientist@example.org"]
    for k, v in opts.items():
        cmd += [k, v]
    proc = subprocess.run(cmd, capture_output=True, env=s3.env(), timeout=180)
    log = [json.loads(l) for l in proc.stdout.decode().splitlines() if l.strip()]
    return proc, log


def test_upload_run_result_and_emails_exactly_once(s3, pipeline, smtp, oracle, tmp_path):
    p = pipeline
    case = CASE["many_to_many"]
    s3.client.upload_file(str(case / "x.tsv"), p.inb, "exp7/x_list.txt")
    s3.client.upload_file(str(case / "y.tsv"), p.inb, "exp7/y_list.txt")
    proc, log = serve(s3, p, smtp)
    assert proc.returncode == 0, proc.stderr.decode()
    s3.client.download_file(p.outb, "exp7/merged.tsv", str(tmp_path / "merged.tsv"))
    assert oracle_agrees(oracle, case / "expected.tsv", tmp_path / "merged.tsv")
    report = json.loads(s3.client.get_object(Bucket=p.outb, Key="exp7/report.json")["Body"].read())
    assert report["inputs"]["x"]["uri"] == f"s3://{p.inb}/exp7/x_list.txt"
    assert report["result"] == f"s3://{p.outb}/exp7/merged.tsv"
    assert sum("result ready" in s for s in smtp.subjects) == 1
    assert sum("inputs received" in s for s in smtp.subjects) == 1
    assert all(rcpt == ["scientist@example.org"] for rcpt, _ in smtp.messages)
    sns_msgs = [json.loads(m["Body"]) for m in drain(p.sqs, p.mailq)]
    assert sum("result ready" in m.get("Subject", "") for m in sns_msgs) == 1
    assert any(e["event"] == "queue.message_done" for e in log)
    assert not drain(p.sqs, p.queue), "every handled message is deleted"

    # Every event again (at-least-once delivery): no second result, no second email.
    etag = s3.client.head_object(Bucket=p.outb, Key="exp7/merged.tsv")["ETag"]
    for key in ("exp7/x_list.txt", "exp7/y_list.txt"):
        event = {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                              "s3": {"bucket": {"name": p.inb}, "object": {"key": key, "size": 1}}}]}
        for _ in range(2):
            p.sqs.send_message(QueueUrl=p.queue, MessageBody=json.dumps(event))
    proc, log = serve(s3, p, smtp)
    assert proc.returncode == 0, proc.stderr.decode()
    assert sum(e["event"] == "job.duplicate" for e in log) == 4
    assert sum("result ready" in s for s in smtp.subjects) == 1
    assert s3.client.head_object(Bucket=p.outb, Key="exp7/merged.tsv")["ETag"] == etag
    assert not [m for m in drain(p.sqs, p.mailq) if "result ready" in json.loads(m["Body"]).get("Subject", "")]


def test_bad_input_failure_email(s3, pipeline, smtp):
    p = pipeline
    s3.client.put_object(Bucket=p.inb, Key="bad/x_list.txt", Body=b"ID\tvalue\n1\ta\tb\n")
    s3.client.put_object(Bucket=p.inb, Key="bad/y_list.txt", Body=b"ID\tvalue\n1\tz\n")
    proc, log = serve(s3, p, smtp)
    assert proc.returncode == 0, proc.stderr.decode()
    failed = [m for _, m in smtp.messages if "failed" in m["Subject"]]
    assert len(failed) == 1
    text = next(part.get_payload(decode=True).decode() for part in failed[0].walk()
                if part.get_content_type() == "text/plain")
    assert f"s3://{p.inb}/bad/x_list.txt, line 2" in text
    assert s3.client.list_objects_v2(Bucket=p.outb, Prefix="bad/merged").get("KeyCount", 0) == 0
    assert not drain(p.sqs, p.queue)


def test_poison_message_goes_to_the_dead_letter_queue(s3, pipeline, smtp):
    p = pipeline
    p.sqs.send_message(QueueUrl=p.queue, MessageBody="this is not an S3 event")
    proc, log = serve(s3, p, smtp, visibility_timeout=1, idle_exit_seconds=6)
    assert proc.returncode == 0, proc.stderr.decode()
    assert sum(e["event"] == "queue.message_failed" for e in log) >= 2
    dead = drain(p.sqs, p.dlq)
    assert [m["Body"] for m in dead] == ["this is not an S3 event"]


def test_output_inside_input_is_refused(s3, pipeline, smtp):
    p = pipeline
    proc = subprocess.run([BIN, "serve", "--queue-url", p.queue, "--input", f"s3://{p.inb}/",
                           "--output", f"s3://{p.inb}/results/"], capture_output=True, env=s3.env(), timeout=60)
    assert proc.returncode == 2
    assert "re-trigger" in proc.stderr.decode() or "start the pipeline again" in proc.stderr.decode()


def test_command_engine_runs_registered_commands_without_credentials(s3, pipeline, smtp):
    """Issue 15, finding 2, in queue mode: job.json names a registered command
    (an argv is refused); the command sees no AWS credentials."""
    p = pipeline
    for job, spec in (("envjob", {"engine": "command", "command": "envdump"}),
                      ("argvjob", {"engine": "command", "command": ["/bin/sh", "-c", "env > {out}"]})):
        s3.client.put_object(Bucket=p.inb, Key=f"{job}/job.json", Body=json.dumps(spec).encode())
        s3.client.put_object(Bucket=p.inb, Key=f"{job}/x_list.txt", Body=b"ID\tv\n1\ta\n")
        s3.client.put_object(Bucket=p.inb, Key=f"{job}/y_list.txt", Body=b"ID\tw\n1\tb\n")
    proc, log = serve(s3, p, smtp, allow_command=json.dumps(["/bin/sh", "-c", 'env > "$0"', "{out}"]).join(
        ["envdump=", ""]))
    assert proc.returncode == 0, proc.stderr.decode()
    seen = s3.client.get_object(Bucket=p.outb, Key="envjob/merged.tsv")["Body"].read().decode()
    assert "AWS_" not in seen and s3.secret_access_key not in seen and "PATH=" in seen
    assert s3.client.list_objects_v2(Bucket=p.outb, Prefix="argvjob/merged").get("KeyCount", 0) == 0
    failed = [m for _, m in smtp.messages if m["Subject"] == "cloudmerge: job argvjob failed"]
    assert len(failed) == 1
