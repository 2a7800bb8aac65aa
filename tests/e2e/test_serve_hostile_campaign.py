"""Hostile-input campaign for the pipeline (issue 15, "Also"): seeded random
job folders written as an attacker or a careless user would, run by `serve
--local` (one `--once` worker with the command engine off, one polling worker
with it on) and by `serve --queue-url` against moto (SQS events, SMTP to
aiosmtpd). Job names are random bytes 0x01-0xff (locally; S3 keys: characters
U+0001-U+00FF; a quarter of them with a control character or a backslash), up to 255 bytes a folder, nested up to 3 deep; each job is one
of: good, an input that is a symbolic link to a secret outside, a FIFO input,
a huge job.json field, malformed job.json bytes, a reserved output name, a
registered command, an argv in job.json, an unregistered command name, a
command whose error output is invalid UTF-8.

Promises checked: no worker crashes (exit 0, every log line JSON); every job
ends in exactly one result or one failure (done.json xor failed.json, one end
email), or, for a name no store accepts (control characters, backslash), in
exactly one `job.rejected` log line and nothing written; good results are
byte for byte right; the secret behind the links appears nowhere (outputs,
emails, logs); nothing is written outside the job's output folder (output
files are results, reports and state markers; the folder holding the secret
and the commands' temporary folder are unchanged; no `cloudmerge-cmd-*` left).

CAMPAIGN_SEED changes the seed; CAMPAIGN_JOBS the jobs per run (default 36
locally, half as many on the queue). ~15 s. The counts of a run are printed and kept in
docs/reliability.md."""
import collections
import email
import email.header
import json
import os
import pathlib
import random
import signal
import subprocess
import time

import pytest

from conftest import BIN
from s3_server import s3  # noqa: F401  (fixture)
from test_serve_queue import pipeline  # noqa: F401  (fixture)

SEED = int(os.environ.get("CAMPAIGN_SEED", "20261206"))
JOBS = int(os.environ.get("CAMPAIGN_JOBS", "36"))
X = b"ID\tvalue\n1\ta\n2\tb\n3\tc\n"
Y = b"ID\tother\n2\tz\n3\ty\n3\tx\n"
SECRET = b"root:$6$campaign-SECRET-hash:19000:0:99999:7:::"
COMMANDS = [
    "--allow-command", 'copy=["/bin/cp", "{x}", "{out}"]',
    "--allow-command", 'noisy=["/usr/bin/python3", "-c", "import sys; sys.stderr.buffer.write(b\'\\\\xff\\\\xfe \' * 3000); sys.exit(2)", "{out}"]',
]
LOCAL_KINDS = ["good", "symlink", "fifo", "hugespec", "malformed", "reserved", "cmd", "argv", "unknown", "noisy"]
QUEUE_KINDS = ["good", "hugespec", "malformed", "reserved", "cmd", "argv", "unknown", "noisy"]
RESULT_FILES = {"merged.tsv", "report.json", "report.html"}
LOCAL_BAD = [*range(0x01, 0x20), 0x5C, 0x7F]
QUEUE_BAD = [0x01, 0x07, 0x1B, 0x5C, 0x7F]  # keys moto's HTTP server takes


def rejected_name(name):
    """What CheckKey (job_store.cc) refuses: control characters, backslash, over 1024 bytes."""
    raw = name if isinstance(name, bytes) else name.encode()
    return len(raw) > 1024 or any(b < 0x20 or b == 0x7F or b == 0x5C for b in raw)


PLAIN = [b for b in range(0x20, 0x100) if b not in (0x2F, 0x5C, 0x7F)]  # any byte a key may hold, '/' apart


def random_name(rng, bad_bytes):
    """A job folder path: 1-3 folders of random bytes (the first up to 255 bytes long); one job in four
    also holds a byte of `bad_bytes` (control characters, backslash), which no store accepts."""
    parts = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        n = rng.choice([1, 3, 8, 20, 60, 200, 254]) if not parts else rng.randrange(1, 40)
        while True:
            part = bytes(rng.choice(PLAIN) for _ in range(n))
            if part not in (b".", b".."):
                break
        parts.append(part)
    name = b"/".join(parts)
    if rng.random() < 0.25:
        i = rng.randrange(len(name) + 1)
        name = name[:i] + bytes([rng.choice(bad_bytes)]) + name[i:]
        name = name.strip(b"/") or b"x"
    return name


