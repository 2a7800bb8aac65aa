"""A real S3-compatible server for the end-to-end suites: moto in server mode,
in its own process on 127.0.0.1 (a free port), with SigV4 signatures and IAM
permissions checked.

Use the session fixture `s3` (import it into a test module or a conftest:
`from s3_server import s3  # noqa: F401`), or `start_s3_server()` as a context
manager outside pytest. The object it gives has:

  endpoint_url, region, access_key_id, secret_access_key
  client            a boto3 S3 client with those credentials
  new_bucket()      creates a fresh, uniquely named bucket and returns its name
  new_access_key()  another IAM identity (e.g. one that may only list) -> (id, secret)
  env(**extra)      the environment for a subprocess that should talk to this
                    server: the process's environment without any AWS_* variable,
                    plus the credentials, AWS_REGION, AWS_ENDPOINT_URL,
                    AWS_EC2_METADATA_DISABLED=true and HOME = an empty directory
                    (so no ~/.aws of the machine leaks in)

How authentication is turned on: moto checks signatures only once it has
handled INITIAL_NO_AUTH_ACTION_COUNT authenticated actions (default: never).
The server starts with checking off, an admin IAM user and its access key are
created through moto's IAM API, and then POST /moto-api/reset-auth with "0"
(what moto's own set_initial_no_auth_action_count does in server mode) makes
every later request need a valid signature from a key moto issued. This does
not depend on counting the setup calls.

Two fixes to moto's checking (moto 5.1, applied in the server process, see
_patch_moto_signature_checks): moto re-derives the signed path and query from
werkzeug's *decoded* URL, so any correctly signed request whose key or query
holds '+', '=', '&', '%', '/' (prefix=a/b) or non-ASCII failed with
SignatureDoesNotMatch, boto3's included; the check here uses the raw request
target instead, i.e. exactly the bytes that were signed, as S3 does. And moto
crashes (500) on a presigned URL while checking is on; here presigned requests
are verified (SigV4 query auth, expiry) against the key's secret.
"""
import contextlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

import pytest

PYTHON = os.environ.get("CLOUDMERGE_PYTHON", sys.executable)
DEFAULT_REGION = "us-east-1"
ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def _boto3_client(service, endpoint_url, region, key_id, secret):
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"}),
    )


class S3Server:
    def __init__(self, region=DEFAULT_REGION):
        self.region = region
        self._workdir = pathlib.Path(tempfile.mkdtemp(prefix="cloudmerge-moto-"))
        self.home = self._workdir / "home"
        self.home.mkdir()
        self._log_path = self._workdir / "moto.log"
        self._proc = None
        self.endpoint_url = None
        self.access_key_id = None
        self.secret_access_key = None
        self.client = None
        self._iam = None

    # --- lifecycle --------------------------------------------------------------

    def start(self):
        from conftest import free_port  # here, not at the top: `--serve` runs this file alone

        for _ in range(3):  # the free port may be taken between probe and bind
            port = free_port()
            if self._launch(port):
                break
        else:
            raise RuntimeError(f"moto server did not start; log:\n{self.log_tail()}")
        self._set_up_identity()
        return self

    # The program the server process runs with "--serve HOST PORT" (a subclass may
    # point it at a file that adds its own patches before calling _serve).
    server_script = pathlib.Path(__file__).resolve()

    def _launch(self, port, timeout=60.0):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)  # checking starts off; see the module doc
        log = open(self._log_path, "ab")
        self._proc = subprocess.Popen(
            [PYTHON, str(self.server_script), "--serve", "127.0.0.1", str(port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        )
        log.close()
        self.endpoint_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=2) as r:
                    if r.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.1)
        self._kill()
        return False

    def _set_up_identity(self):
        # Any key works while checking is off: this one only bootstraps IAM.
        iam = _boto3_client("iam", self.endpoint_url, self.region, "bootstrap", "bootstrap")
        iam.create_user(UserName="cloudmerge-admin")
        iam.put_user_policy(UserName="cloudmerge-admin", PolicyName="all", PolicyDocument=json.dumps(ALLOW_ALL))
        key = iam.create_access_key(UserName="cloudmerge-admin")["AccessKey"]
        self.access_key_id, self.secret_access_key = key["AccessKeyId"], key["SecretAccessKey"]
        # text/plain: a form content type would make the server parse the body away.
        req = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset-auth", data=b"0", method="POST",
                                     headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200, "moto refused to turn on authentication"
        self.client = _boto3_client("s3", self.endpoint_url, self.region, self.access_key_id,
                                    self.secret_access_key)
        self._iam = _boto3_client("iam", self.endpoint_url, self.region, self.access_key_id,
                                  self.secret_access_key)
        self._check_auth_is_on()

    def _check_auth_is_on(self):
        from botocore.exceptions import ClientError

        wrong = _boto3_client("s3", self.endpoint_url, self.region, self.access_key_id, "not-the-secret")
        try:
            wrong.list_buckets()
        except ClientError as e:
            assert e.response["Error"]["Code"] == "SignatureDoesNotMatch", e.response
            return
        raise AssertionError("moto accepted a wrong secret: signature checking is not on")

    def stop(self):
        self._kill()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def _kill(self):
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def log_tail(self, n=4000):
        try:
            return self._log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    # --- helpers for tests ------------------------------------------------------

    def new_bucket(self, prefix="test", region=None):
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        region = region or self.region
        kwargs = {}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        self.client.create_bucket(Bucket=name, **kwargs)
        return name

    def new_access_key(self, policy=None):
        """A new IAM user with `policy` (a policy document dict; default: no
        permissions at all). Returns (access_key_id, secret_access_key)."""
        user = f"user-{uuid.uuid4().hex[:10]}"
        self._iam.create_user(UserName=user)
        if policy is not None:
            self._iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps(policy))
        key = self._iam.create_access_key(UserName=user)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    def env(self, **extra):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ACCESS_KEY_ID=self.access_key_id,
            AWS_SECRET_ACCESS_KEY=self.secret_access_key,
            AWS_REGION=self.region,
            AWS_ENDPOINT_URL=self.endpoint_url,
            AWS_EC2_METADATA_DISABLED="true",
            HOME=str(self.home),
        )
        env.update({k: str(v) for k, v in extra.items()})
        return env


