"""The Spark path (spark/merge_job.py driving `cloudmerge cluster-task` in every
task) gives cloudmerge's answer on local[2]: the 50 shared conformance cases with
--ordered (exact order, each input cut into ~3 splits so that split boundaries,
the quote fallback and the cross-split type combination are exercised) and
without (as multisets), random pairs from gen_inputs.py against the native
binary, key options, and errors with the native engine's own messages.

One local[2] SparkSession for the module (startup is slow); cases run a few at
a time from driver threads, as concurrent Spark jobs. Runtime: ~2-3 minutes.
The multi-worker standalone cluster is test_spark_cluster.py.
Sizes: CLOUDMERGE_SPARK_DIFF_CASES (default 8)."""
import os
import pathlib
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import BIN, CASES, ROOT, oracle_agrees, run_merge
from gen_inputs import make_pair

sys.path.insert(0, str(ROOT / "spark"))
import merge_job as mj  # noqa: E402

N_DIFF = int(os.environ.get("CLOUDMERGE_SPARK_DIFF_CASES", "8"))
PARALLEL = 4  # concurrent merges: Spark jobs are mostly latency at these sizes


@pytest.fixture(scope="module")
def spark():
    s = mj.make_session("local[2]", app_name="cloudmerge-spark-tests", conf={
        "spark.default.parallelism": "2", "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false", "spark.driver.memory": "1g"})
    s.sparkContext.setLogLevel("ERROR")
    yield s
    s.stop()


def run_all(fn, items):
    with ThreadPoolExecutor(PARALLEL) as ex:
        return [r for r in ex.map(fn, items) if r]


def part_files_text(out_dir):
    parts = sorted(p for p in pathlib.Path(out_dir).iterdir() if p.name.startswith("part-"))
    assert (pathlib.Path(out_dir) / "_SUCCESS").exists(), f"no _SUCCESS in {out_dir}"
    assert not [p for p in pathlib.Path(out_dir).iterdir() if p.name.startswith(".cloudmerge-tmp-")]
    return b"".join(p.read_bytes() for p in parts)