def spec_for(kind, rng):
    """job.json bytes for a kind (None: no job.json)."""
    return {
        "hugespec": lambda: json.dumps({"k" * 2_000_000: 1}).encode(),
        "malformed": lambda: bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))),
        "reserved": lambda: json.dumps({"output": rng.choice(["report.html", "report.json", "_state", "failed.json",
                                                              "done.json", ".x"])}).encode(),
        "cmd": lambda: json.dumps({"engine": "command", "command": "copy"}).encode(),
        "argv": lambda: json.dumps({"engine": "command", "command": ["/bin/sh", "-c", "touch /tmp/pwned-{out}"]}).encode(),
        "unknown": lambda: json.dumps({"engine": "command", "command": "rm"}).encode(),
        "noisy": lambda: json.dumps({"engine": "command", "command": "noisy"}).encode(),
    }.get(kind, lambda: None)()


def succeeds(kind, commands_on):
    return kind == "good" or (kind == "cmd" and commands_on)


def expected_result(kind):
    return X if kind == "cmd" else GOOD


GOOD = None  # the in-memory merge of X and Y, computed once


@pytest.fixture(scope="module", autouse=True)
def good_result(tmp_path_factory):
    global GOOD
    d = tmp_path_factory.mktemp("expected")
    (d / "x.tsv").write_bytes(X)
    (d / "y.tsv").write_bytes(Y)
    subprocess.run([BIN, "merge", d / "x.tsv", d / "y.tsv", "-o", d / "out.tsv"], check=True, timeout=60)
    GOOD = (d / "out.tsv").read_bytes()


def read_json_lines(text):
    # "\n" only: str.splitlines also splits at U+0085 and U+2028, which job names may hold.
    return [json.loads(l) for l in text.split("\n") if l.strip()]  # every line JSON, or this raises


def tally_and_check(jobs, commands_on, done, failed, result, log):
    """The per-job promises (end emails are counted by the caller); returns (counts, problems)."""
    counts, problems = collections.Counter(), []
    rejected_logged = sum(e.get("event") == "job.rejected" for e in log)
    n_rejected = 0
    for name, kind in jobs.items():
        if rejected_name(name):
            n_rejected += 1
            counts["rejected name"] += 1
            if done(name) or failed(name):
                problems.append(f"{name!r}: rejected name has state")
            continue
        d, f = done(name), failed(name)
        ok = succeeds(kind, commands_on)
        counts[f"{kind} {'succeeded' if ok else 'failed'}"] += 1
        if (d, f) != ((1, 0) if ok else (0, 1)):
            problems.append(f"{name!r} ({kind}): done.json {d}, failed.json {f}")
        if ok and result(name) != expected_result(kind):
            problems.append(f"{name!r} ({kind}): wrong result")
    if rejected_logged != n_rejected:
        problems.append(f"{rejected_logged} job.rejected lines for {n_rejected} rejected names")
    return counts, problems


def check_mail_counts(counts, succeeded_mails, failed_mails):
    """One success email per succeeded job, one failure email per failed job."""
    want_ok = sum(v for k, v in counts.items() if k.endswith(" succeeded"))
    want_failed = sum(v for k, v in counts.items() if k.endswith(" failed"))
    if (succeeded_mails, failed_mails) != (want_ok, want_failed):
        return [f"{succeeded_mails} success / {failed_mails} failure emails for {want_ok} / {want_failed} jobs"]
    return []


# --- serve --local ----------------------------------------------------------------------


def make_local_jobs(rng, root, outside, n):
    jobs = {}
    while len(jobs) < n:
        name = random_name(rng, LOCAL_BAD)
        if any(name.startswith(j + b"/") or j.startswith(name + b"/") or j == name for j in jobs):
            continue  # one job folder is not inside another
        kind = LOCAL_KINDS[len(jobs) % len(LOCAL_KINDS)]
        d = root / "input" / os.fsdecode(name)
        d.mkdir(parents=True)
        (d / "x_list.txt").write_bytes(X)
        (d / "y_list.txt").write_bytes(Y)
        if kind == "symlink":
            link = d / rng.choice(["x_list.txt", "y_list.txt", "job.json"])
            link.unlink(missing_ok=True)
            link.symlink_to(outside / "shadow")
        elif kind == "fifo":
            (d / "y_list.txt").unlink()
            os.mkfifo(d / "y_list.txt")
        spec = spec_for(kind, rng)
        if spec is not None:
            (d / "job.json").write_bytes(spec)
        jobs[name] = kind
    return jobs


