"""The Lambda custom runtime against AWS's own Runtime Interface Emulator
(aws-lambda-rie, installed by scripts/install-rie.sh into .tools/bin).

RIE plays the Lambda service on 127.0.0.1: it starts the runtime (the
"bootstrap") with AWS_LAMBDA_RUNTIME_API pointing at its Runtime API, and
takes invocations on POST /2015-03-31/functions/function/invocations, as
`aws lambda invoke` would. Whatever RIE's own environment holds (AWS keys, an
endpoint, CLOUDMERGE_* settings) is passed on to the runtime.

Executables, by environment variable:
  CLOUDMERGE_RIE                 aws-lambda-rie (default: .tools/bin/aws-lambda-rie)
  CLOUDMERGE_LAMBDA_ECHO         tests/tools/lambda_echo_runtime, for the protocol tests
  CLOUDMERGE_LAMBDA_BOOTSTRAP    the runtime under test for the contract tests (a
                                 command line, shell-quoted; default: the echo runtime),
                                 e.g. "build/cloudmerge lambda"

`LambdaEmulator` (and the `lambda_emulator` fixture factory) are the harness
for the end-to-end Lambda-with-S3 suite: start one with the bootstrap and
S3 settings in `env`, invoke it with an event, read the response and logs.
"""
import contextlib
import json
import os
import pathlib
import shlex
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import free_port

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = pathlib.Path(__file__).resolve().parent / "data"
RIE = os.environ.get("CLOUDMERGE_RIE", str(ROOT / ".tools" / "bin" / "aws-lambda-rie"))
ECHO = os.environ.get("CLOUDMERGE_LAMBDA_ECHO", "")
BOOTSTRAP = os.environ.get("CLOUDMERGE_LAMBDA_BOOTSTRAP", "") or ECHO
INVOKE_PATH = "/2015-03-31/functions/function/invocations"


class LambdaEmulator:
    """aws-lambda-rie running `bootstrap` (argv list) with `env` added to its environment."""

    def __init__(self, bootstrap, env=None, log_path=None, timeout_s=60):
        self.bootstrap = list(bootstrap)
        self.extra_env = dict(env or {})
        self.timeout_s = timeout_s
        self.log_path = pathlib.Path(log_path) if log_path else None
        self.proc = None
        self.url = None
        self._log = None

    def start(self):
        if not os.access(RIE, os.X_OK):
            pytest.fail(f"aws-lambda-rie not found at {RIE}: run scripts/install-rie.sh (or set CLOUDMERGE_RIE)")
        for _ in range(3):  # a probed free port may be taken before RIE binds it
            if self._launch(free_port(), free_port()):
                return self
        raise RuntimeError(f"aws-lambda-rie did not start; its log:\n{self.logs()}")

    def _launch(self, invoke_port, api_port, wait_s=15.0):
        env = dict(os.environ)
        # The deadline RIE gives each invocation (Lambda-Runtime-Deadline-Ms).
        env.setdefault("AWS_LAMBDA_FUNCTION_TIMEOUT", str(self.timeout_s))
        env.update(self.extra_env)
        self._log = open(self.log_path, "wb") if self.log_path else open(os.devnull, "wb")
        self.proc = subprocess.Popen(
            [RIE, "--runtime-interface-emulator-address", f"127.0.0.1:{invoke_port}",
             "--runtime-api-address", f"127.0.0.1:{api_port}", *self.bootstrap],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
        self.url = f"http://127.0.0.1:{invoke_port}{INVOKE_PATH}"
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._log.close()
                return False
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", invoke_port), timeout=0.5):
                return True
            time.sleep(0.05)
        self.stop()
        return False

    def invoke(self, event, headers=None, timeout=None):
        """POSTs `event` (bytes, str or a JSON-able value); returns (HTTP status, body bytes)."""
        if not isinstance(event, (bytes, str)):
            event = json.dumps(event)
        data = event.encode() if isinstance(event, str) else event
        req = urllib.request.Request(self.url, data=data, method="POST", headers=dict(headers or {}))
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout_s + 30) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def logs(self):
        """Everything RIE and the runtime wrote so far (RIE forwards the runtime's stdout/stderr)."""
        if self._log and not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def json_lines(self):
        """The runtime's JSON log lines (RIE's own lines are plain text)."""
        out = []
        for line in self.logs().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # RIE kills the runtime on its way out
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._log and not self._log.closed:
            self._log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


@pytest.fixture
def lambda_emulator(tmp_path):
    """Factory: lambda_emulator(bootstrap_argv, env={...}) -> a started LambdaEmulator, stopped after the test."""
    started = []

    def make(bootstrap, env=None, **kw):
        emu = LambdaEmulator(bootstrap, env=env, log_path=tmp_path / f"rie-{len(started)}.log", **kw)
        started.append(emu)
        return emu.start()

    yield make
    for emu in started:
        emu.stop()


def _require(command, variable):
    if not command:
        pytest.fail(f"{variable} is not set: give the runtime executable (ctest sets it)")
    return shlex.split(command)


