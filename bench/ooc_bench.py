"""Out-of-core benchmark (issue 3): cloudmerge in memory vs out of core under
--memory-limit, against DuckDB under the same memory limit, thread count and
temp directory (and Polars' streaming engine when the inputs fit in memory), on
inputs generated on the fly by cloudmerge-gen.

Every tool runs in its own process; wall and CPU time are medians of --runs,
peak RSS comes from wait4 (ru_maxrss), peak temp-dir use is sampled every 50 ms,
cloudmerge's spilled bytes come from its --report. Every tool's output is
checked against cloudmerge's in-memory output: same row count and multiset of
rows, and the same sequence for the tools that promise the script's order.
Generated files are deleted at the end unless --keep.

  .venv/bin/python bench/ooc_bench.py --rows 100000000 --memory-limit 2GiB --threads 2 --runs 3 \\
      --workdir /scratch/ooc --md docs/bench-ooc-1e8.md

Check it quickly (what the tests' machine can afford):
  .venv/bin/python bench/ooc_bench.py --rows 1000000 --memory-limit 16MiB --runs 1

10^9 rows per side on a disk with ~70 GB free: inputs and outputs as .zst (cloudmerge and DuckDB both
read and write them streaming), spill compressed, no in-memory run (it would need ~60 GiB):
  .venv/bin/python bench/ooc_bench.py --rows 1000000000 --memory-limit 4GiB --threads 2 --runs 1 \\
      --compress zst --skip-in-memory --skip-peer polars --skip-peer duckdb-ordered \\
      --cloudmerge-arg=--spill-compression=zstd --workdir /scratch/ooc
"""
import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import threading
import time
import zlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PY = sys.executable
sys.path.insert(0, str(ROOT / "bench"))
from peers import duckdb_join_query  # noqa: E402  (the same SQL as bench/run_bench.py's peers)



# ---- Peers, each run as `python ooc_bench.py --peer NAME ...` in its own process -------------------------------

def peer_duckdb(x, y, out, threads, memory_limit, temp_dir, ordered, id_type):
    """DuckDB with the limits cloudmerge gets. Unordered: preserve_insertion_order off (DuckDB may
    then stream and spill freely, like cloudmerge --any-order); script order: row numbers and an
    ORDER BY on them, with preserve_insertion_order on (its default)."""
    import duckdb
    con = duckdb.connect()
    con.execute(f"SET threads TO {int(threads)}")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute(f"SET temp_directory = '{temp_dir}'")
    con.execute(f"SET preserve_insertion_order = {'true' if ordered else 'false'}")
    q = duckdb_join_query(x, y, ordered, id_type)
    compression = ", COMPRESSION 'zstd'" if out.endswith(".zst") else ""
    con.execute(f"COPY ({q}) TO '{out}' (DELIMITER '\t', HEADER, QUOTE ''{compression})")


def peer_polars(x, y, out):
    """Polars' streaming engine (scan, join, sink): threads from POLARS_MAX_THREADS; it has no memory limit."""
    import polars as pl
    a = pl.scan_csv(x, separator="\t", schema_overrides={"value": pl.Utf8})
    b = pl.scan_csv(y, separator="\t", schema_overrides={"value": pl.Utf8})
    m = a.join(b, on="ID", how="inner").select(
        pl.col("ID").alias("ID_x"), pl.col("value").alias("value_x"), pl.col("value_right").alias("value_y"))
    m.sink_csv(out, separator="\t", quote_style="never", maintain_order=False)


def run_peer(argv):
    name, rest = argv[0], argv[1:]
    if name == "duckdb":
        x, y, out, threads, limit, temp, ordered, id_type = rest
        peer_duckdb(x, y, out, threads, limit, temp, ordered == "ordered", id_type)
    elif name == "polars":
        peer_polars(*rest)
    else:
        sys.exit(f"unknown peer {name}")


# ---- Measuring ---------------------------------------------------------------------------------------------------

def dir_bytes(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass  # removed while we looked
    return total


class TempSampler:
    """The peak size of a directory's contents while a run lasts, sampled every 50 ms."""

    def __init__(self, path):
        self.path, self.peak, self._stop = path, 0, threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, dir_bytes(self.path))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def run_once(cmd, temp_dir, env=None):
    """(wall s, CPU s, peak RSS MiB, peak temp-dir bytes) of one run, or raises with its stderr.

    ru_maxrss of a child is at least its parent's RSS when it was forked (Linux keeps the forked copy's
    high-water mark across exec): fine here, where this process only imports the standard library
    (~10 MiB), not under pytest (tests/e2e/ooc_util.py samples VmHWM instead)."""
    with TempSampler(temp_dir) as sampler:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        err = proc.stderr.read().decode(errors="replace")
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        lines = err.strip().splitlines()
        # A Python peer's traceback ends with the query and a caret line: the exception says more.
        named = [ln for ln in lines if "Error" in ln or "Exception" in ln]
        raise RuntimeError((named or lines or [f"exit {os.waitstatus_to_exitcode(status)}"])[-1].strip())
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024.0, sampler.peak


