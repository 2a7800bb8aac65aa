"""The Spark path on real S3 objects: spark/merge_job.py reads s3:// / s3a://
inputs (plain and .gz) and writes one object or part files + _SUCCESS through
Hadoop's S3A filesystem (hadoop-aws 3.3.4 + aws-java-sdk-bundle 1.12.262 from
.tools/jars, fetched by scripts/install-deps.sh), against moto on loopback with
signatures checked; outputs are read back with boto3 and checked with the
shared oracle. Also `cloudmerge merge --engine spark` with S3 URIs: the jars on
the classpath, the endpoint and credentials from the environment (never in
argv or the log), a missing input object (exit 4, no output).

One local[2] SparkSession for the in-process cases and three spark-submit runs
through the binary. Runtime: ~2-3 minutes on 2 cores.

Java's AWS SDK signs the User-Agent header; botocore never does, and moto
recomputes signatures with botocore's rules, so it would refuse every correctly
signed S3A request. The server here is s3_server.py's with that one rule fixed
(_patch_signed_headers): every header the request lists as signed is checked."""
import gzip
import os
import pathlib
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

import s3_server

# --- moto with the Java SDK's signed headers ---------------------------------------


def _patch_signed_headers():
    """In the server process: verify a SigV4 signature over exactly the headers
    the request names in SignedHeaders. botocore's signer drops User-Agent (and
    Expect) from the canonical request even when listed; AWS does not."""
    from botocore.auth import S3SigV4Auth
    from moto.iam.access_control import S3IAMRequest

    class ListedHeaders(S3SigV4Auth):
        def headers_to_sign(self, request):
            signed = super().headers_to_sign(request)
            for name, value in request.headers.items():  # moto passes only the listed headers
                if name.lower() not in signed:
                    signed[name.lower()] = value
            return signed

    S3IAMRequest._create_auth = lambda self, credentials: ListedHeaders(credentials, "s3", self._region)


# The server process (JavaSdkS3Server) runs this file: nothing below is needed there.
if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--serve":
    _patch_signed_headers()
    s3_server._serve(sys.argv[2], int(sys.argv[3]))
    sys.exit(0)

from conftest import BIN, CASES, ROOT, case, oracle_agrees  # noqa: E402

sys.path.insert(0, str(ROOT / "spark"))
import merge_job as mj  # noqa: E402

JARS = [ROOT / ".tools" / "jars" / name for name in ("hadoop-aws-3.3.4.jar", "aws-java-sdk-bundle-1.12.262.jar")]
# In-process cases: quoting (whole-file reads), CRLF, 64-bit IDs, many-to-many,
# UTF-8, missing IDs, an empty side, text IDs, random pairs.
CASE_NAMES = ["quoted_fields", "crlf_lines", "big_int64_keys", "many_to_many", "utf8_text",
              "missing_keys_never_match", "empty_y", "string_ids", "random_1_000", "random_1_001"]


class JavaSdkS3Server(s3_server.S3Server):
    """s3_server.S3Server whose server process is this file (--serve), which adds
    _patch_signed_headers to s3_server's own patches."""

    server_script = pathlib.Path(__file__).resolve()


@pytest.fixture(scope="module")
def s3():
    server = JavaSdkS3Server()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def jars():
    missing = [str(j) for j in JARS if not j.exists()]
    if missing:
        pytest.fail(f"the S3A jars are missing: {missing}. Run scripts/install-deps.sh (it fetches them with mvn).")
    return [str(j) for j in JARS]