def thirds(path):
    """A split size that cuts the file into about three splits."""
    return max(8, pathlib.Path(path).stat().st_size // 3)


def check_case(spark, oracle, case, out_dir, tag="", any_order=True, **kw):
    """--ordered into one file in ~3 splits per input, then (any_order) any order into part files."""
    out, parts = out_dir / f"{case.name}{tag}.tsv", out_dir / f"{case.name}{tag}.parts"
    x, y = case / "x.tsv", case / "y.tsv"
    try:
        mj.merge(spark, str(x), str(y), str(out), ordered=True, single_file=True,
                 split_bytes=min(thirds(x), thirds(y)), partitions=3, **kw)
        if any_order:
            mj.merge(spark, str(x), str(y), str(parts), ordered=False, partitions=2, **kw)
    except Exception as e:  # noqa: BLE001 - reported per case below
        return f"{case.name}: {type(e).__name__}: {str(e)[:300]}"
    if not oracle_agrees(oracle, case / "expected.tsv", out):
        return f"{case.name}: --ordered differs from expected.tsv"
    if not any_order:
        return None
    (out_dir / f"{case.name}{tag}.any.tsv").write_bytes(part_files_text(parts))
    if not oracle_agrees(oracle, case / "expected.tsv", out_dir / f"{case.name}{tag}.any.tsv", any_order=True):
        return f"{case.name}: unordered parts differ from expected.tsv as a multiset"
    return None


def test_conformance_cases_ordered_and_any_order(spark, oracle, tmp_path):
    """All cases ordered; every third also in any order (test_spark_cluster.py runs all both ways)."""
    assert len(CASES) >= 50, f"expected the 50 shared conformance cases, found {len(CASES)}"
    failures = run_all(lambda ic: check_case(spark, oracle, ic[1], tmp_path, any_order=ic[0] % 3 == 0, binary=BIN),
                       list(enumerate(CASES)))
    assert not failures, f"{len(failures)} of {len(CASES)} cases fail: {failures[:5]}"


def test_random_pairs_match_native_binary(spark, oracle, tmp_path):
    """Even seeds: each file one split; odd seeds: splits of ~1/5 of the file."""
    def one(seed):
        x, y = make_pair(1000 + seed)
        d = tmp_path / f"case{seed}"
        d.mkdir()
        (d / "x.tsv").write_bytes(x.encode())
        (d / "y.tsv").write_bytes(y.encode())
        native = run_merge(d / "x.tsv", d / "y.tsv", "-o", d / "native.tsv", check=False)
        if native.returncode != 0:
            return f"seed {seed}: native failed: {native.stderr[:200]}"
        split = mj.SPLIT_BYTES if seed % 2 == 0 else max(8, len(x) // 5)
        try:
            mj.merge(spark, str(d / "x.tsv"), str(d / "y.tsv"), str(d / "spark.tsv"), ordered=True,
                     single_file=True, split_bytes=split, binary=BIN, partitions=3)
        except Exception as e:  # noqa: BLE001
            return f"seed {seed}: {type(e).__name__}: {str(e)[:300]}"
        if (d / "spark.tsv").read_bytes() != (d / "native.tsv").read_bytes():
            ok = oracle_agrees(oracle, d / "native.tsv", d / "spark.tsv")
            return None if ok else f"seed {seed}: differs from the native output (inputs in {d})"
        return None

    failures = run_all(one, range(N_DIFF))
    assert not failures, f"{len(failures)} of {N_DIFF} random pairs differ: {failures[:5]}"


def test_key_options_and_wide_files(spark, tmp_path):
    (tmp_path / "x.tsv").write_text("a\tgene\tb\n1\tG1\tq\n2\tG2\tr\n3\tG1\ts\n")
    (tmp_path / "y.tsv").write_text("gene\tc\td\nG1\tu\tv\nG3\tw\tz\n")
    run_merge(tmp_path / "x.tsv", tmp_path / "y.tsv", "--key", "gene", "-o", tmp_path / "native.tsv")
    mj.merge(spark, str(tmp_path / "x.tsv"), str(tmp_path / "y.tsv"), str(tmp_path / "spark.tsv"), ordered=True,
             single_file=True, x_key="gene", y_key="gene", binary=BIN, split_bytes=8)
    assert (tmp_path / "spark.tsv").read_bytes() == (tmp_path / "native.tsv").read_bytes()
    assert (tmp_path / "spark.tsv").read_text().splitlines()[0] == "a_x\tgene_x\tb_x\tc_y\td_y"


def native_error(*args):
    p = run_merge(*args, check=False)
    assert p.returncode == 3, p.stderr
    return p.stderr.decode().strip().split("Error [cloudmerge merge]: ", 1)[1]


@pytest.mark.parametrize("split", [mj.SPLIT_BYTES, 700], ids=["one-split", "many-splits"])
def test_bad_rows_are_the_native_errors(spark, tmp_path, split):
    """The message (file, line, column, what, fix) is the native engine's, also
    when the bad row is found in a split far from the file's start."""
    rows = "".join(f"{i}\tv{i}\n" for i in range(200))
    (tmp_path / "x.tsv").write_text("ID\tvalue\n1\ta\n\n2\tb\tEXTRA\n")
    (tmp_path / "y.tsv").write_text("ID\tvalue\n" + rows + "7\tq\tEXTRA\n" + rows)
    (tmp_path / "good.tsv").write_text("ID\tvalue\n1\tz\n")
    for x, y in (("x.tsv", "good.tsv"), ("good.tsv", "y.tsv")):
        expected = native_error(tmp_path / x, tmp_path / y, "-o", tmp_path / "native.tsv")
        with pytest.raises(mj.InputError) as e:
            mj.merge(spark, str(tmp_path / x), str(tmp_path / y), str(tmp_path / "o"), binary=BIN, split_bytes=split,
                     single_file=True)
        assert str(e.value) == expected
        assert not (tmp_path / "o").exists() and not list(tmp_path.glob("o.parts-*"))
    assert "y.tsv, line 202" in expected
    with pytest.raises(mj.UsageError, match="key column 'nope' is not in the header"):
        mj.merge(spark, str(tmp_path / "good.tsv"), str(tmp_path / "good.tsv"), str(tmp_path / "o"), x_key="nope",
                 binary=BIN)


def test_missing_input_is_an_io_error(spark, tmp_path):
    with pytest.raises(IOError, match="absent.tsv"):
        mj.merge(spark, str(tmp_path / "absent.tsv"), str(tmp_path / "absent.tsv"), str(tmp_path / "o"), binary=BIN)
