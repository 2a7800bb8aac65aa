#!/usr/bin/env python3
"""Spark local[2] (`cloudmerge merge --engine spark`) vs the native engine on the
same generated files, in one run: wall, CPU (the process tree's user+sys), rows/s,
ratio; the two outputs must be identical. Appends a section to docs/benchmarks.md.

    .venv/bin/python bench/spark_bench.py --rows 1000000 [--rows 10000000] [--bin build/cloudmerge]

Single-threaded driver; runs the two engines one after the other (never at once). Each engine's
standard error goes to bench/data/<engine>.<rows>.log (Spark's log is large: a pipe would fill
and stall it). At 10^7 rows per side expect ~15-30 minutes for Spark on 2 cores and ~1 GB of
data plus Spark's shuffle files under /tmp; the driver gets --spark-driver-memory (default 4g)."""
import argparse
import datetime
import filecmp
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from run_bench import generate  # noqa: E402


def run_once(cmd, log_path):
    """(wall s, CPU s of the process tree, peak RSS MiB); stderr to log_path."""
    with open(log_path, "wb") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        tail = pathlib.Path(log_path).read_bytes()[-3000:].decode(errors="replace")
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed (log {log_path}):\n{tail}")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, action="append")
    ap.add_argument("--key-type", default="int")
    ap.add_argument("--bin", default=str(ROOT / "build" / "cloudmerge"))
    ap.add_argument("--data", default=str(ROOT / "bench" / "data"))
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    ap.add_argument("--spark-driver-memory", default="4g", help="spark.driver.memory of the local[2] run")
    ap.add_argument("--spark-conf", action="append", default=[], help="extra --spark-conf key=value (repeatable)")
    a = ap.parse_args()
    lines = []
    for rows in a.rows or [1_000_000]:
        x, y = generate(pathlib.Path(a.data), rows, a.key_type)
        out_n, out_s = pathlib.Path(a.data) / "native.out.tsv", pathlib.Path(a.data) / "spark.out.tsv"
        data = pathlib.Path(a.data)
        print(f"{rows:,} rows per side: native ...", file=sys.stderr, flush=True)
        native = run_once([a.bin, "merge", str(x), str(y), "-o", str(out_n)], data / f"native.{rows}.log")
        print(f"{rows:,} rows per side: spark local[2] ...", file=sys.stderr, flush=True)
        conf = [f"spark.driver.memory={a.spark_driver_memory}"] + a.spark_conf
        spark = run_once([a.bin, "merge", "--engine", "spark", "--spark-master", "local[2]",
                          *[f"--spark-conf={c}" for c in conf], str(x), str(y), "-o", str(out_s)],
                         data / f"spark.{rows}.log")
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