def local_state(root, name, marker):
    d = root / "output" / os.fsdecode(name) / "_state"
    return len(list(d.glob(f"*/{marker}"))) if d.is_dir() else 0


def check_output_tree(root, jobs):
    """Only results, reports and state markers of known jobs are in output/."""
    problems = []
    names = {os.fsdecode(n) for n in jobs}
    for p in (root / "output").rglob("*"):
        if p.is_dir():
            continue
        rel = p.relative_to(root / "output").as_posix()
        owner = next((n for n in names if rel.startswith(n + "/")), None)
        rest = rel[len(owner) + 1:] if owner else rel
        if owner is None or not (rest in RESULT_FILES or rest.startswith("_state/")):
            problems.append(f"unexpected output file {rel!r}")
    return problems


def run_local(tmp_path, rng, commands_on):
    root = tmp_path / ("on" if commands_on else "off")
    outside = tmp_path / f"outside-{root.name}"
    outside.mkdir()
    (outside / "shadow").write_bytes(SECRET + b"\tx\n1\tleak\n")
    before = sorted(p.name for p in outside.iterdir())
    jobs = make_local_jobs(rng, root, outside, JOBS)
    tmp = tmp_path / f"tmp-{root.name}"
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp), AWS_SECRET_ACCESS_KEY="campaign-aws-secret")
    t0 = time.monotonic()
    if not commands_on:
        proc = subprocess.run([BIN, "serve", "--local", root, "--once"], capture_output=True, env=env, timeout=120)
        out, err, rc = proc.stdout, proc.stderr, proc.returncode
    else:  # a polling service, stopped by SIGTERM once every job has ended
        log_path = tmp_path / f"log-{root.name}"
        with open(log_path, "wb") as log_file:  # a file: a pipe nobody reads would fill and block the worker
            proc = subprocess.Popen([BIN, "serve", "--local", root, "--poll-ms", "50", "--command-timeout", "10",
                                     *COMMANDS], stdout=log_file, stderr=subprocess.PIPE, env=env)
        deadline = time.monotonic() + 60
        expect = sum(not rejected_name(n) for n in jobs)
        while time.monotonic() < deadline and proc.poll() is None:
            ended = sum(local_state(root, n, "notified-succeeded") + local_state(root, n, "notified-failed")
                        for n in jobs if not rejected_name(n))
            if ended >= expect:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        out, rc = log_path.read_bytes(), proc.returncode
    seconds = time.monotonic() - t0
    assert rc == 0, f"worker exit {rc}: {err.decode(errors='replace')[-2000:]}"
    log = read_json_lines(out.decode(errors="strict"))
    mails = collections.Counter()
    for p in (root / "outbox").glob("*.eml"):
        kind = "succeeded" if p.name.endswith("-succeeded.eml") else "failed" if p.name.endswith("-failed.eml") else ""
        if kind:
            mails[kind] += 1
    if commands_on:  # a polling worker logs rejected names once per scan: count distinct ones
        seen, dedup = set(), []
        for e in log:
            if e.get("event") == "job.rejected":
                if e["message"] in seen:
                    continue
                seen.add(e["message"])
            dedup.append(e)
        log = dedup
    counts, problems = tally_and_check(
        jobs, commands_on, done=lambda n: local_state(root, n, "done.json"),
        failed=lambda n: local_state(root, n, "failed.json"),
        result=lambda n: next((p.read_bytes() for p in [root / "output" / os.fsdecode(n) / "merged.tsv"] if p.exists()), None),
        log=log)
    problems += check_mail_counts(counts, mails["succeeded"], mails["failed"])
    written = b"".join(p.read_bytes() for sub in ("output", "outbox") for p in (root / sub).rglob("*") if p.is_file())
    if SECRET in written + out + err:
        problems.append("the secret behind a link was read")
    problems += check_output_tree(root, jobs)
    if sorted(p.name for p in outside.iterdir()) != before:
        problems.append("files appeared next to the secret")
    if list(tmp.iterdir()):
        problems.append(f"temporary folders left: {[p.name for p in tmp.iterdir()]}")
    if list(pathlib.Path("/tmp").glob("pwned-*")):
        problems.append("a job.json argv ran")
    return counts, problems, seconds, mails


