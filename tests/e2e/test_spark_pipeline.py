"""The cluster engines inside the pipeline (job.json "engine": spark | emr |
emr-serverless | auto) and the EMR step's terminal states.

- `serve --local` with engine "spark" runs spark/merge_job.py on a real local[2]
  Spark: the result agrees with the oracle, the report carries the Spark job's
  row counts, one success email; bad input gives one failure email with the
  job's located message; a replay changes nothing.
- engine "auto" with a tiny native budget hands off to EMR Serverless on moto
  (queue mode, S3 + SQS + SNS): the StartJobRun arguments, the logged decision,
  and moto's outcome (SUCCESS without a result object, as moto runs nothing)
  reported as exactly one failure; replayed events submit nothing more.
- engine "emr" against a scripted EMR endpoint on loopback (moto never ends a
  step): a "cluster" that writes the result and its statistics gives a success
  with measured rows; a worker that loses DescribeStep mid-wait resumes the
  same step on the next delivery instead of adding another.
- `merge --engine emr` polling DescribeStep: COMPLETED, FAILED (reason, message
  and log file from FailureDetails), CANCELLED, INTERRUPTED, the timeout; and
  s3a:// / s3n:// URIs passed to EMR as s3://.
Runtime: ~1.5 minutes (two local Spark runs; the rest is fast)."""
import http.server
import json
import pathlib
import re
import shutil
import subprocess
import threading
import urllib.request

import pytest

from conftest import BIN, CASES, ROOT, add_job, aws_client as client, body_text, drain, mails, oracle_agrees, event_queue, topic_with_mail_queue
from s3_server import s3  # noqa: F401  (fixture)

CASE = {c.name: c for c in CASES}
ACCOUNT = "123456789012"  # moto's account
ROLE = f"arn:aws:iam::{ACCOUNT}:role/emr-job-role"


def log_lines(proc):
    return [json.loads(l) for l in proc.stdout.decode().splitlines() if l.strip()]


def serve_local(root, *args, env=None, timeout=600):
    proc = subprocess.run([BIN, "serve", "--local", str(root), "--once", *map(str, args)], capture_output=True,
                          env=env, timeout=timeout)
    return proc, log_lines(proc)


def rows_of(path):
    return len(pathlib.Path(path).read_text().splitlines()) - 1


# ---- engine "spark": a real local[2] Spark --------------------------------------------------------------------


def test_pipeline_engine_spark_local(tmp_path, oracle):
    case = CASE["quoted_fields"]
    add_job(tmp_path, "sp", case, spec={"engine": "spark"})
    add_job(tmp_path, "bad", x="ID\tvalue\n1\ta\n2\tb\tc\n", y="ID\tvalue\n1\tz\n", spec={"engine": "spark"})
    proc, log = serve_local(tmp_path, "--spark-master", "local[2]")
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    out = tmp_path / "output" / "sp"
    assert oracle_agrees(oracle, case / "expected.tsv", out / "merged.tsv")
    report = json.loads((out / "report.json").read_text())
    assert report["engine"] == "spark" and report["status"] == "succeeded"
    assert report["cluster"]["rows_measured"] is True
    assert report["rows"]["output"] == rows_of(case / "expected.tsv")
    assert report["rows"]["x"] == rows_of(case / "x.tsv") and report["rows"]["y"] == rows_of(case / "y.tsv")
    assert "engine_stats" not in report  # the native engine's own report: not for Spark runs
    ok = mails(tmp_path, "succeeded")
    assert len(ok) == 1 and f"({report['rows']['output']} rows)" in ok[0]["Subject"]
    failed = mails(tmp_path, "failed")
    assert len(failed) == 1 and "bad" in failed[0]["Subject"]
    assert re.search(r"x_list.txt, line 3, column \d+: this row has 3 field\(s\)", body_text(failed[0]))
    assert not (tmp_path / "output" / "bad" / "merged.tsv").exists()
    assert [e["event"] for e in log].count("job.succeeded") == 1

    proc, log = serve_local(tmp_path, "--spark-master", "local[2]")  # a replay: both runs are done
    assert proc.returncode == 0
    assert sum(e["event"] == "job.duplicate" for e in log) == 2
    assert len(mails(tmp_path, "succeeded")) == 1 and len(mails(tmp_path, "failed")) == 1


