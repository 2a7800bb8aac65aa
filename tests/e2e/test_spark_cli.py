"""`cloudmerge merge --engine spark|emr|emr-serverless`: the binary runs the
job with .venv's spark-submit (local[2]) and maps its failures; against a moto
server (signatures checked) it uploads the job script, submits an EMR Serverless
job run / an EMR step with the right arguments, polls, and reports failures.
Runtime: ~1 minute (two spark-submit runs; the EMR calls are fast)."""
import os
import pathlib
import re
import subprocess

import pytest

from conftest import BIN, CASES, ROOT, aws_client as client, case, oracle_agrees
from s3_server import s3  # noqa: F401

ACCOUNT = "123456789012"  # moto's account
ROLE = f"arn:aws:iam::{ACCOUNT}:role/emr-job-role"


def cm(*args, env=None, timeout=600):
    return subprocess.run([BIN, "merge", *map(str, args)], capture_output=True, env=env, timeout=timeout)


def test_engine_spark_ordered_and_any_order(oracle, tmp_path):
    c = case("quoted_fields")
    p = cm("--engine", "spark", "--master", "local[2]", c / "x.tsv", c / "y.tsv", "-o", tmp_path / "out.tsv")
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    assert oracle_agrees(oracle, c / "expected.tsv", tmp_path / "out.tsv")
    c = case("many_to_many")
    p = cm("--engine", "spark", "--master", "local[2]", "--any-order", "--spark-parts", c / "x.tsv", c / "y.tsv",
           "-o", tmp_path / "parts")
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    assert (tmp_path / "parts" / "_SUCCESS").exists()
    parts = sorted(q for q in (tmp_path / "parts").iterdir() if q.name.startswith("part-"))
    (tmp_path / "any.tsv").write_bytes(b"".join(q.read_bytes() for q in parts))
    assert oracle_agrees(oracle, c / "expected.tsv", tmp_path / "any.tsv", any_order=True)


def test_engine_spark_input_error_keeps_exit_code(tmp_path):
    (tmp_path / "x.tsv").write_text("ID\tvalue\n1\ta\textra\n")
    (tmp_path / "y.tsv").write_text("ID\tvalue\n1\tb\n")
    p = cm("--engine", "spark", "--master", "local[2]", tmp_path / "x.tsv", tmp_path / "y.tsv", "-o",
           tmp_path / "o.tsv")
    err = p.stderr.decode()
    assert p.returncode == 3, err[-2000:]
    assert re.search(r"x\.tsv, line 2, column \d+: this row has 3 field\(s\) but the header has 2", err), err[-2000:]
    assert not (tmp_path / "o.tsv").exists()


def test_engine_spark_without_spark_submit_says_what_to_do(tmp_path):
    import os
    env = dict(os.environ, CLOUDMERGE_SPARK_SUBMIT=str(tmp_path / "no-such-spark-submit"))
    c = case("basic_int")
    p = cm("--engine", "spark", c / "x.tsv", c / "y.tsv", "-o", tmp_path / "o.tsv", env=env)
    assert p.returncode == 2
    assert "cannot start" in p.stderr.decode() and "CLOUDMERGE_SPARK_SUBMIT" in p.stderr.decode()


def moto_job_run(s3, run_id):  # noqa: F811
    """The job run as moto stored it (boto3's signed GETs to emr-serverless trip
    moto's signature check; moto's own state API does not need one)."""
    import json
    import urllib.request
    with urllib.request.urlopen(s3.endpoint_url + "/moto-api/data.json") as r:
        data = json.load(r)
    runs = [j for j in data.get("emrserverless", {}).get("FakeJobRun", []) if j.get("id") == run_id]
    assert len(runs) == 1, f"moto has no job run {run_id}"
    return {"executionRoleArn": runs[0]["execution_role_arn"], "jobDriver": runs[0]["job_driver"]}


