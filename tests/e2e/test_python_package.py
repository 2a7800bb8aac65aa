"""The Python package (python/): a wheel built with scikit-build-core, installed
with pip into a fresh virtual environment, used as a scientist would.

  - the wheel is built once per binary and package sources and cached in the
    build directory (python-wheel/<digest>/); it packages the build's own
    binary (-Ccmake.define.CLOUDMERGE_BINARY, see python/CMakeLists.txt), so
    the engine is not compiled a second time;
  - the fresh venv sees Debian's pandas and tqdm (--system-site-packages) and
    nothing of .venv; pip installs the wheel from the file alone (--no-index),
    so its declared dependencies must be met there;
  - everything the package does runs in that venv's python, in subprocesses,
    with no CLOUDMERGE_BIN in the environment: the engine it runs is the one
    inside the wheel;
  - results are checked against the shared oracle: the DataFrame against the
    script's own computation (oracle.script_result), files with oracle.compare.
"""
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
import time
import zipfile

import pandas as pd
import pytest

from conftest import BIN, CASES, ROOT, event_queue
from s3_server import s3  # noqa: F401  (the moto server fixture)

PACKAGE = ROOT / "python"
WHEEL_CACHE = pathlib.Path(BIN).resolve().parent / "python-wheel"
CASE_NAMES = [c.name for c in CASES]


def _digest():
    """What the wheel is made of: the binary and the package's sources."""
    h = hashlib.sha256(pathlib.Path(BIN).read_bytes())
    for p in sorted(PACKAGE.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and "dist" not in p.parts:
            h.update(str(p.relative_to(PACKAGE)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="module")
def wheel():
    where = WHEEL_CACHE / _digest()
    found = sorted(where.glob("cloudmerge-*.whl"))
    if not found:
        shutil.rmtree(WHEEL_CACHE, ignore_errors=True)  # older wheels: another binary or source
        start = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "build", "--wheel", "--no-isolation", str(PACKAGE), "-o", str(where),
             f"-Ccmake.define.CLOUDMERGE_BINARY={pathlib.Path(BIN).resolve()}"],
            capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"wheel build failed (needs build and scikit-build-core in .venv: " \
                                     f"scripts/install-deps.sh):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        print(f"\nwheel built in {time.monotonic() - start:.1f} s")
        found = sorted(where.glob("cloudmerge-*.whl"))
    (whl,) = found
    return whl


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory):
    """A fresh venv on the system's python3 (Debian's pandas and tqdm visible),
    the wheel installed into it by pip, offline."""
    root = tmp_path_factory.mktemp("venv") / "fresh"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", "--without-pip", str(root)],
                   check=True, timeout=120)
    python = root / "bin" / "python"
    # .venv's pip installs into it (--python): the fresh venv needs no pip of its own.
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index",
                           "--disable-pip-version-check", "-q", str(wheel)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return python


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDMERGE_BIN", "PYTHON", "AWS_"))}
    env.update(extra)
    return env


