#!/usr/bin/env python3
"""The cluster path against the native engine on the same generated files, in one
run: native; the Spark job (spark/merge_job.py: Spark distributes, `cloudmerge
cluster-task` computes) on local[2] and on a 2-worker standalone cluster (two
worker JVMs of one core each, tests/e2e/spark_standalone.py); and the previous
job (a Python port of the tokenizer and type rules, taken from git at LEGACY_REV)
on local[2]. Each Spark variant also runs on two one-row files: its fixed cost
(JVM start, session, job scheduling), subtracted in the "net" columns.
Wall, CPU seconds (the process tree's user+sys; for the cluster also the
master's and workers' with their executors), input rows per CPU-second, ratios;
every output must equal native's byte for byte.

    .venv/bin/python bench/spark_bench.py --rows 10000000 [--repeat 3] [--no-legacy] [--no-write]

With --repeat N the variants run N times interleaved (native, then each Spark variant's fixed
and full runs, then again...) and every figure is the median of its N values: on a shared
machine a burst of someone else's load then spoils one run, not the table (the old Python job
runs once). Runs one thing at a time. Logs in bench/data/<variant>.<rows>.log."""
import argparse
import datetime
import filecmp
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from run_bench import generate  # noqa: E402
from spark_standalone import StandaloneCluster  # noqa: E402

LEGACY_REV = "5decf87"  # the last spark/merge_job.py with the Python port
SUBMIT = str(ROOT / ".venv" / "bin" / "spark-submit")