def test_emr_serverless_uploads_submits_and_polls(s3, tmp_path):  # noqa: F811
    bucket = s3.new_bucket("spark")
    emrs = client(s3, "emr-serverless")
    app = emrs.create_application(name="cm", releaseLabel="emr-7.1.0", type="SPARK")["applicationId"]
    # merge names the settings as serve does (docs/configuration.md); the next test uses the
    # deprecated spellings (--application-id, --poll-seconds), which keep working.
    p = cm("--engine", "emr-serverless", "--emr-application-id", app, "--emr-execution-role-arn", ROLE,
           "--spark-artifacts", f"s3://{bucket}/jobs/", "--emr-poll-seconds", "0.1",
           "s3://in/x.tsv", "s3://in/y.tsv", "-o", "s3://out/merged.tsv", env=s3.env(), timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    script = s3.client.get_object(Bucket=bucket, Key="jobs/merge_job.py")["Body"].read()
    assert script == (ROOT / "spark" / "merge_job.py").read_bytes()
    run_id = re.search(r"job run (\S+) started", p.stderr.decode()).group(1)
    run = moto_job_run(s3, run_id)
    assert run["executionRoleArn"] == ROLE
    driver = run["jobDriver"]["sparkSubmit"]
    assert driver["entryPoint"] == f"s3://{bucket}/jobs/merge_job.py"
    assert driver["entryPointArguments"] == ["s3://in/x.tsv", "s3://in/y.tsv", "-o", "s3://out/merged.tsv",
                                             "--x-key", "1", "--y-key", "1", "--ordered", "--single-file"]
    assert "spark.sql.adaptive.skewJoin.enabled=true" in driver["sparkSubmitParameters"]
    # The binary the tasks run is shipped with the job (the running binary unless CLOUDMERGE_CLUSTER_BINARY).
    assert driver["sparkSubmitParameters"].startswith(f"--files s3://{bucket}/jobs/cloudmerge ")
    shipped = s3.client.get_object(Bucket=bucket, Key="jobs/cloudmerge")["Body"].read()
    assert shipped == pathlib.Path(BIN).read_bytes()
    assert "SUCCESS" in p.stderr.decode()


def test_emr_serverless_failures_are_reported(s3):  # noqa: F811
    bucket = s3.new_bucket("spark")
    emrs = client(s3, "emr-serverless")
    app = emrs.create_application(name="cm2", releaseLabel="emr-7.1.0", type="SPARK")["applicationId"]
    base = ["--engine", "emr-serverless", "--application-id", app, "--spark-artifacts", f"s3://{bucket}/j/",
            "--poll-seconds", "0.1", "s3://in/x.tsv", "s3://in/y.tsv", "-o", "s3://out/m.tsv"]
    p = cm(*[a if a != app else "00nosuchapp" for a in base], "--execution-role-arn", ROLE, env=s3.env(),
           timeout=120)
    err = p.stderr.decode()
    assert p.returncode == 4 and "EMR Serverless StartJobRun" in err and "00nosuchapp" in err, err
    p = cm(*base, "--execution-role-arn", "arn:aws:iam::999999999999:role/other", env=s3.env(), timeout=120)
    assert p.returncode == 4 and "Cross-account" in p.stderr.decode(), p.stderr.decode()
    p = cm(*base[:-6], "s3://in/x.tsv", "s3://in/y.tsv", "-o", "s3://out/m.tsv", env=s3.env(), timeout=120)
    assert p.returncode == 2 and "--emr-execution-role-arn" in p.stderr.decode()


def test_emr_step_is_added_and_polled_until_timeout(s3):  # noqa: F811
    bucket = s3.new_bucket("spark")
    emr = client(s3, "emr")
    cluster = emr.run_job_flow(Name="cm", ReleaseLabel="emr-7.1.0", Instances={
        "MasterInstanceType": "m5.xlarge", "InstanceCount": 1, "KeepJobFlowAliveWhenNoSteps": True},
        JobFlowRole="EMR_EC2_DefaultRole", ServiceRole="EMR_DefaultRole")["JobFlowId"]
    p = cm("--engine", "emr", "--cluster-id", cluster, "--spark-artifacts", f"s3://{bucket}/a", "--any-order",
           "--poll-seconds", "0.2", "--timeout-minutes", "0.02", "--key", "gene",
           "s3://in/x.tsv", "s3://in/y.tsv", "-o", "s3://out/m.tsv", env=s3.env(), timeout=120)
    err = p.stderr.decode()
    # moto never finishes a step: the wait ends at --emr-timeout-minutes with a clear message.
    assert p.returncode == 4 and "is still" in err and "--emr-timeout-minutes" in err, err
    steps = emr.list_steps(ClusterId=cluster)["Steps"]
    assert len(steps) == 1
    jar = steps[0]["Config"]
    assert jar["Jar"] == "command-runner.jar"
    args = jar["Args"]
    assert args[:5] == ["spark-submit", "--deploy-mode", "cluster", "--files", f"s3://{bucket}/a/cloudmerge"]
    assert f"s3://{bucket}/a/merge_job.py" in args
    tail = args[args.index(f"s3://{bucket}/a/merge_job.py") + 1:]
    assert tail == ["s3://in/x.tsv", "s3://in/y.tsv", "-o", "s3://out/m.tsv", "--x-key", "gene", "--y-key", "gene",
                    "--single-file"]
    assert s3.client.head_object(Bucket=bucket, Key="a/merge_job.py")["ContentLength"] > 0
    assert s3.client.head_object(Bucket=bucket, Key="a/cloudmerge")["ContentLength"] == os.path.getsize(BIN)


def test_emr_unknown_cluster_is_an_error(s3):  # noqa: F811
    bucket = s3.new_bucket("spark")
    p = cm("--engine", "emr", "--cluster-id", "j-NOSUCHCLUSTER", "--spark-artifacts", f"s3://{bucket}/a/",
           "s3://in/x.tsv", "s3://in/y.tsv", "-o", "s3://out/m.tsv", env=s3.env(), timeout=120)
    err = p.stderr.decode()
    assert p.returncode == 4 and "EMR AddJobFlowSteps" in err, err