def run_py(python, code, env=None, cwd=None, check=True):
    """Runs `code` in the fresh venv's python; returns the finished process."""
    proc = subprocess.run([str(python), "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=env or clean_env(), cwd=cwd or "/", timeout=300)
    if check:
        assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def script_frame(oracle, case):
    """analysis.py's result, computed by the script's own lines, with a fresh index."""
    x, y = oracle.read(case / "x.tsv"), oracle.read(case / "y.tsv")
    return oracle.script_result(x, y).reset_index(drop=True)


def cell_text(v):
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)


def assert_frames_agree(oracle, got, want, where):
    assert list(got.columns) == list(want.columns), where
    assert isinstance(got.index, pd.RangeIndex) and len(got) == len(want), (where, len(got), len(want))
    for i, (g, w) in enumerate(zip(got.itertuples(index=False), want.itertuples(index=False))):
        for col, a, b in zip(got.columns, g, w):
            assert oracle.cells_agree(cell_text(a), cell_text(b)), f"{where}: row {i} {col}: got {a!r}, script {b!r}"


# --------------------------------------------------------------------------- the wheel

def test_wheel_carries_the_engine(wheel, venv):
    with zipfile.ZipFile(wheel) as z:
        info = z.getinfo("cloudmerge/_bin/cloudmerge")
        assert (info.external_attr >> 16) & 0o111, "the engine must be executable in the wheel"
        assert z.read("cloudmerge/_bin/cloudmerge") == pathlib.Path(BIN).read_bytes()
    assert wheel.name.startswith("cloudmerge-") and wheel.name.endswith("-py3-none-linux_x86_64.whl")
    proc = run_py(venv, """
        import json, subprocess, cloudmerge, cloudmerge._engine as e
        print(json.dumps({"module": cloudmerge.__file__, "binary": e.binary(), "version": cloudmerge.__version__,
                          "engine": subprocess.run([e.binary(), "--version"], capture_output=True, text=True).stdout}))
    """)
    got = json.loads(proc.stdout)
    venv_root = str(venv.parent.parent)
    assert got["module"].startswith(venv_root) and got["binary"].startswith(venv_root), got  # installed, not the tree
    assert got["engine"].strip() == f"cloudmerge {got['version']}"


# --------------------------------------------------------------------------- merge() -> DataFrame

@pytest.fixture(scope="module")
def frames(venv, tmp_path_factory):
    """merge(x, y) on every conformance case, in one process of the fresh venv;
    each DataFrame pickled (the same Debian pandas reads it back here)."""
    out = tmp_path_factory.mktemp("frames")
    run_py(venv, f"""
        import pathlib, cloudmerge
        out = pathlib.Path({str(out)!r})
        for case in {[str(c) for c in CASES]!r}:
            case = pathlib.Path(case)
            cloudmerge.merge(case / "x.tsv", case / "y.tsv").to_pickle(out / (case.name + ".pkl"))
    """)
    return out


@pytest.mark.parametrize("case", CASE_NAMES)
def test_dataframe_is_the_scripts_result(frames, oracle, case):
    got = pd.read_pickle(frames / f"{case}.pkl")
    want = script_frame(oracle, next(c for c in CASES if c.name == case))
    assert_frames_agree(oracle, got, want, case)
    # IDs keep x's type: text IDs are the script's very strings ("007" stays "007", "A " keeps its space).
    if len(want) and all(isinstance(v, str) for v in want["ID_x"]):
        assert list(got["ID_x"]) == list(want["ID_x"]), case


def test_text_ids_that_look_like_numbers_stay_text(venv, oracle, tmp_path):
    """x's IDs are text ("abc" among them), the matched ones look like numbers:
    pandas reading the merged rows alone would make them 7 and 10; the script holds "007" and "010"."""
    (tmp_path / "x.tsv").write_text("ID\tvalue\n007\t1\nabc\t2\n010\t3\n")
    (tmp_path / "y.tsv").write_text("ID\tvalue\n010\tp\n007\tq\nxyz\tr\n")
    run_py(venv, f"""
        import cloudmerge
        cloudmerge.merge("x.tsv", "y.tsv").to_pickle("frame.pkl")
    """, cwd=tmp_path)
    got = pd.read_pickle(tmp_path / "frame.pkl")
    want = script_frame(oracle, tmp_path)
    assert list(got["ID_x"]) == list(want["ID_x"]) == ["007", "010"]
    assert_frames_agree(oracle, got, want, "text ids")


def test_readme_script_runs(venv, tmp_path):
    """README.md's "From Python": analysis.py rewritten with cloudmerge, run as the scientist runs it."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## From Python"):]
    script = section[section.index("```python\n") + len("```python\n"):section.index("```\n", section.index("```python"))]
    (tmp_path / "analysis.py").write_text(script)
    case = next(c for c in CASES if c.name == "basic_int")
    proc = subprocess.run([str(venv), "analysis.py", str(case / "x.tsv"), str(case / "y.tsv")], capture_output=True,
                          text=True, cwd=tmp_path, env=clean_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = [i for i, line in enumerate(lines) if line.split() == ["ID_x", "value_x", "value_y"]]
    assert len(header) == 1 and len(lines) - header[0] - 1 == 2, proc.stdout  # the script's 2 rows


# --------------------------------------------------------------------------- merge(out=...)

OUT_CASES = ["basic_int", "string_ids", "many_to_many", "quoted_fields", "missing_values_pass_through", "no_matches"]


def test_out_writes_the_result_and_returns_the_report(venv, oracle, tmp_path):
    cases = [c for c in CASES if c.name in OUT_CASES]
    assert len(cases) == len(OUT_CASES)
    proc = run_py(venv, f"""
        import json, pathlib, cloudmerge
        reports = {{}}
        for case in {[str(c) for c in cases]!r}:
            case = pathlib.Path(case)
            out = pathlib.Path({str(tmp_path)!r}) / (case.name + ".tsv")
            reports[case.name] = cloudmerge.merge(str(case / "x.tsv"), case / "y.tsv", out=out)
        print(json.dumps(reports))
    """)
    reports = json.loads(proc.stdout)
    for case in cases:
        out = tmp_path / f"{case.name}.tsv"
        assert oracle_compare(oracle, case / "expected.tsv", out), case.name
        rep = reports[case.name]
        expected_rows = sum(1 for _ in open(case / "expected.tsv")) - 1
        assert rep["output"] == {"path": str(out), "rows": expected_rows, "written": True, "max_rows": 0}
        assert rep["x"]["path"] == str(case / "x.tsv") and "seconds_total" in rep


def oracle_compare(oracle, expected, actual):
    return oracle.compare([str(expected), str(actual)]) == 0


def test_out_to_s3(venv, oracle, s3, tmp_path):  # noqa: F811
    bucket = s3.new_bucket()
    case = next(c for c in CASES if c.name == "many_to_many")
    proc = run_py(venv, f"""
        import json, cloudmerge
        print(json.dumps(cloudmerge.merge({str(case / 'x.tsv')!r}, {str(case / 'y.tsv')!r},
                                          out="s3://{bucket}/results/merged.tsv", threads=2)))
    """, env=clean_env(**{k: v for k, v in s3.env().items() if k.startswith("AWS_") or k == "HOME"}))
    assert json.loads(proc.stdout)["output"]["path"] == f"s3://{bucket}/results/merged.tsv"
    got = tmp_path / "merged.tsv"
    got.write_bytes(s3.client.get_object(Bucket=bucket, Key="results/merged.tsv")["Body"].read())
    assert oracle_compare(oracle, case / "expected.tsv", got)


# --------------------------------------------------------------------------- errors

ERRORS_CODE = """
    import json, cloudmerge
    def attempt(*args, **kw):
        try:
            cloudmerge.merge(*args, **kw)
        except cloudmerge.CloudmergeError as e:
            return {"class": type(e).__name__, "message": e.message, "str": str(e), "file": e.file,
                    "line": e.line, "column": e.column, "exit_code": e.exit_code,
                    "value_error": isinstance(e, ValueError)}
        return None
"""


def test_errors_carry_the_engines_message_file_line_and_exit_code(venv, tmp_path):
    bad = tmp_path / "x.tsv"
    bad.write_text("ID\tvalue\n1\ta\n2\tb\tc\n")
    y = tmp_path / "y.tsv"
    y.write_text("ID\tvalue\n1\tz\n")
    out = tmp_path / "merged.tsv"
    proc = run_py(venv, ERRORS_CODE + f"""
    print(json.dumps({{
        "input": attempt({str(bad)!r}, {str(y)!r}, out={str(out)!r}),
        "frame": attempt({str(bad)!r}, {str(y)!r}),
        "missing": attempt({str(tmp_path / 'nope.tsv')!r}, {str(y)!r}),
        "option": attempt({str(y)!r}, {str(y)!r}, memory_limit="lots"),
        "unknown": attempt({str(y)!r}, {str(y)!r}, no_such_option=3),
    }}))
    """)
    got = json.loads(proc.stdout)
    # The engine's own paragraph, as the binary prints it.
    direct = subprocess.run([BIN, "merge", str(bad), str(y), "-o", str(tmp_path / "direct.tsv")],
                            capture_output=True, text=True)
    assert direct.returncode == 3
    engine_message = direct.stderr.strip().removeprefix("Error [cloudmerge merge]: ")
    for name in ("input", "frame"):
        e = got[name]
        assert e["class"] == "InputError" and e["exit_code"] == 3 and e["value_error"], e
        assert (e["file"], e["line"], e["column"]) == (str(bad), 3, 5), e
        assert e["message"] == e["str"] == engine_message, e
        assert "has 3 field(s) but the header has 2" in e["message"]
    assert not out.exists() and not list(tmp_path.glob("merged.tsv*")), "no partial result"
    e = got["missing"]
    assert e["class"] == "StorageError" and e["exit_code"] == 4, e
    assert e["file"] == str(tmp_path / "nope.tsv") and e["line"] is None
    e = got["option"]
    assert e["class"] == "OptionsError" and e["exit_code"] == 2 and "--memory-limit" in e["message"], e
    e = got["unknown"]
    assert e["class"] == "OptionsError" and "--no-such-option" in e["message"], e


def test_options_the_package_sets_itself_are_refused(venv):
    proc = run_py(venv, """
        import cloudmerge
        try:
            cloudmerge.merge("x", "y", report="r.json")
        except TypeError as e:
            print(e)
    """)
    assert "report" in proc.stdout and "returns the report" in proc.stdout


# --------------------------------------------------------------------------- progress

def test_progress_bars_one_per_phase(venv, tmp_path):
    case = next(c for c in CASES if c.name == "random_1_000")
    code = f"""
        import cloudmerge
        cloudmerge.merge({str(case / 'x.tsv')!r}, {str(case / 'y.tsv')!r}, progress=PROGRESS)
    """
    shown = run_py(venv, code.replace("PROGRESS", "True")).stderr
    for phase in ("scan y", "build", "probe"):
        assert any(line.startswith(f"{phase}: 100%|") for line in shown.replace("\r", "\n").splitlines()), shown
    assert '{"progress"' not in shown
    # Not a terminal, not Jupyter: no bar by default, and nothing else either.
    assert run_py(venv, code.replace("PROGRESS", "None")).stderr == ""


# --------------------------------------------------------------------------- submit() to the pipeline

@pytest.fixture
def local_pipeline(tmp_path):
    """`cloudmerge serve --local DIR` watching DIR/input (the repository's binary: the worker side)."""
    root = tmp_path / "pipeline"
    (root / "input").mkdir(parents=True)
    proc = subprocess.Popen([BIN, "serve", "--local", str(root), "--poll-ms", "100"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield root
    proc.terminate()
    proc.wait(timeout=30)


def test_submit_waits_for_the_pipelines_result(venv, oracle, local_pipeline):
    case = next(c for c in CASES if c.name == "leading_zeros_numeric")
    proc = run_py(venv, f"""
        import json, cloudmerge
        job = cloudmerge.submit({str(case / 'x.tsv')!r}, {str(case / 'y.tsv')!r},
                                input={str(local_pipeline / 'input')!r}, output={str(local_pipeline / 'output')!r},
                                timeout=60, poll_interval=0.1)
        job.dataframe().to_pickle({str(local_pipeline / 'frame.pkl')!r})
        print(json.dumps({{"name": job.name, "result": job.result, "rows": job.report["rows"]}}))
    """)
    got = json.loads(proc.stdout)
    assert got["name"].startswith("x-")  # x's name, a timestamp, a random suffix
    assert got["result"] == str(local_pipeline / "output" / got["name"] / "merged.tsv")
    assert oracle_compare(oracle, case / "expected.tsv", got["result"])
    assert_frames_agree(oracle, pd.read_pickle(local_pipeline / "frame.pkl"), script_frame(oracle, case), case.name)
    assert not list((local_pipeline / "input" / got["name"]).glob(".*partial")), "temporaries renamed away"


def test_submit_raises_the_failed_jobs_error(venv, local_pipeline, tmp_path):
    bad = tmp_path / "x.tsv"
    bad.write_text("ID\tvalue\n1\ta\n2\tb\tc\n")
    y = tmp_path / "y.tsv"
    y.write_text("ID\tvalue\n1\tz\n")
    proc = run_py(venv, f"""
        import json, cloudmerge
        try:
            cloudmerge.submit({str(bad)!r}, {str(y)!r}, job="exp1", input={str(local_pipeline / 'input')!r},
                              output={str(local_pipeline / 'output')!r}, timeout=60, poll_interval=0.1)
        except cloudmerge.JobFailed as e:
            print(json.dumps({{"message": e.message, "line": e.line, "column": e.column, "job": e.job,
                               "file": e.file, "logs": e.logs, "run": e.run}}))
    """)
    e = json.loads(proc.stdout)
    assert e["job"] == "exp1" and e["line"] == 3 and e["column"] == 5, e
    assert e["file"] == str(local_pipeline / "input" / "exp1" / "x_list.txt"), e
    assert "has 3 field(s)" in e["message"] and e["logs"] and e["run"], e


def test_submit_without_a_worker_times_out_saying_where_to_look(venv, tmp_path):
    case = CASES[0]
    proc = run_py(venv, f"""
        import cloudmerge
        try:
            cloudmerge.submit({str(case / 'x.tsv')!r}, {str(case / 'y.tsv')!r}, job="j",
                              input={str(tmp_path / 'in')!r}, output={str(tmp_path / 'out')!r},
                              timeout=0.5, poll_interval=0.1, key="ID")
        except TimeoutError as e:
            print(e)
    """)
    assert "no result after" in proc.stdout and "serve --local" in proc.stdout, proc.stdout
    assert json.loads((tmp_path / "in" / "j" / "job.json").read_text()) == {"key": "ID"}
    assert (tmp_path / "in" / "j" / "x_list.txt").read_bytes() == (case / "x.tsv").read_bytes()


def test_submit_to_s3_through_the_queue_pipeline(venv, oracle, s3, tmp_path):  # noqa: F811
    """submit() to s3:// (boto3 uploads and lists) with `serve --queue-url` as the worker: the input
    bucket notifies an SQS queue, as the deployed stack's does. boto3 is not in the fresh venv
    (it is the optional extra cloudmerge[s3]): the installed package runs on .venv's python,
    which has it, through PYTHONPATH = the fresh venv's site-packages."""
    import boto3

    sqs = boto3.client("sqs", endpoint_url=s3.endpoint_url, region_name=s3.region,
                       aws_access_key_id=s3.access_key_id, aws_secret_access_key=s3.secret_access_key)
    inb, outb = s3.new_bucket("in"), s3.new_bucket("out")
    queue = event_queue(s3, sqs, inb)
    env = s3.env()
    worker = subprocess.Popen([BIN, "serve", "--queue-url", queue, "--input", f"s3://{inb}/", "--output",
                               f"s3://{outb}/", "--wait-seconds", "1"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        case = next(c for c in CASES if c.name == "quoted_fields")
        (site,) = (venv.parent.parent / "lib").glob("python3*/site-packages")
        aws = {k: v for k, v in env.items() if k.startswith("AWS_") or k == "HOME"}
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
            import json, cloudmerge
            assert cloudmerge.__file__.startswith({str(site)!r}), cloudmerge.__file__
            job = cloudmerge.submit({str(case / 'x.tsv')!r}, {str(case / 'y.tsv')!r}, input="s3://{inb}/",
                                    output="s3://{outb}/", timeout=120, poll_interval=0.2)
            job.dataframe().to_pickle({str(tmp_path / 'frame.pkl')!r})
            print(json.dumps({{"name": job.name, "result": job.result, "rows": job.report["rows"]}}))
        """)], capture_output=True, text=True, env=clean_env(PYTHONPATH=str(site), **aws), cwd="/", timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    got = json.loads(proc.stdout)
    assert got["result"] == f"s3://{outb}/{got['name']}/merged.tsv"
    result = tmp_path / "merged.tsv"
    result.write_bytes(s3.client.get_object(Bucket=outb, Key=f"{got['name']}/merged.tsv")["Body"].read())
    assert oracle_compare(oracle, case / "expected.tsv", result)
    assert_frames_agree(oracle, pd.read_pickle(tmp_path / "frame.pkl"), script_frame(oracle, case), case.name)
