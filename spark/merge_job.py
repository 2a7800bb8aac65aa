#!/usr/bin/env python3
"""cloudmerge on Spark: the merge of analysis.py as a Spark job whose every row
is handled by the cloudmerge binary, the same answer as `cloudmerge merge`
(rows, header, values, ID equality, and with --ordered the script's order).

Spark distributes: it schedules one task per split of each input, shuffles
opaque blobs of records between tasks, retries failed tasks and runs the
writers in parallel. The native engine computes: each task runs
`cloudmerge cluster-task STEP` (src/tools/cluster_task_command.h), which
tokenizes, validates, infers types, partitions, joins and formats. There is no
Python port of the tokenizer or of pandas' rules: Python here only moves a
few large byte strings per task.

    spark-submit [--files s3://.../cloudmerge] spark/merge_job.py X Y -o OUT
                 [--ordered] [--single-file] [--key K | --x-key K --y-key K]
                 [--allow-numeric-header] [--stats-file STATS.json]
                 [--s3-endpoint-url URL] [--cloudmerge-bin PATH]

Steps (docs/spark.md "How it stays exact"):
  1. plan (driver): the binary opens both inputs' headers: key columns, the
     output header, sizes, whether a file can be split (a local or S3 object
     read as is; .gz/.zst files are one split).
  2. scan (a task per split): the split's records, one blob per join
     partition, go straight into the shuffle; its summary (rows, KeyScan, a
     '"' seen, a bad row) goes to one extra partition, which the driver reads
     alone (the join then reuses the shuffle's map outputs: the inputs are read
     once). A split that sees a '"' (which may hide a line break) makes its file
     be read again as one split. The driver combines the KeyScans in file order
     with the binary (combine).
  3. join (a task per partition of the type-independent partition hash): x's
     and y's records of that partition, in file order, joined natively.
     Blobs cross the shuffles as raw byte strings, never pickled (raw_shuffle).
  4. write: with --ordered the matches are cut into ranges of x position, each
     range merged and written by one task (part-NNNNN), in the script's order;
     with --any-order each join task writes its part. Parts + _SUCCESS, or one
     file (--single-file) concatenated through Hadoop's FileSystem.

The binary: --cloudmerge-bin (a path every executor can run: local mode, a
shared disk), else the file named `cloudmerge` shipped with --files/--archives
(SparkFiles), else `cloudmerge` beside this script or on PATH.

Exit codes as cloudmerge's: 3 bad input, 2 bad options, 4 I/O; messages start
with "Error [cloudmerge spark]:". Threading: run() on the driver; task
functions run in executors' Python workers, one binary process per task; no
state is shared between tasks.
"""
import argparse
import ipaddress
import math
import os
import shutil
import struct
import subprocess
import sys
import uuid
from urllib.parse import urlsplit

# Spark's own split size (spark.sql.files.maxPartitionBytes). Against 64 MiB, half the tasks,
# each with its fixed cost (a task launch, a binary started, its blobs framed through Python):
# at 10^7 rows per side, net wall on the 2-worker standalone cluster 7.2 -> 5.6 s and CPU 8.9 ->
# 4.9 s (docs/benchmarks.md). A join partition's records are held in the task's memory, ~2x its
# input bytes: executors of 1 GiB and more hold 128 MiB partitions.
SPLIT_BYTES = 128 << 20  # a split of a splittable input (tests lower it)
PARTITION_BYTES = 128 << 20  # input bytes per join partition
SUMMARY_TAG = 0xFFFFFFFF
LABELLED_BLOB = 0xFFFFFFFE  # a join input frame that starts with its LABEL (cluster_task_command.h)
FLOAT64 = 2  # KeyMode::kFloat


class InputError(Exception):
    """Bad input: reported with exit code 3."""


class UsageError(Exception):
    """Bad options: exit code 2."""


# ---------------------------------------------------------------------------
# The binary.

def find_binary(given=None):
    """The cloudmerge binary for this process (driver or executor)."""
    if given and os.path.isfile(given):
        return given
    try:
        from pyspark import SparkFiles
        shipped = SparkFiles.get("cloudmerge")
        if os.path.isfile(shipped):
            if not os.access(shipped, os.X_OK):
                os.chmod(shipped, 0o755)
            return shipped
    except Exception:  # noqa: BLE001 - no SparkContext/SparkFiles root here
        pass
    beside = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "cloudmerge")
    if os.path.isfile(beside):
        return beside
    found = shutil.which("cloudmerge")
    if found:
        return found
    raise UsageError("the cloudmerge binary is not found: pass --cloudmerge-bin PATH, or ship it with "
                     "spark-submit --files s3://.../cloudmerge (cloudmerge merge --engine emr does)")


class TaskFailed(Exception):
    """The binary ended with an exit code that is not bad input: the task fails (Spark retries it)."""