def test_job_json_rejects_an_unknown_engine(tmp_path):
    add_job(tmp_path, "j", CASE["basic_int"], spec={"engine": "hadoop"})
    proc, log = serve_local(tmp_path)
    assert proc.returncode == 0
    text = body_text(mails(tmp_path, "failed")[0])
    assert 'engine "hadoop" is not known' in text and '"emr-serverless"' in text and '"auto"' in text


def test_auto_runs_natively_within_the_budget(tmp_path, oracle):
    case = CASE["many_to_many"]
    add_job(tmp_path, "small", case, spec={"engine": "auto"})
    proc, log = serve_local(tmp_path, "--native-time-budget", "60")
    assert proc.returncode == 0, proc.stderr.decode()
    decision = next(e for e in log if e["event"] == "engine.auto")
    assert decision["engine"] == "native" and decision["budget_s"] == 60
    assert decision["input_bytes"] == (case / "x.tsv").stat().st_size + (case / "y.tsv").stat().st_size
    assert "fits the native time budget" in decision["message"]
    assert oracle_agrees(oracle, case / "expected.tsv", tmp_path / "output" / "small" / "merged.tsv")
    report = json.loads((tmp_path / "output" / "small" / "report.json").read_text())
    assert report["engine"] == "native" and report["engine_requested"] == "auto"


def test_auto_stays_native_over_the_budget_when_the_cluster_would_not_finish_sooner(tmp_path, oracle):
    """Over the budget, `serve` (no deadline) still runs natively when the cluster's estimate (its start-up
    plus the input at the cluster's measured rate) is no sooner than the native one: with the default
    120 s start-up, a small job would go to the cluster only to wait for it."""
    case = CASE["many_to_many"]
    add_job(tmp_path, "small", case, spec={"engine": "auto"})
    proc, log = serve_local(tmp_path, "--native-time-budget-seconds", "0", "--auto-engine", "emr")
    assert proc.returncode == 0, proc.stderr.decode()
    decision = next(e for e in log if e["event"] == "engine.auto")
    assert decision["engine"] == "native", decision
    assert decision["estimate_s"] > decision["budget_s"] == 0
    assert decision["cluster_estimate_s"] >= 120 > decision["estimate_s"]
    assert "exceeds the native time budget" in decision["message"]
    assert "no sooner than native: running on native" in decision["message"]
    assert oracle_agrees(oracle, case / "expected.tsv", tmp_path / "output" / "small" / "merged.tsv")

    # A cluster that starts at once (and, with 32 vCPUs, reads faster) is chosen; EMR is not configured
    # here, so serve warns and runs natively: the decision is what this checks.
    add_job(tmp_path, "again", case, spec={"engine": "auto"})
    proc, log = serve_local(tmp_path, "--native-time-budget-seconds", "0", "--auto-engine", "emr",
                            "--cluster-startup-seconds", "0")
    assert proc.returncode == 0, proc.stderr.decode()
    decision = next(e for e in log if e["event"] == "engine.auto")
    assert decision["cluster_estimate_s"] < decision["estimate_s"], decision
    assert "but the emr engine is not configured: running natively" in decision["message"]
    assert "no sooner" not in decision["message"]


# ---- engine "auto" -> EMR Serverless on moto (queue mode) -----------------------------------------------------


def moto_job_runs(s3, app):  # noqa: F811
    """moto's job runs of an application, from its state API (boto3's signed
    GETs to emr-serverless trip moto's signature check)."""
    with urllib.request.urlopen(s3.endpoint_url + "/moto-api/data.json") as r:
        data = json.load(r)
    return [j for j in data.get("emrserverless", {}).get("FakeJobRun", []) if j.get("application_id") == app]


