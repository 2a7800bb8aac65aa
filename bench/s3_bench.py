"""S3 throughput, side by side, against the same local S3-compatible server
(moto in server mode on 127.0.0.1), in one run:

  download and upload of one object: cloudmerge cp vs the AWS CLI (aws s3 cp)
  vs boto3 (download_file / upload_file, its managed parallel transfers);
  end-to-end merge: inputs and result on S3 vs on local disk.

Medians of --runs runs; every download is checked byte for byte against the
source file. moto is a Python server, so absolute MB/s measure it as much as
the clients: read the ratios, not the rates.

  .venv/bin/python bench/s3_bench.py --rows 2000000 --runs 3 --md docs/bench-s3.md
"""
import argparse
import filecmp
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import time

import boto3

ROOT = pathlib.Path(__file__).resolve().parents[1]
CM = str(ROOT / "build" / "cloudmerge")
AWS = str(ROOT / ".venv" / "bin" / "aws")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto server did not start")


def timed(cmd, env):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def timed_call(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def generate(path, side, rows):
    if not path.exists():
        with open(path, "wb") as f:
            subprocess.run([str(ROOT / "build" / "cloudmerge-gen"), "--side", side, "--rows", str(rows),
                            "--key-type", "int"], stdout=f, check=True)
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--data-dir", default=str(ROOT / "bench" / "data"))
    ap.add_argument("--md")
    a = ap.parse_args()

    data = pathlib.Path(a.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    x = generate(data / f"x_int_{a.rows}.tsv", "x", a.rows)
    y = generate(data / f"y_int_{a.rows}.tsv", "y", a.rows)
    mb = x.stat().st_size / 1e6

    moto, url = start_moto()
    env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1",
               AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=url, AWS_EC2_METADATA_DISABLED="true")
    try:
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="bench",
                          aws_secret_access_key="bench")
        s3.create_bucket(Bucket="bench")
        s3.upload_file(str(x), "bench", "x.tsv")
        s3.upload_file(str(y), "bench", "y.tsv")
        back = data / "s3_bench_download.tsv"

        def check_download(fn):
            def run():
                if back.exists():
                    back.unlink()
                fn()
                assert filecmp.cmp(back, x, shallow=False), "download differs from the source"
            return run

        cases = {
            ("download", "cloudmerge cp"): check_download(lambda: subprocess.run(
                [CM, "cp", "s3://bench/x.tsv", str(back)], check=True, env=env)),
            ("download", "aws s3 cp"): check_download(lambda: subprocess.run(
                [AWS, "s3", "cp", "--only-show-errors", "s3://bench/x.tsv", str(back)], check=True, env=env)),
            ("download", "boto3 download_file"): check_download(lambda: s3.download_file("bench", "x.tsv", str(back))),
            ("upload", "cloudmerge cp"): lambda: subprocess.run(
                [CM, "cp", str(x), "s3://bench/up_cm.tsv"], check=True, env=env),
            ("upload", "aws s3 cp"): lambda: subprocess.run(
                [AWS, "s3", "cp", "--only-show-errors", str(x), "s3://bench/up_cli.tsv"], check=True, env=env),
            ("upload", "boto3 upload_file"): lambda: s3.upload_file(str(x), "bench", "up_boto3.tsv"),
        }
        rows = []
        for (what, tool), fn in cases.items():
            samples = [timed_call(fn) for _ in range(a.runs)]
            med = statistics.median(samples)
            rows.append((what, tool, med, mb / med))
            print(f"{what:9s} {tool:22s} {med:7.2f}s {mb / med:7.1f} MB/s", flush=True)
        for key in ("up_cm.tsv", "up_cli.tsv", "up_boto3.tsv"):
            assert s3.head_object(Bucket="bench", Key=key)["ContentLength"] == x.stat().st_size

        out_local = data / "s3_bench_merged.tsv"
        merges = {
            "merge, local files": [CM, "merge", str(x), str(y), "-o", str(out_local)],
            "merge, S3 in and out": [CM, "merge", "s3://bench/x.tsv", "s3://bench/y.tsv", "-o", "s3://bench/merged.tsv"],
        }
        merge_rows = []
        for name, cmd in merges.items():
            med = statistics.median(timed(cmd, env) for _ in range(a.runs))
            merge_rows.append((name, med))
            print(f"{name:24s} {med:7.2f}s", flush=True)
        s3.download_file("bench", "merged.tsv", str(back))
        assert filecmp.cmp(back, out_local, shallow=False), "S3 merge result differs from the local one"
        back.unlink()
        out_local.unlink()
    finally:
        moto.terminate()
        moto.wait()

    lines = [f"One object of {mb:.0f} MB (`{x.name}`), moto server on 127.0.0.1, medians of {a.runs} runs.", "",
             "| transfer | tool | wall (median) | MB/s | vs cloudmerge |", "|---|---|---:|---:|---:|"]
    base = {what: med for what, tool, med, _ in rows if tool == "cloudmerge cp"}
    for what, tool, med, rate in rows:
        lines.append(f"| {what} | {tool} | {med:.2f} s | {rate:.0f} | {med / base[what]:.2f}× |")
    lines += ["", f"End-to-end merge of {a.rows:,} rows per side:", "",
              "| run | wall (median) | vs local |", "|---|---:|---:|"]
    for name, med in merge_rows:
        lines.append(f"| {name} | {med:.2f} s | {med / merge_rows[0][1]:.2f}× |")
    table = "\n".join(lines) + "\n"
    print(table)
    if a.md:
        pathlib.Path(a.md).write_text(table)


if __name__ == "__main__":
    main()