def run_binary(binary, args, data=b"", env=None):
    """Runs `binary cluster-task ARGS` with `data` on stdin: (exit code, stdout bytes, stderr text).
    env: variables set for it (the S3 endpoint given to the job: executors do not inherit the
    driver's changes to its environment)."""
    p = subprocess.run([binary, "cluster-task"] + [str(a) for a in args], input=data, capture_output=True,
                       env=dict(os.environ, **env) if env else None)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


class BinaryTask:
    """One `cloudmerge cluster-task ARGS` process fed and drained without joined copies (a
    task's input is hundreds of MB): stdin gets the byte strings of feed() one after the
    other; stdout is a pipe (frames(), text()) or a given file object (another process's
    stdin); stderr goes to a temporary file, so that a chatty binary cannot block on it.
    finish() waits and raises as raise_for() on a non-zero exit code."""

    def __init__(self, binary, args, what, env=None, stdout=subprocess.PIPE):
        import tempfile
        self.what = what
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([binary, "cluster-task"] + [str(a) for a in args], stdin=subprocess.PIPE,
                                     stdout=stdout, stderr=self.err, env=dict(os.environ, **env) if env else None)

    def feed(self, chunks=()):
        try:
            for c in chunks:
                self.proc.stdin.write(c)
            self.proc.stdin.close()
        except BrokenPipeError:  # it ended early: its exit code and stderr say why
            pass
        return self

    def frames(self, room=0):
        """Yields stdout's frames (tag, bytearray) as they arrive, each read straight into its own
        buffer after `room` bytes left for the caller (a shuffle payload's label: no further
        copy); then finish()."""
        stdout = self.proc.stdout
        k = room
        try:
            while True:
                head = stdout.read(12)
                if len(head) < 12:
                    break
                tag, n = struct.unpack("<IQ", head)
                buf = bytearray(k + n)
                view, got = memoryview(buf), k
                while got < k + n:
                    r = stdout.readinto(view[got:])
                    if not r:
                        break
                    got += r
                view.release()
                if got < k + n:
                    break
                yield tag, buf
        finally:
            self.finish()

    def text(self):
        out = self.proc.stdout.read()
        self.finish()
        return out.decode("utf-8", "replace")

    def kill(self):
        self.proc.kill()
        self.proc.stdin.close()
        self.proc.wait()
        self.err.close()

    def finish(self):
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        rc = self.proc.wait()
        self.err.seek(0)
        err = self.err.read().decode("utf-8", "replace")
        self.err.close()
        if rc != 0:
            raise_for(rc, err, self.what)


def task_message(stderr):
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    msg = lines[-1] if lines else stderr
    prefix = "Error [cloudmerge cluster-task]: "
    return msg[len(prefix):] if msg.startswith(prefix) else msg


def raise_for(rc, stderr, what):
    msg = task_message(stderr)
    if rc == 3:
        raise InputError(msg)
    if rc == 2:
        raise UsageError(msg)
    if rc == 4:
        raise IOError(msg)
    raise TaskFailed("%s: cloudmerge cluster-task ended with %s: %s" % (what, rc if rc >= 0 else "signal %d" % -rc,
                                                                        stderr.strip()[-2000:]))


def frames(data):
    """[(tag, bytes)] of the binary's frames (u32 tag, u64 length, bytes)."""
    out, p, view = [], 0, memoryview(data)
    while p < len(data):
        tag, n = struct.unpack_from("<IQ", data, p)
        p += 12
        out.append((tag, bytes(view[p:p + n])))
        p += n
    return out


def frame(tag, blob):
    return struct.pack("<IQ", tag, len(blob)) + blob


def binary_path(path):
    """Paths as the binary reads them: S3 through its own client (s3://)."""
    for scheme in ("s3a://", "s3n://"):
        if path.startswith(scheme):
            return "s3://" + path[len(scheme):]
    return path


# ---------------------------------------------------------------------------
# Task functions (run in executors).

def keep_zip_directories():
    """PySpark's worker calls importlib.invalidate_caches() before every task; on Python 3.10+
    every zipimporter of pyspark.zip (one per package imported from it) then re-reads the
    archive's directory in pure Python: ~0.1-0.2 s of CPU per task, a third of the Python
    workers' time on 10^7 rows (py-spy, docs/benchmarks.md). The archives do not change while a
    worker lives, so their importers keep the directories they read (called first thing in
    every task: the worker is reused, so every task after the first one of a worker gains)."""
    import zipimport
    if getattr(zipimport.zipimporter, "invalidate_caches", None) is not None:
        zipimport.zipimporter.invalidate_caches = lambda self: None