def test_auto_hands_off_to_emr_serverless(s3):  # noqa: F811
    sqs, sns = client(s3, "sqs"), client(s3, "sns")
    inb, outb, code = s3.new_bucket("in"), s3.new_bucket("out"), s3.new_bucket("code")
    q = event_queue(s3, sqs, inb)
    topic, mailq = topic_with_mail_queue(sqs, sns, inb)
    app = client(s3, "emr-serverless").create_application(name="cm", releaseLabel="emr-7.1.0",
                                                          type="SPARK")["applicationId"]
    case = CASE["many_to_many"]
    # job.json first: an event for x or y must not start a run without it.
    s3.client.put_object(Bucket=inb, Key="big/job.json", Body=json.dumps({"engine": "auto", "key": "ID"}).encode())
    s3.client.upload_file(str(case / "x.tsv"), inb, "big/x_list.txt")
    s3.client.upload_file(str(case / "y.tsv"), inb, "big/y_list.txt")

    def serve():
        proc = subprocess.run(
            [BIN, "serve", "--queue-url", q, "--input", f"s3://{inb}/", "--output", f"s3://{outb}/",
             "--sns-topic-arn", topic, "--wait-seconds", "1", "--idle-exit-seconds", "3",
             "--native-time-budget", "0", "--cluster-startup-seconds", "0", "--emr-application-id", app, "--emr-execution-role-arn", ROLE,
             "--spark-artifacts", f"s3a://{code}/jobs/", "--emr-poll-seconds", "0.1"],
            capture_output=True, env=s3.env(), timeout=180)
        assert proc.returncode == 0, proc.stderr.decode()
        return log_lines(proc)

    log = serve()
    decision = [e for e in log if e["event"] == "engine.auto"]
    assert len(decision) == 1 and decision[0]["engine"] == "emr-serverless", decision
    assert "exceeds the native time budget" in decision[0]["message"]
    assert decision[0]["estimate_s"] > decision[0]["budget_s"]
    assert decision[0]["cluster_estimate_s"] < decision[0]["estimate_s"], "the cluster is estimated sooner"
    runs = moto_job_runs(s3, app)
    assert len(runs) == 1
    run = runs[0]
    assert run["execution_role_arn"] == ROLE
    state = next(k for k in (o["Key"] for o in s3.client.list_objects_v2(Bucket=outb)["Contents"])
                 if k.startswith("big/_state/") and k.endswith("/cluster-submitted.json"))
    run_state = state[:-len("cluster-submitted.json")]
    assert run["client_token"] == "cloudmerge-" + run_state.split("/")[2]
    driver = run["job_driver"]["sparkSubmit"]
    assert driver["entryPoint"] == f"s3://{code}/jobs/merge_job.py"  # s3a:// artifacts given as s3://
    assert driver["entryPointArguments"] == [
        f"s3://{inb}/big/x_list.txt", f"s3://{inb}/big/y_list.txt", "-o", f"s3://{outb}/big/merged.tsv",
        "--x-key", "ID", "--y-key", "ID", "--ordered", "--single-file",
        "--stats-file", f"s3://{outb}/{run_state}spark-stats.json"]
    assert s3.client.get_object(Bucket=code, Key="jobs/merge_job.py")["Body"].read() == \
        (ROOT / "spark" / "merge_job.py").read_bytes()
    marker = json.loads(s3.client.get_object(Bucket=outb, Key=state)["Body"].read())
    assert marker["engine"] == "emr-serverless" and marker["id"] == run["id"]
    # moto ends every job run SUCCESS at once and runs nothing: no result, which the pipeline reports as a
    # failure (one notification), never as a success without a result.
    notes = [json.loads(m["Body"]) for m in drain(sqs, mailq)]
    subjects = [n.get("Subject", "") for n in notes]
    assert sum("failed" in s for s in subjects) == 1 and not any("result ready" in s for s in subjects), subjects
    failure = next(n["Message"] for n in notes if "failed" in n.get("Subject", ""))
    assert f"emr-serverless run {run['id']} ended SUCCESS but wrote no result at s3://{outb}/big/merged.tsv" \
        in failure, failure
    failed = json.loads(s3.client.get_object(Bucket=outb, Key=run_state + "failed.json")["Body"].read())
    assert run["id"] in failed["error"]

    # Every event again: already done, nothing submitted, no second notification.
    for key in ("big/x_list.txt", "big/y_list.txt", "big/job.json"):
        event = {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                              "s3": {"bucket": {"name": inb}, "object": {"key": key, "size": 1}}}]}
        sqs.send_message(QueueUrl=q, MessageBody=json.dumps(event))
    log = serve()
    assert sum(e["event"] == "job.duplicate" for e in log) == 3
    assert len(moto_job_runs(s3, app)) == 1
    assert not [m for m in drain(sqs, mailq) if "cloudmerge" in json.loads(m["Body"]).get("Subject", "")]


