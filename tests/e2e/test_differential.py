"""Differential test: thousands of random small input pairs, cloudmerge vs the
script's own computation (oracle.script_result), plus larger pairs split into
many chunks vs the oracle's order-keeping hash merge (oracle.fast_result)."""
import os
import pathlib
import random

import pytest

from conftest import oracle_agrees, run_merge
from gen_inputs import make_pair

N_SMALL = int(os.environ.get("CLOUDMERGE_DIFF_CASES", "2000"))


def expected_file(oracle, x_path, y_path, out_path, fast=False):
    x, y = oracle.read(str(x_path)), oracle.read(str(y_path))
    res = oracle.fast_result(x, y) if fast else oracle.script_result(x, y)
    res.to_csv(out_path, sep="\t", index=False, na_rep="")


def test_random_small_pairs_match_script(oracle, tmp_path):
    failures = []
    for seed in range(N_SMALL):
        x, y = make_pair(seed)
        d = tmp_path / f"case{seed}"
        d.mkdir()
        (d / "x.tsv").write_bytes(x.encode())
        (d / "y.tsv").write_bytes(y.encode())
        expected_file(oracle, d / "x.tsv", d / "y.tsv", d / "expected.tsv")
        threads = ["--threads", "1"] if seed % 2 else ["--threads", "2", "--chunk-kib", "1"]
        proc = run_merge(d / "x.tsv", d / "y.tsv", "-o", d / "out.tsv", *threads, check=False)
        if proc.returncode != 0 or not oracle_agrees(oracle, d / "expected.tsv", d / "out.tsv"):
            failures.append((seed, proc.stderr.decode(errors="replace")[:300]))
            continue
        for p in d.iterdir():
            p.unlink()
        d.rmdir()
    assert not failures, f"{len(failures)} of {N_SMALL} random cases differ from the script (inputs kept in " \
                         f"{tmp_path}); first: {failures[:5]}"


def write_medium(path, rng, n, keys, numeric):
    with open(path, "w") as f:
        f.write("ID\tvalue\n")
        for i in range(n):
            k = rng.choice(keys)
            v = f"{rng.uniform(0, 1000):.6f}" if numeric else f"v{i}"
            f.write(f"{k}\t{v}\n")


@pytest.mark.parametrize("kind", ["int", "float_ids", "text"])
@pytest.mark.parametrize("threads", ["1", "2"])
def test_medium_pairs_many_chunks(kind, threads, oracle, tmp_path):
    rng = random.Random(f"{kind}-{threads}")
    if kind == "int":
        keys = [str(i) for i in range(3000)] + ["007", "NA", ""]
    elif kind == "float_ids":
        keys = [str(i) for i in range(2000)] + ["1.5", "2.0", "1e2", "nan"]
    else:
        keys = [f"G{i:05d}" for i in range(3000)] + ["NA", "null", "g00001"]
    write_medium(tmp_path / "x.tsv", rng, 20000, keys, kind != "text")
    write_medium(tmp_path / "y.tsv", rng, 8000, keys, False)
    expected_file(oracle, tmp_path / "x.tsv", tmp_path / "y.tsv", tmp_path / "expected.tsv", fast=True)
    run_merge(tmp_path / "x.tsv", tmp_path / "y.tsv", "-o", tmp_path / "out.tsv", "--threads", threads,
              "--chunk-kib", "4")
    assert oracle_agrees(oracle, tmp_path / "expected.tsv", tmp_path / "out.tsv")
    run_merge(tmp_path / "x.tsv", tmp_path / "y.tsv", "-o", tmp_path / "any.tsv", "--threads", threads,
              "--chunk-kib", "4", "--any-order")
    assert oracle_agrees(oracle, tmp_path / "expected.tsv", tmp_path / "any.tsv", any_order=True)


# ---- Float-typed files: pandas' own float parser (key_types.h ParseDouble) --------

N_FLOAT = int(os.environ.get("CLOUDMERGE_DIFF_FLOAT_CASES", "300"))


def float_spellings(rng, x):
    """Spellings of (nearly) one double, as programs write them: 16-20 significant digits,
    the shortest repr, and for integral values zero-padded forms (18+ characters exceed
    pandas' 17-digit budget: "000000000000000012" is 10.0 in pandas)."""
    out = [repr(x)] + [("%." + str(d) + "g") % x for d in (16, 17, 18, 19, 20)]
    if x == int(x) and abs(x) < 1e6:
        out += [str(int(x)).zfill(w) for w in (3, 17, 18, 19, 20)]
    return out


def make_float_pair(seed):
    rng = random.Random(f"float-{seed}")
    bases = [rng.uniform(-100, 100) for _ in range(3)] + [float(rng.randint(0, 30)) for _ in range(3)]
    bases += [10 ** rng.uniform(-310, -300), 0.1 * rng.randint(1, 9), 10.35702, 0.3]
    pool = [s for b in bases for s in float_spellings(rng, b)]

    def make(force_float):
        rows = ["ID\tvalue"]
        for i in range(rng.randint(1, 12)):
            k = rng.choice(pool) if rng.random() < 0.9 else rng.choice(["NA", "", "7", "0"])
            rows.append(f"{k}\tv{i}")
        if force_float:
            rows.append("1.5\tf")  # pandas reads the zero-padded integers as floats then
        return "\n".join(rows) + "\n"

    return make(rng.random() < 0.7), make(rng.random() < 0.7)


def test_random_float_pairs_match_script(oracle, tmp_path):
    """Float64 ID files with 16-20 significant digits and zero-padded integers mixed with
    floats: the rows the script keeps depend on pandas' rounding, not the nearest double."""
    import sys
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "spark"))
    from test_float_parity import rows_of, same_rows
    failures = []
    for seed in range(N_FLOAT):
        x, y = make_float_pair(seed)
        d = tmp_path / f"f{seed}"
        d.mkdir()
        (d / "x.tsv").write_text(x)
        (d / "y.tsv").write_text(y)
        expected_file(oracle, d / "x.tsv", d / "y.tsv", d / "expected.tsv")
        args = ["--threads", "1"] if seed % 3 == 0 else ["--threads", "2", "--chunk-kib", "1"]
        if seed % 3 == 2:
            args += ["--memory-limit", "1KiB", "--spill-fanout", "4"]  # out of core
        proc = run_merge(d / "x.tsv", d / "y.tsv", "-o", d / "out.tsv", *args, check=False)
        if proc.returncode != 0 or not same_rows(rows_of(d / "expected.tsv"), rows_of(d / "out.tsv")):
            failures.append((seed, proc.stderr.decode(errors="replace")[:300]))
    assert not failures, f"{len(failures)} of {N_FLOAT} float pairs differ from the script (inputs in " \
                         f"{tmp_path}); first: {failures[:5]}"
