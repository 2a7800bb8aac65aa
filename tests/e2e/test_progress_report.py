"""Progress, --report and the --stats summary, end to end with the real binary:
JSON progress lines on stderr while a run of a few seconds goes on, a report
whose counts agree with the files, the human summary, the quiet defaults that
scripts rely on, and --memory-limit's usage errors."""
import json
import os
import pathlib
import re
import subprocess
import time

import pytest

from conftest import BIN

GEN = os.environ.get("CLOUDMERGE_GEN", str(pathlib.Path(BIN).parent / "cloudmerge-gen"))
BIG_ROWS = 3_000_000  # a few seconds per run on a busy 2-core machine

REPORT_SCHEMA = {
    "x": {"path": str, "rows": int, "bytes": int, "key_type": str},
    "y": {"path": str, "rows": int, "bytes": int, "key_type": str, "distinct_keys": int},
    "output": {"path": str, "rows": int, "written": bool, "max_rows": int},
    "matched_keys": int,
    "hottest_keys": list,
    "matches_per_key_log2": dict,
    "threads": int,
    "memory": {"limit_bytes": int, "peak_rss_bytes": int},
    "out_of_core": {"used": bool, "partitions": int, "spill_levels": int, "nested_loop_keys": int,
                    "spilled_bytes": int, "spill_files": int, "spill_compressed": bool,
                    "reclaimed_temp_bytes": int, "merge_ranges": int},
    "phases": list,
    "seconds_total": (int, float),
    "speculation_failed": bool,
}
PROGRESS_KEYS = {"progress", "rows", "bytes", "total_rows", "total_bytes", "fraction", "rows_per_s", "bytes_per_s",
                 "eta_s", "elapsed_s", "done"}


def generate(path, side, rows):
    if os.path.exists(GEN):
        with open(path, "wb") as f:
            subprocess.run([GEN, "--side", side, "--rows", str(rows), "--seed", "7"], stdout=f, check=True)
    else:  # the same shape: y's keys distinct, x's keys uniform over twice the range
        import random
        rng = random.Random(7 if side == "x" else 8)
        keys = rng.sample(range(rows), rows) if side == "y" else (rng.randrange(2 * rows) for _ in range(rows))
        with open(path, "w") as f:
            f.write("ID\tvalue\n")
            f.writelines(f"{k}\t{rng.randrange(10**6):06d}\n" for k in keys)


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    d = tmp_path_factory.mktemp("big")
    generate(d / "x.tsv", "x", BIG_ROWS)
    generate(d / "y.tsv", "y", BIG_ROWS)
    return d


@pytest.fixture
def small(tmp_path):
    # Key 1: 3 x rows times 2 y rows; key 2: 1 x 1; key 3 only in x; key 4 only in y.
    (tmp_path / "x.tsv").write_text("ID\tv\n1\ta\n2\tb\n1\tc\n3\td\n1\te\n")
    (tmp_path / "y.tsv").write_text("ID\tw\n1\tp\n4\tq\n2\tr\n1\ts\n")
    return tmp_path


def merge(*args, cwd=None, timeout=300):
    start = time.monotonic()
    proc = subprocess.run([BIN, "merge", *map(str, args)], capture_output=True, cwd=cwd, timeout=timeout)
    return proc, proc.stderr.decode(errors="replace"), time.monotonic() - start


def data_lines(path):
    with open(path, "rb") as f:
        return sum(1 for _ in f) - 1  # minus the header


def check_schema(value, schema, where="report"):
    if isinstance(schema, dict):
        assert isinstance(value, dict), f"{where} is not an object: {value!r}"
        assert set(value) == set(schema), f"{where}: keys {sorted(value)} != documented {sorted(schema)}"
        for k, sub in schema.items():
            check_schema(value[k], sub, f"{where}.{k}")
    else:
        assert isinstance(value, schema) and not (schema is int and isinstance(value, bool)), \
            f"{where} = {value!r} is not {schema}"