# ---- a scripted EMR endpoint ----------------------------------------------------------------------------------


class FakeEmr:
    """EMR's JSON API for AddJobFlowSteps and DescribeStep on loopback.
    `states`: what DescribeStep answers, one entry per call (the last repeats):
    a state name, a (state, extra Status fields) pair, or an int HTTP error.
    `on_add(args)`: runs when a step is added (a fake cluster doing the work)."""

    def __init__(self, states, on_add=None):
        self.states, self.on_add, self.added, self.described = list(states), on_add, [], 0
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                target = self.headers.get("X-Amz-Target", "")
                status, out = 200, {}
                if target.endswith("AddJobFlowSteps"):
                    fake.added.append(body)
                    if fake.on_add:
                        fake.on_add(body["Steps"][0]["HadoopJarStep"]["Args"])
                    out = {"StepIds": [f"s-FAKE{len(fake.added)}"]}
                elif target.endswith("DescribeStep"):
                    step = fake.states[min(fake.described, len(fake.states) - 1)]
                    fake.described += 1
                    if isinstance(step, int):
                        status, out = step, {"__type": "InternalServerError", "Message": "scripted outage"}
                    else:
                        state, extra = step if isinstance(step, tuple) else (step, {})
                        out = {"Step": {"Id": body["StepId"], "Status": {"State": state, **extra}}}
                else:
                    status, out = 400, {"__type": "UnknownOperationException", "Message": target}
                data = json.dumps(out).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def cm(*args, env=None, timeout=120):
    return subprocess.run([BIN, "merge", *map(str, args)], capture_output=True, env=env, timeout=timeout)


FAILURE = {"FailureDetails": {"Reason": "Step failed with exitCode 3.",
                              "Message": "Error [cloudmerge spark]: s3://in/x.tsv, line 2: this row has 3 field(s)",
                              "LogFile": "s3://logs/j-FAKE/steps/s-FAKE1/stderr.gz"}}


@pytest.mark.parametrize("states,code,expect", [
    (["PENDING", "RUNNING", "COMPLETED"], 0, ["is PENDING", "is RUNNING", "is COMPLETED"]),
    (["RUNNING", ("FAILED", FAILURE)], 4, ["ended FAILED: Step failed with exitCode 3.",
                                           "s3://in/x.tsv, line 2: this row has 3 field(s)",
                                           "log: s3://logs/j-FAKE/steps/s-FAKE1/stderr.gz"]),
    ([("CANCELLED", {"StateChangeReason": {"Message": "Cancelled by user"}})], 4, ["ended CANCELLED: Cancelled by user"]),
    (["RUNNING", "INTERRUPTED"], 4, ["ended INTERRUPTED"]),
    (["RUNNING"], 4, ["is still RUNNING after", "--emr-timeout-minutes"]),
], ids=["completed", "failed", "cancelled", "interrupted", "timeout"])
def test_emr_step_terminal_states(s3, states, code, expect):  # noqa: F811
    bucket = s3.new_bucket("spark")
    emr = FakeEmr(states)
    try:
        p = cm("--engine", "emr", "--cluster-id", "j-FAKE", "--spark-artifacts", f"s3n://{bucket}/a",
               "--aws-endpoint-url", emr.url, "--poll-seconds", "0.05", "--timeout-minutes", "0.01",
               "s3a://in/x.tsv", "s3://in/y.tsv", "-o", "s3a://out/m.tsv", env=s3.env())
    finally:
        emr.close()
    err = p.stderr.decode()
    assert p.returncode == code, err
    for e in expect:
        assert e in err, err
    assert len(emr.added) == 1
    args = emr.added[0]["Steps"][0]["HadoopJarStep"]["Args"]
    script = f"s3://{bucket}/a/merge_job.py"
    assert args[args.index(script) + 1:] == ["s3://in/x.tsv", "s3://in/y.tsv", "-o", "s3://out/m.tsv",
                                             "--x-key", "1", "--y-key", "1", "--ordered", "--single-file"]


