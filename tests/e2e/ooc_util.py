"""Helpers shared by the out-of-core suites (test_out_of_core.py,
test_out_of_core_faults.py): running `cloudmerge merge` under a memory limit
with a private --temp-dir, reading its --report, measuring its peak RSS, and
generating large inputs quickly and reproducibly.

The contract these helpers assume (issue 3): `--memory-limit SIZE --temp-dir DIR
[--spill-fanout N] [--report FILE] [--progress lines|none]`; a run that spills
does so in DIR/cloudmerge-<uid>/cloudmerge-spill-<pid>-<rand>/ (the per-user private
directory, issue 15), gone when the run ends.
"""
import hashlib
import json
import os
import pathlib
import random
import subprocess
import threading

from conftest import BIN

# cloudmerge-gen is built next to cloudmerge (CMAKE_BINARY_DIR).
GEN = os.environ.get("CLOUDMERGE_GEN", str(pathlib.Path(BIN).parent / "cloudmerge-gen"))

SIZES = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def parse_size(text):
    for suffix, mult in SIZES.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * mult)
    return int(text)


def private_root(parent):
    """Where cloudmerge keeps its temporary directories under --temp-dir PARENT."""
    return pathlib.Path(parent) / f"cloudmerge-{os.geteuid()}"


def spill_dirs(parent):
    return sorted(private_root(parent).glob("cloudmerge-spill-*"))


def merge_argv(x, y, out, *, limit=None, temp_dir=None, fanout=None, threads=None, report=None, extra=()):
    argv = [BIN, "merge", str(x), str(y), "-o", str(out)]
    if limit is not None:
        argv += ["--memory-limit", str(limit)]
    if temp_dir is not None:
        argv += ["--temp-dir", str(temp_dir)]
    if fanout is not None:
        argv += ["--spill-fanout", str(fanout)]
    if threads is not None:
        argv += ["--threads", str(threads)]
    if report is not None:
        argv += ["--report", str(report)]
    return argv + [str(a) for a in extra]


class Run:
    """One finished run: exit code, stderr, its peak RSS in bytes, and the report (or None).

    peak_rss is the highest VmHWM read from /proc/PID/status while the run lasted (every 10 ms; VmHWM
    is a high-water mark, so only a peak set in its last 10 ms can be missed). Not wait4's ru_maxrss:
    Linux carries the hiwater of the forked copy of the parent into the child across exec, so under
    pytest (hundreds of MiB once pandas holds a 1M-row frame) ru_maxrss says more about pytest than
    about cloudmerge. ru_maxrss is kept as an upper bound.
    """

    def __init__(self, returncode, stderr, peak_rss, ru_maxrss, report):
        self.returncode, self.stderr, self.peak_rss, self.ru_maxrss, self.report = (returncode, stderr, peak_rss,
                                                                                    ru_maxrss, report)

    @property
    def ooc(self):
        return self.report["out_of_core"]


class HighWaterSampler:
    """Reads VmHWM of a running process every 10 ms on a thread; stop() returns the highest (bytes)."""

    def __init__(self, pid):
        self.pid, self.peak, self._done = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _read(self):
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        self.peak = max(self.peak, int(line.split()[1]) * 1024)
        except OSError:
            pass  # not started yet, or a zombie without its memory

    def _loop(self):
        while not self._done.wait(0.01):
            self._read()

    def stop(self):
        self._done.set()
        self._thread.join()
        self._read()
        return self.peak


def run(x, y, out, *, check=True, cwd=None, **kw):
    """Runs one merge; with report=PATH, parses it. check: fail the test on a non-zero exit."""
    argv = merge_argv(x, y, out, **kw)
    report_path = kw.get("report")
    if report_path is not None and pathlib.Path(report_path).exists():
        pathlib.Path(report_path).unlink()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd)
    sampler = HighWaterSampler(proc.pid)
    # Read stderr before waiting, so a chatty run cannot block on a full pipe.
    err = proc.stderr.read().decode(errors="replace")
    peak = sampler.stop()  # before wait4 reaps the process and its /proc entry goes
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stderr.close()
    if check and proc.returncode != 0:
        raise AssertionError(f"cloudmerge failed ({proc.returncode}): {' '.join(argv)}\n{err}")
    report = None
    if report_path is not None and pathlib.Path(report_path).exists():
        report = json.loads(pathlib.Path(report_path).read_text())
    return Run(proc.returncode, err, peak, ru.ru_maxrss * 1024, report)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def first_difference(a, b):
    """A short description of where files a and b first differ (for assertion messages)."""
    with open(a, "rb") as fa, open(b, "rb") as fb:
        for n, (la, lb) in enumerate(zip(fa, fb), start=1):
            if la != lb:
                return f"line {n}: {la[:200]!r} vs {lb[:200]!r}"
        rest_a, rest_b = fa.read(1), fb.read(1)
    return f"one file is a prefix of the other (extra bytes in {'the first' if rest_a else 'the second'})" \
        if rest_a or rest_b else "identical"


def assert_same_bytes(actual, expected, what):
    if sha256(actual) != sha256(expected):
        raise AssertionError(f"{what}: output differs from the in-memory run: {first_difference(actual, expected)}")


def sorted_lines_digest(path):
    """(header, sorted data lines) of a TSV whose rows have no embedded newlines."""
    with open(path, "rb") as f:
        header = f.readline()
        return header, sorted(f.read().splitlines())


def count_rows(path):
    with open(path, "rb") as f:
        return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b"")) - 1


def generate(side, rows, path, **opts):
    """cloudmerge-gen --side x|y --rows N [--key-range R] [--dup-every D] [--key-type int|string] [--seed S]."""
    argv = [GEN, "--side", side, "--rows", str(rows)]
    for k, v in opts.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    with open(path, "wb") as f:
        subprocess.run(argv, stdout=f, check=True)
    return path


def write_rows(path, header, rows):
    """rows: iterable of already-encoded lines without their newline."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(header + "\n")
        buf = []
        for line in rows:
            buf.append(line)
            if len(buf) >= 65536:
                f.write("\n".join(buf) + "\n")
                buf.clear()
        if buf:
            f.write("\n".join(buf) + "\n")
    return path


def rng_for(*parts):
    return random.Random("/".join(map(str, parts)))
