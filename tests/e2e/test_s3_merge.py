"""cloudmerge merge with S3 inputs and outputs, against a real S3-compatible
server (moto, started by tests/e2e/s3_server.py on 127.0.0.1 with signature
checking on). Inputs are uploaded by clients no one here wrote (boto3 and the
AWS CLI); results are read back with boto3 and checked with the shared oracle.
"""
import gzip
import json
import os
import pathlib
import subprocess

import pytest

from conftest import BIN, CASES, oracle_agrees
from fault_proxy import FaultProxy
from s3_server import s3  # noqa: F401  (fixture)

ROOT = pathlib.Path(__file__).resolve().parents[2]
AWS_CLI = str(ROOT / ".venv" / "bin" / "aws")


def merge(s3, *args, endpoint=None, check=True, extra_env=None):
    env = s3.env()
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    env.update(extra_env or {})
    proc = subprocess.run([BIN, "merge", *map(str, args)], capture_output=True, env=env, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"cloudmerge failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
    return proc


def aws_cp(s3, src, dst):
    """Upload with the AWS CLI (a client no one here wrote)."""
    subprocess.run([AWS_CLI, "s3", "cp", "--only-show-errors", str(src), dst], check=True, env=s3.env(), timeout=120)


def download(s3, bucket, key, dest):
    s3.client.download_file(bucket, key, str(dest))
    return dest


def no_uploads_left(s3, bucket):
    return not s3.client.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_conformance_corpus_through_s3(s3, oracle, tmp_path):
    """Every shared case: inputs uploaded with boto3, result written to S3, read back, oracle agrees."""
    inb, outb = s3.new_bucket(), s3.new_bucket()
    failures = []
    for case in CASES:
        s3.client.upload_file(str(case / "x.tsv"), inb, f"{case.name}/x.tsv")
        s3.client.upload_file(str(case / "y.tsv"), inb, f"{case.name}/y.tsv")
        merge(s3, f"s3://{inb}/{case.name}/x.tsv", f"s3://{inb}/{case.name}/y.tsv", "-o",
              f"s3://{outb}/{case.name}/merged.tsv")
        got = download(s3, outb, f"{case.name}/merged.tsv", tmp_path / f"{case.name}.tsv")
        if not oracle_agrees(oracle, case / "expected.tsv", got):
            failures.append(case.name)
    assert not failures, f"cases that differ through S3: {failures}"
    assert len(CASES) >= 50


def test_s3_output_is_byte_identical_to_local(s3, tmp_path):
    case = next(c for c in CASES if c.name == "quoted_fields")
    inb = s3.new_bucket()
    aws_cp(s3, case / "x.tsv", f"s3://{inb}/x.tsv")
    aws_cp(s3, case / "y.tsv", f"s3://{inb}/y.tsv")
    merge(s3, case / "x.tsv", case / "y.tsv", "-o", tmp_path / "local.tsv")
    merge(s3, f"s3://{inb}/x.tsv", f"s3://{inb}/y.tsv", "-o", f"s3://{inb}/out/merged.tsv")
    got = download(s3, inb, "out/merged.tsv", tmp_path / "s3.tsv")
    assert got.read_bytes() == (tmp_path / "local.tsv").read_bytes()


def big_pair(tmp_path, rows):
    """x and y with `rows` rows each, every x row matching one y row, about 30 bytes a row."""
    x = tmp_path / "big_x.tsv"
    y = tmp_path / "big_y.tsv"
    with open(x, "w") as fx, open(y, "w") as fy:
        fx.write("ID\tvalue\n")
        fy.write("ID\tvalue\n")
        for i in range(rows):
            fx.write(f"{(i * 7919) % rows}\tx{i:09d}\n")
            fy.write(f"{i}\ty-value-{i:09d}\n")
    return x, y


def test_multipart_output_and_parallel_ranged_input(s3, tmp_path):
    """A result of several parts (5 MiB parts) and inputs read in many 8 MiB... ranges: same bytes as local."""
    x, y = big_pair(tmp_path, 400_000)
    bucket = s3.new_bucket()
    aws_cp(s3, x, f"s3://{bucket}/in/x.tsv")
    aws_cp(s3, y, f"s3://{bucket}/in/y.tsv")
    merge(s3, x, y, "-o", tmp_path / "local.tsv")
    merge(s3, f"s3://{bucket}/in/x.tsv", f"s3://{bucket}/in/y.tsv", "-o", f"s3://{bucket}/out/merged.tsv",
          "--s3-part-size", "5", "--s3-parallel", "3")
    head = s3.client.head_object(Bucket=bucket, Key="out/merged.tsv")
    local = (tmp_path / "local.tsv").read_bytes()
    assert len(local) > 10 * 2**20, "the result must need several parts"
    assert head["ContentLength"] == len(local)
    assert head["ETag"].strip('"').endswith(f"-{(len(local) + 5 * 2**20 - 1) // (5 * 2**20)}"), head["ETag"]
    assert download(s3, bucket, "out/merged.tsv", tmp_path / "s3.tsv").read_bytes() == local
    assert no_uploads_left(s3, bucket)


def test_gzip_and_zstd_inputs_from_s3(s3, oracle, tmp_path):
    case = next(c for c in CASES if c.name == "many_to_many")
    bucket = s3.new_bucket()
    gz = tmp_path / "x.tsv.gz"
    gz.write_bytes(gzip.compress((case / "x.tsv").read_bytes()))
    aws_cp(s3, gz, f"s3://{bucket}/x.tsv.gz")
    zst = tmp_path / "y.tsv.zst"
    subprocess.run(["zstd", "-q", "-f", str(case / "y.tsv"), "-o", str(zst)], check=True)
    aws_cp(s3, zst, f"s3://{bucket}/y.tsv.zst")
    merge(s3, f"s3://{bucket}/x.tsv.gz", f"s3://{bucket}/y.tsv.zst", "-o", f"s3://{bucket}/merged.tsv")
    got = download(s3, bucket, "merged.tsv", tmp_path / "merged.tsv")
    assert oracle_agrees(oracle, case / "expected.tsv", got)
    # The same compressed files locally.
    merge(s3, gz, zst, "-o", tmp_path / "local.tsv")
    assert (tmp_path / "local.tsv").read_bytes() == got.read_bytes()


def test_bad_input_leaves_no_object_and_no_upload(s3, tmp_path):
    bucket = s3.new_bucket()
    # Enough good rows for several output parts before the bad row is reached.
    x, y = big_pair(tmp_path, 300_000)
    with open(x, "a") as f:
        f.write("1\ttoo\tmany\n")
    aws_cp(s3, x, f"s3://{bucket}/x.tsv")
    aws_cp(s3, y, f"s3://{bucket}/y.tsv")
    proc = merge(s3, f"s3://{bucket}/x.tsv", f"s3://{bucket}/y.tsv", "-o", f"s3://{bucket}/out/merged.tsv",
                 "--s3-part-size", "5", check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 3, err
    assert f"s3://{bucket}/x.tsv, line 300002" in err, err
    listed = s3.client.list_objects_v2(Bucket=bucket, Prefix="out/")
    assert listed.get("KeyCount", 0) == 0, listed
    assert no_uploads_left(s3, bucket)


def test_missing_key_and_missing_bucket_are_named(s3, tmp_path):
    bucket = s3.new_bucket()
    s3.client.put_object(Bucket=bucket, Key="y.tsv", Body=b"ID\tvalue\n1\ta\n")
    proc = merge(s3, f"s3://{bucket}/nope.tsv", f"s3://{bucket}/y.tsv", "-o", tmp_path / "o.tsv", check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 4 and "nope.tsv" in err and "key" in err.lower(), err
    proc = merge(s3, "s3://no-such-bucket-cm/x.tsv", f"s3://{bucket}/y.tsv", "-o", tmp_path / "o.tsv", check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 4 and "no-such-bucket-cm" in err and "bucket" in err.lower(), err
    assert not (tmp_path / "o.tsv").exists()


def test_wrong_secret_names_the_key_not_the_secret(s3, tmp_path):
    bucket = s3.new_bucket()
    s3.client.put_object(Bucket=bucket, Key="x.tsv", Body=b"ID\tvalue\n1\ta\n")
    secret = "THIS-IS-A-WRONG-SECRET-0123456789abcdef"
    token = "SESSION-TOKEN-SECRET-xyz"
    for extra, says in (({"AWS_SECRET_ACCESS_KEY": secret}, "rejected the request signature"),
                        ({"AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": token}, "session token was refused")):
        proc = merge(s3, f"s3://{bucket}/x.tsv", f"s3://{bucket}/x.tsv", "-o", tmp_path / "o.tsv", check=False,
                     extra_env=extra)
        err = proc.stderr.decode()
        assert proc.returncode == 4, err
        assert says in err, err
        assert f"...{s3.access_key_id[-4:]} from environment variables" in err, err
        assert secret not in err and token not in err, err
    # A key that exists but may not read: which action was denied, on what.
    key_id, key_secret = s3.new_access_key(policy={"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]})
    proc = merge(s3, f"s3://{bucket}/x.tsv", f"s3://{bucket}/x.tsv", "-o", tmp_path / "o.tsv", check=False,
                 extra_env={"AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": key_secret})
    err = proc.stderr.decode()
    assert proc.returncode == 4 and "403" in err and "s3:GetObject" in err and key_id[-4:] in err, err
    assert key_secret not in err


def test_faults_give_identical_output_or_clean_failure(s3, tmp_path):
    """Through a proxy that answers 503/500, resets connections and truncates
    bodies at random: each result is byte-identical to the fault-free one, or the
    run fails cleanly with no object written and no upload left."""
    x, y = big_pair(tmp_path, 200_000)
    bucket = s3.new_bucket()
    aws_cp(s3, x, f"s3://{bucket}/x.tsv")
    aws_cp(s3, y, f"s3://{bucket}/y.tsv")
    merge(s3, x, y, "-o", tmp_path / "local.tsv")
    injected, succeeded = 0, 0
    for seed in range(1, 6):
        key = f"out/merged-{seed}.tsv"
        with FaultProxy(s3.endpoint_url, rate=0.35, seed=seed) as proxy:
            proc = merge(s3, f"s3://{bucket}/x.tsv", f"s3://{bucket}/y.tsv", "-o", f"s3://{bucket}/{key}",
                         "--s3-part-size", "5", "--s3-max-attempts", "10", endpoint=proxy.url, check=False)
            injected += sum(proxy.injected.values())
        if proc.returncode == 0:
            succeeded += 1
            got = download(s3, bucket, key, tmp_path / "s3.tsv")
            assert got.read_bytes() == (tmp_path / "local.tsv").read_bytes(), f"seed {seed}"
        else:
            assert s3.client.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount", 0) == 0
            assert "Error [cloudmerge merge]" in proc.stderr.decode()
        assert no_uploads_left(s3, bucket), f"seed {seed}"
    assert injected >= 5, f"the proxy injected only {injected} faults"
    assert succeeded >= 3, "retries should carry most runs through"


def test_persistent_faults_fail_cleanly(s3, tmp_path):
    """Every request fails: bounded retries, a clear error, nothing written."""
    bucket = s3.new_bucket()
    s3.client.put_object(Bucket=bucket, Key="x.tsv", Body=b"ID\tvalue\n1\ta\n")
    with FaultProxy(s3.endpoint_url, rate=1.0, seed=0, kinds=("503",)) as proxy:
        proc = merge(s3, f"s3://{bucket}/x.tsv", f"s3://{bucket}/x.tsv", "-o", f"s3://{bucket}/o.tsv",
                     "--s3-max-attempts", "3", endpoint=proxy.url, check=False)
        attempts = proxy.injected["503"]
    err = proc.stderr.decode()
    assert proc.returncode == 4, err
    assert "503" in err or "SlowDown" in err, err
    assert attempts == 3, f"expected exactly 3 attempts of the first request, saw {attempts}"
    assert s3.client.list_objects_v2(Bucket=bucket, Prefix="o.tsv").get("KeyCount", 0) == 0


def test_damaged_transfer_is_detected_by_the_etag(s3, tmp_path):
    """A body altered in transit (same length) is caught by the MD5 ETag: fetched
    again once; altered every time, a clear error and nothing written."""
    case = next(c for c in CASES if c.name == "random_1_005")
    bucket = s3.new_bucket()
    s3.client.upload_file(str(case / "x.tsv"), bucket, "x.tsv")
    s3.client.upload_file(str(case / "y.tsv"), bucket, "y.tsv")
    merge(s3, case / "x.tsv", case / "y.tsv", "-o", tmp_path / "local.tsv")
    with FaultProxy(s3.endpoint_url, rate=1.0, kinds=("corrupt",), methods=("GET",), max_faults=1) as proxy:
        merge(s3, f"s3://{bucket}/x.tsv", f"s3://{bucket}/y.tsv", "-o", tmp_path / "once.tsv", endpoint=proxy.url)
        assert proxy.injected["corrupt"] == 1
    assert (tmp_path / "once.tsv").read_bytes() == (tmp_path / "local.tsv").read_bytes()
    with FaultProxy(s3.endpoint_url, rate=1.0, kinds=("corrupt",), methods=("GET",)) as proxy:
        proc = merge(s3, f"s3://{bucket}/x.tsv", f"s3://{bucket}/y.tsv", "-o", tmp_path / "never.tsv",
                     endpoint=proxy.url, check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 4 and "do not match the object's checksum" in err, err
    assert not (tmp_path / "never.tsv").exists()


@pytest.mark.rss_bound
def test_objects_are_streamed_never_held_whole(s3, tmp_path):
    """Objects bigger than --memory-limit, plain and gzip, read in segments out of core: the same
    bytes as from local files, and the process never holds an input whole (its peak RSS stays
    under the inputs' size: the limit, the in-flight ranged GETs, and the binary)."""
    x, y = big_pair(tmp_path, 3_000_000)
    bucket = s3.new_bucket()
    s3.client.upload_file(str(x), bucket, "x.tsv")
    gz = tmp_path / "y.tsv.gz"
    gz.write_bytes(gzip.compress(y.read_bytes(), compresslevel=1))
    s3.client.upload_file(str(y), bucket, "y.tsv")
    s3.client.upload_file(str(gz), bucket, "y.tsv.gz")
    merge(s3, x, y, "-o", tmp_path / "local.tsv")
    local = (tmp_path / "local.tsv").read_bytes()
    limit = 32 << 20
    inputs = x.stat().st_size + y.stat().st_size
    for y_key in ("y.tsv", "y.tsv.gz"):
        report = tmp_path / "report.json"
        merge(s3, f"s3://{bucket}/x.tsv", f"s3://{bucket}/{y_key}", "-o", tmp_path / "s3.tsv",
              "--memory-limit", "32MiB", "--temp-dir", tmp_path, "--s3-parallel", "2", "--s3-range-size", "1",
              "--report", report,
              "--progress", "none")
        assert (tmp_path / "s3.tsv").read_bytes() == local, y_key
        r = json.loads(report.read_text())
        assert r["out_of_core"]["used"] is True and r["y"]["bytes"] == y.stat().st_size
        # Per input 3 ranges of 1 MiB in flight and 2 segments of 2 MiB; ~40 MiB for the binary,
        # the allocator's slack and the out-of-core join's constant overhead (35 MiB with mapped files).
        peak = r["memory"]["peak_rss_bytes"]
        assert peak < limit + 2 * (3 + 4) * (1 << 20) + (40 << 20) < inputs, (y_key, peak >> 20)


def test_object_replaced_mid_read_fails_cleanly(s3, tmp_path):
    """x is overwritten (new ETag) after a few of its ranged GETs: the streamed read is pinned to the
    ETag HeadObject saw, so the merge fails ("changed while it was being read"), writes nothing, leaves
    no upload, instead of joining a mix of two versions."""
    x, y = big_pair(tmp_path, 300_000)
    bucket = s3.new_bucket()
    s3.client.upload_file(str(x), bucket, "x.tsv")
    s3.client.upload_file(str(y), bucket, "y.tsv")
    gets = []

    def replace_after_third_get(method, path, headers):
        if method == "GET" and path.startswith(f"/{bucket}/x.tsv") and headers.get("Range"):
            gets.append(path)
            if len(gets) == 3:
                s3.client.put_object(Bucket=bucket, Key="x.tsv", Body=b"ID\tvalue\n1\tnew\n")

    with FaultProxy(s3.endpoint_url, rate=0.0) as proxy:
        proxy.on_request = replace_after_third_get
        proc = merge(s3, f"s3://{bucket}/x.tsv", f"s3://{bucket}/y.tsv", "-o", f"s3://{bucket}/out/m.tsv",
                     "--s3-range-size", "0.0625", "--s3-parallel", "1", "--segment-kib", "64",
                     endpoint=proxy.url, check=False)
    err = proc.stderr.decode()
    assert len(gets) >= 3
    assert proc.returncode == 4 and "changed while it was being read" in err and "x.tsv" in err, err
    assert "Contents" not in s3.client.list_objects_v2(Bucket=bucket, Prefix="out/")
    assert no_uploads_left(s3, bucket)


@pytest.mark.parametrize("algorithm", ["SHA256", "CRC32", "SHA1"])
def test_damaged_transfer_is_detected_by_the_object_checksum(s3, tmp_path, algorithm):
    """An object uploaded with an x-amz-checksum-* (boto3 ChecksumAlgorithm): the streamed bytes are
    checked against it at their end; a body altered in transit on every GET is a clear error naming
    the algorithm, exit 4, nothing written. Undamaged, the merge agrees with the local one."""
    case = next(c for c in CASES if c.name == "random_1_005")
    bucket = s3.new_bucket()
    for side in ("x", "y"):
        s3.client.put_object(Bucket=bucket, Key=f"{side}.tsv", Body=(case / f"{side}.tsv").read_bytes(),
                             ChecksumAlgorithm=algorithm)
    head = s3.client.head_object(Bucket=bucket, Key="x.tsv", ChecksumMode="ENABLED")
    assert head.get(f"Checksum{algorithm}"), f"the server keeps no {algorithm} checksum: {head}"
    merge(s3, case / "x.tsv", case / "y.tsv", "-o", tmp_path / "local.tsv")
    merge(s3, f"s3://{bucket}/x.tsv", f"s3://{bucket}/y.tsv", "-o", tmp_path / "s3.tsv")
    assert (tmp_path / "s3.tsv").read_bytes() == (tmp_path / "local.tsv").read_bytes()
    with FaultProxy(s3.endpoint_url, rate=1.0, kinds=("corrupt",), methods=("GET",)) as proxy:
        proc = merge(s3, f"s3://{bucket}/x.tsv", f"s3://{bucket}/y.tsv", "-o", tmp_path / "never.tsv",
                     endpoint=proxy.url, check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 4 and f"checksum ({algorithm.lower()} " in err, err
    assert not (tmp_path / "never.tsv").exists()
