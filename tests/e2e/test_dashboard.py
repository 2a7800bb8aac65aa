"""`cloudmerge serve --local DIR --http 127.0.0.1:0`: the dashboard in a real
browser (Debian's headless Chromium: --dump-dom and --screenshot). A done job
(its name and values holding HTML), a failed job, a job waiting for an input
and a running one (a command-engine job that sleeps); the page, a report,
/metrics, /healthz, the token rules; and the limits that keep it up (issue 15,
finding 9): half-sent requests, a head sent a byte at a time, a foreign Host
header (DNS rebinding). Screenshots go to $CLOUDMERGE_ARTIFACTS
(build/test-artifacts/). About 25 s."""
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import tempfile
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib

import pandas as pd
import pytest

from conftest import BIN, CASES, ROOT

CASE = {c.name: c for c in CASES}
ARTIFACTS = pathlib.Path(os.environ.get("CLOUDMERGE_ARTIFACTS", ROOT / "build" / "test-artifacts"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
EVIL_JOB = "exp<script>alert(1)</script>&co"
EVIL_VALUE = "<script>alert(1)</script>"


def start_serve(root, *args, env=None):
    proc = subprocess.Popen([BIN, "serve", "--local", str(root), "--poll-ms", "100", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 30
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        event = json.loads(line)
        if event["event"] == "dashboard.started":
            # Keep draining stdout so the server never blocks on a full pipe.
            subprocess.Popen(["cat"], stdin=proc.stdout, stdout=subprocess.DEVNULL)
            return proc, event["port"]
    proc.kill()
    raise AssertionError(f"no dashboard.started line; stderr: {proc.stderr.read().decode()}")


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def chromium(*args):
    profile = tempfile.mkdtemp(prefix="cloudmerge-chromium-")  # a fresh profile, outside the artifacts
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--no-first-run",
                           f"--user-data-dir={profile}", *args], capture_output=True, timeout=90)
    shutil.rmtree(profile, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return proc.stdout.decode()


def png_has_content(path):
    """A screenshot that rendered something: decoded image rows hold many distinct byte values (a blank
    page compresses to a handful)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        if data[pos + 4:pos + 8] == b"IDAT":
            idat += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    return len(set(zlib.decompress(idat))) > 40


def metrics(port):
    status, text, _ = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(\S+) (\S+)$", text, re.M)}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("dash")
    case = CASE["many_to_many"]
    done = root / "input" / EVIL_JOB
    done.mkdir(parents=True)
    x = case.joinpath("x.tsv").read_text().splitlines()
    x[1] = x[1].split("\t")[0] + "\t" + EVIL_VALUE  # a value that would run if not escaped
    (done / "x_list.txt").write_text("\n".join(x) + "\n")
    shutil.copy(case / "y.tsv", done / "y_list.txt")
    bad = root / "input" / "broken"
    bad.mkdir()
    (bad / "x_list.txt").write_text("ID\tvalue\n1\ta\textra\n")
    shutil.copy(case / "y.tsv", bad / "y_list.txt")
    waiting = root / "input" / "half"
    waiting.mkdir()
    shutil.copy(case / "y.tsv", waiting / "y_list.txt")
    slow = root / "input" / "slow"  # last in job order: runs after the others, long enough to be seen running
    slow.mkdir()
    shutil.copy(case / "x.tsv", slow / "x_list.txt")
    shutil.copy(case / "y.tsv", slow / "y_list.txt")
    (slow / "job.json").write_text(json.dumps({"engine": "command", "command": "slow"}))  # registered below
    slow_cmd = json.dumps(["/bin/sh", "-c", 'sleep 12; cp "$0" "$1"', "{x}", "{out}"])
    proc, port = start_serve(root, "--http", "127.0.0.1:0", "--allow-command", f"slow={slow_cmd}")
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            m = metrics(port)
            if (m.get('cloudmerge_jobs{state="done"}') == 1 and m.get('cloudmerge_jobs{state="failed"}') == 1
                    and m.get('cloudmerge_jobs{state="running"}') == 1):
                break
            time.sleep(0.2)
        yield root, port, done
    finally:
        stop(proc)


def test_healthz_and_metrics(pipeline):
    root, port, done = pipeline
    assert get(f"http://127.0.0.1:{port}/healthz")[:2] == (200, "ok\n")
    m = metrics(port)
    assert m['cloudmerge_jobs{state="waiting"}'] == 1 and m['cloudmerge_jobs{state="running"}'] == 1
    assert m['cloudmerge_jobs{state="done"}'] == 1 and m['cloudmerge_jobs{state="failed"}'] == 1
    report = json.loads((root / "output" / EVIL_JOB / "report.json").read_text())
    assert m["cloudmerge_rows_written"] == report["rows"]["output"] > 0
    assert m["cloudmerge_failures"] == 1
    assert m["cloudmerge_last_run_seconds"] == pytest.approx(report["seconds"])


def test_dashboard_in_chromium(pipeline):
    root, port, done = pipeline
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dom = chromium("--dump-dom", f"http://127.0.0.1:{port}/")
    rows = re.findall(r'<tr class="job">(.*?)</tr>', dom, re.S)
    assert len(rows) == 4
    by_state = {re.search(r'class="badge (\w+)"', r).group(1): r for r in rows}
    assert set(by_state) == {"done", "failed", "waiting", "running"}
    elapsed = re.search(r"(\d+) s so far", by_state["running"])
    assert elapsed and 0 <= int(elapsed.group(1)) <= 60
    # The job name arrives as text: escaped in the DOM, no script element anywhere.
    assert "exp&lt;script&gt;alert(1)&lt;/script&gt;&amp;co" in by_state["done"]
    assert "<script" not in dom
    assert "report.html" in by_state["done"] and "report.json" in by_state["done"]
    assert "this row has 3 field(s)" in by_state["failed"] and "report.html" in by_state["failed"]
    assert "waiting for x_list.txt" in by_state["waiting"]
    shot = ARTIFACTS / "dashboard.png"
    chromium(f"--screenshot={shot}", "--window-size=1280,800", f"http://127.0.0.1:{port}/")
    assert png_has_content(shot)


def test_report_in_chromium(pipeline):
    root, port, done = pipeline
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}/jobs/{urllib.parse.quote(EVIL_JOB, safe='')}/report.html"
    status, html, headers = get(url)
    assert status == 200 and "default-src 'none'" in headers["Content-Security-Policy"]
    dom = chromium("--dump-dom", url)
    assert "<script" not in dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    # The x preview is what the script's print(df) shows (pandas itself, on the same rows).
    pre = re.findall(r"<pre>(.*?)</pre>", dom, re.S)
    x = pd.read_csv(done / "x_list.txt", sep="\t").head(10)
    unescape = lambda s: s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")
    assert unescape(pre[0]) == x.to_string()
    shot = ARTIFACTS / "report.png"
    chromium(f"--screenshot={shot}", "--window-size=1280,2000", url)
    assert png_has_content(shot)


def test_reports_are_only_report_files(pipeline):
    root, port, done = pipeline
    assert get(f"http://127.0.0.1:{port}/jobs/half/report.html")[0] == 404
    assert get(f"http://127.0.0.1:{port}/jobs/..%2F..%2Fetc/report.html")[0] in (400, 404)
    status, _, _ = get(f"http://127.0.0.1:{port}/jobs/broken/_state/x/report.json")
    assert status == 404
    assert get(f"http://127.0.0.1:{port}/jobs/broken/x_list.txt")[0] == 404  # inputs are not served


def raw(port, request, source="127.0.0.1"):
    """The status line of the answer to `request` sent from address `source`."""
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data.split(b"\r\n", 1)[0]


def healthz_status(port, source="127.0.0.1"):
    return raw(port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port, source)


def healthz_ok(port, source):
    try:
        return healthz_status(port, source) == b"HTTP/1.1 200 OK"
    except OSError:  # refused or reset
        return False


def closed_by_server(sock, wait):
    """True when the server ended the connection within `wait` seconds."""
    sock.settimeout(wait)
    try:
        return sock.recv(1) == b""
    except socket.timeout:
        return False
    except OSError:  # reset
        return True


def test_read_only_and_malformed_requests(pipeline):
    root, port, done = pipeline
    assert raw(port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n") == b"HTTP/1.1 405 Method Not Allowed"
    # Not a request line: libmicrohttpd 0.9.75 (Debian 12) closes the connection without an answer (later
    # versions answer 400); either way nothing is served and the server stays up.
    assert raw(port, b"garbage\r\n\r\n") in (b"HTTP/1.1 400 Bad Request", b"")
    assert healthz_status(port) == b"HTTP/1.1 200 OK"
    assert raw(port, b"GET / HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n").startswith(b"HTTP/1.1 431")
    assert raw(port, b"HEAD /healthz HTTP/1.1\r\n\r\n") == b"HTTP/1.1 200 OK"


def test_token_is_required_when_set(tmp_path):
    (tmp_path / "input").mkdir()
    refused = subprocess.run([BIN, "serve", "--local", str(tmp_path), "--http", "0.0.0.0:0"], capture_output=True,
                             timeout=30)
    assert refused.returncode == 2 and b"not a loopback address" in refused.stderr
    env = dict(os.environ, CLOUDMERGE_HTTP_TOKEN="s3cr&t")
    proc, port = start_serve(tmp_path, "--http", "127.0.0.1:0", env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        assert get(base + "/")[0] == 401
        assert get(base + "/metrics")[0] == 401
        assert get(base + "/", {"Authorization": "Bearer wrong"})[0] == 401
        assert get(base + "/", {"Authorization": "Bearer s3cr&t"})[0] == 200
        status, page, _ = get(base + "/?token=s3cr%26t")
        assert status == 200 and "/metrics?token=s3cr%26t" in page
        assert get(base + "/healthz")[0] == 200
    finally:
        stop(proc)


def test_foreign_host_header_is_refused(pipeline):
    """DNS rebinding: a page of evil.example whose name resolves to 127.0.0.1 sends "Host: evil.example"; the
    tokenless loopback dashboard must not answer it with the jobs."""
    root, port, done = pipeline
    report = "/jobs/" + urllib.parse.quote(EVIL_JOB, safe="") + "/report.json"
    for host in [f"127.0.0.1:{port}", f"localhost:{port}", f"LocalHost:{port}", f"[::1]:{port}"]:
        assert get(f"http://127.0.0.1:{port}/", {"Host": host})[0] == 200, host
    for host in ["evil.example", f"evil.example:{port}", f"localhost.evil.example:{port}", "127.0.0.1",
                 f"127.0.0.1:{port + 1}"]:
        for path in ["/", "/metrics", report]:
            status, body, _ = get(f"http://127.0.0.1:{port}{path}", {"Host": host})
            assert status == 421 and "answers to 127.0.0.1:" in body and "cloudmerge_jobs" not in body, (host, path)


def test_half_sent_requests_do_not_lock_others_out(tmp_path):
    """16 half-sent requests made the old server answer 503 to everyone, /healthz included. Now a new
    connection pushes out the oldest unfinished head of its address (on loopback every local client has
    the same one), so neither that address nor another is locked out."""
    (tmp_path / "input").mkdir()
    proc, port = start_serve(tmp_path, "--http", "127.0.0.1:0")
    held = []
    try:
        for _ in range(40):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            held.append(s)
            try:
                s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port)  # never the blank line
            except OSError:  # refused at once (the address is at its 32 while pushed-out ones close)
                pass
        for _ in range(5):  # another address: served at once
            assert healthz_ok(port, "127.0.0.2")
        # The same address: served as soon as the pushed-out connections have closed (until then they
        # count against the address's 32; milliseconds, more on a busy machine), and from then on.
        deadline = time.monotonic() + 5
        while not healthz_ok(port, "127.0.0.1"):
            assert time.monotonic() < deadline, "the half-sent requests' address stays locked out"
            time.sleep(0.05)
        for _ in range(5):
            assert healthz_ok(port, "127.0.0.1")
        still_open = sum(not closed_by_server(s, 0.05) for s in held)
        assert still_open <= 8  # the per-address cap on unfinished heads
    finally:
        for s in held:
            s.close()
        stop(proc)


def test_slow_head_is_cut_at_the_absolute_deadline(tmp_path):
    """One byte a second kept the old server's connection forever (its 5 s timeout restarted with each
    byte). The head must be complete --http-header-timeout seconds after connecting, whatever trickles in."""
    (tmp_path / "input").mkdir()
    proc, port = start_serve(tmp_path, "--http", "127.0.0.1:0", "--http-header-timeout", "2")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            start = time.monotonic()
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Slow: " % port)
            cut_after = None
            while time.monotonic() - start < 12:
                if closed_by_server(s, 1.0):
                    cut_after = time.monotonic() - start
                    break
                try:
                    s.sendall(b"a")  # one byte a second
                except OSError:
                    cut_after = time.monotonic() - start
                    break
            assert cut_after is not None and 1.8 <= cut_after <= 5, cut_after
        assert healthz_status(port) == b"HTTP/1.1 200 OK"  # the others are served as before
    finally:
        stop(proc)