def test_local_campaign(tmp_path):
    rng = random.Random(SEED)
    summary = []
    for commands_on in (False, True):
        counts, problems, seconds, mails = run_local(tmp_path, rng, commands_on)
        summary.append(f"serve --local, command engine {'on' if commands_on else 'off'}: {JOBS} jobs in "
                       f"{seconds:.1f} s; {dict(sorted(counts.items()))}; emails {dict(mails)}; "
                       f"{len(problems)} problems")
        assert not problems, "\n".join(problems[:30])
    print("\n" + "\n".join(summary))


# --- serve --queue-url against moto ---------------------------------------------------------


def test_queue_campaign(s3, pipeline, smtp):
    rng = random.Random(SEED + 1)
    p = pipeline
    jobs = {}
    n = max(8, JOBS // 2)
    while len(jobs) < n:
        raw = random_name(rng, QUEUE_BAD)
        name = raw.decode("latin-1")  # S3 keys are UTF-8: bytes 0x01-0xff as the characters U+0001-U+00FF
        if len(name.encode()) > 700 or any(name.startswith(j + "/") or j.startswith(name + "/") for j in jobs):
            continue
        kind = QUEUE_KINDS[len(jobs) % len(QUEUE_KINDS)]
        spec = spec_for(kind, rng)
        if spec is not None:
            s3.client.put_object(Bucket=p.inb, Key=f"{name}/job.json", Body=spec)
        s3.client.put_object(Bucket=p.inb, Key=f"{name}/x_list.txt", Body=X)
        s3.client.put_object(Bucket=p.inb, Key=f"{name}/y_list.txt", Body=Y)
        jobs[name] = kind
    t0 = time.monotonic()
    cmd = [BIN, "serve", "--queue-url", p.queue, "--input", f"s3://{p.inb}/", "--output", f"s3://{p.outb}/",
           "--smtp-url", smtp.url, "--mail-to", "lab@example.org", "--wait-seconds", "1", "--idle-exit-seconds", "3",
           "--visibility-timeout", "30", "--command-timeout", "10", *COMMANDS]
    proc = subprocess.run(cmd, capture_output=True, env=s3.env(), timeout=180)
    seconds = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    log = read_json_lines(proc.stdout.decode(errors="strict"))
    # Every S3 event for a rejected name is logged (one per uploaded input): count names.
    rejected = {e["message"] for e in log if e.get("event") == "job.rejected"}
    log = [e for e in log if e.get("event") != "job.rejected"] + [{"event": "job.rejected"}] * len(rejected)
    keys = []
    for page in s3.client.get_paginator("list_objects_v2").paginate(Bucket=p.outb):
        keys += [o["Key"] for o in page.get("Contents", [])]

    def state(name, marker):
        return sum(k.startswith(name + "/_state/") and k.endswith("/" + marker) for k in keys)

    def result(name):
        k = f"{name}/merged.tsv"
        return s3.client.get_object(Bucket=p.outb, Key=k)["Body"].read() if k in keys else None

    with smtp.lock:  # RFC 2047-encoded when the job name is not ASCII
        subjects = [str(email.header.make_header(email.header.decode_header(s))) for s in smtp.subjects]
    ends = [s for s in subjects if "result ready" in s or s.endswith(" failed")]
    counts, problems = tally_and_check(jobs, True, done=lambda n: state(n, "done.json"),
                                       failed=lambda n: state(n, "failed.json"), result=result, log=log)
    problems += check_mail_counts(counts, sum("result ready" in e for e in ends), sum(e.endswith(" failed") for e in ends))
    for k in keys:
        owner = next((n for n in jobs if k.startswith(n + "/")), None)
        rest = k[len(owner) + 1:] if owner else k
        if owner is None or not (rest in RESULT_FILES or rest.startswith("_state/")):
            problems.append(f"unexpected output object {k!r}")
    if SECRET in proc.stdout or "campaign-aws" in proc.stdout.decode(errors="replace"):
        problems.append("a secret in the log")
    print(f"\nserve --queue-url (moto): {n} jobs in {seconds:.1f} s; {dict(sorted(counts.items()))}; "
          f"end emails {len(ends)}; {len(problems)} problems")
    assert not problems, "\n".join(problems[:30])
