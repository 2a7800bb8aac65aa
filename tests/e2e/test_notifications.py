"""The C++ notifier against real servers on 127.0.0.1, driven through
tests/tools/notify_tool:

  SMTP  aiosmtpd (a mail server no one here wrote): the message as received is
        parsed with Python's email package (both parts, the encoded subject),
        envelope recipients checked; AUTH with right and wrong passwords;
        STARTTLS with a self-signed certificate; require_tls against a server
        without STARTTLS; a refused recipient.
  SNS   moto in server mode with SigV4 and IAM checked (tests/e2e/s3_server.py):
        a topic with an SQS subscription, published to by the C++ side and read
        back from the queue with boto3; wrong secret, missing permission and
        unknown topic give clear errors without the secret.

NOTIFY_TOOL names the driver (CMake sets it); default build/tests/notify_tool.
"""
import email
import email.policy
import json
import os
import pathlib
import subprocess
import uuid

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from conftest import free_port
from s3_server import _boto3_client, s3  # noqa: F401  (fixture)

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOOL = os.environ.get("NOTIFY_TOOL", str(ROOT / "build" / "tests" / "notify_tool"))
FROM = "cloudmerge <noreply@lab.example.org>"
TEXT = "The merge of job study-42 is done.\n\n  rows: 1200\n  café ✓ 北京\n"
SUBJECT = "Résultat prêt: job study-42 ✓"
USER, PASSWORD = "mailer", "s3cr3t-Pa55word"
# AUTH over a clear connection is what these loopback tests want; aiosmtpd warns about it.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture(scope="session", autouse=True)
def tool():
    if not os.access(TOOL, os.X_OK):
        pytest.fail(f"the notify_tool driver is not built at {TOOL}: build the notify_tool target "
                    "or set NOTIFY_TOOL")


def notify(*args, env=None, check=True):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "NOTIFY_"))}
    full_env.update(env or {})
    proc = subprocess.run([TOOL, *args], capture_output=True, text=True, env=full_env, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"notify_tool failed ({proc.returncode}): {proc.stderr}")
    return proc


# --- SMTP ----------------------------------------------------------------------


class Recorder:
    """aiosmtpd handler: keeps every message, optionally refuses some recipients."""

    def __init__(self, refuse_domain=None):
        self.messages = []
        self.refuse_domain = refuse_domain

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse_domain and address.endswith("@" + self.refuse_domain):
            return "550 5.7.1 relaying denied"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append({
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "content": envelope.original_content,
            "authenticated": bool(session.authenticated),
            "tls": session.ssl is not None,
        })
        return "250 Message accepted"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


class SmtpServer:
    def __init__(self, **kwargs):
        self.handler = Recorder(kwargs.pop("refuse_domain", None))
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **kwargs)

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()

    @property
    def url(self):
        return f"smtp://127.0.0.1:{self.port}"


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def lf(s):
    return s.replace("\r\n", "\n")


def test_smtp_message_is_well_formed_and_both_parts_decode():
    with SmtpServer() as srv:
        notify("smtp", srv.url, FROM, "ana@lab.example.org,bo@uni.example", SUBJECT, TEXT,
               env={"NOTIFY_EXTRA_RECIPIENTS": "carl@uni.example,ANA@lab.example.org",
                    "NOTIFY_HTML": "<p>Done: <b>1200</b> rows, café</p>"})
    assert len(srv.handler.messages) == 1
    got = srv.handler.messages[0]
    assert got["mail_from"] == "noreply@lab.example.org"
    assert got["rcpt_tos"] == ["ana@lab.example.org", "bo@uni.example", "carl@uni.example"]  # de-duplicated
    msg = parse(got["content"])
    assert not msg.defects
    assert msg["Subject"] == SUBJECT
    assert msg["From"].addresses[0].addr_spec == "noreply@lab.example.org"
    assert [a.addr_spec for a in msg["To"].addresses] == got["rcpt_tos"]
    assert msg["Message-ID"].startswith("<") and msg["Message-ID"].endswith("@lab.example.org>")
    assert msg["Date"].datetime is not None
    assert msg["MIME-Version"] == "1.0"
    assert msg.get_content_type() == "multipart/alternative"
    assert "=?UTF-8?B?" in got["content"].decode("ascii")  # the raw message is 7-bit; the subject is encoded
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain.get_content_charset() == "utf-8" and html.get_content_charset() == "utf-8"
    assert lf(plain.get_content()) == TEXT
    assert "<p>Done: <b>1200</b> rows, café</p>" in html.get_content()
    assert all(len(line) <= 78 for line in got["content"].split(b"\r\n"))


