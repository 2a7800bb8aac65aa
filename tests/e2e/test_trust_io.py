"""Issue 15 ("Trust"), the engine's side: what a careless user or another local
user can put in the temp dir, and what an input can make the engine allocate.

  - Spill cleanup removes only what cloudmerge created (finding 1): spill
    directories live in DIR/cloudmerge-<uid>/ (0700, checked before use) and
    carry a marker; planted symlinks, other users' directories and a user's
    own `cloudmerge-spill-results/` in DIR survive an out-of-core run, even
    while a symlink is swapped in and out; an unsafe private root is refused.
    (Reclaiming a dead run's directory: test_out_of_core_faults.py.)
  - --memory-limit holds for standard input, FIFOs, devices and decompression
    (finding 7): /dev/zero, a gzip bomb and a zstd bomb end in a clear
    "record too long" error with peak RSS near the limit; standard input and
    FIFOs stream in segments (kept in the temp dir only when a second pass
    needs them) and give the same bytes as files.
  - A 244-character output name works: the temporary has a short name of its
    own (finding 10).

Runtime: ~15 s release.
"""
import gzip
import json
import os
import pathlib
import shutil
import subprocess
import threading
import time

import pytest

import ooc_util
from conftest import BIN

TIMEOUT = 120
NOBODY = 65534


def write_pair(d, rows=3000):
    x = d / "x.tsv"
    y = d / "y.tsv"
    x.write_text("ID\tv\n" + "".join(f"{i % 700}\tx{i}\n" for i in range(rows)))
    y.write_text("ID\tw\n" + "".join(f"{(i * 7) % 900}\ty{i}\n" for i in range(rows)))
    return x, y


def merge(*args, stdin=None, cwd=None):
    return subprocess.run([BIN, "merge", *map(str, args), "--progress", "none"], stdin=stdin, capture_output=True,
                          timeout=TIMEOUT, cwd=cwd)


def expected_for(tmp_path, x, y, *extra):
    out = tmp_path / "expected.tsv"
    proc = merge(x, y, "-o", out, *extra)
    assert proc.returncode == 0, proc.stderr
    return out.read_bytes()


def make_victim(d):
    """A folder of root-owned files that nothing may remove."""
    victim = d / "victim"
    victim.mkdir()
    for i in range(10):
        (victim / f"precious-{i}.spill").write_text(f"keep {i}\n")
    (victim / ".lock").write_text("")
    return victim


def victim_intact(victim):
    missing = [f"precious-{i}.spill" for i in range(10) if not (victim / f"precious-{i}.spill").exists()]
    assert not missing, f"files outside cloudmerge's own directories were removed: {missing}"
    assert (victim / ".lock").exists()


# ---- Finding 1: spill cleanup ------------------------------------------------------

def test_spill_cleanup_never_removes_planted_or_foreign_files(tmp_path):
    x, y = write_pair(tmp_path)
    want = expected_for(tmp_path, x, y)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    victim = make_victim(tmp_path)
    # A local attacker's symlinks, under the final and the staging name (made old, past the grace minute).
    (shared / "cloudmerge-spill-1111-00000000000000aa").symlink_to(victim)
    staging = shared / ".cloudmerge-spill-1112-00000000000000ab"
    staging.symlink_to(victim)
    os.utime(staging, (time.time() - 3600,) * 2, follow_symlinks=False)
    # Another user's directory shaped like a dead run's (its lock free).
    theirs = shared / "cloudmerge-spill-2222-00000000000000bb"
    theirs.mkdir()
    (theirs / ".lock").write_text("")
    (theirs / "x-0.spill").write_text("theirs\n")
    if os.geteuid() == 0:
        for p in (theirs, theirs / ".lock", theirs / "x-0.spill"):
            os.chown(p, NOBODY, NOBODY)
    # A user's own folder, no attacker needed.
    results = shared / "cloudmerge-spill-results"
    results.mkdir()
    (results / "summary.txt").write_text("my results\n")
    (results / "run-1.spill").write_text("my data\n")

    out = tmp_path / "out.tsv"
    proc = merge(x, y, "-o", out, "--memory-limit", "1KiB", "--temp-dir", shared, "--report", tmp_path / "r.json")
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == want
    victim_intact(victim)
    assert (shared / "cloudmerge-spill-1111-00000000000000aa").is_symlink()
    assert (theirs / "x-0.spill").read_text() == "theirs\n"
    assert (results / "summary.txt").read_text() == "my results\n"
    assert (results / "run-1.spill").read_text() == "my data\n"
    # The run spilled, in its private root, and left the temp dir as it found it.
    assert json.loads((tmp_path / "r.json").read_text())["out_of_core"]["used"] is True
    assert not ooc_util.private_root(shared).exists()