# Shuffled records are raw byte strings, not pickled objects (see raw_shuffle): a record
# blob starts with LABEL (side: 0 x, 1 y; split index; piece of that split), which orders a
# join partition's blobs; a summary is LABEL + a pickled tuple.
LABEL = "<III"  # a format, not a struct.Struct: the task functions are pickled with their globals
LABEL_SIZE = 12
SIDES = ("x", "y")


def scan_task(binary, keys, allow_numeric_header, partitions, hash_mode, env=None):
    """A task per split, feeding raw_shuffle: yields partition, LABEL + records for every piece
    of records the binary streams out (up to 8 MiB each, a partition's pieces in file order),
    then `partitions` (the summary partition), LABEL + the pickled summary (rows, end
    position, quote seen, KeyScan bytes, bad-input message or None): the driver reads the
    summary partition alone (the shuffle's map outputs stay for the join)."""
    import pickle

    def scan(item):
        side, index, path, split, plan = item
        code = SIDES.index(side)
        args = ["scan", binary_path(path), "--key", keys[side], "--partitions", partitions]
        if side == "y":
            args.append("--drop-key")
        if allow_numeric_header:
            args.append("--allow-numeric-header")
        if hash_mode is not None:
            args += ["--hash-mode", hash_mode]
        if split is not None:
            # The binary reads its split alone (pread, or ranged GETs on S3), of the bytes planned with.
            args += ["--split", split[0], split[1], "--size", plan["size"], "--body", plan["body"],
                     "--version", plan["version"]]
        summary, piece = b"", 0
        try:
            for tag, buf in BinaryTask(find_binary(binary), args, "scan %s" % path, env).feed().frames(LABEL_SIZE):
                if tag == SUMMARY_TAG:  # the last frame, once the split is scanned
                    summary = bytes(buf[LABEL_SIZE:])
                    continue
                struct.pack_into(LABEL, buf, 0, code, index, piece)
                piece += 1
                yield tag, buf
        except InputError as e:  # a bad row: the driver reports it (from a whole-file scan)
            yield partitions, struct.pack(LABEL, code, index, 0) + pickle.dumps((0, 0, False, b"", str(e)))
            return
        rows, end, quote = struct.unpack_from("<QQB", summary, 0)
        yield partitions, struct.pack(LABEL, code, index, 0) + pickle.dumps(
            (rows, end, bool(quote), summary[17:], None))

    def run(items):
        keep_zip_directories()
        for item in items:
            yield from scan(item)
    return run


def read_summary(payload):
    """(side, index, summary) of a summary payload."""
    import pickle
    side, index, _ = struct.unpack_from(LABEL, payload)
    return SIDES[side], index, pickle.loads(payload[LABEL_SIZE:])


def join_task(binary, x_mode, y_mode, y_values, ranges, x_end, summary_partition, any_order_out=None,
              header=None, env=None):
    """A task per join partition: its x and y blobs (in split order) joined by the binary.
    Ordered: yields range, match blob (for raw_shuffle). Any order: the matches go through an
    OS pipe into a `write` process that writes part-NNNNN; yields its line count."""
    def run(pidx, items):
        keep_zip_directories()
        if pidx == summary_partition:
            return
        def chunks():
            # Each blob as it comes from the shuffle, label included: the binary puts them in
            # file order (x before y, by split and piece), so this worker never holds the
            # partition (it used to sort it here first: a second copy of every partition in
            # Python, and the binary idle until the last blob had arrived).
            for b in items:
                yield struct.pack("<IQ", LABELLED_BLOB, len(b))
                yield b
        args = ["join", "--x-mode", x_mode, "--y-mode", y_mode, "--ranges", ranges, "--x-end", x_end]
        if not y_values:
            args.append("--no-y-values")
        binary_file = find_binary(binary)
        what = "join partition %d" % pidx
        if any_order_out is None:
            for tag, blob in BinaryTask(binary_file, args, what, env).feed(chunks()).frames():
                yield tag, blob
            return
        writer = part_writer(binary_file, any_order_out, pidx, header if pidx == 0 else None, env)
        try:
            BinaryTask(binary_file, args, what, env, stdout=writer.proc.stdin).feed(chunks()).finish()
        except BaseException:
            writer.kill()  # no part from a failed join (its temporary is removed at the end)
            raise
        yield int(writer.feed().text().strip() or 0)  # feed() closes its stdin: the matches are all there
    return run


def part_writer(binary_file, out_dir, index, header, env=None):
    """The `write` process of part-NNNNN (the header in part 0); it prints its line count."""
    args = ["write", binary_path(out_dir.rstrip("/")) + "/part-%05d" % index]
    if header is not None:
        args += ["--header", header]
    return BinaryTask(binary_file, args, "write part %d" % index, env)