def generate(gen, workdir, rows, key_type, compress):
    """x and y from cloudmerge-gen, generated side by side (one core each); compressed with zstd -1 as
    they are written when compress == "zst" (10^9 rows are ~20 GB per side raw, ~9 GB compressed)."""
    suffix = ".tsv.zst" if compress == "zst" else ".tsv"  # "output": plain inputs
    paths, running = [], []
    t0 = time.perf_counter()
    for side in ("x", "y"):
        p = workdir / f"{side}_{key_type}_{rows}{suffix}"
        paths.append(p)
        if p.exists():
            continue
        partial = workdir / (p.name + ".partial")
        f = open(partial, "wb")
        g = subprocess.Popen([gen, "--side", side, "--rows", str(rows), "--key-type", key_type],
                             stdout=subprocess.PIPE if compress == "zst" else f)
        z = subprocess.Popen(["zstd", "-1", "-q", "-c"], stdin=g.stdout, stdout=f) if compress == "zst" else None
        if z:
            g.stdout.close()
        running.append((p, partial, f, g, z))
    for p, partial, f, g, z in running:
        codes = [g.wait()] + ([z.wait()] if z else [])
        f.close()
        if any(codes):
            sys.exit(f"generating {p} failed: exit codes {codes}")
        partial.rename(p)
        print(f"generated {p} ({p.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f}s", flush=True)
    return paths


def digest(path):
    """(rows, order-independent checksum, ordered checksum) of the data rows, header excluded; the same
    values as bench/run_bench.py's digest for "\n"-ended rows, but read in 16 MiB chunks (and through
    zstd -dc for .zst) so that a 10 GB output takes minutes, not an hour."""
    proc = subprocess.Popen(["zstd", "-dc", str(path)], stdout=subprocess.PIPE) if str(path).endswith(".zst") \
        else None
    f = proc.stdout if proc else open(path, "rb")
    rows, multiset, ordered, carry, header = 0, 0, 0, b"", True
    crc32, mask = zlib.crc32, 0xFFFFFFFFFFFFFFFF
    while True:
        chunk = f.read(1 << 24)
        if not chunk:
            break
        data = carry + chunk
        end = data.rfind(b"\n") + 1
        data, carry = data[:end], data[end:]
        if header and data:
            data, header = data[data.index(b"\n") + 1:], False
        ordered = crc32(data, ordered)
        lines = data.split(b"\n")
        lines.pop()
        for line in lines:
            c = crc32(line.rstrip(b"\r"))
            multiset += c * 0x9E3779B1 + (c >> 7)
        multiset &= mask
        rows += len(lines)
    if carry and not header:  # a last row without its line end
        ordered = crc32(carry + b"\n", ordered)
        c = crc32(carry.rstrip(b"\r"))
        multiset = (multiset + c * 0x9E3779B1 + (c >> 7)) & mask
        rows += 1
    f.close()
    if proc and proc.wait():
        raise RuntimeError(f"zstd -dc {path} failed")
    return rows, multiset, ordered


def available_memory_bytes():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


# ---- The benchmark -----------------------------------------------------------------------------------------------

class Tool:
    def __init__(self, name, cmd, ordered, env=None, report=None):
        self.name, self.cmd, self.ordered, self.env, self.report = name, cmd, ordered, env, report


