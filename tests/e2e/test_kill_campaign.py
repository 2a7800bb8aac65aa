"""Random SIGKILL fault campaign across the pipeline (issue 7, faults).

`cloudmerge serve` is started, SIGKILLed at a seeded random moment, restarted,
killed again, ... until every job has ended; then the pipeline's promises are
checked, job by job:

  - every good job has exactly one result (one done.json), byte for byte the
    in-memory `cloudmerge merge` output of its inputs; the
    deliberately bad job has no result and exactly one failed.json;
  - exactly one success (or failure) notification per job, however often the
    worker died around it (the "inputs received" email is best effort: its
    marker is created before it is sent, so a kill in between drops it), and
    no half-written notification file left in the outbox;
  - no partial objects: nothing in the output but results, reports and state
    markers; on S3 (moto) no multipart upload left open (ListMultipartUploads);
  - no temporary left: spill directories of killed runs are reclaimed by the
    next run that spills into the same --temp-dir; output temporaries
    (`*.cloudmerge-tmp-*`) of killed local runs are removed by the takeover.

Two campaigns: `serve --local` (directory notification channel, jobs big
enough to spill under a small --memory-limit, so kills land in reading,
spilling, joining, writing and notifying), and `serve --queue-url` against moto
(S3 inputs and outputs, SQS events, SMTP notifications; a job whose result is
a multipart upload). Each kill is classified by what the killed worker was
doing (from its log and the files it had open) and the tallies are printed;
docs/reliability.md has the figures of a run.

KILL_CAMPAIGN_SEED changes the seed; KILL_CAMPAIGN_SECONDS the time spent
killing (per campaign; default 40)."""
import collections
import email
import json
import os
import pathlib
import random
import signal
import socket
import subprocess
import threading
import time

import boto3
import pytest
from aiosmtpd.controller import Controller

from conftest import BIN
from s3_server import s3  # noqa: F401  (fixture)

SEED = int(os.environ.get("KILL_CAMPAIGN_SEED", "20261125"))
KILL_SECONDS = float(os.environ.get("KILL_CAMPAIGN_SECONDS", "40"))
LEASE = 1  # seconds: a killed worker's claim expires quickly, so restarts take over
BAD_JOB = "bad-fields"
X_NAME, Y_NAME = "x_list.txt", "y_list.txt"


# --- inputs and expected results ---------------------------------------------------


def table(rng, rows, key_space, width):
    """A TSV with an ID column of integers (duplicates on purpose) and `width` value columns."""
    lines = ["ID\t" + "\t".join(f"v{c}" for c in range(width))]
    for i in range(rows):
        lines.append(f"{rng.randrange(key_space)}\t" + "\t".join(f"r{i}c{c}-{rng.randrange(10**6)}" for c in range(width)))
    return "\n".join(lines) + "\n"


def make_jobs(rng, small, large, large_rows):
    """{job: (x text, y text)}: `small` jobs of a few hundred rows, `large` ones
    of `large_rows` rows per side, and one bad job (a row with an extra field)."""
    jobs = {}
    for i in range(small):
        n = rng.randrange(50, 800)
        jobs[f"small-{i:02d}"] = (table(rng, n, n, 2), table(rng, n, n, 1))
    for i in range(large):
        jobs[f"large-{i}"] = (table(rng, large_rows, large_rows, 3), table(rng, large_rows, large_rows, 2))
    jobs[BAD_JOB] = ("ID\tvalue\n1\ta\n2\tb\textra\n", "ID\tvalue\n1\tz\n")
    return jobs


def expected_outputs(jobs, work):
    """The in-memory `cloudmerge merge` output of each good job (inputs kept in work/expected/<job>/)."""
    out = {}
    for job, (x, y) in jobs.items():
        d = work / "expected" / job
        d.mkdir(parents=True)
        (d / "x.tsv").write_text(x)
        (d / "y.tsv").write_text(y)
        if job == BAD_JOB:
            continue
        subprocess.run([BIN, "merge", d / "x.tsv", d / "y.tsv", "-o", d / "out.tsv"], check=True, capture_output=True,
                       timeout=120)
        out[job] = (d / "out.tsv").read_bytes()
    return out


# --- the kill loop ---------------------------------------------------------------


def read_log(path):
    events = []
    for line in pathlib.Path(path).read_text(errors="replace").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            pass  # the last line of a killed worker may be cut off
    return events


