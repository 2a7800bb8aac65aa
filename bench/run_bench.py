"""Side-by-side benchmark: cloudmerge vs pandas merge, DuckDB and Polars (eager,
and its lazy streaming join unordered and in the script's order) on the same
generated files, in the same run.

The first line printed is the floor: reading both inputs and writing a file of
the output's size (page cache warm), the time no join can beat; every tool's
time is also given as a ratio to it. Runs are interleaved (run 1 of every tool,
then run 2, ...) so that a noisy neighbour hurts all tools alike, in an order
that rotates every round; the figures are medians. Every tool's output is checked against cloudmerge's (row count,
multiset checksum of rows; the ordered checksum for the tools that promise the
script's order), and a Markdown table (median wall time, CPU time, peak memory,
MB/s, ratio to the floor) is written. --baseline BIN adds another cloudmerge
binary (an older build, say) as one more tool, for before/after comparisons.

  .venv/bin/python bench/run_bench.py --rows 10000000 --key-type int --runs 5 --md docs/bench-int.md
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

# name -> (command builder, keeps the script's order); the first is the reference.
def tools(out, cm, baseline=None):
    peer = [PY, str(ROOT / "bench" / "peers.py")]
    t = {
        "cloudmerge (script order)": (lambda x, y: [cm, "merge", x, y, "-o", out], True),
        "cloudmerge --any-order": (lambda x, y: [cm, "merge", x, y, "-o", out, "--any-order"], False),
    }
    if baseline:
        t["baseline cloudmerge (script order)"] = (lambda x, y: [baseline, "merge", x, y, "-o", out], True)
    t.update({
        "DuckDB (unordered)": (lambda x, y: peer + ["duckdb", x, y, out], False),
        "DuckDB (script order)": (lambda x, y: peer + ["duckdb_ordered", x, y, out], True),
        "Polars lazy (unordered)": (lambda x, y: peer + ["polars_lazy", x, y, out], False),
        "Polars lazy (left_right)": (lambda x, y: peer + ["polars_lazy_ordered", x, y, out], True),
        "Polars eager": (lambda x, y: peer + ["polars", x, y, out], False),
        "pandas merge": (lambda x, y: peer + ["pandas", x, y, out], False),  # groups by key, not the script order
    })
    return t


def floor_once(inputs, out, out_bytes):
    """Seconds to read the inputs (page cache) and write out_bytes to `out`: no join is faster."""
    buf = bytearray(8 << 20)
    t0 = time.perf_counter()
    for p in inputs:
        with open(p, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass
    with open(out, "wb", buffering=0) as f:
        left = out_bytes
        view = memoryview(buf)
        while left > 0:
            left -= f.write(view[:min(left, len(buf))])
    wall = time.perf_counter() - t0
    os.unlink(out)
    return wall


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
    ap.add_argument("--only", help="comma-separated tool names to run (the first cloudmerge always runs: reference)")
    ap.add_argument("--skip", help="comma-separated tool names not to run")
    ap.add_argument("--bin", default=str(ROOT / "build" / "cloudmerge"), help="the cloudmerge binary measured")
    ap.add_argument("--baseline", help="another cloudmerge binary to measure beside it (e.g. main's build)")
    a = ap.parse_args()

    x, y = generate(pathlib.Path(a.data_dir), a.rows, a.key_type)
    size_mb = (x.stat().st_size + y.stat().st_size) / 1e6
    out = str(pathlib.Path(a.data_dir) / "bench_out.tsv")
    table_of_tools = tools(out, a.bin, a.baseline)
    ref_name = next(iter(table_of_tools))
    chosen = [n for n in table_of_tools
              if n == ref_name or ((not a.only or n in a.only.split(",")) and not (a.skip and n in a.skip.split(",")))]

    # A warm-up run of the reference: page cache warm, and the answer every tool is checked against.
    run_once(table_of_tools[ref_name][0](str(x), str(y)))
    reference = digest(out)
    out_bytes = os.path.getsize(out)
    os.unlink(out)
    floor = statistics.median(floor_once([x, y], out, out_bytes) for _ in range(max(3, a.runs)))
    print(f"floor: read {size_mb:.0f} MB of input + write {out_bytes / 1e6:.0f} MB of output: {floor:.3f} s "
          f"(median of {max(3, a.runs)})", flush=True)

    samples = {n: [] for n in chosen}
    checks = {}
    for r in range(a.runs):  # interleaved: run r of every tool, then run r + 1
        # The order rotates every round: on a VM that hands freed memory back to its host, the
        # process after one that freed a gigabyte pays for fresh memory, so no tool may always
        # run in the same place (a fixed order favoured the --baseline build, run third, by 15%).
        for name in chosen[r % len(chosen):] + chosen[:r % len(chosen)]:
            build, ordered = table_of_tools[name]
            if name.startswith("pandas") and r >= a.slow_runs:
                continue
            samples[name].append(run_once(build(str(x), str(y))))
            if name not in checks:
                d = digest(out)
                same_rows = d[0] == reference[0] and d[1] == reference[1]
                same_order = same_rows and d[2] == reference[2]
                check = "same rows" + (", same order" if same_order else "") if same_rows else "DIFFERENT ROWS"
                if ordered and not same_order:
                    check += " (ORDER DIFFERS)"
                checks[name] = check
            os.unlink(out)

    results = []
    for name in chosen:
        s = samples[name]
        wall = statistics.median(v[0] for v in s)
        cpu = statistics.median(v[1] for v in s)
        rss = statistics.median(v[2] for v in s)
        results.append((name, wall, cpu, rss, size_mb / wall, len(s), checks[name]))
        print(f"{name:36s} wall {wall:7.2f}s ({wall / floor:5.1f}x floor) cpu {cpu:7.2f}s rss {rss:8.0f} MiB "
              f"{size_mb / wall:7.1f} MB/s  [{len(s)} runs: {' '.join(f'{v[0]:.2f}' for v in s)}] {checks[name]}",
              flush=True)

    base = results[0][1]
    lines = [f"Inputs: {a.rows:,} rows per side, {a.key_type} IDs, {size_mb:.0f} MB in total "
             f"(`{x.name}`, `{y.name}`); output {reference[0]:,} rows, {out_bytes / 1e6:.0f} MB.", "",
             f"Floor (read both inputs + write a file of the output's size, page cache warm): {floor:.3f} s.", "",
             "| tool | wall (median) | vs floor | CPU | peak RSS | input MB/s | runs | vs cloudmerge | output check |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, wall, cpu, rss, mbs, runs, check in results:
        lines.append(f"| {name} | {wall:.2f} s | {wall / floor:.1f}× | {cpu:.2f} s | {rss:.0f} MiB | {mbs:.0f} | {runs} | "
                     f"{wall / base:.2f}× | {check} |")
    table = "\n".join(lines) + "\n"
    print(table)
    if a.md:
        pathlib.Path(a.md).write_text(table)


if __name__ == "__main__":
    main()
