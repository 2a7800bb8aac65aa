"""The cluster path on a real multi-worker Spark standalone cluster: a master and
two workers, each a separate JVM started from the pyspark install
(spark-class org.apache.spark.deploy.master.Master / ...worker.Worker) on
127.0.0.1, one one-core executor of the tests' session per worker, so that every shuffle crosses
processes. The binary is shipped to the executors as a job file (SparkFiles),
as on EMR. Covered: the conformance corpus ordered and --any-order, random
differential pairs against the native binary, gzip inputs, a task killed
mid-job (Spark retries it; the result is exact and written once), and a bad row
deep in y (exit 3 with the native message, nothing written). s3a:// inputs are
test_spark_s3a.py's (same job code, local master).

One cluster for the module. Runtime measured: 15 minutes on the 2-core VM at load average 16
(the corpus both ways, 100 merges, is 13 of them; each merge is a few Spark jobs of latency)."""
import gzip
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import BIN, CASES, ROOT, oracle_agrees, run_merge
from gen_inputs import make_pair
from spark_standalone import StandaloneCluster

sys.path.insert(0, str(ROOT / "spark"))
import merge_job as mj  # noqa: E402

PARALLEL = 8  # concurrent merges: at these sizes a Spark job is mostly scheduling latency


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """spark://127.0.0.1:PORT with two ALIVE workers of two cores each: the module's session takes one
    one-core executor on each (spark.cores.max=2, spread out), a spark-submit run the other two."""
    c = StandaloneCluster(tmp_path_factory.mktemp("standalone"), workers=2, cores=2, memory="2g").start()
    try:
        yield {"master": c.master, "base": c.base}
    finally:
        c.stop()


