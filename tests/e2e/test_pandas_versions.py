"""merge --pandas-version: the script's answer under each pandas (docs/pandas-versions.md).

Each folder of tests/e2e/data/pandas_versions holds one difference between pandas
versions (x.tsv, y.tsv) and analysis.py's result under each real pandas
(expected-1.5.tsv ... expected-3.1.tsv, written by generate.py there, run once per
pandas; CI needs no other pandas). Every case runs under every --pandas-version in
every engine: in memory, out of core (--memory-limit 1KiB), x streamed (.gz), and to
standard output (x typed in a first pass). Value columns are unique per row, so the
rows are compared by their value columns (the ID as pandas prints it is a float's
repr, cloudmerge writes the input's spelling).

Rules 3-4 (integers beyond 64 bits, Python ints in pandas 3) are refused under 3.x:
exit 3, nothing written, the message names the file, the row and the value.
"""
import csv
import gzip
import json
import pathlib
import re

import pytest

from conftest import run_merge

DATA = pathlib.Path(__file__).resolve().parent / "data" / "pandas_versions"
CASES = sorted(p.name for p in DATA.iterdir() if p.is_dir())
VERSIONS = ["1.5", "2.2", "3.0", "3.1"]
REFUSED_UNDER_3 = {"int_beyond_64_bits", "na_beside_big_int"}
ENGINES = ["memory", "out_of_core", "streamed_x", "stdout"]


def rows_of(path):
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter="\t"))


def values(rows):
    return [rows[0]] + [r[1:] for r in rows[1:]]


def merge(case, version, engine, tmp_path, check=True):
    x, y = DATA / case / "x.tsv", DATA / case / "y.tsv"
    out = tmp_path / "out.tsv"
    args = ["--pandas-version", version, "--threads", "2"]
    if engine == "streamed_x":
        x = tmp_path / "x.tsv.gz"
        x.write_bytes(gzip.compress((DATA / case / "x.tsv").read_bytes()))
    if engine == "out_of_core":
        args += ["--memory-limit", "1KiB", "--spill-fanout", "4"]
    if engine == "stdout":
        proc = run_merge(x, y, *args, check=check)
        if proc.returncode == 0:
            out.write_bytes(proc.stdout)
        return proc, out
    return run_merge(x, y, "-o", out, *args, check=check), out


def test_every_case_differs_somewhere():
    """Each case is a real difference: its goldens are not all the same."""
    for case in CASES:
        goldens = {v: values(rows_of(DATA / case / f"expected-{v}.tsv")) for v in VERSIONS}
        assert len({json.dumps(g) for g in goldens.values()}) > 1, case


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("version", VERSIONS)
def test_script_answer_under_each_pandas(version, engine, tmp_path):
    for case in CASES:
        if version.startswith("3") and case in REFUSED_UNDER_3:
            continue
        proc, out = merge(case, version, engine, tmp_path)
        expected = values(rows_of(DATA / case / f"expected-{version}.tsv"))
        assert values(rows_of(out)) == expected, f"{case} under pandas {version} ({engine})"


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("version", ["3.0", "3.1"])
def test_integers_beyond_64_bits_refused_under_pandas_3(version, engine, tmp_path):
    for case in sorted(REFUSED_UNDER_3):
        proc, out = merge(case, version, engine, tmp_path, check=False)
        err = proc.stderr.decode()
        assert proc.returncode == 3, (case, err)
        # y is scanned first in memory, x and y both before the join out of core: either may be named.
        assert re.search(r"[xy]\.tsv(\.gz)?: data row 1 has the ID 1844674407370955161[67], an integer beyond 64 bits", err), err
        assert "--pandas-version 2.2" in err
        assert not out.exists() and (engine != "stdout" or proc.stdout == b"")
        # Why: pandas 3's answer is not pandas 2's, which cloudmerge would give.
        assert rows_of(DATA / case / f"expected-{version}.tsv") != rows_of(DATA / case / "expected-2.2.tsv")


def test_refusal_names_the_row_in_y_and_later_rows(tmp_path):
    (tmp_path / "x.tsv").write_text("ID\tvalue\n1\ta\n")
    (tmp_path / "y.tsv").write_text("ID\tvalue\n1\tz\n2\ty\n-99999999999999999999\tw\n")
    proc = run_merge(tmp_path / "x.tsv", tmp_path / "y.tsv", "--pandas-version", "3", check=False)
    assert proc.returncode == 3
    assert "y.tsv: data row 3 has the ID -99999999999999999999" in proc.stderr.decode()


def test_version_spellings_and_bad_values(tmp_path):
    case = DATA / "none_id"
    for spelling, golden in [("1", "1.5"), ("2", "2.2"), ("3", "3.1"), ("2.2", "2.2")]:
        out = tmp_path / f"out{spelling}.tsv"
        run_merge(case / "x.tsv", case / "y.tsv", "-o", out, "--pandas-version", spelling)
        assert values(rows_of(out)) == values(rows_of(case / f"expected-{golden}.tsv"))
    default = run_merge(case / "x.tsv", case / "y.tsv").stdout.decode()
    assert len(default.splitlines()) == 3  # the reference, 1.5: None matches None
    proc = run_merge(case / "x.tsv", case / "y.tsv", "--pandas-version", "2.0", check=False)
    assert proc.returncode == 2 and "--pandas-version" in proc.stderr.decode()
    proc = run_merge(case / "x.tsv", case / "y.tsv", "--pandas-version", "3", "--engine", "spark", check=False)
    assert proc.returncode == 2 and "Spark engine reproduces pandas 1.5 only" in proc.stderr.decode()


def test_job_json_pandas_version(tmp_path):
    """The pipeline (serve --local): "pandas_version" in job.json; a bad value fails the job."""
    import subprocess
    from conftest import BIN
    case = DATA / "float_17_digits"
    for job, spec in [("v31", {"pandas_version": "3.1"}), ("v15", {}), ("bad", {"pandas_version": 3.1}),
                      ("spark", {"pandas_version": "3", "engine": "spark"})]:
        d = tmp_path / "input" / job
        d.mkdir(parents=True)
        (d / "x_list.txt").write_bytes((case / "x.tsv").read_bytes())
        (d / "y_list.txt").write_bytes((case / "y.tsv").read_bytes())
        if spec:
            (d / "job.json").write_text(json.dumps(spec))
    proc = subprocess.run([BIN, "serve", "--local", str(tmp_path), "--once"], capture_output=True, timeout=120)
    out = tmp_path / "output"
    assert values(rows_of(out / "v31" / "merged.tsv")) == values(rows_of(case / "expected-3.1.tsv"))
    assert values(rows_of(out / "v15" / "merged.tsv")) == values(rows_of(case / "expected-1.5.tsv"))
    assert not (out / "bad" / "merged.tsv").exists() and not (out / "spark" / "merged.tsv").exists()
    messages = [json.loads(line).get("message", "") for line in proc.stdout.decode().splitlines() if line.strip()]
    assert any('bad/job.json: "pandas_version" must be one of "1.5", "2.2", "3.0", "3.1"' in m for m in messages)
    assert any('spark/job.json: "pandas_version" other than "1.5" needs engine "native"' in m for m in messages)
