"""Secrets never reach output: merges and the queue pipeline against moto
(tests/e2e/s3_server.py, signatures checked) with known fake secrets in
AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN / the credentials file / a container
credentials endpoint, under failing conditions (wrong secret, missing bucket,
malformed credentials) and a successful pipeline run whose emails carry
presigned links. All stdout, stderr and JSON log lines are searched for every
secret (and for presigned-URL signatures): none may appear.
Runtime: ~30 s (one moto server for the module)."""
import http.server
import json
import re
import subprocess
import threading

import pytest

from conftest import BIN, CASES
from s3_server import s3  # noqa: F401  (fixture)
from test_serve_queue import pipeline, serve  # noqa: F401  (fixture and helper)

CASE = {c.name: c for c in CASES}
FAKE_SECRET = "FAKEsecretKEY0123456789abcdefghijklmnopQR"
FAKE_TOKEN = "FAKEsessionTOKEN//IQoJb3JpZ2luX2VjEXAMPLE+tokenTAIL=="
FAKE_CONTAINER_AUTH = "FAKEcontainerAUTHtoken-5e7c"
SIGNATURE = re.compile(r"X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|Signature=[0-9a-f]{16}", re.I)


def assert_no_secret(text, *secrets):
    for secret in secrets:
        for probe in {secret, secret[:16], secret[-16:]}:  # also a cut-off secret
            assert probe not in text, f"a secret ({probe[:6]}...) appears in the output:\n{text[-3000:]}"
    assert not SIGNATURE.search(text), f"a request signature appears in the output:\n{text[-3000:]}"


def run(cmd, env, timeout=120):
    proc = subprocess.run(cmd, capture_output=True, env=env, timeout=timeout)
    return proc, (proc.stdout + proc.stderr).decode(errors="replace")


def uploaded_case(s3):
    inb = s3.new_bucket()
    s3.client.upload_file(str(CASE["basic_int"] / "x.tsv"), inb, "j/x.tsv")
    s3.client.upload_file(str(CASE["basic_int"] / "y.tsv"), inb, "j/y.tsv")
    return inb


def test_wrong_secret_and_session_token(s3, tmp_path):
    inb = uploaded_case(s3)
    env = s3.env(AWS_SECRET_ACCESS_KEY=FAKE_SECRET, AWS_SESSION_TOKEN=FAKE_TOKEN)
    for cmd in ([BIN, "merge", f"s3://{inb}/j/x.tsv", f"s3://{inb}/j/y.tsv", "-o", str(tmp_path / "o.tsv")],
                [BIN, "merge", "--stats", str(CASE["basic_int"] / "x.tsv"), str(CASE["basic_int"] / "y.tsv"),
                 "-o", f"s3://{inb}/out/merged.tsv"],
                [BIN, "cp", f"s3://{inb}/j/x.tsv", str(tmp_path / "x.tsv")]):
        proc, out = run(cmd, env)
        assert proc.returncode != 0, out
        assert "Error" in out, out  # it failed, and said so
        assert_no_secret(out, FAKE_SECRET, FAKE_TOKEN, s3.secret_access_key)


def test_missing_bucket_and_key_with_real_secret(s3, tmp_path):
    inb = uploaded_case(s3)
    env = s3.env(AWS_SESSION_TOKEN=FAKE_TOKEN)
    for cmd in ([BIN, "merge", "s3://no-such-bucket-cm/x.tsv", "s3://no-such-bucket-cm/y.tsv", "-o", "-"],
                [BIN, "merge", f"s3://{inb}/j/missing.tsv", f"s3://{inb}/j/y.tsv", "-o", "-"],
                [BIN, "merge", f"s3://{inb}/j/x.tsv", f"s3://{inb}/j/y.tsv", "-o", "s3://no-such-bucket-cm/o.tsv"]):
        proc, out = run(cmd, env)
        assert proc.returncode != 0, out
        assert_no_secret(out, FAKE_TOKEN, s3.secret_access_key)


