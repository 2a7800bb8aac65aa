"""What the fault campaigns against `cloudmerge serve` share
(test_kill_campaign.py: random SIGKILLs; test_fault_campaign.py: network
faults, a full disk and kills): seeded job inputs and their expected results,
the worker's JSON log, what a killed worker was doing, the per-job promises
(one result or one failure, one email); the SMTP server recording subjects is
conftest's `smtp` fixture."""
import collections
import json
import pathlib
import subprocess


from conftest import BIN

LEASE = 1  # seconds: a killed worker's claim expires quickly, so restarts take over
BAD_JOB = "bad-fields"
X_NAME, Y_NAME = "x_list.txt", "y_list.txt"
RESULT_FILES = ("merged.tsv", "report.json", "report.html")  # what a job's output folder may hold besides _state/


# --- inputs and expected results ---------------------------------------------------


def table(rng, rows, key_space, width):
    """A TSV with an ID column of integers (duplicates on purpose) and `width` value columns."""
    lines = ["ID\t" + "\t".join(f"v{c}" for c in range(width))]
    for i in range(rows):
        lines.append(f"{rng.randrange(key_space)}\t" + "\t".join(f"r{i}c{c}-{rng.randrange(10**6)}" for c in range(width)))
    return "\n".join(lines) + "\n"


def make_jobs(rng, small, large, large_rows, prefix="", bad=True):
    """{job: (x text, y text)}: `small` jobs of a few hundred rows, `large` ones
    of `large_rows` rows per side, and one bad job (a row with an extra field)."""
    jobs = {}
    for i in range(small):
        n = rng.randrange(50, 800)
        jobs[f"{prefix}small-{i:02d}"] = (table(rng, n, n, 2), table(rng, n, n, 1))
    for i in range(large):
        jobs[f"{prefix}large-{i}"] = (table(rng, large_rows, large_rows, 3), table(rng, large_rows, large_rows, 2))
    if bad:
        jobs[prefix + BAD_JOB] = ("ID\tvalue\n1\ta\n2\tb\textra\n", "ID\tvalue\n1\tz\n")
    return jobs


def is_bad(job):
    return job.endswith(BAD_JOB)


def expected_outputs(jobs, work):
    """The in-memory `cloudmerge merge` output of each good job (inputs kept in work/expected/<job>/)."""
    out = {}
    for job, (x, y) in jobs.items():
        d = work / "expected" / job
        d.mkdir(parents=True)
        (d / "x.tsv").write_text(x)
        (d / "y.tsv").write_text(y)
        if is_bad(job):
            continue
        subprocess.run([BIN, "merge", d / "x.tsv", d / "y.tsv", "-o", d / "out.tsv"], check=True, capture_output=True,
                       timeout=120)
        out[job] = (d / "out.tsv").read_bytes()
    return out


# --- workers --------------------------------------------------------------------------


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
    last = next((e for e in reversed(events) if e.get("event") in
                 ("job.started", "job.succeeded", "job.failed", "notify.resumed", "notify.sending", "notify.sent")),
                None)
    if last is None:
        return "idle/claim"
    if last["event"] == "job.started" or (last["event"].startswith("notify.") and last.get("kind") == "received"):
        return "read/join"
    if last["event"] in ("job.succeeded", "job.failed", "notify.resumed", "notify.sending"):
        return "notify"
    return "idle/claim"


def reclaim_spill(work, temp_dir, job_dir):
    """Runs one spilling `cloudmerge merge` in temp_dir (it reclaims the spill
    directories of killed runs) and returns what is left in temp_dir."""
    proc = subprocess.run([BIN, "merge", job_dir / "x.tsv", job_dir / "y.tsv", "-o", work / "reclaim.tsv",
                           "--memory-limit", "4MiB", "--temp-dir", temp_dir], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    (work / "reclaim.tsv").unlink()
    return sorted(pathlib.Path(temp_dir).rglob("*"))  # every path, so that a failure shows what was left


# --- the promises -------------------------------------------------------------------


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


END_KINDS = ("succeeded", "failed")


def unmarked_sends(log):
    """{(job, kind, channel)} of end notifications this worker may have sent
    on `channel` without marking them sent, so that the next worker sends them
    again on that channel: its log has the channel's notify.sending and no
    notify.sent or notify.failed after it (the worker was SIGKILLed inside that
    send, or between the send and its marker: job_runner.cc, NotifyOnce, marks
    each channel right after its send), or a notify.sent with "marked": false
    (the marker could not be written). These are the only repeats the
    pipeline allows itself: one message, on one channel, per such send."""
    open_, unmarked = set(), set()
    for e in read_log(log):
        if e.get("kind") not in END_KINDS:
            continue
        key = (e.get("job"), e.get("kind"), e.get("channel"))
        if e.get("event") == "notify.sending":
            open_.add(key)
        elif e.get("event") in ("notify.sent", "notify.failed"):
            open_.discard(key)
            if e.get("event") == "notify.sent" and e.get("marked") is False:
                unmarked.add(key)
    return open_ | unmarked


def on_channel(sends, channel):
    """{(job, kind)} of `sends` (from unmarked_sends) on `channel`: check_jobs' `repeatable`."""
    return {(job, kind) for job, kind, c in sends if c == channel}


def check_jobs(jobs, expected, mails, done, failed, result, failure, channel="email", repeatable=()):
    """The per-job promises; returns the broken ones (all of them, for a useful
    failure). `repeatable`: (job, kind) whose notification may have gone out
    twice on this channel (on_channel(unmarked_sends(...), channel)): a worker
    was killed between sending it there and marking it sent."""
    problems = []
    for job in sorted(jobs):
        n_done, n_failed, out = done(job), failed(job), result(job)
        if is_bad(job):
            if out is not None or n_done or n_failed != 1 or "x_list.txt, line 3" not in failure(job):
                problems.append(f"{job}: result {out is not None}, done.json {n_done}, failed.json {n_failed}")
            if not 1 <= mails[job, "failed"] <= 1 + ((job, "failed") in repeatable):
                problems.append(f"{job}: {mails[job, 'failed']} failure {channel}s, not 1")
            continue
        if n_done != 1 or n_failed:
            problems.append(f"{job}: done.json {n_done}, failed.json {n_failed}")
        if out != expected[job]:
            problems.append(f"{job}: the result differs from `cloudmerge merge` ({'missing' if out is None else len(out)})")
        if not 1 <= mails[job, "succeeded"] <= 1 + ((job, "succeeded") in repeatable):
            problems.append(f"{job}: {mails[job, 'succeeded']} success {channel}s, not 1")
    return problems


def check_bucket_jobs(jobs, expected, mails, client, bucket, all_keys, repeatable=()):
    """check_jobs for queue workers: markers and results are objects of `bucket`
    (all_keys: its keys, listed once)."""
    def state(job, name):
        return [k for k in all_keys if k.startswith(f"{job}/_state/") and k.endswith("/" + name)]

    def get(key):
        return client.get_object(Bucket=bucket, Key=key)["Body"].read() if key in all_keys else None

    return check_jobs(jobs, expected, mails, done=lambda job: len(state(job, "done.json")),
                      failed=lambda job: len(state(job, "failed.json")), result=lambda job: get(f"{job}/merged.tsv"),
                      failure=lambda job: b"".join(get(k) for k in state(job, "failed.json")).decode(),
                      repeatable=repeatable)


def state_markers(out_dir, job, name):
    return list((out_dir / job / "_state").glob(f"*/{name}")) if (out_dir / job / "_state").exists() else []


