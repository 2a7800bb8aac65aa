"""Shared fixtures for the end-to-end suites: the binary under test, the shared
oracle (../shared/reference/oracle.py, run with Debian's pandas 1.5.3) and the
conformance cases."""
import importlib.util
import os
import pathlib
import shutil
import subprocess
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED = pathlib.Path(os.environ.get("CLOUDMERGE_SHARED", ROOT.parent / "shared"))
# The binary under test. ctest sets CLOUDMERGE_BIN to the cloudmerge of the build
# directory it runs in (build/, build-asan/, build-tsan/), so the sanitizer runs
# of scripts/sanitize.sh exercise the sanitized binary; the default is for
# running pytest by hand after scripts/build.sh.
BIN = os.environ.get("CLOUDMERGE_BIN", str(ROOT / "build" / "cloudmerge"))
CASES = sorted(p for p in (SHARED / "conformance" / "cases").glob("*") if p.is_dir())

# Sanitizer reports (scripts/sanitize.sh). A report aborts the sanitized process,
# but a test does not check the exit code of every process it starts: `serve`
# in the background, workers it kills on purpose, the Lambda bootstrap under
# RIE, notify_tool runs expected to fail. So every sanitized process started
# from here writes its reports to files in SANITIZER_LOG_DIR (log_path, one file
# per process; the options are inherited through the environment, and
# appended last so they win), and a test fails if a report appeared while it
# ran (_no_sanitizer_reports), the session if one appeared after the last test.
# (GCC's UBSan next to ASan prints to stderr whatever log_path says; the abort
# that follows is reported to the log by ASan: handle_abort in sanitize.sh.)
# Unsanitized binaries ignore these variables. A test that builds its
# environment from scratch loses log_path; its sanitized process still aborts
# on a report, which fails the test through the exit code.
# Once per pytest process, even if this file were imported a second time under
# another module name (a second directory would be watched by no one).
if os.environ.get("CLOUDMERGE_SANITIZER_LOG_PID") == str(os.getpid()):
    SANITIZER_LOG_DIR = pathlib.Path(os.environ["CLOUDMERGE_SANITIZER_LOG_DIR"])
else:
    SANITIZER_LOG_DIR = pathlib.Path(tempfile.mkdtemp(prefix="cloudmerge-sanitizer-"))
    os.environ.update(CLOUDMERGE_SANITIZER_LOG_PID=str(os.getpid()),
                      CLOUDMERGE_SANITIZER_LOG_DIR=str(SANITIZER_LOG_DIR))
    for _var, _name in (("ASAN_OPTIONS", "asan"), ("UBSAN_OPTIONS", "ubsan"), ("TSAN_OPTIONS", "tsan")):
        _opts = os.environ.get(_var, "")
        os.environ[_var] = (_opts + ":" if _opts else "") + f"log_path={SANITIZER_LOG_DIR / _name}"
_reported = set()
# Which sanitizer the binaries under test carry ("asan", "tsan"; "" for a normal
# build), as scripts/sanitize.sh exports it.
SANITIZER = os.environ.get("CLOUDMERGE_SANITIZER", "")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "rss_bound: asserts a bound on the binary's peak RSS; skipped under the sanitizers, "
                   "whose shadow memory, quarantine and allocation metadata are part of RSS")


def pytest_collection_modifyitems(config, items):
    if not SANITIZER:
        return
    skip = pytest.mark.skip(reason=f"peak RSS bound does not hold under {SANITIZER}: its shadow memory "
                                   f"and quarantine count in RSS (the normal build checks it)")
    for item in items:
        if item.get_closest_marker("rss_bound"):
            item.add_marker(skip)


def _new_sanitizer_reports():
    new = sorted(p for p in SANITIZER_LOG_DIR.iterdir() if p not in _reported)
    _reported.update(new)
    return new


def _format_reports(paths):
    return "\n".join(f"--- {p.name} ---\n{p.read_text(errors='replace')}" for p in paths)


@pytest.fixture(autouse=True)
def _no_sanitizer_reports():
    # Reports written between two tests (a module fixture's process exiting)
    # fail the next test's setup: late, but never lost.
    new = _new_sanitizer_reports()
    if new:
        pytest.fail(f"sanitizer report(s) written before this test started, by a process an "
                    f"earlier test or fixture started:\n{_format_reports(new)}", pytrace=False)
    yield
    new = _new_sanitizer_reports()
    if new:
        pytest.fail(f"sanitizer report(s) from a process this test started (kept in "
                    f"{SANITIZER_LOG_DIR}):\n{_format_reports(new)}", pytrace=False)


