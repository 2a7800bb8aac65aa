"""Side-by-side benchmark: cloudmerge vs pandas merge, DuckDB and Polars on the
same generated files, in the same run. Every tool's output is checked against
cloudmerge's (same multiset of rows; same sequence for the tools that promise
the script's order), and a Markdown table (median wall time, CPU time, peak
memory, MB/s) is written.

  .venv/bin/python bench/run_bench.py --rows 10000000 --key-type int --runs 3 --md docs/bench-int.md
"""
import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import time
import zlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PY = sys.executable

# name -> (command builder, keeps the script's order)
def tools(out):
    cm = str(ROOT / "build" / "cloudmerge")
    peer = [PY, str(ROOT / "bench" / "peers.py")]
    return {
        "cloudmerge (script order)": (lambda x, y: [cm, "merge", x, y, "-o", out], True),
        "cloudmerge --any-order": (lambda x, y: [cm, "merge", x, y, "-o", out, "--any-order"], False),
        "DuckDB (unordered)": (lambda x, y: peer + ["duckdb", x, y, out], False),
        "DuckDB (script order)": (lambda x, y: peer + ["duckdb_ordered", x, y, out], True),
        "Polars": (lambda x, y: peer + ["polars", x, y, out], False),
        "pandas merge": (lambda x, y: peer + ["pandas", x, y, out], False),  # groups by key, not the script order
    }


def generate(data_dir, rows, key_type):
    data_dir.mkdir(parents=True, exist_ok=True)
    gen = str(ROOT / "build" / "cloudmerge-gen")
    paths = []
    for side in ("x", "y"):
        p = data_dir / f"{side}_{key_type}_{rows}.tsv"
        if not p.exists():
            with open(p, "wb") as f:
                subprocess.run([gen, "--side", side, "--rows", str(rows), "--key-type", key_type], stdout=f, check=True)
        paths.append(p)
    return paths


def run_once(cmd):
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd[0]} failed: {err}")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024.0


def digest(path):
    """(rows, order-independent checksum, ordered checksum) of the data rows, header excluded."""
    rows, multiset, ordered = 0, 0, 0
    with open(path, "rb") as f:
        f.readline()
        for line in f:
            line = line.rstrip(b"\r\n")
            c = zlib.crc32(line)
            multiset = (multiset + c * 0x9E3779B1 + (c >> 7)) & 0xFFFFFFFFFFFFFFFF
            ordered = zlib.crc32(line + b"\n", ordered)
            rows += 1
    return rows, multiset, ordered


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--key-type", choices=["int", "string"], default="int")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--slow-runs", type=int, default=1, help="runs for pandas (tens of seconds each)")
    ap.add_argument("--data-dir", default=str(ROOT / "bench" / "data"))
    ap.add_argument("--md", help="write the Markdown table here")
    ap.add_argument("--only", help="comma-separated tool names to run")
    a = ap.parse_args()

    x, y = generate(pathlib.Path(a.data_dir), a.rows, a.key_type)
    size_mb = (x.stat().st_size + y.stat().st_size) / 1e6
    out = str(pathlib.Path(a.data_dir) / "bench_out.tsv")
    results, reference = [], None
    for name, (build, ordered) in tools(out).items():
        if a.only and name not in a.only.split(","):
            continue
        runs = a.slow_runs if name.startswith("pandas") else a.runs
        samples = [run_once(build(str(x), str(y))) for _ in range(runs)]
        d = digest(out)
        if reference is None:
            reference = d
        same_rows = d[0] == reference[0] and d[1] == reference[1]
        same_order = same_rows and d[2] == reference[2]
        check = "same rows" + (", same order" if same_order else "") if same_rows else "DIFFERENT ROWS"
        if ordered and not same_order:
            check += " (ORDER DIFFERS)"
        wall = statistics.median(s[0] for s in samples)
        cpu = statistics.median(s[1] for s in samples)
        rss = statistics.median(s[2] for s in samples)
        results.append((name, wall, cpu, rss, size_mb / wall, runs, check))
        print(f"{name:28s} wall {wall:7.2f}s cpu {cpu:7.2f}s rss {rss:8.0f} MiB {size_mb / wall:7.1f} MB/s  "
              f"[{runs} runs] {check}", flush=True)
    os.unlink(out)

    base = results[0][1]
    lines = [f"Inputs: {a.rows:,} rows per side, {a.key_type} IDs, {size_mb:.0f} MB in total "
             f"(`{x.name}`, `{y.name}`); output {reference[0]:,} rows.", "",
             "| tool | wall (median) | CPU | peak RSS | input MB/s | runs | vs cloudmerge | output check |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, wall, cpu, rss, mbs, runs, check in results:
        lines.append(f"| {name} | {wall:.2f} s | {cpu:.2f} s | {rss:.0f} MiB | {mbs:.0f} | {runs} | "
                     f"{wall / base:.2f}× | {check} |")
    table = "\n".join(lines) + "\n"
    print(table)
    if a.md:
        pathlib.Path(a.md).write_text(table)


if __name__ == "__main__":
    main()