def write_task(binary, out_dir, header, env=None):
    """A task per range of x positions: merges the partitions' match blobs (in any order) by x
    position and writes part-NNNNN (the header in part 0)."""
    def run(ridx, items):
        keep_zip_directories()
        writer = part_writer(find_binary(binary), out_dir, ridx, header if ridx == 0 else None, env)
        chunks = []
        for blob in items:
            chunks += [struct.pack("<IQ", 0, len(blob)), blob]
        yield int(writer.feed(chunks).text().strip() or 0)
    return run


def raw_shuffle(rdd, pairs, partitions):
    """rdd.mapPartitionsWithIndex(pairs) shuffled to `partitions` partitions, whose elements are
    the byte strings `pairs` yields: pairs(index, iterator) yields (partition, bytes). This is
    RDD.partitionBy without pickling: partitionBy pickles every bucket of values on the map side
    and unpickles them on the reduce side, i.e. copies each blob of hundreds of MB several times
    through io.BytesIO (about a fifth of the job's CPU on 10^7 rows). Here the blobs go to the
    JVM as they are (PairwiseRDD reads the stream as key, value, key, value...; the key is the
    partition, as PythonPartitioner expects from Python) and come back as they are
    (NoOpSerializer). The result has `to_partition` as its partitioner, so two raw shuffles to
    the same partitions union co-partitioned."""
    from pyspark.rdd import RDD, Partitioner
    from pyspark.serializers import NoOpSerializer, pack_long
    sc = rdd.context

    def keyed(index, it):
        for p, payload in pairs(index, it):
            yield pack_long(p)
            yield payload
    flat = rdd.mapPartitionsWithIndex(keyed, preservesPartitioning=True)
    flat._bypass_serializer = True  # the byte strings are written as they are (NoOpSerializer)
    jvm = sc._jvm
    jpairs = jvm.PairwiseRDD(flat._jrdd.rdd()).asJavaPairRDD()
    jrdd = jvm.PythonRDD.valueOfPair(jpairs.partitionBy(jvm.PythonPartitioner(partitions, id(to_partition))))
    out = RDD(jrdd, sc, NoOpSerializer())
    out.partitioner = Partitioner(partitions, to_partition)
    return out


# ---------------------------------------------------------------------------
# The driver.

def plan_inputs(binary, x_path, y_path, x_key, y_key, allow_numeric_header, env=None):
    import json
    args = ["plan", binary_path(x_path), binary_path(y_path), "--x-key", x_key, "--y-key", y_key]
    if allow_numeric_header:
        args.append("--allow-numeric-header")
    rc, out, err = run_binary(binary, args, env=env)
    if rc != 0:
        raise_for(rc, err, "plan")
    return json.loads(out.decode("utf-8"))


def split_ranges(plan, split_bytes):
    """[(start, end)] byte ranges of the body, or [None] (the whole file, one split)."""
    size, body = plan["size"], plan["body"]
    if not plan["splittable"] or size - body <= split_bytes:
        return [None]
    n = int(math.ceil((size - body) / float(split_bytes)))
    step = int(math.ceil((size - body) / float(n)))
    return [(body + i * step, min(size, body + (i + 1) * step)) for i in range(n)]


def default_partitions(input_bytes, parallelism):
    """Join partitions of at most PARTITION_BYTES of input each, rounded up to a multiple of the
    parallelism: the join and write stages then run in full waves (3 partitions on 2 cores ran
    as a wave of 2 then a wave of 1 with a core idle: a third of the stage's time at 10^7 rows)."""
    parallelism = max(1, parallelism)
    waves = int(math.ceil(input_bytes / float(PARTITION_BYTES * parallelism)))
    return max(1, waves) * parallelism


def combine(binary, scans):
    """The file's KeyMode from its splits' KeyScans in file order: (mode, lossy int spelling, name)."""
    rc, out, err = run_binary(binary, ["combine"], b"".join(frame(0, s) for s in scans))
    if rc != 0:
        raise_for(rc, err, "combine")
    mode, lossy, _values, name = out.decode().strip().split(" ", 3)
    return int(mode), lossy == "1", name


def to_partition(p):
    """The shuffles' partitioner: the key is the partition. One function object, so that
    Spark sees x's and y's shuffles as partitioned alike and their union as co-partitioned
    (partition i of the union = partition i of each side, no further shuffle)."""
    return p


