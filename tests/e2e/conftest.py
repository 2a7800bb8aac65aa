"""Shared fixtures for the end-to-end suites: the binary under test, the shared
oracle (../shared/reference/oracle.py, run with Debian's pandas 1.5.3) and the
conformance cases."""
import importlib.util
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED = pathlib.Path(os.environ.get("CLOUDMERGE_SHARED", ROOT.parent / "shared"))
BIN = os.environ.get("CLOUDMERGE_BIN", str(ROOT / "build" / "cloudmerge"))
CASES = sorted(p for p in (SHARED / "conformance" / "cases").glob("*") if p.is_dir())


def load_oracle():
    spec = importlib.util.spec_from_file_location("oracle", SHARED / "reference" / "oracle.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def oracle():
    return load_oracle()


def run_merge(*args, check=True, **kw):
    proc = subprocess.run([BIN, "merge", *map(str, args)], capture_output=True, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"cloudmerge failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
    return proc


def oracle_agrees(oracle, expected_path, actual_path, any_order=False):
    argv = [str(expected_path), str(actual_path)] + (["--any-order"] if any_order else [])
    return oracle.compare(argv) == 0
