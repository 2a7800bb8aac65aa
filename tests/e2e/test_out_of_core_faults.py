"""The out-of-core engine under bad conditions (issue 3, "Bad conditions"):

  - killed with SIGKILL while spilling: no OUT; the spill directory stays (no
    process can clean up after SIGKILL), and so does the output's temporary
    next to OUT (env.cc creates `.cloudmerge-tmp-<pid>-<hex>` beside it before reading
    any input and removes it on failure or from its signal handler, which
    SIGKILL never runs; nothing reclaims it later: it is named after the dead
    process so that it can be told apart); the next run with the same
    --temp-dir removes the dead run's spill directory at start, says so in its
    report (reclaimed_temp_bytes) and gives the right answer;
  - SIGTERM / SIGINT while spilling: killed by that signal, no OUT, no output
    temporary, no spill directory (the fatal-signal handler removes both);
  - a --temp-dir on a full file system (a 2 MiB tmpfs; needs root and mount,
    skipped otherwise): a clear "full" error naming --temp-dir, no OUT;
  - a --temp-dir that does not exist, is a file, or is read-only: a clear error;
  - a run starting while another spills in the same --temp-dir leaves it alone.
"""
import contextlib
import os
import pathlib
import signal
import subprocess
import time

import pytest

from ooc_util import assert_same_bytes, generate, merge_argv, run, spill_dirs, write_rows

LIMIT = "2MiB"


@pytest.fixture(scope="module")
def big_pair(tmp_path_factory):
    """2M rows per side (~40 MB each), and their in-memory result: long enough under a 2 MiB limit for a
    signal to land while the run spills."""
    d = tmp_path_factory.mktemp("big")
    x = generate("x", 2_000_000, d / "x.tsv", seed=11)
    y = generate("y", 2_000_000, d / "y.tsv", seed=11)
    mem = d / "mem.tsv"
    run(x, y, mem, threads=2)
    return x, y, mem


def spill_bytes(directory):
    return sum(p.stat().st_size for p in pathlib.Path(directory).rglob("*.spill") if p.is_file())


def start_and_wait_for_spill(x, y, out, temp_dir, timeout=60, report=None):
    """Starts an out-of-core run and returns (process, its spill dir) once the dir holds spilled bytes."""
    argv = merge_argv(x, y, out, limit=LIMIT, temp_dir=temp_dir, fanout=4, threads=2, report=report,
                      extra=["--progress", "none"])
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + timeout
    while time.time() < deadline:
        dirs = spill_dirs(temp_dir)
        if dirs and any(p.suffix == ".spill" and p.stat().st_size > 0 for p in dirs[0].glob("*.spill")):
            return proc, dirs[0]
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before anything was spilled in {temp_dir}: "
                        f"{proc.stderr.read().decode(errors='replace')}")
        time.sleep(0.002)
    proc.kill()
    pytest.fail(f"no spill file appeared in {temp_dir} within {timeout}s")


def test_sigkill_leaves_spill_dir_that_next_run_reclaims(big_pair, tmp_path):
    x, y, mem = big_pair
    temp = tmp_path / "tmp"
    temp.mkdir()
    out = tmp_path / "out.tsv"
    proc, dead_dir = start_and_wait_for_spill(x, y, out, temp)
    proc.kill()
    proc.wait(timeout=30)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists(), "no OUT after SIGKILL"
    # What SIGKILL leaves: the output's temporary (named after the dead process) and the spill dir.
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "tmp"]
    assert len(leftovers) == 1 and leftovers[0].startswith(f".cloudmerge-tmp-{proc.pid}-"), leftovers
    assert dead_dir.is_dir() and dead_dir.name.startswith(f"cloudmerge-spill-{proc.pid}-"), dead_dir
    left = spill_bytes(dead_dir)
    assert left > 0

    r = run(x, y, out, limit=LIMIT, temp_dir=temp, fanout=4, threads=2, report=tmp_path / "r.json")
    assert_same_bytes(out, mem, "rerun after SIGKILL")
    assert r.ooc["used"]
    assert r.ooc["reclaimed_temp_bytes"] >= left, (r.ooc, left)
    assert not dead_dir.exists(), "the dead run's spill directory is reclaimed"
    assert not spill_dirs(temp), spill_dirs(temp)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_fatal_signal_removes_spill_dir_and_output_temp(sig, big_pair, tmp_path):
    x, y, _ = big_pair
    temp = tmp_path / "tmp"
    temp.mkdir()
    out = tmp_path / "out.tsv"
    proc, spill_dir = start_and_wait_for_spill(x, y, out, temp)
    proc.send_signal(sig)
    proc.wait(timeout=30)
    err = proc.stderr.read().decode(errors="replace")
    assert proc.returncode == -sig, f"exit {proc.returncode}: {err}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"], "no OUT, no output temporary"
    assert not spill_dir.exists() and not list(temp.iterdir()), f"left in --temp-dir: {list(temp.iterdir())}"


