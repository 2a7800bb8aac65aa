"""Writes expected-<version>.tsv in each case folder: analysis.py's result (the
oracle's script_result, line for line the script) under the pandas running this.
Run once per pandas (docs/pandas-versions.md, "How the differences were found"):
    /usr/bin/python3 generate.py       # Debian's pandas 1.5.3 -> expected-1.5.tsv
    /tmp/pd22/bin/python generate.py   # pandas 2.2.3 -> expected-2.2.tsv
    /tmp/pd30/bin/python generate.py   # pandas 3.0.6 -> expected-3.0.tsv
    /tmp/pd31/bin/python generate.py   # pandas 3.1.1 -> expected-3.1.tsv
"""
import os
import pathlib
import sys

import pandas as pd

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, os.environ.get("CLOUDMERGE_SHARED", str(HERE.parents[4] / "shared")) + "/reference")
import oracle  # noqa: E402

version = ".".join(pd.__version__.split(".")[:2])
assert version in ("1.5", "2.2", "3.0", "3.1"), pd.__version__
for case in sorted(p for p in HERE.iterdir() if p.is_dir()):
    res = oracle.script_result(oracle.read(str(case / "x.tsv")), oracle.read(str(case / "y.tsv")))
    res.to_csv(case / f"expected-{version}.tsv", sep="\t", index=False, na_rep="")
    print(case.name, version, len(res), "rows")