def merge(spark, x_path, y_path, out, ordered=True, single_file=False, x_key="1", y_key="1",
          allow_numeric_header=False, binary=None, split_bytes=SPLIT_BYTES, partitions=None, s3_endpoint=None):
    """The merge; returns a dict of statistics. Raises InputError/UsageError/IOError.
    split_bytes: inputs are read in splits of this size (tests lower it);
    partitions: join partitions (default from the input sizes and the parallelism);
    s3_endpoint: the S3 endpoint the binary uses (default: its environment's)."""
    sc = spark.sparkContext
    x_path, y_path, out = (to_hadoop_uri(sc, p) for p in (x_path, y_path, out))
    require_s3a(sc, (x_path, y_path, out))
    for p in (x_path, y_path):
        _file_size(sc, p)  # a missing input: Hadoop's own words, whatever the filesystem
    driver_bin = find_binary(binary)
    env = {"AWS_ENDPOINT_URL_S3": s3_endpoint} if s3_endpoint else None
    plan = plan_inputs(driver_bin, x_path, y_path, x_key, y_key, allow_numeric_header, env)
    paths = {"x": x_path, "y": y_path}
    keys = {"x": x_key, "y": y_key}
    total = sum(max(plan[s]["size"], 1 << 20) for s in "xy")
    if partitions is None:
        partitions = default_partitions(total, sc.defaultParallelism)
    fs_out = check_output_absent(sc, out, single_file)
    summary_partition = partitions  # one more partition: the scans' summaries

    def shuffled(side, whole=False, hash_mode=None):
        """The side's records shuffled to the join partitions by one scan task per split (the
        whole file as one split if `whole`); lazy: the first job that reads it runs the scans."""
        splits = [None] if whole else split_ranges(plan[side], split_bytes)
        items = [(side, i, paths[side], s, plan[side]) for i, s in enumerate(splits)]
        scan = scan_task(binary, keys, allow_numeric_header, partitions, hash_mode, env)
        return raw_shuffle(sc.parallelize(items, len(items)), lambda _, it: scan(it), partitions + 1)

    def summaries(rdd):
        """{side: [(rows, end, quote, KeyScan, error)] in split order}: a job that runs the scans
        (their shuffle outputs stay for the join) and reads only the summary partition."""
        got = sc.runJob(rdd, lambda it: [read_summary(v) for v in it], [summary_partition])
        return {side: [r for _, _, r in sorted(v for v in got if v[0] == side)] for side in {v[0] for v in got}}

    sides = {side: shuffled(side) for side in "xy"}
    results = summaries(sides["x"].union(sides["y"]))
    # A '"' may hide line breaks: such a file is read again as one split (its splits' rows, even
    # their errors, may be cut wrongly).
    quoted = [side for side in "xy" if len(results[side]) > 1 and any(r[2] for r in results[side])]
    for side in quoted:
        sides[side] = shuffled(side, whole=True)
    if quoted:  # one job for both
        results.update(summaries(sides[quoted[0]].union(sides[quoted[-1]]) if len(quoted) == 2 else sides[quoted[0]]))
    for side in ("y", "x"):  # y first, as the native engine reads them: the same first error
        bad = [r[4] for r in results[side] if r[4]]
        if bad and len(results[side]) > 1:  # the message's line numbers: a read of the whole file
            bad = [r[4] for r in summaries(shuffled(side, whole=True))[side] if r[4]] or bad
        if bad:
            raise InputError(bad[0])
    modes = {}
    for side in ("x", "y"):
        mode, lossy, name = combine(driver_bin, [r[3] for r in results[side]])
        if mode == FLOAT64 and lossy:  # partition by the decided type's hash (join_keys.h PartitionHashUnder)
            sides[side] = shuffled(side, whole=len(results[side]) == 1, hash_mode=mode)
        modes[side] = (mode, name)
    x_end = max(r[1] for r in results["x"])
    y_values = plan["y"]["columns"] > 1
    header = plan["header"]
    target = out + ".parts-" + uuid.uuid4().hex[:8] if single_file else out
    mkdirs(sc, target)

    records = sides["x"].union(sides["y"])  # co-partitioned: the join reads the scans' shuffle outputs
    if ordered:
        ranges = partitions
        matches = raw_shuffle(records, join_task(binary, modes["x"][0], modes["y"][0], y_values, ranges, x_end,
                                                 summary_partition, env=env), ranges)
        lines = matches.mapPartitionsWithIndex(write_task(binary, target, header, env)).collect()
    else:
        lines = records.mapPartitionsWithIndex(
            join_task(binary, modes["x"][0], modes["y"][0], y_values, 1, x_end, summary_partition,
                      any_order_out=target, header=header, env=env)).collect()
    finish_output(sc, target, out, single_file, fs_out)
    return {"x_rows": sum(r[0] for r in results["x"]), "y_rows": sum(r[0] for r in results["y"]),
            "x_splits": len(results["x"]), "y_splits": len(results["y"]),
            "x_mode": modes["x"][1], "y_mode": modes["y"][1], "output_rows": sum(lines)}


def _file_size(sc, path):
    jvm = sc._jvm
    p = jvm.org.apache.hadoop.fs.Path(path)
    try:
        return p.getFileSystem(sc._jsc.hadoopConfiguration()).getFileStatus(p).getLen()
    except Exception as e:  # noqa: BLE001 (py4j wraps java.io.FileNotFoundException)
        raise IOError("%s cannot be read: %s. Check the path (and for S3 the credentials and region)."
                      % (path, java_message(e)))


