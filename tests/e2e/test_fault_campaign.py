"""Network faults, a full disk and SIGKILLs against `cloudmerge serve`
(issue 7, item 4): the kill campaign (test_kill_campaign.py) widened.

The campaign runs in rounds. Each round submits a few new jobs (small ones, a
large one that spills, and a deliberately bad one), then

  1. a fault phase: workers run while
       - every request to S3, SQS and SNS goes through tests/e2e/fault_proxy.py,
         which answers some of them with 503 SlowDown or 500 InternalError,
         resets the connection before forwarding ("reset"), forwards and then
         drops the connection ("lost": it took effect, the answer is lost), or
         forwards and cuts the response body short ("truncate"); the rate
         changes from round to round (5-40 %);
       - --temp-dir (and, for `serve --local`, the output directory) is a tmpfs
         with only a few MiB free, so spilling (writing) runs out of space;
       - about half of the workers are SIGKILLed at a random moment, the others
         run until they go idle or the phase ends;
  2. a clean phase: no network faults, the file systems grown (a tmpfs remount
     keeps their contents), workers left alone until every job of the round
     has ended;

and then every job so far is checked, as the kill campaign does: exactly one
result (byte for byte the in-memory `cloudmerge merge` of its inputs) and one
done.json, or for the bad job no result and one failed.json; exactly one
success or failure email (SMTP, not faulted; two only when a worker was
SIGKILLed inside that job's SMTP send or between it and its marker:
job_runner.cc marks each channel right after its send, so that window, one
send wide, repeats rather than loses the message, on that channel only, and
it is counted from the workers' notify.sending / notify.sent lines) and at
least one SNS message of that kind (a "lost" or cut Publish took effect and is
retried: SNS delivers at least once, so duplicates are allowed up to the
number of such faults plus the kills inside an SNS send); no
partial object (nothing but results, reports and state markers); no open
multipart upload (ListMultipartUploads); no temporary in the output tree, no
half-written file in the outbox, nothing left in --temp-dir once the next
spilling run has reclaimed the killed runs' spill directories.

The full disk needs root and `mount -t tmpfs -o size=...`; without them the
queue campaign runs with network faults only (it says so) and the local one,
which has nothing else to inject, is skipped with the reason.

FAULT_CAMPAIGN_SECONDS: time spent in fault phases per campaign (default 45;
the default run of both takes about 3 minutes); FAULT_CAMPAIGN_SEED: the seed.
The tallies (faults by kind, kills by phase, jobs checked) are printed (-s);
docs/reliability.md has the figures of a longer run."""
import collections
import contextlib
import email
import json
import os
import random
import shutil
import signal
import subprocess
import time

import boto3
import pytest

from conftest import BIN, event_queue, topic_with_mail_queue
from fault_proxy import FaultProxy
from s3_server import s3  # noqa: F401  (fixture)
from serve_campaign import (LEASE, RESULT_FILES, X_NAME, Y_NAME, check_bucket_jobs, check_jobs, count_mails,
                            expected_outputs, make_jobs, on_channel, phase_of, read_log, reclaim_spill,
                            state_markers, table, unmarked_sends)

SEED = int(os.environ.get("FAULT_CAMPAIGN_SEED", "20261126"))
SECONDS = float(os.environ.get("FAULT_CAMPAIGN_SECONDS", "45"))
FAULT_PHASE = 12  # seconds of faults per round (less in the last round)
NET_KINDS = ("503", "500", "reset", "lost", "truncate")
SMALL_FREE = 2 << 20  # bytes left free on a "full" file system: a large job's spill (~6 MB zstd) needs more
ROOMY = "1g"


# --- a file system that can be filled and then given room ---------------------------------


class SmallFs:
    """A tmpfs at `path` whose size is set to what it holds plus a few MiB
    (fill) or to plenty (grow); a remount keeps the contents, as freeing space
    on a real disk would."""

    def __init__(self, path):
        self.path = path

    def _remount(self, size):
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True, capture_output=True)

    def fill(self, free=SMALL_FREE):
        st = os.statvfs(self.path)
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        self._remount(used + free)

    def grow(self):
        self._remount(ROOMY)