def check_report_consistency(r):
    for k in r["hottest_keys"]:
        assert set(k) == {"key", "x_rows", "y_rows", "output_rows"}, k
        assert k["output_rows"] == k["x_rows"] * k["y_rows"], k
    outs = [k["output_rows"] for k in r["hottest_keys"]]
    assert outs == sorted(outs, reverse=True), "hottest first"
    assert len(outs) <= 10
    for label, n in r["matches_per_key_log2"].items():
        assert int(label) & (int(label) - 1) == 0 and n > 0, (label, n)
    assert sum(r["matches_per_key_log2"].values()) == r["matched_keys"], "every matched key is in one bucket"
    assert r["matched_keys"] <= min(r["y"]["distinct_keys"] or r["y"]["rows"], r["x"]["rows"])
    for p in r["phases"]:
        assert set(p) == {"name", "seconds", "rows", "bytes"}, p
        assert p["seconds"] >= 0
    assert sum(p["seconds"] for p in r["phases"]) <= r["seconds_total"] * 1.05 + 0.05
    assert r["memory"]["peak_rss_bytes"] > 0 and r["memory"]["limit_bytes"] > 0


@pytest.mark.parametrize("mode", ["in_memory", "out_of_core"])
def test_progress_lines_and_report_agree_with_the_files(big, tmp_path, mode):
    out, report = tmp_path / "out.tsv", tmp_path / "r.json"
    extra = ["--memory-limit", "32MiB", "--temp-dir", tmp_path] if mode == "out_of_core" else []
    proc, err, seconds = merge(big / "x.tsv", big / "y.tsv", "-o", out, "--progress", "lines",
                               "--progress-interval", "0.2", "--report", report, *extra)
    assert proc.returncode == 0, err

    # stderr: JSON progress lines and nothing else.
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert lines, "no progress at all"
    for j in lines:
        assert set(j) == PROGRESS_KEYS, j
        assert j["fraction"] is None or 0 <= j["fraction"] <= 1, j
    done = [j for j in lines if j["done"]]
    assert done, err
    if seconds > 1.0:
        assert any(not j["done"] for j in lines), f"a {seconds:.1f} s run with a 0.2 s interval had no periodic line"
    # Within a phase the counts only grow, and a phase ends once.
    last = {}
    for j in lines:
        assert j["rows"] >= last.get(j["progress"], 0), j
        last[j["progress"]] = j["rows"]
    assert len({j["progress"] for j in done}) == len(done), "one done line per phase"

    # The report: the documented schema, counts that match the files.
    r = json.loads(report.read_text())
    check_schema(r, REPORT_SCHEMA)
    check_report_consistency(r)
    assert r["x"]["rows"] == data_lines(big / "x.tsv") == BIG_ROWS
    assert r["y"]["rows"] == data_lines(big / "y.tsv") == BIG_ROWS
    assert r["output"] == {"path": str(out), "rows": data_lines(out), "written": True, "max_rows": 0}
    assert r["output"]["rows"] > BIG_ROWS // 4, "about half of x matches"
    assert r["x"]["key_type"] == r["y"]["key_type"] == "int64"
    assert r["matched_keys"] > 0
    assert [p["name"] for p in r["phases"]] == [j["progress"] for j in done], \
        "every phase of the report was shown as it ran"
    assert r["out_of_core"]["used"] == (mode == "out_of_core")
    if mode == "out_of_core":
        assert r["memory"]["limit_bytes"] == 32 << 20
        assert r["out_of_core"]["spilled_bytes"] > 0 and r["out_of_core"]["partitions"] > 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tsv", "r.json"], "no temporaries left"


def test_stats_summary_mentions_rows_and_peak_memory(small):
    proc, err, _ = merge("x.tsv", "y.tsv", "-o", "out.tsv", "--stats", cwd=small)
    assert proc.returncode == 0, err
    assert (small / "out.tsv").read_text().count("\n") == 1 + 7
    assert err.startswith("cloudmerge merge summary\n"), err
    for fragment in ("5 rows", "4 rows", "IDs int64", "7 rows  to out.tsv", "peak memory", " limit",
                     '"1" 3 x 2 = 6 rows'):
        assert fragment in err, f"{fragment!r} not in:\n{err}"
    assert re.search(r"\n  matched keys +2\n", err), err
    assert "{" not in err, "no progress lines in a short run's default (quiet) mode"


