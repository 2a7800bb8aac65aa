"""`cloudmerge serve --local` facing whoever may write to its input folder
(issue 15; docs/security.md lists which guarantee each test guards):

  - the command engine runs only commands the operator registered
    (--allow-command), never an argv from job.json; with a clean environment
    (no credentials), its process group killed at the time limit, its error
    output capped and escaped; a stop signal releases its job, not fails it;
  - invalid UTF-8 in a job's name or a command's error output never aborts the
    worker;
  - a symbolic link or a FIFO in a job folder is the job's failure, and what
    the link points to is never read;
  - job.json cannot name an output the pipeline writes itself, and what it
    holds is quoted in messages in part (200 characters);
  - two `--once` workers sharing the jobs both exit 0 once all have ended.
~8 s."""
import json
import os
import pathlib
import signal
import subprocess
import time

import pytest

from conftest import BIN, CASES, add_job, body_text, mails
from test_serve_local import serve

CASE = {c.name: c for c in CASES}
X = "ID\tvalue\n1\ta\n2\tb\n"
Y = "ID\tother\n1\tz\n2\ty\n"
SECRET = "root:$6$SECRETHASH-issue15:19000:0:99999:7:::"

# Registered commands (JSON argv: arguments with spaces).
COPY_X = 'copy=["/bin/cp", "{x}", "{out}"]'
ENV_DUMP = 'envdump=["/bin/sh", "-c", "env > \\"$0\\"", "{out}"]'


def state(root, job, name):
    d = root / "output" / job / "_state"
    return list(d.glob(f"*/{name}")) if d.exists() else []


def everything_written(root):
    """All bytes the worker wrote or sent: output tree, outbox (the log separately)."""
    out = b""
    for sub in ("output", "outbox"):
        for p in (root / sub).rglob("*") if (root / sub).exists() else []:
            if p.is_file():
                out += p.read_bytes()
    return out


# --- finding 2: the command engine ------------------------------------------------------


def test_command_engine_is_off_unless_the_operator_registers_commands(tmp_path):
    marker = tmp_path / "ran"
    add_job(tmp_path, "argv", x=X, y=Y, spec={"engine": "command",
                                              "command": ["/bin/sh", "-c", f"id > {marker}; env > {{out}}"]})
    add_job(tmp_path, "named", x=X, y=Y, spec={"engine": "command", "command": "copy"})
    proc, log = serve(tmp_path, "--once")
    assert proc.returncode == 0, proc.stderr.decode()
    assert not marker.exists(), "job.json made the worker run a program"
    for job in ("argv", "named"):
        assert not (tmp_path / "output" / job / "merged.tsv").exists()
        assert len(state(tmp_path, job, "failed.json")) == 1
    texts = {m["Subject"]: body_text(m) for m in mails(tmp_path, "failed")}
    assert "cannot give a program" in texts["cloudmerge: job argv failed"]
    assert "does not offer" in texts["cloudmerge: job named failed"]


def test_a_job_can_only_name_a_registered_command(tmp_path):
    marker = tmp_path / "ran"
    add_job(tmp_path, "argv", x=X, y=Y, spec={"engine": "command", "command": ["/bin/sh", "-c", f"id > {marker}"]})
    add_job(tmp_path, "other", x=X, y=Y, spec={"engine": "command", "command": "rm"})
    add_job(tmp_path, "ok", x=X, y=Y, spec={"engine": "command", "command": "copy"})
    proc, log = serve(tmp_path, "--once", "--allow-command", COPY_X)
    assert proc.returncode == 0, proc.stderr.decode()
    assert not marker.exists()
    assert (tmp_path / "output" / "ok" / "merged.tsv").read_text() == X
    assert len(state(tmp_path, "argv", "failed.json")) == len(state(tmp_path, "other", "failed.json")) == 1
    assert "not registered" in body_text(next(m for m in mails(tmp_path, "failed") if "other" in m["Subject"]))


