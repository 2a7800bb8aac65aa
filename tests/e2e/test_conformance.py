"""The 50 shared conformance cases: cloudmerge's output must agree with the
script's (expected.tsv), in every threading/chunking/ordering configuration."""
import pytest

from conftest import CASES, oracle_agrees, run_merge

CONFIGS = {
    "default": [],
    "1-thread": ["--threads", "1"],
    "2-threads-tiny-chunks": ["--threads", "2", "--chunk-kib", "1"],
}


def test_corpus_present():
    assert len(CASES) >= 50, "expected the shared conformance corpus beside the repository"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("config", CONFIGS)
def test_case(case, config, oracle, tmp_path):
    out = tmp_path / "out.tsv"
    run_merge(case / "x.tsv", case / "y.tsv", "-o", out, *CONFIGS[config])
    assert oracle_agrees(oracle, case / "expected.tsv", out), f"{case.name}: output differs from the script's"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_any_order(case, oracle, tmp_path):
    out = tmp_path / "out.tsv"
    run_merge(case / "x.tsv", case / "y.tsv", "-o", out, "--any-order", "--threads", "2")
    assert oracle_agrees(oracle, case / "expected.tsv", out, any_order=True)


@pytest.mark.parametrize("case", CASES[:5], ids=[c.name for c in CASES[:5]])
def test_case_from_stdin(case, oracle, tmp_path):
    out = tmp_path / "out.tsv"
    with open(case / "x.tsv", "rb") as f:
        run_merge("-", case / "y.tsv", "-o", out, stdin=f)
    assert oracle_agrees(oracle, case / "expected.tsv", out)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_to_stdout(case, oracle, tmp_path):
    # Standard output cannot be rewound, so this is the two-pass path (x typed first, then probed).
    proc = run_merge(case / "x.tsv", case / "y.tsv")
    (tmp_path / "out.tsv").write_bytes(proc.stdout)
    assert oracle_agrees(oracle, case / "expected.tsv", tmp_path / "out.tsv")


# x files whose type is only known at their end: the one-pass probe must notice and redo.
LATE_TYPE = {
    "bool_ids_vs_numbers": ("ID\tv\nTrue\ta\nFalse\tb\n", "ID\tv\n1\tp\n0\tq\n2\tr\n"),
    "float_with_big_int": ("ID\tv\n9007199254740993\ta\n" + "1\tb\n" * 3000 + "1.5\tc\n",
                           "ID\tv\n9007199254740992\tp\n1\tq\n"),
    "uint64_late": ("ID\tv\n" + "5\ta\n" * 3000 + "18446744073709551615\tb\n",
                    "ID\tv\n5\tp\n18446744073709551615\tq\n"),
    "text_late_vs_numbers": ("ID\tv\n" + "7\ta\n" * 3000 + "x\tb\n", "ID\tv\n7\tp\n"),
    "numbers_late_vs_text": ("ID\tv\nNA\ta\n" + "7\tb\n" * 3000, "ID\tv\n7\tp\nA\tq\n"),
    "textraw_na_literal": ("ID\tv\nNA\ta\n18446744073709551615\tb\n", "ID\tv\nNA\tp\n18446744073709551615\tq\n"),
}


@pytest.mark.parametrize("name", LATE_TYPE)
@pytest.mark.parametrize("threads", ["1", "2"])
def test_type_known_only_at_the_end(name, threads, oracle, tmp_path):
    x, y = LATE_TYPE[name]
    (tmp_path / "x.tsv").write_text(x)
    (tmp_path / "y.tsv").write_text(y)
    exp = tmp_path / "expected.tsv"
    oracle.script_result(oracle.read(str(tmp_path / "x.tsv")), oracle.read(str(tmp_path / "y.tsv"))).to_csv(
        exp, sep="\t", index=False, na_rep="")
    run_merge(tmp_path / "x.tsv", tmp_path / "y.tsv", "-o", tmp_path / "file.tsv", "--threads", threads,
              "--chunk-kib", "1")
    assert oracle_agrees(oracle, exp, tmp_path / "file.tsv")
    proc = run_merge(tmp_path / "x.tsv", tmp_path / "y.tsv", "--threads", threads, "--chunk-kib", "1")
    (tmp_path / "stdout.tsv").write_bytes(proc.stdout)
    assert oracle_agrees(oracle, exp, tmp_path / "stdout.tsv")