@pytest.fixture
def echo(lambda_emulator):
    return lambda_emulator(_require(ECHO, "CLOUDMERGE_LAMBDA_ECHO"))


def _load(name):
    return (DATA / name).read_bytes()


# ---- protocol tests, with the echo runtime --------------------------------

def test_s3_put_event_reaches_the_handler_whole(echo):
    event = _load("s3_put_event.json")
    status, body = echo.invoke(event, headers={"X-Amzn-RequestId": "6f1c2a3b-0001-4e5f-8a9b-s3put"})
    assert status == 200, body
    got = json.loads(body)
    assert got["event_bytes"] == len(event)
    assert got["records"] == 1 and got["s3_records"] == 1
    # The request id the caller chose is the one the runtime saw and answered.
    assert got["request_id"] == "6f1c2a3b-0001-4e5f-8a9b-s3put"
    assert got["function_arn"].startswith("arn:aws:lambda:")


def test_sqs_wrapped_s3_event(echo):
    event = _load("sqs_s3_put_event.json")
    status, body = echo.invoke(event)
    assert status == 200, body
    got = json.loads(body)
    assert got["event_bytes"] == len(event)
    assert got["records"] == 2      # two SQS messages
    assert got["s3_records"] == 2   # each holding one S3 record in its body


def test_handler_failure_is_an_invocation_error(echo):
    status, body = echo.invoke({"Records": [], "mode": "fail"})
    # RIE answers 200 with the error document, as Lambda's Invoke does
    # (Lambda adds X-Amz-Function-Error; RIE does not).
    assert status == 200, body
    doc = json.loads(body)
    assert doc["errorType"] == "Function.InvalidInput"
    assert "asked to fail" in doc["errorMessage"]


def test_runtime_stays_warm_across_invocations(echo):
    for i in range(3):
        status, body = echo.invoke({"Records": [{"s3": {}}] * i})
        assert status == 200, body
        assert json.loads(body)["records"] == i
    status, body = echo.invoke('"fail"')
    assert json.loads(body)["errorType"] == "Function.InvalidInput"
    status, body = echo.invoke("{}")
    assert status == 200 and json.loads(body)["records"] == 0
    # One cold start for all five: the loop served them in one process.
    assert echo.logs().count("INIT START") == 1, echo.logs()


def test_deadline_comes_from_the_function_timeout(lambda_emulator):
    emu = lambda_emulator(_require(ECHO, "CLOUDMERGE_LAMBDA_ECHO"), timeout_s=7)
    status, body = emu.invoke("{}")
    assert status == 200, body
    remaining = json.loads(body)["remaining_ms"]
    assert 0 < remaining <= 7000


def test_init_error_is_reported_to_the_caller(lambda_emulator):
    emu = lambda_emulator(_require(ECHO, "CLOUDMERGE_LAMBDA_ECHO"),
                          env={"CLOUDMERGE_ECHO_INIT_ERROR": "CLOUDMERGE_OUTPUT is not set"})
    status, body = emu.invoke("{}")
    assert status == 502, body
    doc = json.loads(body)
    assert doc == {"errorMessage": "CLOUDMERGE_OUTPUT is not set", "errorType": "Runtime.InvalidArgument"}


def test_invocations_are_logged_as_json_lines(echo):
    echo.invoke("{}", headers={"X-Amzn-RequestId": "req-ok"})
    echo.invoke('"fail"', headers={"X-Amzn-RequestId": "req-bad"})
    lines = [l for l in echo.json_lines() if l.get("event", "").startswith("lambda.invocation.")]
    assert [(l["event"], l["request_id"], l["level"]) for l in lines] == [
        ("lambda.invocation.start", "req-ok", "info"),
        ("lambda.invocation.end", "req-ok", "info"),
        ("lambda.invocation.start", "req-bad", "info"),
        ("lambda.invocation.end", "req-bad", "error"),
    ]
    assert lines[3]["error_type"] == "Function.InvalidInput"
    assert all("time" in l for l in lines)


# ---- contract tests, for whichever bootstrap is under test -----------------

@pytest.mark.parametrize("event_file", ["s3_put_event.json", "sqs_s3_put_event.json"])
def test_bootstrap_answers_recorded_events(lambda_emulator, event_file):
    """Any runtime: a JSON answer (a result or a Lambda error document) and a start/end log pair."""
    emu = lambda_emulator(_require(BOOTSTRAP, "CLOUDMERGE_LAMBDA_BOOTSTRAP"))
    status, body = emu.invoke(_load(event_file), headers={"X-Amzn-RequestId": f"contract-{event_file}"})
    assert status == 200, (body, emu.logs())
    json.loads(body)
    events = [(l.get("event"), l.get("request_id")) for l in emu.json_lines()]
    assert ("lambda.invocation.start", f"contract-{event_file}") in events, emu.logs()
    assert ("lambda.invocation.end", f"contract-{event_file}") in events, emu.logs()