def check_output_absent(sc, out, single_file):
    """The parts directory must not exist (a file OUT is replaced at the end)."""
    jvm = sc._jvm
    p = jvm.org.apache.hadoop.fs.Path(out)
    fs = p.getFileSystem(sc._jsc.hadoopConfiguration())
    if not single_file and fs.exists(p):
        raise FileExistsError("the output %s already exists. Remove it or choose another -o." % out)
    return fs


def mkdirs(sc, path):
    jvm = sc._jvm
    p = jvm.org.apache.hadoop.fs.Path(path)
    p.getFileSystem(sc._jsc.hadoopConfiguration()).mkdirs(p)


def finish_output(sc, target, out, single_file, fs):
    """Removes what killed writers left (their .cloudmerge-tmp-* temporaries), then
    concatenates the parts into OUT (--single-file) or marks them complete (_SUCCESS)."""
    jvm = sc._jvm
    conf = sc._jsc.hadoopConfiguration()
    d = jvm.org.apache.hadoop.fs.Path(target)
    dfs = d.getFileSystem(conf)
    for st in dfs.listStatus(d):
        if st.getPath().getName().startswith(".cloudmerge-tmp-"):
            dfs.delete(st.getPath(), False)
    if single_file:
        concat_parts(sc, target, out)
    else:
        dfs.create(jvm.org.apache.hadoop.fs.Path(target + "/_SUCCESS"), True).close()


# ---------------------------------------------------------------------------
# Hadoop filesystems, S3A, statistics, the session.

def java_message(e):
    """The Java exception's own first line (class: message) of a Py4J error,
    whose str() starts with the useless "An error occurred while calling o42.x."."""
    java = getattr(e, "java_exception", None)
    if java is not None:
        try:
            return str(java.toString()).split("\n")[0]
        except Exception:  # noqa: BLE001 - the gateway may be gone; fall back to the Python text
            pass
    return str(e).split("\n")[0]



def to_hadoop_uri(sc, path):
    """s3:// works as is on EMR (EMRFS); elsewhere Hadoop knows S3 only as s3a://
    (Hadoop 3 dropped s3n://, so it is read as s3a:// too)."""
    scheme = path.split("://", 1)[0] if "://" in path else ""
    if scheme not in ("s3", "s3n"):
        return path
    jvm = sc._jvm
    try:
        jvm.org.apache.hadoop.fs.FileSystem.getFileSystemClass(scheme, sc._jsc.hadoopConfiguration())
        return path
    except Exception:  # noqa: BLE001 (py4j raises a generic error when no FileSystem serves the scheme)
        return "s3a://" + path[len(scheme) + 3:]


def require_s3a(sc, paths):
    """Fails with what to do when an s3a:// path meets a Spark without S3A
    (instead of Hadoop's "No FileSystem for scheme" deep in a task)."""
    if not any(p.startswith("s3a://") for p in paths):
        return
    jvm = sc._jvm
    try:
        jvm.org.apache.hadoop.fs.FileSystem.getFileSystemClass("s3a", sc._jsc.hadoopConfiguration())
        jvm.java.lang.Class.forName("com.amazonaws.auth.AWSCredentialsProvider")
    except Exception as e:  # noqa: BLE001
        version = str(jvm.org.apache.hadoop.util.VersionInfo.getVersion())
        raise UsageError(
            "S3 paths need Hadoop's S3A filesystem, which this Spark (Hadoop %s) does not have on its classpath "
            "(%s). Put hadoop-aws-%s.jar and the aws-java-sdk-bundle it was built with (1.12.262 for 3.3.4) on it: "
            "cloudmerge merge --engine spark does so from .tools/jars (scripts/install-deps.sh fetches them); with "
            "spark-submit pass --driver-class-path (local master) or --jars." % (version, java_message(e), version))


LOOPBACK_NAMES = ("localhost", "localhost.localdomain")


def _is_loopback(host):
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def single_host_master(master):
    """True when every executor of `master` runs on this machine: a local master, or a standalone
    master reached at a loopback address (a worker registers with the master at that address, so
    it runs here too). YARN, Kubernetes and other hosts: False."""
    if master.startswith("local"):
        return True
    if not master.startswith("spark://"):
        return False
    try:
        hosts = [urlsplit("spark://" + m).hostname or "" for m in master[len("spark://"):].split(",")]
    except ValueError:  # not a URL ("[::1" without its bracket): Spark refuses it; compress meanwhile
        return False
    return all(_is_loopback(h) for h in hosts)