def test_smtp_auth_right_password():
    with SmtpServer(authenticator=authenticator, auth_required=True, auth_require_tls=False) as srv:
        notify("smtp", srv.url, FROM, "ana@lab.example.org", "auth ok", TEXT,
               env={"NOTIFY_SMTP_USER": USER, "NOTIFY_SMTP_PASSWORD": PASSWORD})
    assert len(srv.handler.messages) == 1
    assert srv.handler.messages[0]["authenticated"]


def test_smtp_auth_wrong_password_is_clear_and_does_not_show_it():
    wrong = "Wr0ng-pa55word-xyz"
    with SmtpServer(authenticator=authenticator, auth_required=True, auth_require_tls=False) as srv:
        proc = notify("smtp", srv.url, FROM, "ana@lab.example.org", "auth bad", TEXT, check=False,
                      env={"NOTIFY_SMTP_USER": USER, "NOTIFY_SMTP_PASSWORD": wrong})
    assert proc.returncode == 4, proc.stderr
    assert not srv.handler.messages
    err = proc.stderr
    assert srv.url in err
    assert f'"{USER}"' in err and "password" in err  # names the user and what to check
    assert "535 5.7.8 Authentication credentials invalid" in err  # the server's answer
    assert wrong not in err and wrong not in proc.stdout


def test_smtp_auth_required_but_not_configured():
    with SmtpServer(authenticator=authenticator, auth_required=True, auth_require_tls=False) as srv:
        proc = notify("smtp", srv.url, FROM, "ana@lab.example.org", "no auth", TEXT, check=False)
    assert proc.returncode == 4
    assert srv.url in proc.stderr and "530 5.7.0 Authentication required" in proc.stderr, proc.stderr
    assert "user and password" in proc.stderr
    assert not srv.handler.messages


def test_smtp_refused_recipient_names_the_server_and_reply():
    with SmtpServer(refuse_domain="blocked.example") as srv:
        proc = notify("smtp", srv.url, FROM, "someone@blocked.example", "refused", TEXT, check=False)
    assert proc.returncode == 4
    assert srv.url in proc.stderr and "550 5.7.1 relaying denied" in proc.stderr, proc.stderr  # the server's words
    assert "recipient" in proc.stderr


def test_smtp_bad_extra_recipient_does_not_stop_the_others():
    with SmtpServer() as srv:
        proc = notify("smtp", srv.url, FROM, "ana@lab.example.org", "typo", TEXT, check=False,
                      env={"NOTIFY_EXTRA_RECIPIENTS": "bo@uni.example,not an address"})
    assert proc.returncode == 3, proc.stderr  # InvalidInput: reported...
    assert '"not an address"' in proc.stderr
    assert srv.handler.messages[0]["rcpt_tos"] == ["ana@lab.example.org", "bo@uni.example"]  # ...but sent


def test_smtp_server_down():
    url = f"smtp://127.0.0.1:{free_port()}"
    proc = notify("smtp", url, FROM, "ana@lab.example.org", "down", TEXT, check=False,
                  env={"NOTIFY_SMTP_USER": USER, "NOTIFY_SMTP_PASSWORD": PASSWORD})
    assert proc.returncode == 4
    assert url in proc.stderr and "running" in proc.stderr
    assert PASSWORD not in proc.stderr


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory):
    import ssl

    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
                   check=True, capture_output=True)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(d / "cert.pem", d / "key.pem")
    return ctx


def test_smtp_starttls_required_and_offered(tls_context):
    with SmtpServer(tls_context=tls_context, require_starttls=True) as srv:
        notify("smtp", srv.url, FROM, "ana@lab.example.org", "over tls", TEXT,
               env={"NOTIFY_SMTP_REQUIRE_TLS": "1", "NOTIFY_SMTP_INSECURE": "1"})
    assert srv.handler.messages[0]["tls"]


def test_smtp_starttls_is_used_when_offered_even_if_not_required(tls_context):
    with SmtpServer(tls_context=tls_context) as srv:
        notify("smtp", srv.url, FROM, "ana@lab.example.org", "opportunistic", TEXT,
               env={"NOTIFY_SMTP_INSECURE": "1"})
    assert srv.handler.messages[0]["tls"]


def test_smtp_self_signed_certificate_is_refused_when_verifying(tls_context):
    with SmtpServer(tls_context=tls_context) as srv:
        proc = notify("smtp", srv.url, FROM, "ana@lab.example.org", "verify", TEXT, check=False,
                      env={"NOTIFY_SMTP_REQUIRE_TLS": "1"})
    assert proc.returncode == 4
    assert "certificate" in proc.stderr, proc.stderr
    assert not srv.handler.messages


