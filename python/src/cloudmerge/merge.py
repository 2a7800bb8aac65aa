"""cloudmerge.merge(): analysis.py's merge from Python.

Owns: one engine run (`cloudmerge merge X Y -o OUT --report ...`) and, without
`out`, reading its result into the pandas DataFrame the script computes.
Threading: each call is independent (its own process and temporary folder).
"""
import json
import os
import tempfile

from . import _engine

# Options merge() sets itself, and what to use instead.
_RESERVED = {
    "output": "use out=",
    "o": "use out=",
    "report": "merge() returns the report (with out=)",
    "progress": "pass progress=True/False",
    "progress_interval": "pass progress=True/False",
    "stats": "merge() returns the report (with out=)",
    "engine": "merge() runs the native engine; the pipeline (submit) runs the others",
}


def merge(x, y, out=None, *, progress=None, **options):
    """Merge two TSV files exactly as analysis.py does, with the C++ engine.

    x, y: paths (str or os.PathLike), s3://bucket/key URIs, .gz/.zst files.
    out: where to write the merged TSV (a path or s3:// URI). Given, the result
        is written (atomically) and the run's report is returned as a dict (the
        engine's `--report` JSON: rows per side and written, key types, matched
        and hottest keys, memory, phases; docs/report.md). Not given, the
        result is returned as a pandas DataFrame: the rows analysis.py keeps,
        in its order, with its column names (ID_x, value_x, value_y), and a
        RangeIndex (the script's index numbers the cross product; use
        reset_index(drop=True) on the script's result to compare).
    progress: True/False; None (default) shows bars in a terminal or in Jupyter.
    options: the engine's `cloudmerge merge` options, with _ for -:
        key="gene", x_key=2, y_key="ID", any_order=True, memory_limit="4GiB",
        temp_dir="/scratch", threads=4, max_output_rows=10**9,
        allow_numeric_header=True, pandas_version="3.1" (the answer under that pandas;
        docs/pandas-versions.md), ... (`cloudmerge merge --help` lists them).

    Raises cloudmerge.InputError (bad data: .file, .line, .column),
    OptionsError, StorageError, all CloudmergeError with .message and .exit_code.
    """
    args = ["merge", os.fspath(x), os.fspath(y), *_engine.option_flags(options, _RESERVED)]
    with tempfile.TemporaryDirectory(prefix="cloudmerge-") as tmp:
        report_path = os.path.join(tmp, "report.json")
        target = os.fspath(out) if out is not None else os.path.join(tmp, "merged.tsv")
        _engine.run([*args, "-o", target, "--report", report_path], progress=progress)
        with open(report_path, encoding="utf-8") as f:
            report = json.load(f)
        if out is not None:
            return report
        return read_result(target, report, options)


def _key_column(header, side_key):
    """Index in the result's header of x's key column: x's columns come first,
    each with the suffix _x, so a position is kept and a name gains _x."""
    if side_key is None:
        return 0
    text = str(side_key)
    if text.isdigit():
        return int(text) - 1
    name = text + "_x"
    return header.index(name) if name in header else 0


def read_result(path, report, options=None):
    """The merged TSV as the DataFrame the script holds, as far as a TSV read
    allows: the ID column keeps the type the engine found for x's IDs (text
    IDs stay text: "007" is not read back as 7); other columns are what
    pandas.read_csv infers from the merged rows."""
    import pandas as pd

    options = options or {}
    header = pd.read_csv(path, sep="\t", nrows=0).columns.tolist()
    key = _key_column(header, options.get("x_key", options.get("key")))
    key_type = report.get("x", {}).get("key_type", "")
    dtype = {header[key]: str} if key_type.startswith("text") else None
    frame = pd.read_csv(path, sep="\t", dtype=dtype)
    if key_type == "text (NA markers kept as text)":
        # pandas itself read x's IDs with its NA markers as text ("NA" is an ID there).
        frame[header[key]] = pd.read_csv(path, sep="\t", usecols=[key], dtype=str, keep_default_na=False).iloc[:, 0]
    return frame.reset_index(drop=True)  # a RangeIndex also when empty (read_csv gives an object Index then)