def run_once(cmd, log_path, extra_cpu=None):
    """(wall s, CPU s); stderr to log_path. extra_cpu(): CPU seconds of processes
    outside the tree (the standalone cluster), sampled before and after."""
    before = extra_cpu() if extra_cpu else 0.0
    env = dict(os.environ, PYSPARK_PYTHON=str(ROOT / ".venv" / "bin" / "python"))
    with open(log_path, "wb") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        tail = pathlib.Path(log_path).read_bytes()[-3000:].decode(errors="replace")
        raise RuntimeError(f"{' '.join(map(str, cmd[:6]))} ... failed (log {log_path}):\n{tail}")
    time.sleep(1 if extra_cpu else 0)  # executors exit after the application: their CPU lands in the worker
    after = extra_cpu() if extra_cpu else 0.0
    return wall, ru.ru_utime + ru.ru_stime + (after - before)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--key-type", default="int")
    ap.add_argument("--bin", default=str(ROOT / "build" / "cloudmerge"))
    ap.add_argument("--data", default=str(ROOT / "bench" / "data"))
    ap.add_argument("--no-legacy", action="store_true", help="skip the old Python job (slow)")
    ap.add_argument("--no-cluster", action="store_true", help="skip the standalone cluster")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    ap.add_argument("--driver-memory", default="3g")
    ap.add_argument("--repeat", type=int, default=1, help="interleaved runs of every variant; medians reported")
    a = ap.parse_args()
    data = pathlib.Path(a.data)
    rows = a.rows
    x, y = generate(data, rows, a.key_type)
    tiny_x, tiny_y = data / "tiny_x.tsv", data / "tiny_y.tsv"
    tiny_x.write_text("ID\tvalue\n1\ta\n")
    tiny_y.write_text("ID\tvalue\n1\tb\n")
    legacy = None
    if not a.no_legacy:
        legacy = pathlib.Path(tempfile.mkdtemp()) / "merge_job.py"
        legacy.write_bytes(subprocess.run(["git", "-C", str(ROOT), "show", f"{LEGACY_REV}:spark/merge_job.py"],
                                          capture_output=True, check=True).stdout)
    out_n = data / "native.out.tsv"
    runs = {}  # variant -> [(wall, cpu, fixed wall, fixed cpu, identical)], in the order of first appearance

    def native():
        print(f"{rows:,} rows per side: native ...", file=sys.stderr, flush=True)
        w, c = run_once([a.bin, "merge", str(x), str(y), "-o", str(out_n)], data / f"native.{rows}.log")
        runs.setdefault("native", []).append((w, c, 0.0, 0.0, True))
        print(f"  native: {w:.1f} s wall, {c:.1f} CPU-s", file=sys.stderr, flush=True)

    def spark(name, master, script, extra, cluster=None):
        conf = ["--conf", f"spark.driver.memory={a.driver_memory}", "--conf", "spark.ui.enabled=false"]
        if cluster:
            conf += ["--conf", "spark.executor.memory=1g", "--conf", "spark.executor.cores=1",
                     "--conf", "spark.driver.host=127.0.0.1", "--files", a.bin]
        out = data / f"{name.split()[0]}.out.tsv"
        cpu = cluster.cpu_seconds if cluster else None

        def cmd(xi, yi, o):
            return [SUBMIT, "--master", master, *conf, str(script), str(xi), str(yi), "-o", str(o), "--ordered",
                    "--single-file", *extra]
        print(f"{rows:,} rows per side: {name} (fixed cost) ...", file=sys.stderr, flush=True)
        fixed = run_once(cmd(tiny_x, tiny_y, data / "tiny.out.tsv"), data / f"{name.split()[0]}.tiny.log", cpu)
        print(f"{rows:,} rows per side: {name} ...", file=sys.stderr, flush=True)
        w, c = run_once(cmd(x, y, out), data / f"{name.split()[0]}.{rows}.log", cpu)
        same = filecmp.cmp(out_n, out, shallow=False)
        out.unlink(missing_ok=True)
        runs.setdefault(name, []).append((w, c, fixed[0], fixed[1], same))
        print(f"  {name}: {w:.1f} s wall, {c:.1f} CPU-s; fixed {fixed[0]:.1f} s, {fixed[1]:.1f} CPU-s; "
              f"load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)

    job = ROOT / "spark" / "merge_job.py"
    cluster = None
    if not a.no_cluster:
        cluster = StandaloneCluster(data / "standalone", workers=2, cores=1, memory="2g").start()
    try:
        for rep in range(a.repeat):
            native()
            spark("native-tasks local[2]", "local[2]", job, ["--cloudmerge-bin", a.bin])
            if cluster:
                spark("native-tasks standalone 2x1", cluster.master, job, [], cluster=cluster)
            if legacy and rep == 0:
                spark("python-port local[2]", "local[2]", legacy, [])
    finally:
        if cluster:
            cluster.stop()
    med = statistics.median
    # Net = a run minus the fixed cost measured just before it (paired), then the median.
    results = [(name, med(r[0] for r in rs), med(r[1] for r in rs), med(r[2] for r in rs),
                med(max(r[0] - r[2], 1e-9) for r in rs), med(max(r[1] - r[3], 1e-9) for r in rs),
                all(r[4] for r in rs)) for name, rs in runs.items()]
    native = next(r for r in results if r[0] == "native")[1:3]
    out_rows = sum(1 for _ in open(out_n, "rb")) - 1
    out_n.unlink(missing_ok=True)
    lines = []
    for name, w, c, fw, nw, nc, same in results:
        lines.append(f"| {name} | {w:.1f} | {c:.1f} | {fw:.1f} | {nw:.1f} | {nc:.1f} | {rows * 2 / nc:,.0f} | "
                     f"{nw / native[0]:.1f}x | {(rows * 2 / native[1]) / (rows * 2 / nc):.1f}x | {same} |")
    table = ["| variant | wall s | CPU s | fixed wall s (1-row files) | net wall s | net CPU s | "
             "input rows per net CPU-second | net wall vs native | CPU per row vs native | output = native |",
             "|---|---|---|---|---|---|---|---|---|---|"] + lines
    text = "\n".join(table) + f"\n\n{rows:,} rows per side, {out_rows:,} output rows, {os.cpu_count()} cores, " \
        f"{'medians of %d interleaved runs, ' % a.repeat if a.repeat > 1 else ''}" \
        f"load average at the end {os.getloadavg()[0]:.1f}."
    print(text)
    if not a.no_write:
        cmd = f"`.venv/bin/python bench/spark_bench.py --rows {rows}{' --repeat %d' % a.repeat if a.repeat > 1 else ''}`"
        with open(ROOT / "docs" / "benchmarks.md", "a") as f:
            f.write(f"\n## The cluster path: native tasks vs the Python port vs native ({datetime.date.today()})\n\n"
                    f"{cmd}\n\n{text}\n")


if __name__ == "__main__":
    main()
