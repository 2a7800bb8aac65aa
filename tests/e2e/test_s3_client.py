"""The C++ S3 client (GoogleTest binary named by S3_INTEGRATION_TESTS) against
a real moto server with signature checking on, and boto3's view of what the
C++ side wrote.

Run: S3_INTEGRATION_TESTS=build/tests/s3_integration_tests .venv/bin/python -m pytest -q tests/e2e/test_s3_client.py
"""
import hashlib
import os
import pathlib
import subprocess

import pytest

from s3_server import s3  # noqa: F401  (fixture)

BINARY = os.environ.get("S3_INTEGRATION_TESTS")
PY_KEY = "from-python/data with spaces.bin"
CPP_KEY = "from-cpp/roundtrip.bin"
LIST_ONLY = {"Version": "2012-10-17",
             "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}


@pytest.fixture(scope="module")
def suite(s3):  # noqa: F811
    """Runs the whole GoogleTest binary once; the tests below look at its result."""
    if not BINARY:
        pytest.fail("set S3_INTEGRATION_TESTS to the s3_integration_tests binary")
    assert pathlib.Path(BINARY).is_file(), BINARY
    bucket = s3.new_bucket("cpp")
    data = os.urandom(7 * 1024 * 1024 + 4321)
    s3.client.put_object(Bucket=bucket, Key=PY_KEY, Body=data)
    limited_id, limited_secret = s3.new_access_key(LIST_ONLY)
    env = s3.env(
        CLOUDMERGE_TEST_S3_ENDPOINT=s3.endpoint_url,
        CLOUDMERGE_TEST_S3_BUCKET=bucket,
        CLOUDMERGE_TEST_S3_PY_KEY=PY_KEY,
        CLOUDMERGE_TEST_S3_PY_SHA256=hashlib.sha256(data).hexdigest(),
        CLOUDMERGE_TEST_S3_CPP_KEY=CPP_KEY,
        CLOUDMERGE_TEST_S3_LIMITED_KEY_ID=limited_id,
        CLOUDMERGE_TEST_S3_LIMITED_SECRET=limited_secret,
    )
    proc = subprocess.run([BINARY, "--gtest_brief=0"], env=env, capture_output=True, text=True, timeout=600)
    return {"proc": proc, "bucket": bucket, "data": data, "secret": s3.secret_access_key,
            "limited_secret": limited_secret}


def test_gtest_suite_passes(suite):
    proc = suite["proc"]
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-20000:]
    assert "[  PASSED  ]" in out and "[  FAILED  ]" not in out, out[-5000:]
    assert "[  SKIPPED ]" not in out, "no test may skip itself: " + out[-5000:]


def test_output_never_shows_a_secret(suite):
    out = suite["proc"].stdout + suite["proc"].stderr
    assert suite["secret"] not in out
    assert suite["limited_secret"] not in out


def test_boto3_reads_what_the_cpp_writer_wrote(s3, suite):  # noqa: F811
    got = s3.client.get_object(Bucket=suite["bucket"], Key=CPP_KEY)
    assert got["ContentLength"] == len(suite["data"])
    assert got["Body"].read() == suite["data"]
    # 7 MiB in 5 MiB parts: really a multipart upload, completed.
    assert got["ETag"].strip('"').endswith("-2"), got["ETag"]


def test_no_multipart_upload_is_left_behind(s3, suite):  # noqa: F811
    uploads = s3.client.list_multipart_uploads(Bucket=suite["bucket"]).get("Uploads", [])
    assert uploads == [], [u["Key"] for u in uploads]


def test_aborted_and_failed_writers_left_no_object(s3, suite):  # noqa: F811
    listed = s3.client.list_objects_v2(Bucket=suite["bucket"], Prefix="S3ObjectWriterTest/")
    keys = {o["Key"] for o in listed.get("Contents", [])}
    assert keys, "the writer tests wrote nothing"
    for leaf in ("AbortLeavesNoObjectAndNoUpload/aborted.bin",
                 "DestroyingAnUncommittedWriterAborts/dropped.bin",
                 "APartFailureFailsTheWriterAndAbortsTheUpload/failing.bin"):
        assert f"S3ObjectWriterTest/{leaf}" not in keys


def test_boto3_reads_the_awkward_key_the_cpp_client_listed(s3, suite):  # noqa: F811
    # Keys written by the C++ client with spaces and '+' land under exactly
    # those names (what boto3 lists), not under some re-encoded form.
    listed = s3.client.list_objects_v2(Bucket=suite["bucket"], Prefix="S3ClientTest/ListsAcrossPages/")
    assert sorted(o["Key"] for o in listed["Contents"]) == [
        f"S3ClientTest/ListsAcrossPages/obj {i}" for i in range(5)]
    body = s3.client.get_object(Bucket=suite["bucket"], Key="S3ClientTest/CopyObject/dst file.bin")["Body"].read()
    src = s3.client.get_object(Bucket=suite["bucket"], Key="S3ClientTest/CopyObject/src file.bin")["Body"].read()
    assert body == src and len(body) == 70000