def test_fatal_signal_removes_every_open_output_temp(big_pair, tmp_path):
    """`merge --report` has two outputs open at once (the report's is opened first, so that a bad path fails
    early): an interruption removes both temporaries, not only the last one opened."""
    x, y, _ = big_pair
    temp = tmp_path / "tmp"
    temp.mkdir()
    proc, spill_dir = start_and_wait_for_spill(x, y, tmp_path / "out.tsv", temp, report=tmp_path / "report.json")
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    err = proc.stderr.read().decode(errors="replace")
    assert proc.returncode == -signal.SIGINT, f"exit {proc.returncode}: {err}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"], "no OUT, no report, no temporary of either"
    assert not spill_dir.exists(), f"left in the spill directory: {sorted(p.name for p in spill_dir.iterdir())}"


@contextlib.contextmanager
def tmpfs(path, options):
    """Mounts a tmpfs at path for the block; skips the test (with the reason) where that is impossible."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    path.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (mount -t tmpfs -o {options}): {proc.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def spilling_pair(d, rows=200_000):
    """Inputs that do not fit in 1 MiB (~2.5 MB each), so a run under that limit must use --temp-dir."""
    write_rows(d / "x.tsv", "ID\tvalue", (f"{i % 150_000}\tx{i}" for i in range(rows)))
    write_rows(d / "y.tsv", "ID\tvalue", (f"{i}\ty{i}" for i in range(rows)))
    return d / "x.tsv", d / "y.tsv"


def test_full_temp_dir_is_a_clear_error(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    x = generate("x", 1_000_000, inputs / "x.tsv", seed=5)
    y = generate("y", 1_000_000, inputs / "y.tsv", seed=5)
    out = tmp_path / "out.tsv"
    with tmpfs(tmp_path / "small", "size=2m") as small:
        r = run(x, y, out, limit=LIMIT, temp_dir=small, fanout=4, threads=2, check=False,
                extra=["--progress", "none"])
        assert r.returncode == 4, f"exit {r.returncode}: {r.stderr}"
        msg = r.stderr.lower()
        assert "full" in msg or "no space" in msg, r.stderr
        assert "--temp-dir" in r.stderr and str(small) in r.stderr, r.stderr
        assert r.stderr.startswith("Error [cloudmerge merge]: "), r.stderr
        assert not list(small.iterdir()), f"left on the full file system: {list(small.iterdir())}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "small"], "no OUT, no output temporary"


def bad_temp_dir_case(kind, tmp_path):
    if kind == "missing":
        return tmp_path / "no" / "such" / "dir"
    if kind == "a_file":
        (tmp_path / "file").write_text("x")
        return tmp_path / "file"
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["missing", "a_file"])
def test_unusable_temp_dir_is_a_clear_error(kind, tmp_path):
    x, y = spilling_pair(tmp_path)
    temp = bad_temp_dir_case(kind, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    r = run(x, y, tmp_path / "out.tsv", limit="1MiB", temp_dir=temp, check=False, extra=["--progress", "none"])
    assert r.returncode in (2, 4), f"exit {r.returncode}: {r.stderr}"
    assert r.stderr.startswith("Error [cloudmerge merge]: ") and r.stderr.count("\n") == 1, r.stderr
    assert str(temp) in r.stderr and "--temp-dir" in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "no OUT, no output temporary"


def test_read_only_temp_dir_is_a_clear_error(tmp_path):
    x, y = spilling_pair(tmp_path)
    out = tmp_path / "out.tsv"
    if os.geteuid() == 0:  # root writes through permission bits: use a read-only file system instead
        ctx = tmpfs(tmp_path / "ro", "ro,size=1m")
    else:
        (tmp_path / "ro").mkdir(mode=0o500)
        ctx = contextlib.nullcontext(tmp_path / "ro")
    with ctx as ro:
        r = run(x, y, out, limit="1MiB", temp_dir=ro, check=False, extra=["--progress", "none"])
        assert r.returncode in (2, 4), f"exit {r.returncode}: {r.stderr}"
        assert str(ro) in r.stderr and "--temp-dir" in r.stderr, r.stderr
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ro", "x.tsv", "y.tsv"], "no OUT, no output temporary"



def test_live_run_is_not_reclaimed_by_a_concurrent_one(big_pair, tmp_path):
    # Reclaiming is for dead runs only: a run starting while another spills in the same --temp-dir
    # must leave the live run's directory alone (its lock is held), and both must succeed.
    x, y, mem = big_pair
    temp = tmp_path / "tmp"
    temp.mkdir()
    out = tmp_path / "out.tsv"
    proc, live_dir = start_and_wait_for_spill(x, y, out, temp)
    try:
        sx, sy = spilling_pair(tmp_path)
        r = run(sx, sy, tmp_path / "small.tsv", limit="1MiB", temp_dir=temp, report=tmp_path / "r.json")
        assert r.ooc["used"] and r.ooc["reclaimed_temp_bytes"] == 0, r.ooc
        assert proc.poll() is None, "the big run should still be running: make its input bigger"
        assert live_dir.is_dir(), "a concurrent run removed a live run's spill directory"
    finally:
        proc.wait(timeout=300)
    err = proc.stderr.read().decode(errors="replace")
    assert proc.returncode == 0, err
    assert_same_bytes(out, mem, "the run that had company")
    assert not spill_dirs(temp), spill_dirs(temp)