def test_spark_conf_takes_one_value_per_occurrence(s3):  # noqa: F811
    """--spark-conf is repeatable and must not swallow X and Y after it."""
    bucket = s3.new_bucket("spark")
    emr = FakeEmr(["COMPLETED"])
    try:
        p = cm("--engine", "emr", "--cluster-id", "j-FAKE", "--spark-artifacts", f"s3://{bucket}/a/",
               "--aws-endpoint-url", emr.url, "--poll-seconds", "0.05", "--spark-conf", "spark.a=1",
               "--spark-conf=spark.b=2", "s3://in/x.tsv", "s3://in/y.tsv", "-o", "s3://out/m.tsv", env=s3.env())
    finally:
        emr.close()
    assert p.returncode == 0, p.stderr.decode()
    args = emr.added[0]["Steps"][0]["HadoopJarStep"]["Args"]
    assert args[3:5] == ["--files", f"s3://{bucket}/a/cloudmerge"]  # the binary the tasks run
    assert ["--conf", "spark.a=1", "--conf", "spark.b=2"] == args[9:13], args
    assert args[-10:-6] == ["s3://in/x.tsv", "s3://in/y.tsv", "-o", "s3://out/m.tsv"]


def test_pipeline_engine_emr_success_and_resume(s3, tmp_path):  # noqa: F811
    """A fake cluster writes the result and the statistics where the step's
    arguments say; the first worker loses DescribeStep (HTTP 500s, past the
    retries) and leaves the job for later; the next one resumes the same step."""
    case = CASE["many_to_many"]
    expected_rows = rows_of(case / "expected.tsv")

    def cluster(args):
        out = args[args.index("-o") + 1]
        shutil.copy(case / "expected.tsv", out)
        stats = args[args.index("--stats-file") + 1]
        pathlib.Path(stats).write_text(json.dumps({"x_rows": 7, "y_rows": 8, "output_rows": expected_rows}))

    bucket = s3.new_bucket("spark")
    emr = FakeEmr(["RUNNING"] + [500] * 5 + ["RUNNING", "COMPLETED"], on_add=cluster)
    add_job(tmp_path, "e1", case, spec={"engine": "emr"})
    flags = ["--emr-cluster-id", "j-FAKE", "--spark-artifacts", f"s3://{bucket}/jobs/", "--emr-endpoint-url",
             emr.url, "--emr-poll-seconds", "0.05"]
    try:
        proc, log = serve_local(tmp_path, *flags, env=s3.env())
        assert proc.returncode != 0  # --once with a job left to retry
        assert any(e["event"] == "job.retry" and "scripted outage" in e["message"] for e in log), log
        assert not mails(tmp_path, "succeeded") and not mails(tmp_path, "failed")
        proc, log = serve_local(tmp_path, *flags, env=s3.env())
        assert proc.returncode == 0, proc.stderr.decode()
        assert "resuming the wait for EMR step s-FAKE1" in proc.stderr.decode()
        proc, log = serve_local(tmp_path, *flags, env=s3.env())  # a replay
        assert any(e["event"] == "job.duplicate" for e in log)
    finally:
        emr.close()
    assert len(emr.added) == 1, "the step is added once"
    report = json.loads((tmp_path / "output" / "e1" / "report.json").read_text())
    assert report["engine"] == "emr" and report["cluster"]["id"] == "s-FAKE1"
    assert report["cluster"]["state"] == "COMPLETED" and report["cluster"]["rows_measured"] is True
    assert report["rows"] == {"x": 7, "y": 8, "output": expected_rows}
    ok = mails(tmp_path, "succeeded")
    assert len(ok) == 1 and f"({expected_rows} rows)" in ok[0]["Subject"]
    assert len(mails(tmp_path, "received")) == 1


def test_pipeline_cluster_engine_not_configured_fails_once(tmp_path):
    add_job(tmp_path, "nocfg", CASE["basic_int"], spec={"engine": "emr-serverless"})
    for _ in range(2):
        proc, log = serve_local(tmp_path)
        assert proc.returncode == 0, proc.stderr.decode()
    failed = mails(tmp_path, "failed")
    assert len(failed) == 1
    assert "--emr-application-id" in body_text(failed[0]) and "CLOUDMERGE_EMR_APPLICATION_ID" in body_text(failed[0])