def test_spill_cleanup_survives_a_symlink_swap_race(tmp_path):
    """A thread swaps a dead-looking spill directory for a symlink to the victim and back, as fast as it
    can, while out-of-core runs start (each reclaims at its start): no victim file is ever removed."""
    x, y = write_pair(tmp_path, rows=1500)
    want = expected_for(tmp_path, x, y)
    shared = tmp_path / "shared"
    shared.mkdir()
    victim = make_victim(tmp_path)
    bait = shared / "cloudmerge-spill-3333-00000000000000cc"
    real = shared / "bait-real"
    stop = threading.Event()

    def swap():
        while not stop.is_set():
            try:
                real.mkdir(exist_ok=True)
                (real / ".lock").write_text("")
                (real / "x-0.spill").write_text("bait\n")
                os.rename(real, bait)
                bait.rename(real)
                link = shared / "bait-link"
                link.symlink_to(victim)
                os.rename(link, bait)
                bait.unlink()
            except OSError:
                pass

    t = threading.Thread(target=swap, daemon=True)
    t.start()
    try:
        for i in range(6):
            out = tmp_path / f"out{i}.tsv"
            proc = merge(x, y, "-o", out, "--memory-limit", "1KiB", "--temp-dir", shared)
            assert proc.returncode == 0, proc.stderr
            assert out.read_bytes() == want
            victim_intact(victim)
    finally:
        stop.set()
        t.join()
    victim_intact(victim)


@pytest.mark.parametrize("kind", ["symlink", "foreign", "open"])
def test_unsafe_private_temp_root_is_refused(tmp_path, kind):
    """DIR/cloudmerge-<uid> planted as a symlink, owned by someone else, or open to others: a clear error
    (exit 4) before any work, nothing written, nothing removed."""
    if kind == "foreign" and os.geteuid() != 0:
        pytest.skip("needs root to give the directory to another user")
    x, y = write_pair(tmp_path, rows=200)
    shared = tmp_path / "shared"
    shared.mkdir()
    victim = make_victim(tmp_path)
    # What a removal through the symlink would reach: a dead-looking spill directory of the victim's.
    inside = victim / "cloudmerge-spill-4444-00000000000000dd"
    inside.mkdir()
    (inside / ".cloudmerge-spill-dir").write_text("")
    (inside / "x-0.spill").write_text("keep\n")
    root = ooc_util.private_root(shared)
    if kind == "symlink":
        root.symlink_to(victim)
        what = "symbolic link"
    else:
        root.mkdir()
        if kind == "foreign":
            root.chmod(0o700)
            os.chown(root, NOBODY, NOBODY)
            what = f"belongs to user {NOBODY}"
        else:
            root.chmod(0o755)
            what = "mode is 0755"
    out = tmp_path / "out.tsv"
    proc = merge(x, y, "-o", out, "--memory-limit", "1KiB", "--temp-dir", shared)
    err = proc.stderr.decode()
    assert proc.returncode == 4, err
    assert str(root) in err and what in err and "--temp-dir" in err, err
    assert not out.exists()
    victim_intact(victim)
    assert (inside / "x-0.spill").exists()


# ---- Finding 10: a long output name -------------------------------------------------

def test_244_character_output_name_works(tmp_path):
    x, y = write_pair(tmp_path, rows=200)
    want = expected_for(tmp_path, x, y)
    out = tmp_path / ("o" * 240 + ".tsv")
    assert len(out.name) == 244
    proc = merge(x, y, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == want
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["x.tsv", "y.tsv", "expected.tsv", out.name])