def test_command_gets_a_clean_environment_without_secrets(tmp_path):
    add_job(tmp_path, "env", x=X, y=Y, spec={"engine": "command", "command": "envdump"})
    env = dict(os.environ, AWS_SECRET_ACCESS_KEY="AKIA-secret-issue15", CLOUDMERGE_SMTP_PASSWORD="smtp-pw-issue15",
               AWS_SESSION_TOKEN="token-issue15", LAB_SETTING="lab-value-7")
    proc = subprocess.run([BIN, "serve", "--local", tmp_path, "--once", "--allow-command", ENV_DUMP,
                           "--command-env", "LAB_SETTING"], capture_output=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    seen = (tmp_path / "output" / "env" / "merged.tsv").read_text()
    names = {line.split("=", 1)[0] for line in seen.splitlines() if "=" in line}
    assert "LAB_SETTING=lab-value-7" in seen.splitlines()
    assert not [n for n in names if n.startswith(("AWS_", "CLOUDMERGE_"))], names
    for secret in ("AKIA-secret-issue15", "smtp-pw-issue15", "token-issue15"):
        assert secret not in seen
    assert names <= {"PATH", "HOME", "TMPDIR", "LANG", "LAB_SETTING", "PWD", "SHLVL", "_"}, names


def test_command_time_limit_kills_its_process_group(tmp_path):
    pids = tmp_path / "pids"
    slow = f'slow=["/bin/sh", "-c", "sleep 300 & echo $! >> {pids}; echo $$ >> {pids}; wait; cp \\"$0\\" \\"$1\\"", "{{x}}", "{{out}}"]'
    add_job(tmp_path, "slow", x=X, y=Y, spec={"engine": "command", "command": "slow"})
    t0 = time.monotonic()
    proc, log = serve(tmp_path, "--once", "--allow-command", slow, "--command-timeout", "1", timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    assert time.monotonic() - t0 < 20
    assert len(state(tmp_path, "slow", "failed.json")) == 1
    assert "time limit of 1 s" in body_text(mails(tmp_path, "failed")[0])
    time.sleep(0.2)
    for pid in map(int, pids.read_text().split()):  # the shell and what it left in the background
        try:
            status = pathlib.Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            continue
        assert "State:\tZ" in status, f"process {pid} of the killed command still runs"


def test_command_error_output_is_capped_and_escaped(tmp_path):
    noisy = ('noisy=["/usr/bin/python3", "-c", "import sys; sys.stderr.buffer.write(b\'x\\\\xff\' * 50000 + '
             'b\'\\\\nlast words \\\\xfe\\\\n\'); sys.exit(3)", "{out}"]')
    add_job(tmp_path, "noisy", x=X, y=Y, spec={"engine": "command", "command": "noisy"})
    add_job(tmp_path, "fine", x=X, y=Y)  # after it in job order: the worker must still be there
    proc, log = serve(tmp_path, "--once", "--allow-command", noisy)
    assert proc.returncode == 0, proc.stderr.decode()
    (failure,) = state(tmp_path, "noisy", "failed.json")
    error = json.loads(failure.read_text())["error"]
    assert "exit code 3" in error and "last words \\xfe" in error and "own last error output" in error
    assert len(error) < 3000
    text = body_text(mails(tmp_path, "failed")[0])
    assert "last words \\xfe" in text and len(text) < 5000
    assert (tmp_path / "output" / "fine" / "merged.tsv").exists()
    assert max(len(line) for line in proc.stdout.splitlines()) < 5000


def test_stop_signal_during_a_command_releases_the_job(tmp_path):
    started = tmp_path / "started"
    slow = f'slow=["/bin/sh", "-c", "touch {started}; sleep 30; cp \\"$0\\" \\"$1\\"", "{{x}}", "{{out}}"]'
    add_job(tmp_path, "long", x=X, y=Y, spec={"engine": "command", "command": "slow"})
    proc = subprocess.Popen([BIN, "serve", "--local", tmp_path, "--poll-ms", "50", "--allow-command", slow],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 30
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.exists(), "the command never started"
    os.killpg(proc.pid, signal.SIGTERM)  # the whole group, as a service manager stops it
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err.decode()
    events = [json.loads(l)["event"] for l in out.decode().splitlines()]
    assert "job.released" in events and "job.failed" not in events
    assert not state(tmp_path, "long", "failed.json") and not mails(tmp_path, "failed")
    assert not state(tmp_path, "long", "claim-*"), "the claim is released, not left to expire"
    # The next worker runs it at once.
    proc, log = serve(tmp_path, "--once", "--allow-command", COPY_X.replace("copy=", "slow="))
    assert proc.returncode == 0, proc.stderr.decode()
    assert (tmp_path / "output" / "long" / "merged.tsv").read_text() == X
    assert len(mails(tmp_path, "succeeded")) == 1 and not mails(tmp_path, "failed")


# --- finding 3: invalid UTF-8 ---------------------------------------------------------


def test_invalid_utf8_job_name_does_not_abort_the_worker(tmp_path):
    bad = os.fsdecode(b"bad\xff\xfename")
    add_job(tmp_path, bad, x=X, y=Y)
    add_job(tmp_path, "zz-after", x=X, y=Y)  # after it in job order
    proc = subprocess.run([BIN, "serve", "--local", tmp_path, "--once"], capture_output=True, timeout=60)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr.decode(errors='replace')[-500:]}"
    for line in proc.stdout.splitlines():
        json.loads(line)  # every line valid JSON (the invalid bytes replaced)
    assert (tmp_path / "output" / bad / "merged.tsv").exists()
    assert (tmp_path / "output" / "zz-after" / "merged.tsv").exists()
    report = json.loads((tmp_path / "output" / bad / "report.json").read_bytes())
    assert report["job"] == "bad\ufffd\ufffdname"
    assert len(mails(tmp_path, "succeeded")) == 2
    # Seen again: already done, no crash, no second email.
    proc = subprocess.run([BIN, "serve", "--local", tmp_path, "--once"], capture_output=True, timeout=60)
    assert proc.returncode == 0 and len(mails(tmp_path, "succeeded")) == 2


# --- finding 5: links and FIFOs in a job folder -----------------------------------------------


def test_symlinked_input_is_a_job_failure_and_never_read(tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text(f"{SECRET}\tx\n1\tleak\n")
    d = add_job(tmp_path, "leak", y=Y)
    (d / "x_list.txt").symlink_to(secret)
    d2 = add_job(tmp_path, "leakspec", x=X, y=Y)
    (d2 / "job.json").symlink_to(secret)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "x_list.txt").write_text(f"{SECRET}\tx\n")
    (outside / "y_list.txt").write_text(Y)
    (tmp_path / "input" / "linkdir").symlink_to(outside)  # a linked folder is not followed
    proc, log = serve(tmp_path, "--once")
    assert proc.returncode == 0, proc.stderr.decode()
    assert SECRET.encode() not in everything_written(tmp_path) + proc.stdout
    for job in ("leak", "leakspec"):
        assert len(state(tmp_path, job, "failed.json")) == 1
        assert not (tmp_path / "output" / job / "merged.tsv").exists()
    assert not (tmp_path / "output" / "linkdir").exists()
    texts = [body_text(m) for m in mails(tmp_path, "failed")]
    assert len(texts) == 2 and all("is a symbolic link" in t for t in texts)


def test_fifo_input_fails_instead_of_blocking(tmp_path):
    d = add_job(tmp_path, "pipe", x=X)
    os.mkfifo(d / "y_list.txt")
    proc, log = serve(tmp_path, "--once", timeout=30)
    assert proc.returncode == 0, proc.stderr.decode()
    assert len(state(tmp_path, "pipe", "failed.json")) == 1
    assert "FIFO" in body_text(mails(tmp_path, "failed")[0])


# --- finding 8: reserved output names ----------------------------------------------------


@pytest.mark.parametrize("name", ["report.html", "report.json", "_state", "failed.json", ".hidden"])
def test_reserved_output_name_is_refused(tmp_path, name):
    add_job(tmp_path, "j", x=X, y=Y, spec={"output": name})
    proc, log = serve(tmp_path, "--once")
    assert proc.returncode == 0, proc.stderr.decode()
    assert not state(tmp_path, "j", "done.json") and len(state(tmp_path, "j", "failed.json")) == 1
    assert "the pipeline writes itself" in body_text(mails(tmp_path, "failed")[0])


# --- finding 10: bounded echoes, --once workers -----------------------------------------------


def test_huge_job_json_field_is_quoted_in_part(tmp_path):
    d = add_job(tmp_path, "huge", x=X, y=Y)
    (d / "job.json").write_text(json.dumps({"k" * 5_000_000: 1}))
    d2 = add_job(tmp_path, "hugekey", x=X, y=Y)
    (d2 / "job.json").write_text(json.dumps({"key": "c" * 5_000_000}))
    proc, log = serve(tmp_path, "--once")
    assert proc.returncode == 0, proc.stderr.decode()
    assert max(len(line) for line in proc.stdout.splitlines()) < 10_000
    for job in ("huge", "hugekey"):
        (failure,) = state(tmp_path, job, "failed.json")
        assert failure.stat().st_size < 10_000
        assert (tmp_path / "output" / job / "report.html").stat().st_size < 20_000
    assert all(len(m.as_bytes()) < 20_000 for m in mails(tmp_path))
    assert "kkkk…" in body_text(next(m for m in mails(tmp_path, "failed") if "huge failed" in m["Subject"]))


def run_id(root, job):
    """The run id of a local job (job.h: sha256 of the inputs' key, size and etag)."""
    import hashlib
    ident = ""
    for side in ("x", "y"):
        p = root / "input" / job / f"{side}_list.txt"
        st = p.stat()
        ident += f"{side}={job}/{p.name}:{st.st_size}:{st.st_mtime_ns}-{st.st_size}-{st.st_ino}\n"
    return hashlib.sha256(ident.encode()).hexdigest()[:20]


def test_once_waits_for_a_job_held_by_another_worker(tmp_path):
    add_job(tmp_path, "held", x=X, y=Y)
    add_job(tmp_path, "free", x=X, y=Y)
    claims = tmp_path / "output" / "held" / "_state" / run_id(tmp_path, "held")
    claims.mkdir(parents=True)
    # Another worker's live claim, lasting 1.5 s more (then it looks dead: taken over).
    (claims / "claim-1").write_text(json.dumps({"worker": "other:1", "expires_ms": int(time.time() * 1000) + 1500}))
    proc, log = serve(tmp_path, "--once", "--poll-ms", "100")
    assert proc.returncode == 0, proc.stderr.decode()
    events = [e["event"] for e in log]
    assert "job.busy" in events and "serve.waiting" in events and "job.takeover" in events
    assert (tmp_path / "output" / "held" / "merged.tsv").exists() and (tmp_path / "output" / "free" / "merged.tsv").exists()


def test_two_once_workers_both_exit_0_when_every_job_finished(tmp_path):
    started = tmp_path / "started"
    slow = f'slow=["/bin/sh", "-c", "touch {started}; sleep 1; cp \\"$0\\" \\"$1\\"", "{{x}}", "{{out}}"]'
    add_job(tmp_path, "a-slow", x=X, y=Y, spec={"engine": "command", "command": "slow"})
    for i in range(3):
        add_job(tmp_path, f"b-{i}", x=X, y=Y)
    args = [BIN, "serve", "--local", tmp_path, "--once", "--poll-ms", "100", "--allow-command", slow]
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    second = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # finds a-slow busy
    outs = [p.communicate(timeout=60) for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], [e.decode()[-300:] for _, e in outs]
    assert any(json.loads(l)["event"] == "job.busy" for l in outs[1][0].splitlines())
    assert len(mails(tmp_path, "succeeded")) == 4


@pytest.mark.parametrize("spec, says", [("v2=nosuchprog {x} {out}", "is not on PATH"),
                                        ("v2=/bin/cp {x} {y}", "never uses {out}"),
                                        ("bad name=/bin/cp {x} {out}", "is not valid"),
                                        ('v2=["/bin/cp", "{x}"', "not valid JSON"),
                                        ("v2", "has no '='")])
def test_bad_command_registration_stops_the_start(tmp_path, spec, says):
    proc = subprocess.run([BIN, "serve", "--local", tmp_path, "--once", "--allow-command", spec], capture_output=True,
                          timeout=30)
    assert proc.returncode == 2 and says in proc.stderr.decode(), proc.stderr.decode()
