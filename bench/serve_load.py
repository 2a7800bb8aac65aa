"""Load benchmark of `cloudmerge serve --local` (issue 7, load; not a CI test):
a burst of many small jobs and a few large ones dropped into the input
directory at once, while one polling service works through them.

Measured:
  jobs/min      jobs / (last job's done.json - first submission)
  latency       per job, done.json's mtime - the moment its second input was
                renamed into place (p50, p99, max; small and large separately)
  peak RSS      of the serve process: VmHWM from /proc/<pid>/status (the
                kernel's high-water mark, so no peak is missed between polls)
Every result is checked against `cloudmerge merge` run in memory on the same
inputs, afterwards (not during the measurement).

  .venv/bin/python bench/serve_load.py --small 200 --large 3 --large-rows 1000000 \\
      --memory-limit 256MiB --threads 2 [--bin build/cloudmerge] [--workdir DIR] [--keep]
"""
import argparse
import json
import os
import pathlib
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def write_table(path, rng, rows, key_space, width):
    with open(path, "w") as f:
        f.write("ID\t" + "\t".join(f"v{c}" for c in range(width)) + "\n")
        for i in range(rows):
            f.write(f"{rng.randrange(key_space)}\t" + "\t".join(f"r{i}c{c}" for c in range(width)) + "\n")


def vm_hwm(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.environ.get("CLOUDMERGE_BIN", str(ROOT / "build" / "cloudmerge")))
    ap.add_argument("--small", type=int, default=200)
    ap.add_argument("--small-rows", type=int, default=2000)
    ap.add_argument("--large", type=int, default=3)
    ap.add_argument("--large-rows", type=int, default=1_000_000)
    ap.add_argument("--memory-limit", default="256MiB")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workdir")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()

    work = pathlib.Path(a.workdir or tempfile.mkdtemp(prefix="serve-load-"))
    rng = random.Random(a.seed)
    staging, root, spill = work / "staging", work / "serve", work / "spill"
    for d in (staging, root / "input", spill):
        d.mkdir(parents=True, exist_ok=True)
    jobs = [f"large-{i}" for i in range(a.large)] + [f"small-{i:03d}" for i in range(a.small)]
    print(f"generating {a.small} x {a.small_rows} and {a.large} x {a.large_rows} rows per side in {work}", flush=True)
    for job in jobs:
        n = a.large_rows if job.startswith("large") else rng.randrange(a.small_rows // 2, a.small_rows * 3 // 2)
        (staging / job).mkdir()
        write_table(staging / job / "x_list.txt", rng, n, n, 3)
        write_table(staging / job / "y_list.txt", rng, n, n, 2)

    serve = subprocess.Popen([a.bin, "serve", "--local", str(root), "--poll-ms", "100", "--memory-limit",
                              a.memory_limit, "--temp-dir", str(spill), "--threads", str(a.threads)],
                             stdout=open(work / "serve.log", "wb"), stderr=subprocess.STDOUT)
    time.sleep(0.5)
    # The burst: large jobs first (the worst case for the small ones behind them), then every small one.
    submitted = {}
    for job in jobs:
        d = root / "input" / job
        d.mkdir()
        os.rename(staging / job / "x_list.txt", d / "x_list.txt")
        os.rename(staging / job / "y_list.txt", d / "y_list.txt")
        submitted[job] = time.time()
    finished, peak = {}, 0
    deadline = time.time() + 3600
    while len(finished) < len(jobs) and time.time() < deadline and serve.poll() is None:
        peak = max(peak, vm_hwm(serve.pid))
        for job in jobs:
            if job not in finished:
                for m in (root / "output" / job / "_state").glob("*/*.json"):
                    if m.name in ("done.json", "failed.json"):
                        finished[job] = (m.stat().st_mtime, m.name)
        time.sleep(0.05)
    peak = max(peak, vm_hwm(serve.pid))
    serve.send_signal(signal.SIGTERM)
    serve.wait(timeout=60)
    if len(finished) < len(jobs):
        sys.exit(f"serve_load: only {len(finished)} of {len(jobs)} jobs ended; see {work / 'serve.log'}")

    # Check every result against the in-memory merge.
    bad = []
    for job in jobs:
        d = root / "input" / job
        expected = work / "expected.tsv"
        subprocess.run([a.bin, "merge", d / "x_list.txt", d / "y_list.txt", "-o", expected], check=True)
        if finished[job][1] != "done.json" or (root / "output" / job / "merged.tsv").read_bytes() != expected.read_bytes():
            bad.append(job)
    lat = {job: finished[job][0] - submitted[job] for job in jobs}
    small = [lat[j] for j in jobs if j.startswith("small")]
    large = [lat[j] for j in jobs if j.startswith("large")]
    span = max(f[0] for f in finished.values()) - min(submitted.values())
    result = {
        "jobs": len(jobs), "small": a.small, "large": a.large, "large_rows": a.large_rows,
        "memory_limit": a.memory_limit, "threads": a.threads, "wall_s": round(span, 2),
        "jobs_per_min": round(len(jobs) / span * 60, 1),
        "latency_s": {"p50": round(percentile(list(lat.values()), 0.5), 2),
                      "p99": round(percentile(list(lat.values()), 0.99), 2),
                      "max": round(max(lat.values()), 2)},
        "small_latency_s": {"p50": round(percentile(small, 0.5), 2), "p99": round(percentile(small, 0.99), 2)}
        if small else None,
        "large_latency_s": {"p50": round(percentile(large, 0.5), 2), "max": round(max(large), 2)} if large else None,
        "peak_rss_mib": round(peak / 2**20, 1),
        "results_wrong": bad,
    }
    print(json.dumps(result, indent=2))
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