# ---- Finding 7: the memory limit for standard input, devices, decompression --------

LIMIT = 256 << 20
# The binary, allocator slack and the kernel's page cache accounting: the limit is the budget of the
# join, and a refused record is an eighth of it.
RSS_BOUND = LIMIT + (48 << 20)


def run_bounded(argv, stdin=None):
    """Runs argv, sampling its peak RSS; returns (exit code, stderr, peak RSS in bytes)."""
    proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sampler = ooc_util.HighWaterSampler(proc.pid)
    timer = threading.Timer(60, proc.kill)  # a run that would eat the machine is stopped, and fails below
    timer.start()
    err = proc.stderr.read().decode(errors="replace")
    peak = sampler.stop()
    proc.wait()
    timer.cancel()
    proc.stderr.close()
    return proc.returncode, err, peak


def assert_record_too_long(rc, err, peak, name):
    assert rc == 3, f"exit {rc}: {err[:2000]}"
    assert name in err and "record" in err and "--memory-limit" in err, err
    assert peak < RSS_BOUND, f"peak RSS {peak >> 20} MiB with --memory-limit {LIMIT >> 20}MiB"


@pytest.mark.rss_bound
@pytest.mark.parametrize("side", ["x", "y"])
def test_dev_zero_fails_cleanly_within_the_memory_limit(tmp_path, side):
    x, y = write_pair(tmp_path, rows=50)
    args = ["/dev/zero", y] if side == "x" else [x, "/dev/zero"]
    rc, err, peak = run_bounded([BIN, "merge", *map(str, args), "-o", str(tmp_path / "out.tsv"),
                                 "--memory-limit", "256MiB", "--progress", "none"])
    assert_record_too_long(rc, err, peak, "/dev/zero")
    assert not (tmp_path / "out.tsv").exists()


@pytest.mark.rss_bound
def test_endless_standard_input_fails_cleanly_within_the_memory_limit(tmp_path):
    _, y = write_pair(tmp_path, rows=50)
    with open("/dev/zero", "rb") as zero:
        rc, err, peak = run_bounded([BIN, "merge", "-", str(y), "--memory-limit", "256MiB", "--progress", "none"],
                                    stdin=zero)
    assert_record_too_long(rc, err, peak, "standard input")


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    """1 GiB of zeros (no line break) as a ~1 MB gzip file of 16 members and a zstd file."""
    d = tmp_path_factory.mktemp("bombs")
    member = gzip.compress(bytes(64 << 20), compresslevel=9)
    gz = d / "bomb.tsv.gz"
    gz.write_bytes(member * 16)
    zst = d / "bomb.tsv.zst"
    with open(zst, "wb") as f:
        head = subprocess.Popen(["head", "-c", str(1 << 30), "/dev/zero"], stdout=subprocess.PIPE)
        subprocess.run(["zstd", "-q", "-1", "-c"], stdin=head.stdout, stdout=f, check=True)
        head.wait()
    return {"gz": gz, "zst": zst}


@pytest.mark.rss_bound
@pytest.mark.parametrize("codec", ["gz", "zst"])
def test_decompression_bomb_stays_within_the_memory_limit(tmp_path, bombs, codec):
    _, y = write_pair(tmp_path, rows=50)
    bomb = bombs[codec]
    assert bomb.stat().st_size < 2 << 20
    rc, err, peak = run_bounded([BIN, "merge", str(bomb), str(y), "-o", str(tmp_path / "out.tsv"),
                                 "--memory-limit", "256MiB", "--progress", "none"])
    assert_record_too_long(rc, err, peak, bomb.name)


def stdin_pair(tmp_path, rows):
    """y int64; x int64 but for its last ID, which makes it uint64: the in-memory engine's probe
    assumed int64 and runs again with uint64 keys, reading x a second time."""
    y = tmp_path / "y.tsv"
    y.write_text("ID\tw\n" + "".join(f"{i}\ty{i}\n" for i in range(0, 100, 3)))
    x = tmp_path / "x.tsv"
    x.write_text("ID\tv\n" + "".join(f"{i % 100}\tx{i}\n" for i in range(rows)) + "18446744073709551615\tlast\n")
    return x, y