def test_report_on_a_small_merge_is_exact(small):
    proc, err, _ = merge("x.tsv", "y.tsv", "-o", "out.tsv", "--report", "r.json", "--progress", "none", cwd=small)
    assert proc.returncode == 0, err
    assert err == "", "not a terminal, no --stats: nothing on stderr"
    r = json.loads((small / "r.json").read_text())
    check_schema(r, REPORT_SCHEMA)
    check_report_consistency(r)
    assert (r["x"]["rows"], r["y"]["rows"], r["output"]["rows"]) == (5, 4, 7)
    assert r["y"]["distinct_keys"] == 3
    assert r["matched_keys"] == 2
    assert r["hottest_keys"][:2] == [{"key": "1", "x_rows": 3, "y_rows": 2, "output_rows": 6},
                                     {"key": "2", "x_rows": 1, "y_rows": 1, "output_rows": 1}]
    assert r["matches_per_key_log2"] == {"1": 1, "4": 1}, "key 2: 1 row; key 1: 6 rows, in [4, 8)"


def test_default_progress_is_quiet_for_a_short_run(small):
    proc, err, _ = merge("x.tsv", "y.tsv", "-o", "out.tsv", cwd=small)
    assert proc.returncode == 0
    assert err == "", "scripts reading stderr of short merges see nothing new"


def test_forced_bar_draws_in_place_and_finishes_lines(small):
    proc, err, _ = merge("x.tsv", "y.tsv", "-o", "out.tsv", "--progress", "bar", "--memory-limit", "1MiB",
                         "--temp-dir", small, cwd=small)
    assert proc.returncode == 0, err
    assert "\r\x1b[2K" in err, repr(err)
    assert "100%" in err and "done in" in err, repr(err)
    assert err.endswith("\n"), "finished phases stay on screen"


def test_report_written_when_max_output_rows_refuses(small):
    proc, err, _ = merge("x.tsv", "y.tsv", "-o", "out.tsv", "--report", "r.json", "--max-output-rows", "5",
                         cwd=small)
    assert proc.returncode == 3, err
    assert err.startswith("Error [cloudmerge merge]: "), err
    assert not (small / "out.tsv").exists(), "a refused run writes no output"
    r = json.loads((small / "r.json").read_text())
    check_schema(r, REPORT_SCHEMA)
    assert r["output"] == {"path": "out.tsv", "rows": 7, "written": False, "max_rows": 5}
    assert r["hottest_keys"][0] == {"key": "1", "x_rows": 3, "y_rows": 2, "output_rows": 6}


def test_no_report_when_the_merge_fails(small):
    (small / "x.tsv").write_text("ID\tv\n1\ta\textra\n")
    proc, err, _ = merge("x.tsv", "y.tsv", "-o", "out.tsv", "--report", "r.json", cwd=small)
    assert proc.returncode == 3, err
    assert sorted(p.name for p in small.iterdir()) == ["x.tsv", "y.tsv"], "no output, no report, no temporary"


def test_unwritable_report_fails_before_merging(small):
    proc, err, _ = merge("x.tsv", "y.tsv", "-o", "out.tsv", "--report", "no-such-dir/r.json", cwd=small)
    assert proc.returncode == 4, err
    assert err.startswith("Error [cloudmerge merge]: --report no-such-dir/r.json: "), err
    assert not (small / "out.tsv").exists(), "the merge did not run"


@pytest.mark.parametrize("size,why", [("3XB", '"XB" is not a unit'), ("0", "more than 0 bytes"),
                                      ("-1G", "cannot be negative"), ("lots", "does not start with a number")])
def test_bad_memory_limit_is_a_usage_error(small, size, why):
    proc, err, _ = merge("x.tsv", "y.tsv", "-o", "out.tsv", "--memory-limit", size, cwd=small)
    assert proc.returncode == 2, err  # Status::InvalidArgument
    assert err.startswith(f'Error [cloudmerge merge]: --memory-limit: invalid size "{size}": '), err
    assert why in err and "2GiB" in err, err
    assert err.count("\n") == 1, "one paragraph"
    assert not (small / "out.tsv").exists()


def test_size_units_are_accepted(small):
    for size in ("2GiB", "1.5G", "800MB", "64k", "1000000"):
        proc, err, _ = merge("x.tsv", "y.tsv", "-o", "out.tsv", "--memory-limit", size, "--report", "r.json",
                             cwd=small)
        assert proc.returncode == 0, (size, err)
    # --max-decompressed-size shares the syntax (and the error).
    proc, err, _ = merge("x.tsv", "y.tsv", "--max-decompressed-size", "5 parsecs", cwd=small)
    assert proc.returncode == 2 and '--max-decompressed-size: invalid size "5 parsecs"' in err, err
