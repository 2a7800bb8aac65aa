"""`serve --cloudwatch-log-group`: outside Lambda, the JSON log lines also go to
CloudWatch Logs (CreateLogGroup/CreateLogStream/PutLogEvents, signed), here
moto's on 127.0.0.1: the stream holds exactly the lines printed on stdout."""
import json
import shutil
import subprocess

import boto3

from conftest import BIN, CASES
from s3_server import s3  # noqa: F401  (fixture)


def test_log_lines_reach_cloudwatch_logs(s3, tmp_path):
    case = next(c for c in CASES if c.name == "basic_int")
    job = tmp_path / "input" / "cw"
    job.mkdir(parents=True)
    shutil.copy(case / "x.tsv", job / "x_list.txt")
    shutil.copy(case / "y.tsv", job / "y_list.txt")
    group = f"/cloudmerge/test-{tmp_path.name}"
    proc = subprocess.run([BIN, "serve", "--local", str(tmp_path), "--once", "--cloudwatch-log-group", group,
                           "--cloudwatch-log-stream", "worker-1"], capture_output=True, env=s3.env(), timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    printed = [l for l in proc.stdout.decode().splitlines() if l.strip()]
    assert any(json.loads(l)["event"] == "job.succeeded" for l in printed)
    logs = boto3.client("logs", endpoint_url=s3.endpoint_url, region_name=s3.region,
                        aws_access_key_id=s3.access_key_id, aws_secret_access_key=s3.secret_access_key)
    events = logs.get_log_events(logGroupName=group, logStreamName="worker-1", startFromHead=True)["events"]
    assert [e["message"] for e in events] == printed
    assert all(isinstance(e["timestamp"], int) and e["timestamp"] > 0 for e in events)