@pytest.mark.parametrize("case", ["stdout", "file", "max-output-rows", "out-of-core"])
def test_standard_input_streams_and_gives_the_same_answer(tmp_path, case):
    """x on standard input, longer than a segment (--segment-kib 8): to standard output (x typed in a
    first pass), to a file (the type speculation fails: a second pass), with --max-output-rows (a count
    pass, then the write), out of core. The second pass reads the copy kept in --temp-dir."""
    x, y = stdin_pair(tmp_path, 30000)
    temp = tmp_path / "temp"
    temp.mkdir()
    extra = {"stdout": [], "file": [], "max-output-rows": ["--max-output-rows", "100000000"],
             "out-of-core": ["--memory-limit", "1KiB"]}[case]
    want = expected_for(tmp_path, x, y, *extra)
    argv = ["-", y, "--segment-kib", "8", "--temp-dir", temp, *extra]
    with open(x, "rb") as f:
        if case == "stdout":
            proc = merge(*argv, stdin=f)
            got = proc.stdout
        else:
            out = tmp_path / "out.tsv"
            proc = merge(*argv, "-o", out, stdin=f)
            got = out.read_bytes() if out.exists() else b""
    assert proc.returncode == 0, proc.stderr
    assert got == want and want.count(b"\n") > 10000
    assert not list(ooc_util.private_root(temp).glob("*")), "nothing left in the temp dir"


def test_small_standard_input_needs_no_temp_dir(tmp_path):
    """One segment's worth of standard input is held in memory, as before: no temp dir is touched."""
    x, y = stdin_pair(tmp_path, 300)
    want = expected_for(tmp_path, x, y)
    with open(x, "rb") as f:
        proc = merge("-", y, "--temp-dir", tmp_path / "missing", stdin=f)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == want


def test_standard_input_read_twice_without_a_usable_temp_dir_is_a_clear_error(tmp_path):
    x, y = stdin_pair(tmp_path, 30000)
    with open(x, "rb") as f:
        proc = merge("-", y, "--segment-kib", "8", "--temp-dir", tmp_path / "missing", stdin=f)
    err = proc.stderr.decode()
    assert proc.returncode == 4, err
    assert "standard input" in err and "twice" in err and "--temp-dir" in err and "missing" in err, err


def test_fifo_input_streams(tmp_path):
    x, y = stdin_pair(tmp_path, 30000)
    want = expected_for(tmp_path, x, y)
    fifo = tmp_path / "x.fifo"
    os.mkfifo(fifo)
    temp = tmp_path / "temp"
    temp.mkdir()

    def feed():
        with open(fifo, "wb") as w:
            w.write(x.read_bytes())

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    out = tmp_path / "out.tsv"
    proc = merge(fifo, y, "-o", out, "--segment-kib", "8", "--temp-dir", temp)
    t.join(timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == want


@pytest.mark.rss_bound
def test_big_standard_input_is_never_held_whole(tmp_path):
    """~90 MB on standard input under --memory-limit 16MiB: peak RSS stays near the limit (it used to
    be read whole into memory)."""
    x = ooc_util.generate("x", 6_000_000, tmp_path / "x.tsv", key_range=1000, seed=5)
    y = tmp_path / "y.tsv"
    y.write_text("ID\tw\n" + "".join(f"{i}\ty{i}\n" for i in range(0, 1000, 97)))
    limit = 16 << 20
    assert x.stat().st_size > 5 * limit
    with open(x, "rb") as f:
        rc, err, peak = run_bounded([BIN, "merge", "-", str(y), "-o", str(tmp_path / "out.tsv"),
                                     "--memory-limit", str(limit), "--temp-dir", str(tmp_path),
                                     "--progress", "none"], stdin=f)
    assert rc == 0, err
    assert peak < limit + (48 << 20), f"peak RSS {peak >> 20} MiB"
    want = expected_for(tmp_path, x, y)
    assert (tmp_path / "out.tsv").read_bytes() == want