def tools(a, x, y, out, temp_dir, report):
    cm = [a.bin, "merge", str(x), str(y), "-o", str(out), "--threads", str(a.threads), "--temp-dir", str(temp_dir),
          "--progress", "none", "--report", str(report)] + a.cloudmerge_arg
    id_type = "VARCHAR" if a.key_type == "string" else "BIGINT"
    peer = [PY, str(pathlib.Path(__file__).resolve()), "--peer"]
    duck = lambda ordered: peer + ["duckdb", str(x), str(y), str(out), str(a.threads), a.memory_limit,
                                   str(temp_dir), "ordered" if ordered else "unordered", id_type]
    result = [
        # In memory: a limit no input of this benchmark reaches (the report says if it spilled anyway).
        Tool("cloudmerge in memory", cm + ["--memory-limit", a.in_memory_limit], True, report=report),
        Tool(f"cloudmerge --memory-limit {a.memory_limit}", cm + ["--memory-limit", a.memory_limit], True,
             report=report),
        Tool(f"cloudmerge --memory-limit {a.memory_limit} --any-order",
             cm + ["--memory-limit", a.memory_limit, "--any-order"], False, report=report),
    ]
    if "duckdb" not in a.skip_peer:
        result.append(Tool(f"DuckDB memory_limit {a.memory_limit} (unordered)", duck(False), False))
    if "duckdb" not in a.skip_peer and "duckdb-ordered" not in a.skip_peer:
        result.append(Tool(f"DuckDB memory_limit {a.memory_limit} (script order)", duck(True), True))
    if "polars" not in a.skip_peer and a.compress == "none":
        need = 4 * (x.stat().st_size + y.stat().st_size)  # its frames, hash table and output, roughly
        if need < available_memory_bytes():
            env = dict(os.environ, POLARS_MAX_THREADS=str(a.threads))
            result.append(Tool("Polars streaming (no memory limit)", peer + ["polars", str(x), str(y), str(out)],
                               False, env=env))
        else:
            print(f"Polars skipped: about {need / 2**30:.1f} GiB needed, {available_memory_bytes() / 2**30:.1f} GiB "
                  f"available, and it has no memory limit", flush=True)
    return result


