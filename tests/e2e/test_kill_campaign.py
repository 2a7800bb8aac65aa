"""Random SIGKILL fault campaign across the pipeline (issue 7, faults).

`cloudmerge serve` is started, SIGKILLed at a seeded random moment, restarted,
killed again, ... until every job has ended; then the pipeline's promises are
checked, job by job:

  - every good job has exactly one result (one done.json), byte for byte the
    in-memory `cloudmerge merge` output of its inputs; the
    deliberately bad job has no result and exactly one failed.json;
  - exactly one success (or failure) notification per job, however often the
    worker died around it, except where a worker was killed between a
    channel's send and its marker (its log has notify.sending and no
    notify.sent: serve_campaign.unmarked_sends), which may repeat that one
    message on that one channel, as job_runner's NotifyOnce documents (the
    "inputs received" email is best effort: its marker is created before it is
    sent, so a kill in between drops it), and no half-written notification
    file left in the outbox;
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
import os
import random
import signal
import subprocess
import time

import boto3
import pytest

from conftest import BIN, event_queue
from s3_server import s3  # noqa: F401  (fixture)
from serve_campaign import (BAD_JOB, LEASE, X_NAME, Y_NAME, check_bucket_jobs, check_jobs, count_mails,
                            expected_outputs, make_jobs, on_channel, phase_of, read_log, reclaim_spill, state_markers,
                            unmarked_sends)

SEED = int(os.environ.get("KILL_CAMPAIGN_SEED", "20261125"))
KILL_SECONDS = float(os.environ.get("KILL_CAMPAIGN_SECONDS", "40"))


# --- the kill loop ---------------------------------------------------------------


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


def interrupted_sends(log_dir, channel):
    """(job, kind) of end notifications that a killed worker may have sent on
    `channel` without marking them (check_jobs' `repeatable`)."""
    sends = set()
    for log in log_dir.glob("*.log"):
        sends |= unmarked_sends(log)
    return on_channel(sends, channel)


def print_tally(name, kills, jobs, seconds):
    print(f"\nkill campaign {name} (seed {SEED}): {sum(kills.values())} SIGKILLs survived "
          f"({', '.join(f'{k} {v}' for k, v in sorted(kills.items()))}), {len(jobs)} jobs checked, {seconds:.0f} s")


# --- serve --local ------------------------------------------------------------------


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
        return (any(spill.glob("cloudmerge-*/cloudmerge-spill-*/*.spill")),
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
    left = reclaim_spill(tmp_path, spill, tmp_path / "expected" / "large-0")
    if left:
        problems.append(f"temporary files left in --temp-dir after the next run: {left}")
    assert not problems, "\n".join(problems)


# --- serve --queue-url against moto ---------------------------------------------------


def test_sigkill_campaign_queue(s3, smtp, tmp_path):  # noqa: F811
    rng = random.Random(SEED + 1)
    # large-0's result (~20 MiB) is bigger than a multipart part (16 MiB): a multipart upload.
    jobs = make_jobs(rng, small=12, large=1, large_rows=220_000)
    expected = expected_outputs(jobs, tmp_path)
    assert len(expected["large-0"]) > 16 << 20, "the large job no longer needs a multipart upload"
    sqs = boto3.client("sqs", endpoint_url=s3.endpoint_url, region_name=s3.region,
                       aws_access_key_id=s3.access_key_id, aws_secret_access_key=s3.secret_access_key)
    inb, outb = s3.new_bucket("in"), s3.new_bucket("out")
    queue = event_queue(s3, sqs, inb)

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
        return any(spill.glob("cloudmerge-*/cloudmerge-spill-*/*.spill")), bool(uploads)

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
    problems = check_bucket_jobs(jobs, expected, count_mails(smtp.subjects), s3.client, outb, all_keys,
                                 repeatable=interrupted_sends(logs, "smtp"))
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
    markers = list((root / "output" / job / "_state").glob(f"*/notified-{kind}*"))
    assert len(sent) == 1 and len(markers) == 2, (sent, markers)  # notified-<kind> and notified-<kind>-directory
    sent[0].unlink()
    for m in markers:
        m.unlink()
    subprocess.run(argv, capture_output=True, timeout=60, check=True)
    again = [p for p in outbox.glob("*.eml") if p.name.endswith(f"-{kind}.eml")]
    assert len(again) == 1, f"the '{kind}' email of a worker killed after its end marker was never sent"
