"""The sanitizer runs of CI (scripts/sanitize.sh, from scripts/test.sh) fail on
any report. Checked with tests/sanitizers/canary.cc, a program with one
deliberate bug per sanitizer, built with the same flags as cloudmerge:

- run directly, with the options scripts/sanitize.sh exports, each bug stops the
  process with a non-zero status and a report (what ctest sees for the C++
  tests, and an e2e test for a process whose exit code it checks);
- run in the background by a test that ignores its exit code (as the e2e suites
  do with `serve`, killed workers, the Lambda bootstrap), the report still fails
  that test, through tests/e2e/conftest.py (log_path + an autouse fixture);
- a clean run fails nothing (no false positive from the runtime or the harness).

ctest registers this suite only in sanitizer builds (CLOUDMERGE_SANITIZER_CANARY,
CLOUDMERGE_SANITIZER=asan|tsan)."""
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CANARY = os.environ.get("CLOUDMERGE_SANITIZER_CANARY", "")
SANITIZER = os.environ.get("CLOUDMERGE_SANITIZER", "")

# mode -> text the report on stderr must contain
BUGS = {
    "asan": {"heap-overflow": "heap-buffer-overflow", "leak": "detected memory leaks",
             "signed-overflow": "signed integer overflow"},
    "tsan": {"race": "data race"},
}.get(SANITIZER, {})
# mode -> text the report file (log_path) must contain. GCC's libubsan next to
# libasan ignores log_path: what lands there is ASan's report of the abort
# that follows (handle_abort=1 in scripts/sanitize.sh), with the UBSan frame.
LOGGED = dict(BUGS, **({"signed-overflow": "__ubsan_handle_add_overflow"} if SANITIZER == "asan" else {}))

pytestmark = pytest.mark.skipif(not CANARY or not BUGS,
                                reason="needs a sanitizer build: run through scripts/sanitize.sh (ctest)")

INNER_TEST = '''
import os, subprocess
def test_background_process():
    # Like a test that starts `serve` and only looks at its outputs.
    subprocess.Popen([os.environ["CANARY"], os.environ["CANARY_MODE"]],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).wait()
'''


RSS_TEST = '''
import pytest
@pytest.mark.rss_bound
def test_rss_bound():
    assert False, "an RSS bound broken by the sanitizer's shadow memory"
'''


def run_inner_session(tmp_path, mode, test=INNER_TEST, **env):
    """A pytest session under the e2e conftest whose one test runs the canary in `mode`."""
    shutil.copy(ROOT / "tests" / "e2e" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_inner.py").write_text(test)
    # TMPDIR: the inner conftest's report directory (kept when it holds reports) stays in tmp_path.
    env = dict(os.environ, CANARY=CANARY, CANARY_MODE=mode, TMPDIR=str(tmp_path), **env)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


@pytest.mark.parametrize("mode", sorted(BUGS))
def test_report_stops_the_process(mode):
    proc = subprocess.run([CANARY, mode], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0, f"{mode}: exit 0 despite the bug; stderr:\n{proc.stderr}"
    assert BUGS[mode] in proc.stderr, proc.stderr


@pytest.mark.parametrize("mode", sorted(BUGS))
def test_background_report_fails_the_test(tmp_path, mode):
    proc = run_inner_session(tmp_path, mode)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"{mode}: the inner session passed despite a report:\n{out}"
    assert "sanitizer report(s) from a process this test started" in out, out
    assert LOGGED[mode] in out, out


def test_clean_process_fails_nothing(tmp_path):
    proc = subprocess.run([CANARY, "ok"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    inner = run_inner_session(tmp_path, "ok")
    assert inner.returncode == 0, inner.stdout + inner.stderr


def test_rss_bound_tests_are_skipped_only_under_a_sanitizer(tmp_path):
    sanitized = run_inner_session(tmp_path, "ok", RSS_TEST, CLOUDMERGE_SANITIZER=SANITIZER)
    assert sanitized.returncode == 0 and "1 skipped" in sanitized.stdout, sanitized.stdout
    normal = run_inner_session(tmp_path, "ok", RSS_TEST, CLOUDMERGE_SANITIZER="")
    assert normal.returncode != 0 and "1 failed" in normal.stdout, normal.stdout