@pytest.fixture(scope="module")
def spark(s3, jars):
    """A local[2] session whose JVM has the S3A jars and the moto credentials
    in its environment (S3A's EnvironmentVariableCredentialsProvider reads them
    there), with the settings merge_job.py derives from that environment."""
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in s3.env().items() if k.startswith("AWS_")})
    try:
        session = mj.make_session("local[2]", app_name="cloudmerge-s3a-tests", conf={
            "spark.driver.extraClassPath": ":".join(jars), "spark.sql.shuffle.partitions": "3",
            "spark.default.parallelism": "2", "spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false",
            "spark.driver.memory": "1g"}, s3a=mj.s3a_settings(os.environ))
        session.sparkContext.setLogLevel("ERROR")
        yield session
        session.stop()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def keys(s3, bucket, prefix=""):
    return sorted(o["Key"] for o in s3.client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


def get(s3, bucket, key):
    return s3.client.get_object(Bucket=bucket, Key=key)["Body"].read()


def parts_text(s3, bucket, prefix):
    """The part files' concatenation in name order; asserts the _SUCCESS marker."""
    names = keys(s3, bucket, prefix + "/")
    assert f"{prefix}/_SUCCESS" in names, f"no _SUCCESS under s3://{bucket}/{prefix}/: {names}"
    return b"".join(get(s3, bucket, k) for k in names if k.rsplit("/", 1)[1].startswith("part-"))


def upload_case(s3, bucket, c, gz):
    """x and y of case c under <case>/; gzip-compressed (.tsv.gz) when gz. Returns the keys."""
    out = []
    for side in ("x", "y"):
        data = (c / f"{side}.tsv").read_bytes()
        key = f"{c.name}/{side}.tsv" + (".gz" if gz else "")
        s3.client.put_object(Bucket=bucket, Key=key, Body=gzip.compress(data) if gz else data)
        out.append(key)
    return out


# --- the S3A settings (pure) ----------------------------------------------------------


def test_s3a_settings_come_from_the_aws_environment():
    assert mj.s3a_settings({}) == {}
    assert mj.s3a_settings({"AWS_REGION": "eu-west-1"}) == {}  # AWS itself: S3A's defaults
    s = mj.s3a_settings({"AWS_ENDPOINT_URL": "http://127.0.0.1:9000/", "AWS_REGION": "eu-west-1"})
    assert s == {"fs.s3a.endpoint": "http://127.0.0.1:9000", "fs.s3a.path.style.access": "true",
                 "fs.s3a.endpoint.region": "eu-west-1", "fs.s3a.connection.ssl.enabled": "false"}
    # The S3-specific variable wins, the argument (--s3-endpoint-url) over both.
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ENDPOINT_URL_S3": "https://s3.lab.example:8443",
           "AWS_DEFAULT_REGION": "us-west-2"}
    s = mj.s3a_settings(env)
    assert s["fs.s3a.endpoint"] == "https://s3.lab.example:8443" and "fs.s3a.connection.ssl.enabled" not in s
    assert s["fs.s3a.endpoint.region"] == "us-west-2"
    assert mj.s3a_settings(env, "http://localhost:4566")["fs.s3a.connection.ssl.enabled"] == "false"
    assert mj.s3a_settings({"AWS_ENDPOINT_URL": "http://[::1]:9000"})["fs.s3a.connection.ssl.enabled"] == "false"
    assert mj.s3a_settings(dict(env, AWS_IGNORE_CONFIGURED_ENDPOINT_URLS="true")) == {}
    # Plain http to another machine is refused (TLS is only dropped for loopback).
    with pytest.raises(mj.UsageError, match="plain http to another machine"):
        mj.s3a_settings({"AWS_ENDPOINT_URL": "http://10.0.0.5:9000"})
    with pytest.raises(mj.UsageError, match="not a URL"):
        mj.s3a_settings({"AWS_ENDPOINT_URL": "127.0.0.1:9000"})
    # No credential ever becomes a setting.
    s = mj.s3a_settings({"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
                         "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "token"})
    assert not any(v in ("AKIAEXAMPLE", "secret", "token") for v in s.values())


# --- merge_job.py in-process over S3A -------------------------------------------------


def test_conformance_cases_through_s3a(spark, s3, oracle, tmp_path):
    """Even cases: .gz inputs as s3:// (rewritten to s3a:// for Hadoop), one file,
    --ordered. Odd: plain inputs as s3a://, part files, any order, in splits of
    a third of the smaller input. The tasks' binary reads the objects with its
    own S3 client (a .gz whole, a plain object's split by ranged GETs) and
    writes the parts; the single file is assembled through S3A."""
    bucket, out_bucket = s3.new_bucket("in"), s3.new_bucket("out")

    def one(item):
        i, name = item
        c = case(name)
        gz = i % 2 == 0
        x, y = upload_case(s3, bucket, c, gz)
        try:
            if gz:
                stats = mj.merge(spark, f"s3://{bucket}/{x}", f"s3://{bucket}/{y}", f"s3://{out_bucket}/{name}.tsv",
                                 ordered=True, single_file=True, binary=BIN)
                (tmp_path / f"{name}.tsv").write_bytes(get(s3, out_bucket, f"{name}.tsv"))
            else:
                split = max(8, min(len((c / f"{side}.tsv").read_bytes()) for side in "xy") // 3)
                stats = mj.merge(spark, f"s3a://{bucket}/{x}", f"s3a://{bucket}/{y}", f"s3a://{out_bucket}/{name}",
                                 ordered=False, binary=BIN, partitions=3, split_bytes=split)
                (tmp_path / f"{name}.tsv").write_bytes(parts_text(s3, out_bucket, name))
        except Exception as e:  # noqa: BLE001 - reported per case below
            return f"{name}: {type(e).__name__}: {mj.java_message(e)[:300]}"
        if not oracle_agrees(oracle, c / "expected.tsv", tmp_path / f"{name}.tsv", any_order=not gz):
            return f"{name} ({'gz, ordered, one file' if gz else 'parts, any order'}): differs from expected.tsv"
        expected_rows = len((c / "expected.tsv").read_bytes().splitlines()) - 1
        if stats["output_rows"] != expected_rows:
            return f"{name}: {stats['output_rows']} rows counted, expected.tsv has {expected_rows}"
        return None

    with ThreadPoolExecutor(3) as ex:
        failures = [r for r in ex.map(one, enumerate(CASE_NAMES)) if r]
    assert not failures, f"{len(failures)} of {len(CASE_NAMES)} cases fail over S3A: {failures}"
    # One file per single-file case, nothing left of the parts or the temporary it was assembled in.
    singles = [k for k in keys(s3, out_bucket) if "/" not in k]
    assert singles == sorted(f"{n}.tsv" for i, n in enumerate(CASE_NAMES) if i % 2 == 0), singles


def test_plain_objects_are_read_in_splits_by_ranged_gets(spark, s3, oracle, tmp_path):
    """A plain S3 object is cut into splits like a local file, each task reading
    its own byte range (the object is not read whole by one task); the ordered
    single file is still exactly the script's answer."""
    bucket, out_bucket = s3.new_bucket("in"), s3.new_bucket("out")
    c = case("random_1_000")
    x, y = upload_case(s3, bucket, c, gz=False)
    split = min(len((c / f"{side}.tsv").read_bytes()) for side in "xy") // 4
    stats = mj.merge(spark, f"s3a://{bucket}/{x}", f"s3a://{bucket}/{y}", f"s3a://{out_bucket}/m.tsv",
                     ordered=True, single_file=True, binary=BIN, partitions=3, split_bytes=split)
    assert stats["x_splits"] >= 4 and stats["y_splits"] >= 4, stats
    (tmp_path / "m.tsv").write_bytes(get(s3, out_bucket, "m.tsv"))
    assert oracle_agrees(oracle, c / "expected.tsv", tmp_path / "m.tsv")


def test_an_object_replaced_after_planning_fails_the_split_scan(s3):
    """The scans read the bytes the driver planned with: an object overwritten in
    between (same size, other bytes) is an error naming it, never a mix."""
    import json
    bucket = s3.new_bucket("in")
    c = case("basic_int")
    x, y = upload_case(s3, bucket, c, gz=False)
    plan = subprocess.run([BIN, "cluster-task", "plan", f"s3://{bucket}/{x}", f"s3://{bucket}/{y}"],
                          capture_output=True, env=s3.env(), timeout=60)
    assert plan.returncode == 0, plan.stderr.decode(errors="replace")
    px = json.loads(plan.stdout)["x"]
    assert px["splittable"] and px["size"] == len((c / "x.tsv").read_bytes()) and px["version"], px
    scan = [BIN, "cluster-task", "scan", f"s3://{bucket}/{x}", "--partitions", "2", "--split", str(px["body"]),
            str(px["size"]), "--size", str(px["size"]), "--body", str(px["body"]), "--version", px["version"]]
    ok = subprocess.run(scan, capture_output=True, env=s3.env(), timeout=60)
    assert ok.returncode == 0, ok.stderr.decode(errors="replace")
    data = (c / "x.tsv").read_bytes()
    s3.client.put_object(Bucket=bucket, Key=x, Body=data[:-2] + b"9\n")  # same size, other bytes
    changed = subprocess.run(scan, capture_output=True, env=s3.env(), timeout=60)
    err = changed.stderr.decode(errors="replace")
    assert changed.returncode != 0 and changed.stdout == b"", err
    assert f"s3://{bucket}/{x} changed while the merge was reading it" in err, err


def test_missing_input_object_writes_nothing(spark, s3):
    bucket, out_bucket = s3.new_bucket("in"), s3.new_bucket("out")
    upload_case(s3, bucket, case("basic_int"), gz=False)
    with pytest.raises(IOError, match=rf"s3a://{bucket}/basic_int/absent.tsv cannot be read: "
                                      r"java.io.FileNotFoundException"):
        mj.merge(spark, f"s3a://{bucket}/basic_int/x.tsv", f"s3a://{bucket}/basic_int/absent.tsv",
                 f"s3a://{out_bucket}/parts", binary=BIN)
    assert keys(s3, out_bucket) == []


# --- cloudmerge merge --engine spark with S3 URIs ------------------------------------


def cm(s3, *args, master="local[2]", **env):
    return subprocess.run([BIN, "merge", "--engine", "spark", "--master", master, *map(str, args)],
                          capture_output=True, env=s3.env(**env), timeout=600)


def test_engine_spark_reads_and_writes_s3(s3, jars, oracle, tmp_path):
    """One file (the default) from an s3:// plain x and a .gz y; the log holds no credential."""
    bucket, out_bucket = s3.new_bucket("in"), s3.new_bucket("out")
    c = case("int_vs_float_keys")
    s3.client.put_object(Bucket=bucket, Key="x.tsv", Body=(c / "x.tsv").read_bytes())
    s3.client.put_object(Bucket=bucket, Key="y.tsv.gz", Body=gzip.compress((c / "y.tsv").read_bytes()))
    p = cm(s3, f"s3://{bucket}/x.tsv", f"s3://{bucket}/y.tsv.gz", "-o", f"s3://{out_bucket}/merged.tsv")
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0, err[-3000:]
    assert keys(s3, out_bucket) == ["merged.tsv"]
    (tmp_path / "merged.tsv").write_bytes(get(s3, out_bucket, "merged.tsv"))
    assert oracle_agrees(oracle, c / "expected.tsv", tmp_path / "merged.tsv")
    assert s3.secret_access_key not in err


def test_engine_spark_writes_s3a_part_files(s3, jars, oracle, tmp_path):
    bucket, out_bucket = s3.new_bucket("in"), s3.new_bucket("out")
    c = case("many_to_many")
    x, y = upload_case(s3, bucket, c, gz=False)
    p = cm(s3, "--spark-parts", "--any-order", f"s3a://{bucket}/{x}", f"s3a://{bucket}/{y}", "-o",
           f"s3a://{out_bucket}/merged_parts")
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-3000:]
    (tmp_path / "any.tsv").write_bytes(parts_text(s3, out_bucket, "merged_parts"))
    assert oracle_agrees(oracle, c / "expected.tsv", tmp_path / "any.tsv", any_order=True)


def test_engine_spark_missing_input_object_is_exit_4_and_no_output(s3, jars):
    bucket, out_bucket = s3.new_bucket("in"), s3.new_bucket("out")
    upload_case(s3, bucket, case("basic_int"), gz=False)
    p = cm(s3, "--spark-parts", f"s3://{bucket}/basic_int/x.tsv", f"s3://{bucket}/basic_int/nope.tsv", "-o",
           f"s3://{out_bucket}/parts")
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 4, err[-3000:]
    assert f"Error [cloudmerge merge]: s3a://{bucket}/basic_int/nope.tsv cannot be read: " \
           f"java.io.FileNotFoundException" in err, err[-3000:]
    assert keys(s3, out_bucket) == []  # no _SUCCESS, no parts, no temporary


def fake_spark_submit(tmp_path):
    """A spark-submit that records its argv (one per line) and the AWS variable names it got."""
    script = tmp_path / "spark-submit"
    script.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$0.argv"\nenv | grep ^AWS_ | cut -d= -f1 | sort > "$0.env"\n')
    script.chmod(0o755)
    return script


def test_engine_spark_s3_classpath_and_no_credentials_in_argv(s3, jars, tmp_path):
    """The spark-submit command line: the S3A jars from .tools/jars (driver classpath on a
    local master; on the driver's classpath and --jars elsewhere), the endpoint when given, no secret; the credentials
    reach it through the environment. Local paths get no jars."""
    submit = fake_spark_submit(tmp_path)

    def argv(*args, master="local[2]"):
        p = cm(s3, *args, master=master, CLOUDMERGE_SPARK_SUBMIT=submit)
        assert p.returncode == 0, p.stderr.decode()
        return (tmp_path / "spark-submit.argv").read_text().splitlines()

    a = argv("s3://in/x.tsv", "s3a://in/y.tsv", "-o", "s3://out/m.tsv")
    assert a[a.index("--driver-class-path") + 1] == ":".join(jars) and "--jars" not in a
    assert "--s3-endpoint-url" not in a  # the job reads AWS_ENDPOINT_URL from its environment
    assert not any(s3.secret_access_key in x or s3.access_key_id in x for x in a)
    assert (tmp_path / "spark-submit.env").read_text().split() == sorted(
        k for k in s3.env() if k.startswith("AWS_"))
    a = argv("s3://in/x.tsv", "s3://in/y.tsv", "-o", tmp_path / "m.tsv", master="spark://127.0.0.1:7077")
    assert a[a.index("--jars") + 1] == ",".join(jars) and a[a.index("--driver-class-path") + 1] == ":".join(jars)
    a = argv(tmp_path / "x.tsv", tmp_path / "y.tsv", "-o", tmp_path / "m.tsv")
    assert "--driver-class-path" not in a and "--jars" not in a
    a = argv("--spark-conf", "spark.jars.packages=org.apache.hadoop:hadoop-aws:3.3.4", "s3://in/x.tsv",
             "s3://in/y.tsv", "-o", tmp_path / "m.tsv")
    assert "--driver-class-path" not in a and "spark.jars.packages=org.apache.hadoop:hadoop-aws:3.3.4" in a


def test_spark_submit_direct_with_endpoint_argument(s3, jars, oracle, tmp_path):
    """spark-submit merge_job.py as docs/spark.md shows it: the jars on the driver
    classpath, the endpoint as --s3-endpoint-url (over AWS_ENDPOINT_URL), the
    statistics written to S3 too."""
    bucket, out_bucket = s3.new_bucket("in"), s3.new_bucket("out")
    c = case("negative_and_exponent")
    x, y = upload_case(s3, bucket, c, gz=False)
    # The argument wins over the environment; were it ignored, S3A would knock on a closed loopback port.
    env = s3.env(AWS_ENDPOINT_URL="http://127.0.0.1:9")
    env["PYSPARK_PYTHON"] = str(ROOT / ".venv" / "bin" / "python")  # as cloudmerge sets it: the venv with pyspark
    p = subprocess.run([str(ROOT / ".venv" / "bin" / "spark-submit"), "--master", "local[2]",
                        "--driver-class-path", ":".join(jars), str(ROOT / "spark" / "merge_job.py"),
                        f"s3a://{bucket}/{x}", f"s3a://{bucket}/{y}", "-o", f"s3a://{out_bucket}/m.tsv",
                        "--ordered", "--single-file", "--stats-file", f"s3a://{out_bucket}/stats.json",
                        "--s3-endpoint-url", s3.endpoint_url], capture_output=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-3000:]
    (tmp_path / "m.tsv").write_bytes(get(s3, out_bucket, "m.tsv"))
    assert oracle_agrees(oracle, c / "expected.tsv", tmp_path / "m.tsv")
    import json
    stats = json.loads(get(s3, out_bucket, "stats.json"))
    assert stats["output_rows"] == len((c / "expected.tsv").read_bytes().splitlines()) - 1


def test_engine_spark_without_the_jars_says_how_to_get_them(s3, tmp_path):
    p = cm(s3, "s3://in/x.tsv", "s3://in/y.tsv", "-o", tmp_path / "out.tsv",
           CLOUDMERGE_SPARK_JARS=str(tmp_path / "hadoop-aws-3.3.4.jar"))
    err = p.stderr.decode()
    assert p.returncode == 2, err
    assert "CLOUDMERGE_SPARK_JARS names" in err and "does not exist" in err
    assert not (tmp_path / "out.tsv").exists()



def test_engine_spark_on_the_standalone_cluster_reads_s3a_objects(s3, jars, oracle, tmp_path):
    """The same job on a master and two worker JVMs (spark_standalone.py): the executors' native
    tasks read the s3a:// objects (plain x, gzip y) from moto and the result is one object."""
    from spark_standalone import StandaloneCluster

    bucket, out_bucket = s3.new_bucket("in"), s3.new_bucket("out")
    c = case("many_to_many")
    s3.client.put_object(Bucket=bucket, Key="x.tsv", Body=(c / "x.tsv").read_bytes())
    s3.client.put_object(Bucket=bucket, Key="y.tsv.gz", Body=gzip.compress((c / "y.tsv").read_bytes()))
    # The workers hold the credentials and endpoint (as an instance role and the cluster's
    # configuration would on EMR): spark-submit forwards no secret to the executors.
    cluster = StandaloneCluster(tmp_path / "standalone", workers=2, cores=1, memory="1g", env=s3.env()).start()
    try:
        p = cm(s3, f"s3a://{bucket}/x.tsv", f"s3a://{bucket}/y.tsv.gz", "-o", f"s3a://{out_bucket}/merged.tsv",
               master=cluster.master)
    finally:
        cluster.stop()
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0, err[-3000:]
    assert keys(s3, out_bucket) == ["merged.tsv"]
    (tmp_path / "merged.tsv").write_bytes(get(s3, out_bucket, "merged.tsv"))
    assert oracle_agrees(oracle, c / "expected.tsv", tmp_path / "merged.tsv")
