"""Differential test: thousands of random small input pairs, cloudmerge vs the
script's own computation (oracle.script_result), plus larger pairs split into
many chunks vs the oracle's order-keeping hash merge (oracle.fast_result)."""
import os
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
