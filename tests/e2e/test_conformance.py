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