def fmt_bytes(n):
    if n is None:
        return "–"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--peer":
        return run_peer(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000, help="rows per side (default 10^7)")
    ap.add_argument("--memory-limit", default="2GiB", help="for cloudmerge out of core and DuckDB (default 2GiB)")
    ap.add_argument("--in-memory-limit", default="1TiB",
                    help="cloudmerge's limit for its in-memory run (default 1TiB: never spills)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--key-type", choices=["int", "string"], default="int")
    ap.add_argument("--workdir", default=str(ROOT / "bench" / "data" / "ooc"),
                    help="inputs, output and the temp dir go here (needs ~3x the inputs' size free)")
    ap.add_argument("--skip-peer", action="append", default=[], choices=["duckdb", "duckdb-ordered", "polars"],
                    help="leave out a peer (repeatable; duckdb-ordered: only DuckDB's script-order run)")
    ap.add_argument("--compress", choices=["none", "zst", "output"], default="none",
                    help="zst: inputs and outputs as .zst (streamed by cloudmerge and DuckDB); output: plain inputs, "
                         "the output as .zst (a disk too small for a plain output); Polars is skipped unless none")
    ap.add_argument("--cloudmerge-arg", action="append", default=[],
                    help="extra argument for every cloudmerge run, e.g. --cloudmerge-arg=--spill-compression=zstd")
    ap.add_argument("--skip-in-memory", action="store_true",
                    help="leave out cloudmerge's in-memory run (for inputs that do not fit in this machine)")
    ap.add_argument("--skip-any-order", action="store_true",
                    help="leave out cloudmerge's --any-order run (halves a 10^9 run)")
    ap.add_argument("--bin", default=str(ROOT / "build" / "cloudmerge"))
    ap.add_argument("--gen", default=None, help="cloudmerge-gen (default: next to --bin)")
    ap.add_argument("--keep", action="store_true", help="keep the generated inputs")
    ap.add_argument("--md", help="write the Markdown table here")
    a = ap.parse_args()
    gen = a.gen or str(pathlib.Path(a.bin).parent / "cloudmerge-gen")

    workdir = pathlib.Path(a.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    temp_dir = workdir / "tmp"
    temp_dir.mkdir(exist_ok=True)
    out = workdir / ("out.tsv" if a.compress == "none" else "out.tsv.zst")
    report = workdir / "report.json"
    x, y = generate(gen, workdir, a.rows, a.key_type, a.compress)
    input_rows = 2 * a.rows
    size_mb = (x.stat().st_size + y.stat().st_size) / 1e6

    results, reference = [], None
    try:
        for tool in tools(a, x, y, out, temp_dir, report):
            if a.skip_in_memory and tool.name == "cloudmerge in memory":
                continue
            if a.skip_any_order and tool.name.endswith("--any-order"):
                continue
            samples, spilled, used, error = [], None, None, None
            for _ in range(a.runs):
                try:
                    samples.append(run_once(tool.cmd, temp_dir, tool.env))
                except RuntimeError as e:
                    error = str(e)[:200]
                    break
                if tool.report:
                    rep = json.loads(report.read_text())
                    spilled, used = rep["out_of_core"]["spilled_bytes"], rep["out_of_core"]["used"]
                    phases = ", ".join(f"{p['name']} {p['seconds']:.1f} s" for p in rep.get("phases", []))
                    print(f"  {tool.name}: {rep['seconds_total']:.1f} s in the report: {phases}", flush=True)
            left = dir_bytes(temp_dir)
            if left:
                print(f"  {tool.name} left {left} bytes in {temp_dir}; removing them", flush=True)
                shutil.rmtree(temp_dir)
                temp_dir.mkdir()
            if error:
                results.append(dict(name=tool.name, error=error))
                print(f"{tool.name:52s} FAILED: {error}", flush=True)
                continue
            t_check = time.perf_counter()
            d = digest(out)
            out_bytes = out.stat().st_size
            out.unlink()
            # The digest itself, so that runs with one tool (10^9 rows) can be compared across runs and binaries.
            print(f"  checked {d[0]:,} rows ({out_bytes / 1e6:.0f} MB) in {time.perf_counter() - t_check:.0f}s: "
                  f"digest multiset {d[1]:016x} ordered {d[2]:08x}", flush=True)
            if reference is None:
                reference = d
            same_rows = d[:2] == reference[:2]
            check = ("same rows" + (", same order" if d[2] == reference[2] else "")) if same_rows \
                else "DIFFERENT ROWS"
            if tool.ordered and same_rows and d[2] != reference[2]:
                check += " (ORDER DIFFERS)"
            r = dict(name=tool.name, wall=statistics.median(s[0] for s in samples),
                     cpu=statistics.median(s[1] for s in samples), rss=max(s[2] for s in samples),
                     temp_peak=max(s[3] for s in samples), spilled=spilled, used=used, runs=len(samples),
                     check=check, rows=d[0])
            results.append(r)
            print(f"{tool.name:52s} wall {r['wall']:8.2f}s cpu {r['cpu']:8.2f}s rss {r['rss']:8.0f} MiB "
                  f"{input_rows / r['wall'] / 1e6:6.2f} Mrows/s spilled {fmt_bytes(spilled)} "
                  f"temp peak {fmt_bytes(r['temp_peak'])} [{r['runs']} runs] {check}", flush=True)
    finally:
        for p in (out, report):
            if p.exists():
                p.unlink()
        shutil.rmtree(temp_dir, ignore_errors=True)
        if not a.keep:
            x.unlink()
            y.unlink()

    ok = [r for r in results if "error" not in r]
    base = next((r for r in ok if r["name"] == "cloudmerge in memory"), None)
    ooc = next((r for r in ok if r["name"] == f"cloudmerge --memory-limit {a.memory_limit}"), None)
    lines = [f"Inputs: {a.rows:,} rows per side, {a.key_type} IDs, {size_mb:.0f} MB in total"
             f"{' (zstd)' if a.compress == 'zst' else ''} (cloudmerge-gen); "
             f"output {reference[0] if reference else 0:,} rows; {a.threads} threads; memory limit "
             f"{a.memory_limit}.", "",
             "| tool | wall (median) | CPU | peak RSS | input rows/s | spilled (report) | temp dir peak | runs | "
             "vs in memory | vs out of core | output check |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['name']} | failed: {r['error']} | | | | | | | | | |")
            continue
        note = "" if r["used"] is None or r["used"] == ("--memory-limit" in r["name"]) else \
            (" (spilled)" if r["used"] else " (did not spill)")
        vs_in_memory = f"{r['wall'] / base['wall']:.2f}×" if base else "–"
        lines.append(
            f"| {r['name']}{note} | {r['wall']:.2f} s | {r['cpu']:.2f} s | {r['rss']:.0f} MiB | "
            f"{input_rows / r['wall'] / 1e6:.2f} M | {fmt_bytes(r['spilled'])} | {fmt_bytes(r['temp_peak'])} | "
            f"{r['runs']} | {vs_in_memory} | "
            f"{r['wall'] / ooc['wall'] if ooc else float('nan'):.2f}× | {r['check']} |")
    table = "\n".join(lines) + "\n"
    print()
    print(table)
    if a.md:
        pathlib.Path(a.md).write_text(table)
    # Non-zero when cloudmerge failed or any tool's answer is wrong; a peer that cannot run under the
    # limit (DuckDB out of memory) is a result, shown in the table, not a failure of the benchmark.
    bad = [r["name"] for r in results
           if ("error" in r and r["name"].startswith("cloudmerge"))
           or ("error" not in r and ("DIFFERENT" in r["check"] or "ORDER DIFFERS" in r["check"]))]
    if bad:
        print(f"FAILED: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0

if __name__ == "__main__":
    sys.exit(main())
