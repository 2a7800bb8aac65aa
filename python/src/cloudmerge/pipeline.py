"""cloudmerge.submit(): a job for the pipeline, from Python.

The pipeline (`cloudmerge serve --local DIR`, `serve --queue-url ...`, or the
Lambda function of deploy/template.yaml) runs a job when its folder in the
input location holds x_list.txt and y_list.txt (and optionally job.json),
and ends each run with `<job>/_state/<run>/done.json` (after `<job>/merged.tsv`
and `<job>/report.json`) or `failed.json` in the output location
(job_runner.h). submit() uploads the files (job.json first, so the run sees
it) and polls the output location for a new end marker.

Owns: job naming, the upload order, waiting. Threading: a Job is used by
one thread.
"""
import datetime
import json
import os
import pathlib
import secrets
import tempfile
import time

from . import errors
from ._progress import progress_wanted
from ._stores import open_store
from .merge import read_result

_COMPRESSION_SUFFIXES = (".gz", ".zst")


def _input_name(path, name):
    """x_list.txt, or x_list.txt.gz for a gzip input (the pipeline decompresses by suffix)."""
    suffix = next((s for s in _COMPRESSION_SUFFIXES if os.fspath(path).endswith(s)), "")
    return name + suffix


def _new_job_name(x):
    stem = pathlib.Path(os.fspath(x)).name.split(".")[0] or "job"
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{stem}-{stamp}-{secrets.token_hex(3)}"


class Job:
    """A submitted job. name; input_uri / output_uri (its folders); after
    wait(): result (URI of the merged TSV), report (report.json as a dict)."""

    def __init__(self, name, in_store, out_store, spec, known_markers):
        self.name = name
        self._in, self._out = in_store, out_store
        self.spec = spec
        self._known = set(known_markers)
        self.input_uri = in_store.uri(name + "/")
        self.output_uri = out_store.uri(name + "/")
        self.result = None
        self.report = None

    def _new_markers(self):
        keys = self._out.list(self.name + "/_state/")
        return [k for k in keys if k.endswith(("/done.json", "/failed.json")) and k not in self._known]

    def poll(self):
        """True once this job's run has ended; raises JobFailed for a failed run."""
        for key in self._new_markers():
            if key.endswith("/failed.json"):
                failure = json.loads(self._out.get(key))
                message = failure.get("error", "the job failed")
                file, line, column = errors.position(message)
                raise errors.JobFailed(message, job=self.name, run=failure.get("run"), logs=failure.get("logs"),
                                       file=file, line=line, column=column)
            self.report = json.loads(self._out.get(self.name + "/report.json"))
            self.result = self._out.uri(f"{self.name}/{self.spec.get('output', 'merged.tsv')}")
            return True
        return False

    def _state(self):
        keys = self._out.list(self.name + "/_state/")
        if any("/claim-" in k for k in keys):
            return "running"
        return "waiting for a worker"

    def wait(self, timeout=3600, poll_interval=2.0, progress=None):
        """Polls the output location until the run ends. Returns self (result,
        report set); raises JobFailed (the engine's message, file, line) or
        TimeoutError."""
        bar = None
        if progress_wanted(progress):
            from tqdm.auto import tqdm

            bar = tqdm(desc=f"job {self.name}", total=None, bar_format="{desc}: {postfix} [{elapsed}]")
        start = time.monotonic()
        try:
            while True:
                if self.poll():
                    if bar is not None:
                        bar.set_postfix_str("done", refresh=True)
                    return self
                if time.monotonic() - start > timeout:
                    raise TimeoutError(
                        f"job {self.name}: no result after {timeout:.0f} s in {self.output_uri} (inputs in "
                        f"{self.input_uri}). Check that a pipeline worker watches that input location (locally: "
                        f"cloudmerge serve --local DIR; on AWS: the stack's bucket notification) and read its log; "
                        f"job.wait() waits again.")
                if bar is not None:
                    bar.set_postfix_str(self._state(), refresh=True)
                time.sleep(poll_interval)
        finally:
            if bar is not None:
                bar.close()

    def dataframe(self):
        """The result as the DataFrame cloudmerge.merge() returns (after wait())."""
        if self.result is None:
            raise RuntimeError(f"job {self.name} has no result yet: call wait() first")
        key = f"{self.name}/{self.spec.get('output', 'merged.tsv')}"
        engine_report = (self.report or {}).get("engine_stats", {})
        with tempfile.TemporaryDirectory(prefix="cloudmerge-") as tmp:
            path = os.path.join(tmp, "merged.tsv")
            with open(path, "wb") as f:
                f.write(self._out.get(key))
            return read_result(path, engine_report, self.spec)

    def __repr__(self):
        state = "done" if self.result else "submitted"
        return f"<cloudmerge.Job {self.name} {state}: {self.output_uri}>"


def submit(x, y, *, input, output, job=None, wait=True, timeout=3600, poll_interval=2.0, progress=None,
           x_name="x_list.txt", y_name="y_list.txt", result_name=None, **spec):
    """Send a merge to the pipeline: upload x and y (local files; .gz/.zst keep
    their suffix) into a job folder of the input location and, with wait=True
    (default), wait for its result.

    input, output: the pipeline's locations: local folders (those of
        `cloudmerge serve --local DIR`: DIR/input and DIR/output) or s3://
        bucket/prefix/ URIs (the deployed stack's buckets; needs boto3).
    job: the job's folder name (default: x's name, a timestamp and a random
        suffix, so every submit is a new job).
    result_name: the result's file name in the job's output folder (default merged.tsv).
    spec: other job.json fields: key, x_key, y_key, any_order, recipients
        (emails), engine.
    x_name, y_name: the input names the pipeline watches for (serve --x-name).
    Returns a Job; job.result, job.report, job.dataframe() once it ended.
    Raises cloudmerge.JobFailed (message, file, line, logs) for a failed run.
    """
    in_store, out_store = open_store(input), open_store(output)
    name = (job or _new_job_name(x)).strip("/")
    if result_name:
        spec["output"] = result_name
    # End markers of earlier runs of this job (a reused name): not ours.
    known = [k for k in out_store.list(name + "/_state/") if k.endswith(("/done.json", "/failed.json"))]
    if spec:
        in_store.put_bytes(f"{name}/job.json", json.dumps(spec).encode())  # first: the run includes it
    in_store.put_file(f"{name}/{_input_name(x, x_name)}", os.fspath(x))
    in_store.put_file(f"{name}/{_input_name(y, y_name)}", os.fspath(y))
    handle = Job(name, in_store, out_store, spec, known)
    if wait:
        handle.wait(timeout=timeout, poll_interval=poll_interval, progress=progress)
    return handle