def mount_small_fs(path):
    """(SmallFs, None) where a tmpfs can be mounted at path, else (None, why not)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return None, "mounting a small tmpfs needs root"
    if not shutil.which("mount"):
        return None, "no mount command"
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SMALL_FREE}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return None, f"cannot mount a tmpfs here (mount -t tmpfs -o size=...): {proc.stderr.strip()}"
    return SmallFs(path), None


@contextlib.contextmanager
def small_filesystems(*paths):
    """Mounts a small tmpfs at each path; yields ([SmallFs], reason) with an empty list if impossible."""
    mounted, reason = [], None
    try:
        for p in paths:
            fs, reason = mount_small_fs(p)
            if fs is None:
                break
            mounted.append(fs)
        if reason:
            for fs in mounted:
                subprocess.run(["umount", str(fs.path)], capture_output=True)
            mounted = []
        yield mounted, reason
    finally:
        for fs in mounted:
            subprocess.run(["umount", "-l", str(fs.path)], capture_output=True)


# --- the rounds -----------------------------------------------------------------------


class Tally:
    def __init__(self):
        self.kills = collections.Counter()
        self.workers = 0
        self.disk_full = 0  # log lines of workers that ran out of space
        self.jobs = 0
        self.rounds = 0
        self.problems = []
        # (job, kind, channel): a worker may have sent it there without marking it (serve_campaign.unmarked_sends)
        self.repeatable = set()

    def problem(self, text):
        if text not in self.problems:  # every round checks every job so far: report each once
            self.problems.append(text)

    def repeats(self, mails, channel):
        return sum(1 for key in on_channel(self.repeatable, channel) if mails[key] > 1)

    def count_disk_full(self, log):
        previous = None
        for e in read_log(log):
            msg = str(e.get("message", "")).lower()
            # job.error and queue.message_failed repeat the job.retry before them: one failure.
            repeated = previous is not None and previous.get("message") == e.get("message")
            if e.get("level") in ("error", "warn") and ("no space" in msg or " is full" in msg) and not repeated:
                self.disk_full += 1
            previous = e

    def line(self, name, net):
        kills = ", ".join(f"{k} {v}" for k, v in sorted(self.kills.items())) or "none"
        nets = ", ".join(f"{s} {k} {v}" for (s, k), v in sorted(net.items()) if v) or "none"
        return (f"fault campaign {name} (seed {SEED}): {self.rounds} rounds, {self.workers} workers, "
                f"{sum(net.values())} network faults ({nets}), {self.disk_full} out-of-space errors, "
                f"{sum(self.kills.values())} SIGKILLs ({kills}), {self.jobs} jobs checked, "
                f"{len(self.problems)} problems")

    def notify_line(self, mails, channel):
        return (f"{len(self.repeatable)} sends interrupted between a channel's send and its marker "
                f"({len(on_channel(self.repeatable, channel))} on {channel}, {self.repeats(mails, channel)} of "
                f"which repeated the message there)")


def fault_phase(rng, tally, start, snapshot, seconds, log_dir):
    """Workers under faults for `seconds`: about half SIGKILLed at a random
    moment, the others left to run until they exit or the phase ends."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        log = log_dir / f"worker-{tally.workers}.log"
        tally.workers += 1
        with open(log, "wb") as f:
            proc = start(f)
        kill_at = time.monotonic() + rng.uniform(0.1, 4.0) if rng.random() < 0.5 else deadline
        while proc.poll() is None and time.monotonic() < min(kill_at, deadline):
            time.sleep(0.05)
        if proc.poll() is None:
            spilling, writing = snapshot()
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            tally.kills[phase_of(read_log(log), spilling, writing)] += 1
        tally.repeatable |= unmarked_sends(log)
        tally.count_disk_full(log)
        time.sleep(rng.choice([0, LEASE + 0.2]))


def round_jobs(rng, n, every=2):
    # A large job every `every` rounds: its spill (~6 MB zstd) and result (~8 MB) do not fit a "full" file system.
    return make_jobs(rng, small=3, large=1 if n % every == 0 else 0, large_rows=100_000, prefix=f"r{n}-")