def test_malformed_credentials_file_is_not_echoed(s3, tmp_path):
    env = s3.env()
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(k, None)
    creds = tmp_path / "credentials"
    creds.write_text("[default]\naws_access_key_id = AKIDFAKE\naws_secret_access_key " + FAKE_SECRET + "\n"
                     f"aws_session_token={FAKE_TOKEN}\n[broken\nsecret={FAKE_SECRET}\n")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(creds)
    proc, out = run([BIN, "merge", "s3://b/x.tsv", "s3://b/y.tsv", "-o", "-"], env)
    assert proc.returncode != 0, out
    assert_no_secret(out, FAKE_SECRET, FAKE_TOKEN)


class FakeCredentialsEndpoint:
    """A container credentials endpoint answering with a document that leaks a
    secret but is not valid (cut off mid-way, or Code != Success)."""

    def __init__(self, body):
        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/creds"


@pytest.mark.parametrize("body", [
    '{"AccessKeyId":"AKIDFAKE","SecretAccessKey":"' + FAKE_SECRET + '","Token":"' + FAKE_TOKEN,
    '{"Code":"Failure","AccessKeyId":"AKIDFAKE","SecretAccessKey":"' + FAKE_SECRET + '","Token":"' + FAKE_TOKEN + '"}',
    '{"AccessKeyId":"AKIDFAKE","SecretAccessKey":"' + FAKE_SECRET + '","Token":"' + FAKE_TOKEN
    + '","Expiration":"tomorrow"}',
    '{"AccessKeyId":"AKIDFAKE","SecretAccessKey":["' + FAKE_SECRET + '"],"Token":"' + FAKE_TOKEN + '"}',
])
def test_container_credentials_errors_do_not_echo_the_document(s3, body):
    endpoint = FakeCredentialsEndpoint(body)
    env = s3.env()
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(k, None)
    env.update(AWS_CONTAINER_CREDENTIALS_FULL_URI=endpoint.url, AWS_CONTAINER_AUTHORIZATION_TOKEN=FAKE_CONTAINER_AUTH)
    try:
        proc, out = run([BIN, "merge", "s3://b/x.tsv", "s3://b/y.tsv", "-o", "-"], env)
    finally:
        endpoint.server.shutdown()
    assert proc.returncode != 0, out
    assert_no_secret(out, FAKE_SECRET, FAKE_TOKEN, FAKE_CONTAINER_AUTH)


def test_queue_pipeline_logs_hold_no_secret_or_presigned_link(s3, pipeline, smtp):
    """A real run (result, emails with presigned links) and a run with a wrong
    secret: the JSON logs carry neither the secrets nor any signed URL."""
    p = pipeline
    s3.client.upload_file(str(CASE["basic_int"] / "x.tsv"), p.inb, "red1/x_list.txt")
    s3.client.upload_file(str(CASE["basic_int"] / "y.tsv"), p.inb, "red1/y_list.txt")
    proc, log = serve(s3, p, smtp)
    text = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    assert any(e.get("event", "").startswith("job.") for e in log), text[-3000:]
    assert len(smtp.messages) >= 1, "the run sent its emails (which may carry presigned links: by design)"
    assert_no_secret(text, s3.secret_access_key)

    s3.client.upload_file(str(CASE["basic_int"] / "x.tsv"), p.inb, "red2/x_list.txt")
    cmd = [BIN, "serve", "--queue-url", p.queue, "--input", f"s3://{p.inb}/", "--output", f"s3://{p.outb}/",
           "--wait-seconds", "1", "--idle-exit-seconds", "3"]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=60,
                              env=s3.env(AWS_SECRET_ACCESS_KEY=FAKE_SECRET, AWS_SESSION_TOKEN=FAKE_TOKEN))
        text = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    except subprocess.TimeoutExpired as e:  # still retrying: what it logged so far counts
        text = (e.stdout or b"").decode(errors="replace") + (e.stderr or b"").decode(errors="replace")
    assert "rror" in text, text[-3000:]  # the failure was reported
    assert_no_secret(text, FAKE_SECRET, FAKE_TOKEN, s3.secret_access_key)