def pytest_sessionfinish(session, exitstatus):
    new = _new_sanitizer_reports()
    if new:
        print(f"\nsanitizer report(s) written after the last test (from a process a fixture "
              f"started):\n{_format_reports(new)}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif not _reported:
        shutil.rmtree(SANITIZER_LOG_DIR, ignore_errors=True)


def load_oracle():
    spec = importlib.util.spec_from_file_location("oracle", SHARED / "reference" / "oracle.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def oracle():
    return load_oracle()


def run_merge(*args, check=True, **kw):
    proc = subprocess.run([BIN, "merge", *map(str, args)], capture_output=True, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"cloudmerge failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
    return proc


def oracle_agrees(oracle, expected_path, actual_path, any_order=False):
    argv = [str(expected_path), str(actual_path)] + (["--any-order"] if any_order else [])
    return oracle.compare(argv) == 0


# ---- helpers shared by the pipeline suites (one copy here, imported from conftest) ----------------------------


def free_port():
    """A TCP port free on 127.0.0.1 right now (for a server a test starts)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def add_job(root, job, case=None, x=None, y=None, spec=None):
    """A `serve --local` job folder root/input/<job>/: a conformance case's inputs, or x / y text, and a job.json."""
    import json

    d = root / "input" / job
    d.mkdir(parents=True, exist_ok=True)
    if case is not None:
        shutil.copy(case / "x.tsv", d / "x_list.txt")
        shutil.copy(case / "y.tsv", d / "y_list.txt")
    if x is not None:
        (d / "x_list.txt").write_text(x)
    if y is not None:
        (d / "y_list.txt").write_text(y)
    if spec is not None:
        (d / "job.json").write_text(json.dumps(spec))
    return d


def mails(root, kind=None):
    """The emails `serve --local` left in root/outbox/ (of one kind: received, succeeded, ...), in name order."""
    import email

    box = root / "outbox"
    return [email.message_from_bytes(p.read_bytes()) for p in sorted(box.glob("*.eml"))
            if kind is None or p.name.endswith(f"-{kind}.eml")] if box.exists() else []


def body_text(msg):
    """An email's text/plain part ("" when it has none)."""
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            return part.get_payload(decode=True).decode()
    return ""


def case(name):
    """The shared conformance case of that name."""
    return next(c for c in CASES if c.name == name)


def aws_client(s3, service):
    """A boto3 client of `service` on the moto server of the s3 fixture (s3_server.py)."""
    import boto3

    return boto3.client(service, endpoint_url=s3.endpoint_url, region_name=s3.region,
                        aws_access_key_id=s3.access_key_id, aws_secret_access_key=s3.secret_access_key)


def queue_arn(sqs, url):
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def event_queue(s3, sqs, bucket, attributes=None):
    """A queue receiving `bucket`'s ObjectCreated events, as S3 -> SQS is wired in deploy/template.yaml."""
    url = sqs.create_queue(QueueName=f"events-{bucket}", Attributes=attributes or {})["QueueUrl"]
    s3.client.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": queue_arn(sqs, url), "Events": ["s3:ObjectCreated:*"]}]})
    return url


def topic_with_mail_queue(sqs, sns, name):
    """An SNS topic and a queue subscribed to it (envelopes kept), standing in for the email subscribers."""
    topic = sns.create_topic(Name=f"notify-{name}")["TopicArn"]
    mailq = sqs.create_queue(QueueName=f"mail-{name}")["QueueUrl"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn(sqs, mailq),
                  Attributes={"RawMessageDelivery": "false"})
    return topic, mailq


def drain(sqs, url):
    """Every message now in the queue, received and deleted."""
    out = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not got:
            return out
        for m in got:
            out.append(m)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


class SmtpRecorder:
    """aiosmtpd handler keeping every message as (recipients, parsed email); thread-safe."""

    def __init__(self):
        import threading

        self.messages = []
        # Re-entrant: a test may hold it around reads of .subjects, which takes it too.
        self.lock = threading.RLock()

    async def handle_DATA(self, server, session, envelope):
        import email

        with self.lock:
            self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content)))
        return "250 OK"

    @property
    def subjects(self):
        with self.lock:
            return [m["Subject"] for _, m in self.messages]


@pytest.fixture
def smtp():
    """A local SMTP server (aiosmtpd) recording what it receives; .url is its smtp:// URL."""
    from aiosmtpd.controller import Controller

    rec = SmtpRecorder()
    port = free_port()
    ctl = Controller(rec, hostname="127.0.0.1", port=port)
    ctl.start()
    rec.url = f"smtp://127.0.0.1:{port}"
    yield rec
    ctl.stop()