def rounds(seconds):
    """Fault-phase lengths: FAULT_PHASE each, the remainder last (at least 2 rounds)."""
    out, left = [], seconds
    while left > 0.5 or len(out) < 2:
        out.append(max(min(FAULT_PHASE, left), 4))
        left -= out[-1]
    return out


# --- serve --queue-url against moto, through the fault proxy ---------------------------


def test_fault_campaign_queue(s3, smtp, tmp_path):  # noqa: F811
    rng = random.Random(SEED)
    direct = dict(endpoint_url=s3.endpoint_url, region_name=s3.region, aws_access_key_id=s3.access_key_id,
                  aws_secret_access_key=s3.secret_access_key)
    sqs, sns = boto3.client("sqs", **direct), boto3.client("sns", **direct)
    inb, outb = s3.new_bucket("in"), s3.new_bucket("out")
    queue = event_queue(s3, sqs, inb)
    topic, mailq = topic_with_mail_queue(sqs, sns, inb)
    sns_subjects = []

    def drain_sns():
        while True:
            got = sqs.receive_message(QueueUrl=mailq, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
            if not got:
                return
            for m in got:
                sns_subjects.append(json.loads(m["Body"]).get("Subject", ""))
                sqs.delete_message(QueueUrl=mailq, ReceiptHandle=m["ReceiptHandle"])

    logs = tmp_path / "logs"
    logs.mkdir()
    spill = tmp_path / "spill"
    reclaim_dir = tmp_path / "reclaim"
    reclaim_dir.mkdir()
    (reclaim_dir / "x.tsv").write_text(table(rng, 100_000, 100_000, 2))
    (reclaim_dir / "y.tsv").write_text(table(rng, 100_000, 100_000, 1))

    with FaultProxy(s3.endpoint_url, rate=0, seed=SEED, kinds=NET_KINDS) as proxy, \
            small_filesystems(spill) as (small, no_fs_reason):
        if no_fs_reason:
            print(f"\nfault campaign queue: no full disk ({no_fs_reason}); network faults and kills only")
        # S3, SQS and SNS all through the proxy (AWS_ENDPOINT_URL serves all three).
        env = s3.env(AWS_ENDPOINT_URL=proxy.url)
        argv = [BIN, "serve", "--queue-url", queue, "--input", f"s3://{inb}/", "--output", f"s3://{outb}/",
                "--smtp-url", smtp.url, "--mail-to", "scientist@example.org", "--sns-topic-arn", topic,
                "--lease-seconds", LEASE, "--visibility-timeout", 2, "--wait-seconds", 1, "--memory-limit", "8MiB",
                "--temp-dir", spill, "--threads", "2"]

        def start(log, idle=3):
            return subprocess.Popen([*map(str, argv), "--idle-exit-seconds", str(idle)], stdout=log,
                                    stderr=subprocess.STDOUT, env=env)

        def keys(prefix=""):
            pages = s3.client.get_paginator("list_objects_v2").paginate(Bucket=outb, Prefix=prefix)
            return [o["Key"] for page in pages for o in page.get("Contents", [])]

        def ended_jobs():  # ended, and notified on every channel (a failed channel is retried by the next delivery)
            return {k.split("/")[0] for k in keys() if k.endswith(("/notified-succeeded", "/notified-failed"))}

        def uploads():
            return s3.client.list_multipart_uploads(Bucket=outb).get("Uploads", [])

        def snapshot():
            return any(spill.glob("cloudmerge-*/cloudmerge-spill-*/*.spill")), bool(uploads())

        tally, jobs, expected = Tally(), {}, {}
        t0 = time.monotonic()
        for n, phase_seconds in enumerate(rounds(SECONDS)):
            new = round_jobs(rng, n)
            expected.update(expected_outputs(new, tmp_path))
            jobs.update(new)
            proxy.rate = rng.choice([0.05, 0.15, 0.25, 0.4])
            for fs in small:
                fs.fill()
            for job in sorted(new, key=lambda _: rng.random()):  # straight to moto: submitting is not under test
                s3.client.put_object(Bucket=inb, Key=f"{job}/{X_NAME}", Body=new[job][0].encode())
                s3.client.put_object(Bucket=inb, Key=f"{job}/{Y_NAME}", Body=new[job][1].encode())
            fault_phase(rng, tally, start, snapshot, phase_seconds, logs)

            # Clean: messages of killed or failed workers come back after the visibility timeout.
            proxy.rate = 0
            for fs in small:
                fs.grow()
            for _ in range(12):
                if ended_jobs() >= set(jobs):
                    break
                time.sleep(LEASE + 0.2)
                log = logs / f"worker-{tally.workers}.log"
                tally.workers += 1
                with open(log, "wb") as f:
                    start(f, idle=4).wait(timeout=300)
                tally.repeatable |= unmarked_sends(log)
            tally.rounds += 1

            # The promises, for every job so far.
            drain_sns()
            all_keys = keys()
            problems = check_bucket_jobs(jobs, expected, count_mails(smtp.subjects), s3.client, outb, all_keys,
                                         repeatable=on_channel(tally.repeatable, "smtp"))
            sns_mails = count_mails(sns_subjects)
            # SNS Publish is not idempotent: a Publish that took effect but whose answer was lost is sent again.
            sns_retried = sum(v for (s, k), v in proxy.by_service.items() if s == "sns" and k in ("lost", "truncate"))
            sns_extra = 0
            for job in jobs:
                kind = "failed" if job not in expected else "succeeded"
                if sns_mails[job, kind] < 1:
                    problems.append(f"{job}: no '{kind}' SNS notification")
                sns_extra += max(0, sns_mails[job, kind] - 1)
            sns_unmarked = len(on_channel(tally.repeatable, "sns"))
            if sns_extra > sns_retried + sns_unmarked:
                problems.append(f"{sns_extra} duplicate SNS notifications, but only {sns_retried} Publish answers "
                                f"lost and {sns_unmarked} SNS sends interrupted before their marker")
            leftovers = [k for k in all_keys if "/_state/" not in k and k.split("/", 1)[1] not in RESULT_FILES]
            if leftovers:
                problems.append(f"partial objects: {leftovers}")
            if uploads():
                problems.append(f"orphaned multipart uploads: {[(u['Key'], u['UploadId']) for u in uploads()]}")
            left = reclaim_spill(tmp_path, spill, reclaim_dir)
            if left:
                problems.append(f"temporary files left in --temp-dir after the next spilling run: {left}")
            for p in problems:
                tally.problem(p)
        tally.jobs = len(jobs)
        print("\n" + tally.line("queue", proxy.by_service) + f", {time.monotonic() - t0:.0f} s; "
              + tally.notify_line(count_mails(smtp.subjects), "smtp"))
    sqs.purge_queue(QueueUrl=queue)
    assert sum(proxy.injected.values()) >= 20, "too few faults injected to mean anything"
    assert not tally.problems, "\n".join(tally.problems)


# --- serve --local, with --temp-dir and the output directory on full file systems -----------


def test_fault_campaign_local(tmp_path):
    rng = random.Random(SEED + 1)
    root, spill, logs = tmp_path / "serve", tmp_path / "spill", tmp_path / "logs"
    out_dir, outbox = root / "output", root / "outbox"
    logs.mkdir()
    reclaim_dir = tmp_path / "reclaim"
    reclaim_dir.mkdir()
    (reclaim_dir / "x.tsv").write_text(table(rng, 100_000, 100_000, 2))
    (reclaim_dir / "y.tsv").write_text(table(rng, 100_000, 100_000, 1))

    with small_filesystems(spill, out_dir) as (small, no_fs_reason):
        if no_fs_reason:
            pytest.skip(f"a full disk cannot be simulated here: {no_fs_reason}")
        argv = [BIN, "serve", "--local", root, "--lease-seconds", LEASE, "--memory-limit", "4MiB", "--temp-dir",
                spill, "--threads", "2"]

        def start(log):
            return subprocess.Popen([*map(str, argv), "--poll-ms", "50"], stdout=log, stderr=subprocess.STDOUT)

        def submit(job):  # each input appears whole (a rename), x first
            d = root / "input" / job
            d.mkdir(parents=True)
            for name, src in ((X_NAME, "x.tsv"), (Y_NAME, "y.tsv")):
                staged = tmp_path / "expected" / job / f"{src}.copy"
                staged.write_bytes((tmp_path / "expected" / job / src).read_bytes())
                os.replace(staged, d / name)

        def ended(job):  # and notified (a worker killed mid-notification leaves it to the next one)
            return bool(state_markers(out_dir, job, "notified-succeeded") or
                        state_markers(out_dir, job, "notified-failed"))

        def snapshot():
            return (any(spill.glob("cloudmerge-*/cloudmerge-spill-*/*.spill")),
                    bool(out_dir.exists() and any(out_dir.glob("*/*.cloudmerge-tmp-*"))))

        tally, jobs, expected = Tally(), {}, {}
        t0 = time.monotonic()
        for n, phase_seconds in enumerate(rounds(SECONDS * 0.7)):
            new = round_jobs(rng, n, every=1)
            expected.update(expected_outputs(new, tmp_path))
            jobs.update(new)
            # Round by round: a full --temp-dir, a full output directory (nearly or very), or both.
            full = [small[0]] if n % 3 == 0 else [small[1]] if n % 3 == 1 else small
            for fs in full:
                fs.fill(rng.choice([256 << 10, SMALL_FREE]) if fs is small[1] else SMALL_FREE)
            for job in sorted(new, key=lambda _: rng.random()):
                submit(job)
            fault_phase(rng, tally, start, snapshot, phase_seconds, logs)

            for fs in small:
                fs.grow()
            for _ in range(20):
                if all(ended(j) for j in jobs):
                    break
                time.sleep(LEASE + 0.2)
                log = logs / f"worker-{tally.workers}.log"
                tally.workers += 1
                with open(log, "wb") as f:
                    subprocess.run([*map(str, argv), "--once"], stdout=f, stderr=subprocess.STDOUT, timeout=300)
                tally.repeatable |= unmarked_sends(log)
            tally.rounds += 1

            mails = count_mails(email.message_from_bytes(p.read_bytes())["Subject"] for p in outbox.glob("*.eml"))
            problems = check_jobs(
                jobs, expected, mails,
                done=lambda job: len(state_markers(out_dir, job, "done.json")),
                failed=lambda job: len(state_markers(out_dir, job, "failed.json")),
                result=lambda job: (out_dir / job / "merged.tsv").read_bytes() if (out_dir / job / "merged.tsv").exists()
                else None,
                failure=lambda job: "".join(p.read_text() for p in state_markers(out_dir, job, "failed.json")),
                repeatable=on_channel(tally.repeatable, "directory"))
            leftovers = [p for p in out_dir.rglob("*") if p.is_file() and "_state" not in p.parts
                         and p.name not in RESULT_FILES]
            if leftovers:
                problems.append(f"partial or temporary files left in the output: {leftovers}")
            state_temps = [p for p in out_dir.rglob("_state/*/*") if ".cloudmerge-tmp-" in p.name]
            if state_temps:
                problems.append(f"temporary state files left: {state_temps}")
            partial = sorted(p.name for p in outbox.iterdir() if not p.name.endswith(".eml")) if outbox.exists() else []
            if partial:
                problems.append(f"half-written notification files left in the outbox: {partial}")
            left = reclaim_spill(tmp_path, spill, reclaim_dir)
            if left:
                problems.append(f"temporary files left in --temp-dir after the next spilling run: {left}")
            for p in problems:
                tally.problem(p)
        tally.jobs = len(jobs)
        print("\n" + tally.line("local", collections.Counter()) + f", {time.monotonic() - t0:.0f} s; "
              + tally.notify_line(mails, "directory"))
    assert tally.disk_full >= 1, "no worker ran out of space: the small file systems are too big for the jobs"
    assert not tally.problems, "\n".join(tally.problems)