def test_smtp_require_tls_without_starttls_fails_instead_of_sending_in_clear():
    with SmtpServer() as srv:
        proc = notify("smtp", srv.url, FROM, "ana@lab.example.org", "clear", TEXT, check=False,
                      env={"NOTIFY_SMTP_REQUIRE_TLS": "1"})
    assert proc.returncode == 4
    assert "STARTTLS" in proc.stderr, proc.stderr
    assert not srv.handler.messages


# --- SNS ------------------------------------------------------------------------


def sns_client(s3, key_id=None, secret=None):
    return _boto3_client("sns", s3.endpoint_url, s3.region, key_id or s3.access_key_id,
                         secret or s3.secret_access_key)


@pytest.fixture
def topic_and_queue(s3):
    sns = sns_client(s3)
    sqs = _boto3_client("sqs", s3.endpoint_url, s3.region, s3.access_key_id, s3.secret_access_key)
    name = f"jobs-{uuid.uuid4().hex[:10]}"
    topic = sns.create_topic(Name=name)["TopicArn"]
    queue = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return topic, sqs, queue


def received(sqs, queue):
    out = []
    for _ in range(5):
        resp = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        out += [json.loads(m["Body"]) for m in resp.get("Messages", [])]
        if out:
            break
    return out


def test_sns_publish_reaches_the_subscribed_queue(s3, topic_and_queue):
    topic, sqs, queue = topic_and_queue
    proc = notify("sns", topic, "", s3.endpoint_url, SUBJECT + "\nsecond line", TEXT, env=s3.env())
    assert topic in proc.stdout
    msgs = received(sqs, queue)
    assert len(msgs) == 1
    assert msgs[0]["TopicArn"] == topic
    assert msgs[0]["Message"] == TEXT
    assert msgs[0]["Subject"] == "R?sultat pr?t: job study-42 ? second line"  # SNS subjects are one ASCII line


def test_sns_long_subject_is_cut_to_100_characters(s3, topic_and_queue):
    topic, sqs, queue = topic_and_queue
    notify("sns", topic, s3.region, s3.endpoint_url, "x" * 300, TEXT, env=s3.env())
    subject = received(sqs, queue)[0]["Subject"]
    assert len(subject) == 100 and subject.endswith("...")


def test_sns_wrong_secret_is_clear_and_does_not_show_it(s3, topic_and_queue):
    topic, _, _ = topic_and_queue
    wrong = "not-the-secret-0123456789abcdef"
    proc = notify("sns", topic, "", s3.endpoint_url, "s", TEXT, check=False,
                  env=s3.env(AWS_SECRET_ACCESS_KEY=wrong))
    assert proc.returncode == 4
    assert "SignatureDoesNotMatch" in proc.stderr and "credentials" in proc.stderr, proc.stderr
    assert wrong not in proc.stderr and s3.secret_access_key not in proc.stderr


def test_sns_identity_without_publish_permission(s3, topic_and_queue):
    topic, sqs, queue = topic_and_queue
    key_id, secret = s3.new_access_key({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sns:ListTopics", "Resource": "*"}]})
    proc = notify("sns", topic, "", s3.endpoint_url, "s", TEXT, check=False,
                  env=s3.env(AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret))
    assert proc.returncode == 4
    assert "sns:Publish" in proc.stderr and key_id[-4:] in proc.stderr, proc.stderr
    assert secret not in proc.stderr
    assert not received(sqs, queue)


def test_sns_unknown_topic(s3):
    topic = f"arn:aws:sns:{s3.region}:123456789012:no-such-topic-{uuid.uuid4().hex[:6]}"
    proc = notify("sns", topic, "", s3.endpoint_url, "s", TEXT, check=False, env=s3.env())
    assert proc.returncode == 4
    assert topic in proc.stderr and "NotFound" in proc.stderr, proc.stderr


def test_sns_endpoint_down(s3):
    topic = f"arn:aws:sns:{s3.region}:123456789012:t"
    endpoint = f"http://127.0.0.1:{free_port()}"
    proc = notify("sns", topic, "", endpoint, "s", TEXT, check=False, env=s3.env())
    assert proc.returncode == 4
    assert endpoint in proc.stderr and "4 attempts" in proc.stderr, proc.stderr


# --- Directory --------------------------------------------------------------------


def test_directory_eml_is_readable_by_python(tmp_path):
    out = tmp_path / "outbox"
    for i in range(2):
        notify("dir", str(out), FROM, "ana@lab.example.org", SUBJECT, TEXT, env={"NOTIFY_JOB": "study/42"})
    files = sorted(out.iterdir())
    assert len(files) == 2 and all(f.suffix == ".eml" and "-study_42-succeeded" in f.name for f in files)
    msg = parse(files[0].read_bytes())
    assert not msg.defects and msg["Subject"] == SUBJECT
    assert lf(msg.get_body(("plain",)).get_content()) == TEXT
