"""Hostile inputs: each gets a clear error (file, line, what to do) or a correct
result, never a crash, a hang or a signal. Cases already in test_cli_errors.py
(NUL byte, invalid UTF-8 key, field counts, unterminated quote, empty x, missing
header), test_compressed_inputs.py (gzip bomb) and test_serve_local.py (control
characters in a job name, job.json output "../../") are not repeated here.

Sizes are chosen for CI: a 100 MB line stands for "a 1 GB line" (same code
path, a tenth of the time); 10^6 columns in one line. Runtime: ~15 s release,
~1 min under ASan."""
import http.server
import json
import os
import pathlib
import random
import signal
import subprocess
import threading
import time

import pytest

from conftest import BIN, run_merge

OK = "ID\tvalue\n1\tq\n"
TIMEOUT = 300  # generous for sanitizer builds; a hang fails instead of blocking CI


def merge(tmp_path, x_bytes, y_bytes=OK.encode(), *args):
    (tmp_path / "x.tsv").write_bytes(x_bytes)
    (tmp_path / "y.tsv").write_bytes(y_bytes)
    # --progress none: a run slower than the progress interval (10 s; a 100 MB line under TSan) would
    # print progress lines before the error, and these tests read stderr as the error paragraph alone.
    return run_merge("x.tsv", "y.tsv", "-o", "out.tsv", "--progress", "none", *args, check=False, cwd=tmp_path,
                     timeout=TIMEOUT)


def assert_clean_error(proc, tmp_path, code, *fragments, max_len=4000):
    """One paragraph, naming the problem; no output and no temporary left; no signal."""
    msg = proc.stderr.decode(errors="replace")
    assert proc.returncode == code, f"exit {proc.returncode} (negative: killed by a signal): {msg[:2000]}"
    assert msg.startswith("Error [cloudmerge merge]: "), msg[:2000]
    assert len(msg) <= max_len, f"an error message of {len(msg)} bytes: excerpts must be bounded"
    for frag in fragments:
        assert frag in msg, f"{frag!r} not in {msg[:2000]!r}"
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name not in ("x.tsv", "y.tsv"))
    assert leftovers == [], "no output, no temporary"
    return msg


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_binary_data(tmp_path, seed):
    rnd = random.Random(seed)
    data = bytes(rnd.randrange(256) for _ in range(200_000))
    proc = merge(tmp_path, data)
    assert_clean_error(proc, tmp_path, 3, "x.tsv, line")


def test_binary_data_as_y_with_nul_in_header(tmp_path):
    proc = merge(tmp_path, OK.encode(), b"ID\x00\tvalue\n1\tq\n")
    assert_clean_error(proc, tmp_path, 3, "y.tsv, line 1", "NUL")


def test_empty_y_names_y(tmp_path):
    proc = merge(tmp_path, OK.encode(), b"")
    assert_clean_error(proc, tmp_path, 3, "y.tsv is empty")


def test_unbalanced_quote_at_end_of_y(tmp_path):
    proc = merge(tmp_path, OK.encode(), b'ID\tvalue\n1\tq\n2\t"never closed')
    assert_clean_error(proc, tmp_path, 3, "y.tsv, line 3", "closing quote")


def test_invalid_utf8_in_a_quoted_key(tmp_path):
    proc = merge(tmp_path, b'ID\tvalue\n"k\xc3"\ta\n')
    assert_clean_error(proc, tmp_path, 3, "x.tsv, line 2", "UTF-8")


def test_header_only_inputs_give_header_only_output(tmp_path):
    proc = merge(tmp_path, b"ID\tvalue\n", b"ID\tvalue\n")
    assert proc.returncode == 0, proc.stderr.decode()
    assert (tmp_path / "out.tsv").read_text() == "ID_x\tvalue_x\tvalue_y\n"


def test_million_columns_in_one_line(tmp_path):
    n = 1_000_000
    header = "\t".join(["ID"] + [f"c{i}" for i in range(1, n)]) + "\n"
    row = "\t".join(["7"] + ["v"] * (n - 1)) + "\n"
    proc = merge(tmp_path, (header + row).encode(), b"ID\tvalue\n7\tq\n")
    assert proc.returncode == 0, proc.stderr.decode()[:2000]
    lines = (tmp_path / "out.tsv").read_bytes().split(b"\n")
    assert lines[0].count(b"\t") == n and lines[1].count(b"\t") == n  # n x columns + y's value
    assert lines[1].startswith(b"7\tv\t") and lines[1].endswith(b"\tq")


def test_million_fields_against_a_two_column_header(tmp_path):
    row = "\t".join(["7"] * 1_000_000) + "\n"
    proc = merge(tmp_path, ("ID\tvalue\n" + row).encode())
    assert_clean_error(proc, tmp_path, 3, "x.tsv, line 2", "1000000 field(s)", "header has 2")


def test_100mb_line_passes_through(tmp_path):
    # Stands for a 1 GB line (too slow for CI); the code path is the same.
    value = b"a" * (100 << 20)
    proc = merge(tmp_path, b"ID\tvalue\n1\t" + value + b"\n")
    assert proc.returncode == 0, proc.stderr.decode()[:2000]
    out = tmp_path / "out.tsv"
    assert out.stat().st_size == len(b"ID_x\tvalue_x\tvalue_y\n1\t\tq\n") + len(value)
    with out.open("rb") as f:
        f.seek(-8, os.SEEK_END)
        assert f.read() == b"aaaaa\tq\n"


def test_100mb_bad_line_gets_a_short_error(tmp_path):
    proc = merge(tmp_path, b"ID\tvalue\n1\t" + b"b" * (100 << 20) + b"\textra\n")
    assert_clean_error(proc, tmp_path, 3, "x.tsv, line 2", "3 field(s)")