def phase_of(events, spilling, writing):
    """What a killed worker was doing: from the files it had open (spill files,
    an output temporary or an open multipart upload) and its last job event."""
    if spilling:
        return "spill"
    if writing:
        return "write"
    last = next((e for e in reversed(events)
                 if e.get("event") in ("job.started", "job.succeeded", "job.failed", "notify.sent")), None)
    if last is None:
        return "idle/claim"
    if last["event"] == "job.started" or (last["event"] == "notify.sent" and last.get("kind") == "received"):
        return "read/join"
    if last["event"] in ("job.succeeded", "job.failed"):
        return "notify"
    return "idle/claim"


def campaign(rng, start, submit, pending, ended, snapshot, seconds, log_dir):
    """Starts a worker, kills it at a random moment, again and again for
    `seconds`, submitting jobs from `pending` a few at a time so that a worker
    always has something to be killed in; returns the kill tally by phase."""
    kills = collections.Counter()
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline and (pending or not ended()):
        if pending and rng.random() < 0.7:
            for _ in range(rng.randint(1, 3)):
                if pending:
                    submit(pending.pop(0))
        log = log_dir / f"worker-{n}.log"
        with open(log, "wb") as f:
            proc = start(f)
        # Mostly early kills (read, claim, spill), some late ones (write, upload, notify).
        time.sleep(rng.choice([rng.uniform(0.05, 0.6), rng.uniform(0.3, 2.5)]))
        spilling, writing = snapshot()
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills[phase_of(read_log(log), spilling, writing)] += 1
        else:
            proc.wait()
        n += 1
        # Sometimes restart at once (the old claim is still live: busy), sometimes after the lease.
        time.sleep(rng.choice([0, LEASE + 0.2]))
    while pending:  # time is up: the rest unkilled
        submit(pending.pop(0))
    return kills


def print_tally(name, kills, jobs, seconds):
    print(f"\nkill campaign {name} (seed {SEED}): {sum(kills.values())} SIGKILLs survived "
          f"({', '.join(f'{k} {v}' for k, v in sorted(kills.items()))}), {len(jobs)} jobs checked, {seconds:.0f} s")


def count_mails(subjects):
    """{(job, kind): emails} from the subjects job_runner.cc writes."""
    mails = collections.Counter()
    for s in subjects:
        for kind, prefix, suffix in (("received", "cloudmerge: inputs received for job ", ""),
                                     ("succeeded", "cloudmerge: result ready for job ", " ("),
                                     ("failed", "cloudmerge: job ", " failed")):
            if s.startswith(prefix) and (not suffix or suffix in s):
                job = s[len(prefix):]
                job = job[: job.rfind(suffix)] if suffix else job
                mails[job, kind] += 1
    return mails


def check_jobs(jobs, expected, mails, done, failed, result, failure):
    """The per-job promises; returns the broken ones (all of them, for a useful failure)."""
    problems = []
    for job in sorted(jobs):
        n_done, n_failed, out = done(job), failed(job), result(job)
        if job == BAD_JOB:
            if out is not None or n_done or n_failed != 1 or "x_list.txt, line 3" not in failure(job):
                problems.append(f"{job}: result {out is not None}, done.json {n_done}, failed.json {n_failed}")
            if mails[job, "failed"] != 1:
                problems.append(f"{job}: {mails[job, 'failed']} failure emails, not 1")
            continue
        if n_done != 1 or n_failed:
            problems.append(f"{job}: done.json {n_done}, failed.json {n_failed}")
        if out != expected[job]:
            problems.append(f"{job}: the result differs from `cloudmerge merge` ({'missing' if out is None else len(out)})")
        if mails[job, "succeeded"] != 1:
            problems.append(f"{job}: {mails[job, 'succeeded']} success emails, not 1")
    return problems


# --- serve --local ------------------------------------------------------------------


def state_markers(out_dir, job, name):
    return list((out_dir / job / "_state").glob(f"*/{name}")) if (out_dir / job / "_state").exists() else []