def s3a_settings(environ, endpoint=None):
    """Hadoop S3A settings for an S3-compatible endpoint, from the standard AWS
    environment as the AWS CLI reads it: endpoint (the argument, else
    AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL, unless
    AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true) and region (AWS_REGION,
    AWS_DEFAULT_REGION). {} without an endpoint: S3A's defaults (AWS itself).
    Credentials are not settings: S3A's default provider chain reads
    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN from the
    process environment, so they never appear in argv, Spark's conf or logs.
    An endpoint means path-style addressing (emulators and most S3-compatible
    stores have no per-bucket host names). TLS is turned off only for plain
    http:// to a loopback address (an emulator on this machine); plain http
    elsewhere is refused rather than silently sending data in the clear."""
    if not endpoint and environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() != "true":
        endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        return {}
    u = urlsplit(endpoint)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise UsageError("the S3 endpoint %r is not a URL: give http(s)://host[:port] (--s3-endpoint-url, "
                         "AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL)." % endpoint)
    settings = {"fs.s3a.endpoint": endpoint.rstrip("/"), "fs.s3a.path.style.access": "true"}
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if region:
        settings["fs.s3a.endpoint.region"] = region
    if u.scheme == "http":
        if not _is_loopback(u.hostname):
            raise UsageError("the S3 endpoint %s is plain http to another machine: S3A would send the data "
                             "unencrypted. Use https://, or if that is intended set it explicitly with "
                             "--spark-conf spark.hadoop.fs.s3a.endpoint=%s --spark-conf "
                             "spark.hadoop.fs.s3a.connection.ssl.enabled=false." % (endpoint, endpoint))
        settings["fs.s3a.connection.ssl.enabled"] = "false"
    return settings


def apply_s3a_settings(sc, settings):
    """Sets S3A settings on the session's Hadoop configuration before any S3 access,
    except those given as spark.hadoop.* (spark-submit --conf wins). An
    explicitly configured endpoint (spark.hadoop.fs.s3a.endpoint) keeps all of
    them: the environment's endpoint, region and TLS choice belong together."""
    conf = sc.getConf()
    if conf.contains("spark.hadoop.fs.s3a.endpoint"):
        return
    hadoop = sc._jsc.hadoopConfiguration()
    for k, v in settings.items():
        if not conf.contains("spark.hadoop." + k):
            hadoop.set(k, v)


def concat_parts(sc, parts_dir, out):
    """Concatenates parts_dir/part-* in name order into out (via a temporary
    renamed into place), then removes parts_dir. Works on any Hadoop filesystem."""
    jvm = sc._jvm
    conf = sc._jsc.hadoopConfiguration()
    Path = jvm.org.apache.hadoop.fs.Path
    src_dir, dst = Path(parts_dir), Path(out)
    fs = src_dir.getFileSystem(conf)
    dst_fs = dst.getFileSystem(conf)
    parts = sorted((s.getPath() for s in fs.listStatus(src_dir) if s.getPath().getName().startswith("part-")),
                   key=lambda p: p.getName())
    tmp = Path(out + ".tmp-" + uuid.uuid4().hex[:8])
    stream = dst_fs.create(tmp, True)
    try:
        for p in parts:
            src = fs.open(p)
            jvm.org.apache.hadoop.io.IOUtils.copyBytes(src, stream, conf, False)
            src.close()
    finally:
        stream.close()
    if dst_fs.exists(dst):
        dst_fs.delete(dst, False)
    if not dst_fs.rename(tmp, dst):
        raise IOError("could not rename %s to %s" % (tmp, out))
    fs.delete(src_dir, True)



def write_stats(sc, path, stats):
    """Writes the statistics as one JSON object to path (any Hadoop filesystem:
    the pipeline reads rows for its report from there)."""
    import json
    jvm = sc._jvm
    p = jvm.org.apache.hadoop.fs.Path(to_hadoop_uri(sc, path))
    stream = p.getFileSystem(sc._jsc.hadoopConfiguration()).create(p, True)
    try:
        stream.write(bytearray(json.dumps(stats, sort_keys=True).encode("utf-8")))
    finally:
        stream.close()



