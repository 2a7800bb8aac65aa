#!/usr/bin/env python3
"""Spark local[2] (`cloudmerge merge --engine spark`) vs the native engine on the
same generated files, in one run: wall, CPU (the process tree's user+sys), rows/s,
ratio; the two outputs must be identical. Appends a section to docs/benchmarks.md.

    .venv/bin/python bench/spark_bench.py --rows 1000000 [--rows 10000000] [--bin build/cloudmerge]

Single-threaded driver; runs the two engines one after the other (never at once)."""
import argparse
import datetime
import filecmp
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from run_bench import generate, run_once  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, action="append")
    ap.add_argument("--key-type", default="int")
    ap.add_argument("--bin", default=str(ROOT / "build" / "cloudmerge"))
    ap.add_argument("--data", default=str(ROOT / "bench" / "data"))
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    a = ap.parse_args()
    lines = []
    for rows in a.rows or [1_000_000]:
        x, y = generate(pathlib.Path(a.data), rows, a.key_type)
        out_n, out_s = pathlib.Path(a.data) / "native.out.tsv", pathlib.Path(a.data) / "spark.out.tsv"
        native = run_once([a.bin, "merge", str(x), str(y), "-o", str(out_n)])
        spark = run_once([a.bin, "merge", "--engine", "spark", "--master", "local[2]", str(x), str(y),
                          "-o", str(out_s)])
        same = filecmp.cmp(out_n, out_s, shallow=False)
        out_rows = sum(1 for _ in open(out_n, "rb")) - 1
        for name, (wall, cpu, rss) in (("native", native), ("spark local[2]", spark)):
            lines.append(f"| {rows:,} | {name} | {wall:.2f} | {cpu:.2f} | {rows * 2 / wall:,.0f} | "
                         f"{rows * 2 / cpu:,.0f} | {wall / native[0]:.1f}x |")
        lines.append(f"| {rows:,} | outputs identical: {same} ({out_rows:,} rows) | | | | | |")
        for p in (out_n, out_s):
            p.unlink(missing_ok=True)
    table = ["| rows per input | engine | wall s | CPU s | input rows/s (wall) | input rows/s per CPU-second | "
             "wall vs native |", "|---|---|---|---|---|---|---|"] + lines
    print("\n".join(table))
    if not a.no_write:
        cmd = "`.venv/bin/python bench/spark_bench.py " + " ".join(f"--rows {r}" for r in (a.rows or [1_000_000])) \
            + "`"
        with open(ROOT / "docs" / "benchmarks.md", "a") as f:
            f.write(f"\n## Spark local[2] vs native ({datetime.date.today()}, {os.cpu_count()} cores, "
                    f"{a.key_type} keys)\n\n{cmd}\n\n" + "\n".join(table) + "\n")


if __name__ == "__main__":
    main()