def test_sigkill_campaign_local(tmp_path):
    rng = random.Random(SEED)
    jobs = make_jobs(rng, small=24, large=6, large_rows=120_000)
    expected = expected_outputs(jobs, tmp_path)
    root, spill, logs = tmp_path / "serve", tmp_path / "spill", tmp_path / "logs"
    spill.mkdir()
    logs.mkdir()

    def submit(job):  # each input appears whole (a rename), x first
        d = root / "input" / job
        d.mkdir(parents=True)
        for name, src in ((X_NAME, "x.tsv"), (Y_NAME, "y.tsv")):
            staged = tmp_path / "expected" / job / f"{src}.copy"
            staged.write_bytes((tmp_path / "expected" / job / src).read_bytes())
            os.replace(staged, d / name)

    out_dir, outbox = root / "output", root / "outbox"
    argv = [BIN, "serve", "--local", root, "--lease-seconds", LEASE, "--memory-limit", "4MiB", "--temp-dir", spill,
            "--threads", "2"]

    def start(log):
        return subprocess.Popen([*map(str, argv), "--poll-ms", "50"], stdout=log, stderr=subprocess.STDOUT)

    def ended(job):
        return bool(state_markers(out_dir, job, "done.json") or state_markers(out_dir, job, "failed.json"))

    def snapshot():
        return (any(spill.glob("cloudmerge-spill-*/*.spill")),
                bool(out_dir.exists() and any(out_dir.glob("*/*.cloudmerge-tmp-*"))))

    t0 = time.monotonic()
    pending = sorted(jobs)
    rng.shuffle(pending)
    kills = campaign(rng, start, submit, pending, lambda: all(ended(j) for j in jobs), snapshot, KILL_SECONDS, logs)
    # Then workers that are left alone, until every job has ended.
    for _ in range(20):
        if all(ended(j) for j in jobs):
            break
        time.sleep(LEASE + 0.2)
        subprocess.run([*map(str, argv), "--once"], capture_output=True, timeout=120)
    elapsed = time.monotonic() - t0
    print_tally("local", kills, jobs, elapsed)
    assert sum(kills.values()) >= 10, "the campaign killed too few workers to mean anything"

    problems = check_jobs(
        jobs, expected,
        count_mails(email.message_from_bytes(p.read_bytes())["Subject"] for p in outbox.glob("*.eml")),
        done=lambda job: len(state_markers(out_dir, job, "done.json")),
        failed=lambda job: len(state_markers(out_dir, job, "failed.json")),
        result=lambda job: (out_dir / job / "merged.tsv").read_bytes() if (out_dir / job / "merged.tsv").exists() else None,
        failure=lambda job: "".join(p.read_text() for p in state_markers(out_dir, job, "failed.json")))
    # No partial outputs or temporaries in the output tree; only results, reports, state markers.
    leftovers = [p for p in out_dir.rglob("*") if p.is_file() and "_state" not in p.parts
                 and p.name not in ("merged.tsv", "report.json", "report.html")]
    if leftovers:
        problems.append(f"partial or temporary objects left: {leftovers}")
    partial = sorted(p.name for p in outbox.iterdir() if not p.name.endswith(".eml"))
    if partial:
        problems.append(f"half-written notification files left in the outbox: {partial}")
    # Spill directories of killed runs: the next run that spills reclaims them.
    big = tmp_path / "expected" / "large-0"
    proc = subprocess.run([BIN, "merge", big / "x.tsv", big / "y.tsv", "-o", tmp_path / "reclaim.tsv", "--memory-limit",
                           "4MiB", "--temp-dir", spill], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    if list(spill.iterdir()):
        problems.append(f"temporary files left in --temp-dir after the next run: {list(spill.iterdir())}")
    assert not problems, "\n".join(problems)


# --- serve --queue-url against moto ---------------------------------------------------


class Recorder:
    def __init__(self):
        self.subjects = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.subjects.append(email.message_from_bytes(envelope.content)["Subject"])
        return "250 OK"


@pytest.fixture
def smtp():
    rec = Recorder()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctl = Controller(rec, hostname="127.0.0.1", port=port)
    ctl.start()
    rec.url = f"smtp://127.0.0.1:{port}"
    yield rec
    ctl.stop()


def test_sigkill_campaign_queue(s3, smtp, tmp_path):  # noqa: F811
    rng = random.Random(SEED + 1)
    # large-0's result (~20 MiB) is bigger than a multipart part (16 MiB): a multipart upload.
    jobs = make_jobs(rng, small=12, large=1, large_rows=220_000)
    expected = expected_outputs(jobs, tmp_path)
    assert len(expected["large-0"]) > 16 << 20, "the large job no longer needs a multipart upload"
    sqs = boto3.client("sqs", endpoint_url=s3.endpoint_url, region_name=s3.region,
                       aws_access_key_id=s3.access_key_id, aws_secret_access_key=s3.secret_access_key)
    inb, outb = s3.new_bucket("in"), s3.new_bucket("out")
    queue = sqs.create_queue(QueueName=f"events-{inb}")["QueueUrl"]
    q_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.client.put_bucket_notification_configuration(Bucket=inb, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": q_arn, "Events": ["s3:ObjectCreated:*"]}]})

    def submit(job):
        s3.client.put_object(Bucket=inb, Key=f"{job}/{X_NAME}", Body=jobs[job][0].encode())
        s3.client.put_object(Bucket=inb, Key=f"{job}/{Y_NAME}", Body=jobs[job][1].encode())

    spill, logs = tmp_path / "spill", tmp_path / "logs"
    spill.mkdir()
    logs.mkdir()
    argv = [BIN, "serve", "--queue-url", queue, "--input", f"s3://{inb}/", "--output", f"s3://{outb}/",
            "--smtp-url", smtp.url, "--mail-to", "scientist@example.org", "--lease-seconds", LEASE,
            "--visibility-timeout", 2, "--wait-seconds", 1, "--memory-limit", "8MiB", "--temp-dir", spill,
            "--threads", "2"]

    def keys(prefix=""):
        pages = s3.client.get_paginator("list_objects_v2").paginate(Bucket=outb, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def ended_jobs():
        return {k.split("/")[0] for k in keys() if k.endswith(("/done.json", "/failed.json"))}

    def start(log):
        return subprocess.Popen([*map(str, argv)], stdout=log, stderr=subprocess.STDOUT, env=s3.env())

    def snapshot():
        uploads = s3.client.list_multipart_uploads(Bucket=outb).get("Uploads", [])
        return any(spill.glob("cloudmerge-spill-*/*.spill")), bool(uploads)

    t0 = time.monotonic()
    pending = sorted(jobs)
    rng.shuffle(pending)
    kills = campaign(rng, start, submit, pending, lambda: ended_jobs() >= set(jobs), snapshot, KILL_SECONDS, logs)
    # Messages of killed workers come back after the visibility timeout: let workers finish.
    for _ in range(10):
        if ended_jobs() >= set(jobs):
            break
        time.sleep(LEASE + 0.2)
        subprocess.run([*map(str, argv), "--idle-exit-seconds", "4"], capture_output=True, env=s3.env(), timeout=180)
    elapsed = time.monotonic() - t0
    print_tally("queue", kills, jobs, elapsed)
    assert sum(kills.values()) >= 5, "the campaign killed too few workers to mean anything"

    all_keys = keys()

    def state(job, name):
        return [k for k in all_keys if k.startswith(f"{job}/_state/") and k.endswith("/" + name)]

    def get(key):
        return s3.client.get_object(Bucket=outb, Key=key)["Body"].read() if key in all_keys else None

    problems = check_jobs(jobs, expected, count_mails(smtp.subjects), done=lambda job: len(state(job, "done.json")),
                          failed=lambda job: len(state(job, "failed.json")), result=lambda job: get(f"{job}/merged.tsv"),
                          failure=lambda job: b"".join(get(k) for k in state(job, "failed.json")).decode())
    leftovers = [k for k in all_keys if "/_state/" not in k
                 and k.split("/", 1)[1] not in ("merged.tsv", "report.json", "report.html")]
    if leftovers:
        problems.append(f"partial objects: {leftovers}")
    uploads = s3.client.list_multipart_uploads(Bucket=outb).get("Uploads", [])
    if uploads:
        problems.append(f"orphaned multipart uploads: {[u['Key'] for u in uploads]}")
    if list(spill.iterdir()):  # queue workers spill too; the last runs did not die
        problems.append(f"temporary files left in --temp-dir: {list(spill.iterdir())}")
    assert not problems, "\n".join(problems)
    sqs.purge_queue(QueueUrl=queue)


# --- the window the campaign found ---------------------------------------------------


@pytest.mark.parametrize("job,kind", [("small-00", "succeeded"), (BAD_JOB, "failed")])
def test_worker_killed_between_end_marker_and_email_still_notifies(tmp_path, job, kind):
    """The state a SIGKILL leaves between done.json (failed.json) and the email
    (job_runner.cc: the marker is created, then NotifyOnce sends and marks): the
    next worker must send the email, not take the run for a duplicate and drop
    it. Built deterministically here: a finished job minus its email and its
    notified-<kind> marker."""
    jobs = make_jobs(random.Random(SEED), small=1, large=0, large_rows=0)
    root = tmp_path / "serve"
    d = root / "input" / job
    d.mkdir(parents=True)
    (d / X_NAME).write_text(jobs[job][0])
    (d / Y_NAME).write_text(jobs[job][1])
    argv = [BIN, "serve", "--local", str(root), "--once"]
    subprocess.run(argv, capture_output=True, timeout=60, check=True)
    outbox = root / "outbox"
    sent = [p for p in outbox.glob("*.eml") if p.name.endswith(f"-{kind}.eml")]
    markers = list((root / "output" / job / "_state").glob(f"*/notified-{kind}"))
    assert len(sent) == 1 and len(markers) == 1, (sent, markers)
    sent[0].unlink()
    markers[0].unlink()
    subprocess.run(argv, capture_output=True, timeout=60, check=True)
    again = [p for p in outbox.glob("*.eml") if p.name.endswith(f"-{kind}.eml")]
    assert len(again) == 1, f"the '{kind}' email of a worker killed after its end marker was never sent"