def make_session(master=None, app_name="cloudmerge-merge", conf=None, s3a=None):
    """A session with adaptive execution and skew-join splitting on (settings
    given on the command line win). conf: extra settings (tests use it).
    s3a: S3A settings (s3a_settings()) for the session's Hadoop configuration."""
    from pyspark import SparkConf, SparkContext
    from pyspark.sql import SparkSession
    b = SparkSession.builder.appName(app_name)
    if master:
        b = b.master(master)
    if "PYSPARK_GATEWAY_PORT" in os.environ:  # under spark-submit: its JVM holds --master and --conf
        SparkContext._ensure_initialized()  # (otherwise the JVM starts with the builder's settings below)
    given = SparkConf()
    if single_host_master(master or given.get("spark.master", "")) and not given.contains("spark.shuffle.compress") \
            and "spark.shuffle.compress" not in (conf or {}):
        # One machine: the shuffle goes through the local disk's page cache, not a network, and
        # compressing it (lz4) only costs CPU: ~15% of the job's CPU on 10^7 rows in local[2], and
        # 2-3 of its ~5.5 net CPU-s on a 2-worker standalone cluster (benchmarks.md).
        b = b.config("spark.shuffle.compress", "false")
    for k, v in (conf or {}).items():
        b = b.config(k, v)
    spark = b.getOrCreate()
    conf = spark.conf
    for k, v in (("spark.sql.adaptive.enabled", "true"),
                 ("spark.sql.adaptive.skewJoin.enabled", "true"),
                 ("spark.sql.adaptive.coalescePartitions.enabled", "true")):
        if spark.sparkContext.getConf().get(k) is None:
            conf.set(k, v)
    apply_s3a_settings(spark.sparkContext, s3a or {})
    spark.sparkContext.addPyFile(__file__)  # executors import the rules from this file
    return spark


def parse_args(argv):
    p = argparse.ArgumentParser(prog="merge_job.py", description=__doc__.split("\n\n")[0])
    p.add_argument("x")
    p.add_argument("y")
    p.add_argument("-o", "--output", required=True,
                   help="output directory of part files (+ _SUCCESS), or with --single-file one file")
    p.add_argument("--ordered", action="store_true", help="the script's row order (x order, then y order)")
    p.add_argument("--single-file", action="store_true", help="concatenate the parts into one file OUTPUT")
    p.add_argument("-k", "--key", default="1")
    p.add_argument("--x-key")
    p.add_argument("--y-key")
    p.add_argument("--allow-numeric-header", action="store_true")
    p.add_argument("--master", help="Spark master when not given to spark-submit")
    p.add_argument("--stats-file", help="also write the row counts as JSON here (local path or S3 URI)")
    p.add_argument("--s3-endpoint-url", help="S3-compatible endpoint for s3:// and s3a:// paths (default: "
                   "AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, else AWS)")
    p.add_argument("--cloudmerge-bin", help="the cloudmerge binary, at a path every executor can run (default: "
                   "the file `cloudmerge` shipped with --files, else beside this script or on PATH)")
    p.add_argument("--split-mib", type=float, default=SPLIT_BYTES / float(1 << 20),
                   help="bytes per split of an input, in MiB (default 128)")
    p.add_argument("--partitions", type=int, help="join partitions (default: from the input sizes)")
    return p.parse_args(argv)


def main(argv):
    a = parse_args(argv)
    try:
        s3a = s3a_settings(os.environ, a.s3_endpoint_url)
    except UsageError as e:
        print("Error [cloudmerge spark]: %s" % e, file=sys.stderr)
        return 2
    spark = make_session(a.master, s3a=s3a)
    try:
        stats = merge(spark, a.x, a.y, a.output, ordered=a.ordered, single_file=a.single_file,
                      x_key=a.x_key or a.key, y_key=a.y_key or a.key,
                      allow_numeric_header=a.allow_numeric_header, binary=a.cloudmerge_bin,
                      split_bytes=max(1, int(a.split_mib * (1 << 20))), partitions=a.partitions,
                      s3_endpoint=a.s3_endpoint_url)
        print("cloudmerge spark: x %(x_rows)d rows (IDs %(x_mode)s), y %(y_rows)d rows (IDs %(y_mode)s), "
              "%(output_rows)d rows written" % stats, file=sys.stderr)
        if a.stats_file:
            write_stats(spark.sparkContext, a.stats_file, stats)
        return 0
    except InputError as e:
        print("Error [cloudmerge spark]: %s" % e, file=sys.stderr)
        return 3
    except UsageError as e:
        print("Error [cloudmerge spark]: %s" % e, file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - Spark/Hadoop I/O failures surface as Py4J errors
        if isinstance(e, (IOError, FileExistsError)):  # ours: names the path and the cause
            print("Error [cloudmerge spark]: %s" % e, file=sys.stderr)
            return 4
        msg = java_message(e)
        if "AlreadyExists" in msg or "already exists" in msg:
            print("Error [cloudmerge spark]: the output %s already exists. Remove it or choose another -o."
                  % a.output, file=sys.stderr)
            return 4
        if "Path does not exist" in msg or "FileNotFound" in msg or "Input path does not exist" in msg:
            print("Error [cloudmerge spark]: an input cannot be read: %s. Check the path and credentials." % msg,
                  file=sys.stderr)
            return 4
        if "AccessDenied" in msg:  # S3A: java.nio.file.AccessDeniedException with the path and the 403
            print("Error [cloudmerge spark]: S3 refused access: %s. Check the credentials (AWS_ACCESS_KEY_ID, "
                  "AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) and that they may read the inputs and write OUT."
                  % msg, file=sys.stderr)
            return 4
        raise
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