def wait_for(what, check, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def spark(cluster):
    kill_dir = cluster["base"] / "kill"  # created by the kill test only: until then no task is killed
    s = mj.make_session(cluster["master"], app_name="cloudmerge-cluster-tests", conf={
        "spark.executor.cores": "1", "spark.executor.memory": "512m", "spark.cores.max": "2",
        "spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1",
        "spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false", "spark.driver.memory": "1g",
        "spark.task.maxFailures": "4",
        "spark.executorEnv.CLOUDMERGE_TEST_KILL_TASK_ONCE": f"join:{kill_dir}/killed"})
    s.sparkContext.setLogLevel("ERROR")
    s.sparkContext.addFile(BIN)  # executors run the shipped copy (SparkFiles), as on EMR
    # Both executors registered before the first job, so tasks and shuffles spread over both workers.
    wait_for("two executors", lambda: s.sparkContext._jsc.sc().getExecutorMemoryStatus().size() == 3)
    yield s
    s.stop()


def run_all(fn, items):
    with ThreadPoolExecutor(PARALLEL) as ex:
        return [r for r in ex.map(fn, items) if r]


def parts_text(out_dir):
    names = sorted(p.name for p in out_dir.iterdir())
    assert "_SUCCESS" in names and not [n for n in names if n.startswith(".cloudmerge-tmp-")], names
    return b"".join((out_dir / n).read_bytes() for n in names if n.startswith("part-"))


def test_two_workers_run_the_tasks(spark):
    hosts = spark.sparkContext.parallelize(range(8), 8).map(lambda _: os.getpid()).distinct().collect()
    assert len(hosts) >= 2, "tasks ran in one executor process only"


def test_a_cluster_on_this_machine_shuffles_uncompressed(spark):
    # Its workers registered with a master at 127.0.0.1: no shuffle crosses a network, and lz4
    # would only cost CPU.
    assert spark.sparkContext.getConf().get("spark.shuffle.compress") == "false"


def test_conformance_corpus_ordered_and_any_order(spark, oracle, tmp_path):
    def one(c):
        x, y = c / "x.tsv", c / "y.tsv"
        split = max(8, min(x.stat().st_size, y.stat().st_size) // 3)
        out, parts = tmp_path / f"{c.name}.tsv", tmp_path / f"{c.name}.parts"
        try:
            mj.merge(spark, str(x), str(y), str(out), ordered=True, single_file=True, split_bytes=split, partitions=3)
            mj.merge(spark, str(x), str(y), str(parts), ordered=False, partitions=2)
        except Exception as e:  # noqa: BLE001
            return f"{c.name}: {type(e).__name__}: {mj.java_message(e)[:300]}"
        (tmp_path / f"{c.name}.any.tsv").write_bytes(parts_text(parts))
        if not oracle_agrees(oracle, c / "expected.tsv", out):
            return f"{c.name}: ordered differs"
        if not oracle_agrees(oracle, c / "expected.tsv", tmp_path / f"{c.name}.any.tsv", any_order=True):
            return f"{c.name}: any order differs"
        return None
    failures = run_all(one, CASES)
    assert not failures, f"{len(failures)} of {len(CASES)} cases fail: {failures[:5]}"


def test_random_pairs_and_gzip_inputs_match_native(spark, tmp_path):
    """Random pairs (split into ~4 pieces each), and the same pairs gzip-compressed (one split each)."""
    def one(seed):
        x, y = make_pair(2000 + seed)
        d = tmp_path / f"case{seed}"
        d.mkdir()
        gz = seed % 2 == 1
        names = ("x.tsv.gz", "y.tsv.gz") if gz else ("x.tsv", "y.tsv")
        for name, text in zip(names, (x, y)):
            (d / name).write_bytes(gzip.compress(text.encode()) if gz else text.encode())
        run_merge(d / names[0], d / names[1], "-o", d / "native.tsv")
        try:
            mj.merge(spark, str(d / names[0]), str(d / names[1]), str(d / "spark.tsv"), ordered=True,
                     single_file=True, split_bytes=max(8, len(x) // 4), partitions=4)
        except Exception as e:  # noqa: BLE001
            return f"seed {seed}: {type(e).__name__}: {mj.java_message(e)[:300]}"
        if (d / "spark.tsv").read_bytes() != (d / "native.tsv").read_bytes():
            return f"seed {seed}{' (gzip)' if gz else ''}: differs from the native output (in {d})"
        return None
    failures = run_all(one, range(6))
    assert not failures, failures


def test_a_task_killed_mid_job_is_retried_and_the_result_written_once(spark, cluster, tmp_path):
    x, y = make_pair(3001)
    (tmp_path / "x.tsv").write_text(x)
    (tmp_path / "y.tsv").write_text(y)
    run_merge(tmp_path / "x.tsv", tmp_path / "y.tsv", "-o", tmp_path / "native.tsv")
    kill_dir = cluster["base"] / "kill"
    kill_dir.mkdir()
    try:
        stats = mj.merge(spark, str(tmp_path / "x.tsv"), str(tmp_path / "y.tsv"), str(tmp_path / "out"),
                         ordered=True, single_file=False, split_bytes=max(8, len(x) // 3), partitions=3)
    finally:
        killed = (kill_dir / "killed").exists()
        (kill_dir / "killed").unlink(missing_ok=True)
        kill_dir.rmdir()
    assert killed, "no join task was killed: the test proved nothing"
    assert parts_text(tmp_path / "out") == (tmp_path / "native.tsv").read_bytes()
    assert stats["output_rows"] == len((tmp_path / "native.tsv").read_bytes().splitlines()) - 1


def test_a_bad_row_deep_in_y_is_exit_3_with_its_line_and_nothing_written(cluster, tmp_path):
    """Through spark-submit against the cluster, as a user runs it."""
    rows = "".join(f"{i}\tv{i}\n" for i in range(3000))
    (tmp_path / "x.tsv").write_text("ID\tvalue\n1\ta\n")
    (tmp_path / "y.tsv").write_text("ID\tvalue\n" + rows + "5\tb\tc\n" + rows)
    native = run_merge(tmp_path / "x.tsv", tmp_path / "y.tsv", "-o", tmp_path / "n.tsv", check=False)
    assert native.returncode == 3
    message = native.stderr.decode().strip().split("Error [cloudmerge merge]: ", 1)[1]
    assert "y.tsv, line 3002" in message
    p = subprocess.run([str(ROOT / ".venv" / "bin" / "spark-submit"), "--master", cluster["master"],
                        "--conf", "spark.ui.enabled=false", "--conf", "spark.cores.max=2",
                        "--conf", "spark.executor.cores=1", "--conf", "spark.executor.memory=512m",
                        "--conf", "spark.driver.host=127.0.0.1",
                        "--files", BIN, str(ROOT / "spark" / "merge_job.py"), str(tmp_path / "x.tsv"),
                        str(tmp_path / "y.tsv"), "-o", str(tmp_path / "out.tsv"), "--ordered", "--single-file",
                        "--split-mib", "0.01"], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYSPARK_PYTHON=str(ROOT / ".venv" / "bin" / "python")))
    assert p.returncode == 3, p.stderr[-3000:]
    said = p.stdout + p.stderr  # spark-submit's PythonRunner sends the driver's stderr to its stdout
    assert f"Error [cloudmerge spark]: {message}" in said, [ln for ln in said.splitlines() if "cloudmerge" in ln]
    assert sorted(f.name for f in tmp_path.iterdir()) == ["n.tsv", "x.tsv", "y.tsv"] or \
        sorted(f.name for f in tmp_path.iterdir()) == ["x.tsv", "y.tsv"]
