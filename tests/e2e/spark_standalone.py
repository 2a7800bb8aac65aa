"""A Spark standalone cluster on 127.0.0.1 from the pyspark install: a master and
N workers, each its own JVM (spark-class org.apache.spark.deploy.master.Master /
...deploy.worker.Worker), ports chosen free. Used by test_spark_cluster.py and
bench/spark_bench.py. stop() ends exactly the processes start() began (by pid).

    c = StandaloneCluster(base_dir, workers=2, cores=1).start()
    ... spark-submit --master c.master ...
    c.stop()
"""
import json
import os
import pathlib
import socket
import subprocess
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(what, check, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the standalone cluster did not come up: {what}")


def _tree_cpu_seconds(pid):
    """utime + stime of pid and its reaped children (cutime + cstime), in seconds."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


class StandaloneCluster:
    def __init__(self, base, workers=2, cores=1, memory="1g", env=None):
        import pyspark
        self.home = pathlib.Path(pyspark.__file__).parent
        self.base = pathlib.Path(base)
        self.workers, self.cores, self.memory = workers, cores, memory
        # Extra environment of the JVMs (and so of the executors): e.g. AWS credentials, as an
        # instance role provides them to EMR's nodes.
        self.env = dict(env or {})
        self.procs, self.logs = [], []
        self.master = None

    def _start(self, name, args):
        env = dict(os.environ, **self.env, SPARK_HOME=str(self.home), SPARK_LOCAL_IP="127.0.0.1",
                   SPARK_LOG_DIR=str(self.base / "logs"), SPARK_NO_DAEMONIZE="1")
        log = open(self.base / f"{name}.log", "wb")
        self.logs.append(log)
        self.procs.append(subprocess.Popen([str(self.home / "bin" / "spark-class")] + args, env=env, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True))

    def start(self):
        self.base.mkdir(parents=True, exist_ok=True)
        port, ui = free_port(), free_port()
        try:
            self._start("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port",
                                   str(port), "--webui-port", str(ui)])
            status = f"http://127.0.0.1:{ui}/json/"
            _wait_for("master", lambda: urllib.request.urlopen(status, timeout=2).status == 200)
            self.master = f"spark://127.0.0.1:{port}"
            for i in range(1, self.workers + 1):
                self._start(f"worker{i}", ["org.apache.spark.deploy.worker.Worker", self.master, "--host",
                                           "127.0.0.1", "--cores", str(self.cores), "--memory", self.memory,
                                           "--webui-port", str(free_port()), "--work-dir", str(self.base / f"work{i}")])

            def alive():
                doc = json.load(urllib.request.urlopen(status, timeout=2))
                return sum(w["state"] == "ALIVE" for w in doc["workers"]) == self.workers
            _wait_for(f"{self.workers} ALIVE workers", alive)
        except BaseException:
            self.stop()
            raise
        return self

    def cpu_seconds(self):
        """CPU used so far by the master and workers with their finished executors."""
        return sum(_tree_cpu_seconds(p.pid) for p in self.procs if p.poll() is None)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for log in self.logs:
            log.close()
        self.procs, self.logs = [], []