def test_input_truncated_while_being_read(tmp_path):
    """Another program truncates x while it is mapped: a correct result (of the
    whole file, or of what was left if it was cut before cloudmerge opened it) or
    a clear I/O error naming x; never SIGBUS, never a leftover temporary. The
    cut is timed at fractions of a measured uncut run, so it lands mid-run on
    fast and slow (sanitizer) builds alike."""
    y = "ID\tvalue\n" + "".join(f"{i}\ty{i}\n" for i in range(1000))
    x = "ID\tvalue\n" + "".join(f"{i % 1000}\tvalue_{i}_abcdefghij\n" for i in range(2_000_000))
    cut = 1000
    argv = [BIN, "merge", "x.tsv", "y.tsv", "-o", "out.tsv", "--threads", "2", "--chunk-kib", "256", "--progress", "none"]
    (tmp_path / "x.tsv").write_text(x)
    (tmp_path / "y.tsv").write_text(y)
    began = time.monotonic()
    subprocess.run(argv, cwd=tmp_path, check=True, timeout=TIMEOUT)
    full_run = time.monotonic() - began
    outcomes = []
    for fraction in (0.1, 0.3, 0.5, 0.7):
        (tmp_path / "out.tsv").unlink(missing_ok=True)
        (tmp_path / "x.tsv").write_text(x)
        proc = subprocess.Popen(argv, cwd=tmp_path, stderr=subprocess.PIPE)
        time.sleep(full_run * fraction)
        os.truncate(tmp_path / "x.tsv", cut)
        _, err = proc.communicate(timeout=TIMEOUT)
        msg = err.decode(errors="replace")
        assert proc.returncode >= 0, f"killed by signal {-proc.returncode}: {msg}"
        if proc.returncode == 0:
            rows = (tmp_path / "out.tsv").read_text().count("\n")
            assert rows in (2_000_001, len(x[:cut].splitlines())), rows  # every x row matches one y row
            outcomes.append("result")
        else:
            assert proc.returncode == 4, msg
            assert msg.startswith("Error [cloudmerge merge]: x.tsv was truncated") and "run again" in msg, msg
            assert not (tmp_path / "out.tsv").exists()
            outcomes.append("error")
        leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("x.tsv", "y.tsv", "out.tsv")]
        assert leftovers == [], "no temporary left"
    print(f"uncut run {full_run:.2f}s; outcomes at 10/30/50/70%: {outcomes}")


# --- The Lambda runtime against hostile events, through a scripted Runtime API ---

class FakeRuntimeApi:
    """Serves the given events on /next, one per call, and records what the
    runtime answers (response or error) for each; after the last one /next
    blocks until the test stops the runtime."""

    def __init__(self, events):
        self.events = list(events)
        self.answers = {}
        self.done = threading.Event()
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if not self.path.endswith("/runtime/invocation/next"):
                    self.send_error(404)
                    return
                if not api.events:
                    api.done.set()
                    time.sleep(60)
                    return
                n = len(api.answers) + 1 + 1000 * len(api.events)
                body = api.events.pop(0)
                self.send_response(200)
                self.send_header("Lambda-Runtime-Aws-Request-Id", f"req-{n}")
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 600_000))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn",
                                 "arn:aws:lambda:us-east-1:123456789012:function:cm")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                api.answers[self.path] = body
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.address = f"127.0.0.1:{self.server.server_address[1]}"


def s3_event(key):
    return json.dumps({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                                    "s3": {"bucket": {"name": "in"}, "object": {"key": key, "size": 5}}}]}).encode()


def test_lambda_refuses_oversized_and_escaping_events(tmp_path):
    events = [
        b'{"Records":[' + b" " * (7 << 20) + b"]}",  # over events.h kMaxEventBytes (6 MiB)
        s3_event("..%2F..%2Fetc%2Fx_list.txt"),       # job "../../etc"
        s3_event("%2Fabs%2Fjob%2Fx_list.txt"),        # job "/abs/job"
        s3_event("evil%01name%2Fx_list.txt"),         # a control character
        s3_event("ok%2F..%2F..%2Fy_list.txt"),
    ]
    api = FakeRuntimeApi(events)
    env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=api.address, CLOUDMERGE_OUTPUT="s3://out/",
               AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="fake-secret", AWS_REGION="us-east-1",
               AWS_ENDPOINT_URL="http://127.0.0.1:9",  # nothing listens: any S3 access fails fast
               AWS_EC2_METADATA_DISABLED="true", CLOUDMERGE_S3_MAX_ATTEMPTS="1")
    proc = subprocess.Popen([BIN, "lambda"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert api.done.wait(TIMEOUT), "the runtime did not answer every event"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        api.server.shutdown()
    log = (out + err).decode(errors="replace")
    assert proc.returncode in (0, 1, -signal.SIGTERM), log[-3000:]
    assert len(api.answers) == len(events), (api.answers.keys(), log[-3000:])
    oversized = [a for path, a in api.answers.items() if path.endswith("/error")]
    assert len(oversized) == 1 and b"refused" in oversized[0] and b"larger than" in oversized[0], api.answers
    # Each escaping job is rejected by name with the reason, before any storage access.
    rejected = [json.loads(l)["message"] for l in out.decode().splitlines()
                if l.startswith("{") and json.loads(l).get("event") == "job.rejected"]
    for name, why in (("../../etc", "would leave"), ("/abs/job", "absolute path"),
                      ("evil\x01name", "control character"), ("ok/../..", "would leave")):
        assert any(f'"{name}"' in m and why in m for m in rejected), f"{name!r} not rejected: {rejected}"