# --- In the server process ---------------------------------------------------------


def _presign_is_valid(raw_target, headers, method, secret):
    """SigV4 query-string authentication, as S3 checks a presigned URL."""
    import datetime
    import hashlib
    import hmac
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(raw_target)
    pairs = [p.partition("=") for p in parts.query.split("&") if p]
    params = {unquote(k): unquote(v) for k, _, v in pairs}
    signature = params.get("X-Amz-Signature", "")
    date = params.get("X-Amz-Date", "")
    scope = params.get("X-Amz-Credential", "").split("/", 1)[-1]
    signed_headers = params.get("X-Amz-SignedHeaders", "host")
    issued = datetime.datetime.strptime(date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    age = (datetime.datetime.now(datetime.timezone.utc) - issued).total_seconds()
    if age > int(params.get("X-Amz-Expires", "0")) or age < -900:
        return False
    query = "&".join(f"{k}={v}" for k, _, v in sorted(pairs) if k != "X-Amz-Signature")
    lower = {k.lower(): v.strip() for k, v in headers.items()}
    names = signed_headers.split(";")
    canonical = "\n".join([method, parts.path, query, *[f"{n}:{lower.get(n, '')}" for n in names], "",
                           signed_headers, "UNSIGNED-PAYLOAD"])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for piece in scope.split("/"):
        key = hmac.new(key, piece.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def _patch_moto_signature_checks():
    from flask import request as flask_request
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.iam.access_control import IAMUserAccessKey
    from moto.s3.exceptions import S3AccessDeniedError, S3SignatureDoesNotMatchError

    original = ActionAuthenticatorMixin._authenticate_and_authorize_action

    def checked(self, iam_request_cls, resource="*"):
        raw = flask_request.environ.get("RAW_URI") or flask_request.environ.get("REQUEST_URI")
        if not raw or ActionAuthenticatorMixin.request_count < _no_auth_count():
            return original(self, iam_request_cls, resource)
        if "Authorization" not in self.headers:
            if "X-Amz-Signature=" not in raw:
                raise S3AccessDeniedError()  # anonymous (or SigV2-presigned): nothing here is public
            key_id = flask_request.args.get("X-Amz-Credential", "").split("/")[0]
            try:
                secret = IAMUserAccessKey(self.current_account, "aws", key_id, {})._secret_access_key
            except Exception:
                raise S3SignatureDoesNotMatchError()
            if not _presign_is_valid(raw, dict(flask_request.headers), flask_request.method, secret):
                raise S3SignatureDoesNotMatchError()
            return None
        saved = self.uri
        self.uri = raw  # moto takes path and query from this: the raw target is what was signed
        try:
            return original(self, iam_request_cls, resource)
        finally:
            self.uri = saved

    ActionAuthenticatorMixin._authenticate_and_authorize_action = checked


def _no_auth_count():
    from moto import settings

    return settings.INITIAL_NO_AUTH_ACTION_COUNT


def _serve(host, port):
    _patch_moto_signature_checks()
    from moto.server import main

    main(["-H", host, "-p", str(port)])


@contextlib.contextmanager
def start_s3_server(region=DEFAULT_REGION):
    server = S3Server(region)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3():
    with start_s3_server() as server:
        yield server


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--serve":
    _serve(sys.argv[2], int(sys.argv[3]))
