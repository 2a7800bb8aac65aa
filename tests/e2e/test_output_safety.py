"""An output never destroys an input, and lands where the user meant (issue 15,
findings 4 and 6).

- An output or report that is the same file as an input (same device and inode,
  or the same path once symbolic links are followed; the same S3 bucket and
  key), or as the other output, is refused before any work: exit 2, a message
  naming both colliding paths, every file as it was.
- `-o LINK` writes to the link's target (a temporary beside the target, renamed
  over it): the link stays. `-o` naming a device, a FIFO or an open descriptor
  (/dev/fd/N, a link to /proc/self/fd/N) writes to it directly, never replacing
  it; `-` is standard output.
"""
import os
import pathlib
import stat
import subprocess
import threading

import pytest

from conftest import BIN, run_merge
from s3_server import s3  # noqa: F401  (fixture)

X = "ID\tvalue\n1\ta\n2\tb\n"
Y = "ID\tvalue\n1\tp\n1\tq\n2\tr\n"
MERGED = "ID_x\tvalue_x\tvalue_y\n1\ta\tp\n1\ta\tq\n2\tb\tr\n"


@pytest.fixture
def inputs(tmp_path):
    (tmp_path / "xa.tsv").write_text(X)
    (tmp_path / "ya.tsv").write_text(Y)
    return tmp_path


def snapshot(d):
    """Every entry under d: name -> (kind, bytes or link target)."""
    out = {}
    for p in sorted(pathlib.Path(d).rglob("*")):
        if p.is_symlink():
            out[str(p.relative_to(d))] = ("link", os.readlink(p))
        elif p.is_file():
            out[str(p.relative_to(d))] = ("file", p.read_bytes())
        else:
            out[str(p.relative_to(d))] = ("other", None)
    return out


def assert_refused(proc, *names):
    msg = proc.stderr.decode(errors="replace")
    assert proc.returncode == 2, msg
    assert msg.startswith("Error [cloudmerge "), msg
    assert "same file" in msg, msg
    for name in names:
        assert name in msg, f"{name!r} not in {msg!r}"


# --- Finding 4: an output that is an input ----------------------------------------------------------

@pytest.mark.parametrize("out", ["xa.tsv", "ya.tsv", "./xa.tsv", "sub/../xa.tsv", "file://{d}/xa.tsv"])
def test_output_same_as_input_is_refused(inputs, out):
    (inputs / "sub").mkdir()
    before = snapshot(inputs)
    proc = run_merge("xa.tsv", "ya.tsv", "-o", out.format(d=inputs), check=False, cwd=inputs)
    assert_refused(proc, out.format(d=inputs), "xa.tsv" if "xa" in out else "ya.tsv")
    assert snapshot(inputs) == before


def test_output_same_as_both_inputs_is_refused(inputs):
    (inputs / "a.tsv").write_text(X)
    before = snapshot(inputs)
    proc = run_merge("a.tsv", "a.tsv", "-o", "a.tsv", check=False, cwd=inputs)
    assert_refused(proc, "a.tsv")
    assert snapshot(inputs) == before


def test_output_hard_linked_to_an_input_is_refused(inputs):
    os.link(inputs / "xa.tsv", inputs / "alias.tsv")
    before = snapshot(inputs)
    proc = run_merge("xa.tsv", "ya.tsv", "-o", "alias.tsv", check=False, cwd=inputs)
    assert_refused(proc, "alias.tsv", "xa.tsv")
    assert snapshot(inputs) == before


def test_output_through_a_symlink_to_an_input_is_refused(inputs):
    os.symlink("xa.tsv", inputs / "hop1")
    os.symlink("hop1", inputs / "hop2")
    before = snapshot(inputs)
    proc = run_merge("xa.tsv", "ya.tsv", "-o", "hop2", check=False, cwd=inputs)
    assert_refused(proc, "hop2", "xa.tsv")
    assert snapshot(inputs) == before


def test_report_same_as_input_is_refused(inputs):
    before = snapshot(inputs)
    proc = run_merge("xa.tsv", "ya.tsv", "-o", "out.tsv", "--report", "xa.tsv", check=False, cwd=inputs)
    assert_refused(proc, "--report xa.tsv", "xa.tsv")
    assert snapshot(inputs) == before


@pytest.mark.parametrize("existing", [False, True])
def test_report_same_as_output_is_refused(inputs, existing):
    if existing:
        (inputs / "o.tsv").write_text("precious\n")
    before = snapshot(inputs)
    proc = run_merge("xa.tsv", "ya.tsv", "-o", "o.tsv", "--report", "./o.tsv", check=False, cwd=inputs)
    assert_refused(proc, "--report ./o.tsv", "-o o.tsv")
    assert snapshot(inputs) == before


def test_refused_by_max_output_rows_leaves_existing_output(inputs):
    """A refusal writes nothing: an existing OUT named as the report too is refused, not replaced."""
    (inputs / "o.tsv").write_text("precious\n")
    before = snapshot(inputs)
    proc = run_merge("xa.tsv", "ya.tsv", "-o", "o.tsv", "--report", "o.tsv", "--max-output-rows", "1",
                     check=False, cwd=inputs)
    assert_refused(proc, "o.tsv")
    assert snapshot(inputs) == before


def test_collision_is_found_before_any_input_is_opened(inputs):
    """Before any work: the collision is reported even though Y does not exist (else exit 4)."""
    before = snapshot(inputs)
    proc = run_merge("xa.tsv", "missing.tsv", "-o", "xa.tsv", check=False, cwd=inputs)
    assert_refused(proc, "xa.tsv")
    assert snapshot(inputs) == before


def test_standard_output_appending_to_an_input_is_refused(inputs):
    before = snapshot(inputs)
    with open(inputs / "xa.tsv", "ab") as out:
        proc = subprocess.run([BIN, "merge", "xa.tsv", "ya.tsv"], stdout=out, stderr=subprocess.PIPE, cwd=inputs)
    assert_refused(proc, "standard output", "xa.tsv")
    assert snapshot(inputs) == before


def test_cp_onto_its_source_is_refused(inputs):
    before = snapshot(inputs)
    proc = subprocess.run([BIN, "cp", "xa.tsv", "./xa.tsv"], capture_output=True, cwd=inputs)
    assert_refused(proc, "xa.tsv")
    assert snapshot(inputs) == before


def test_distinct_files_are_accepted(inputs):
    run_merge("xa.tsv", "ya.tsv", "-o", "o.tsv", "--report", "r.json", cwd=inputs)
    assert (inputs / "o.tsv").read_text() == MERGED
    assert (inputs / "r.json").read_text().startswith("{")


def test_s3_output_same_object_as_input_is_refused(s3):
    b = s3.new_bucket()
    s3.client.put_object(Bucket=b, Key="in/x.tsv", Body=X.encode())
    s3.client.put_object(Bucket=b, Key="in/y.tsv", Body=Y.encode())
    for extra in (["-o", f"s3://{b}/in/x.tsv"], ["-o", f"s3://{b}/o.tsv", "--report", f"s3://{b}/in/y.tsv"],
                  ["-o", f"s3://{b}/o.tsv", "--report", f"s3://{b}/o.tsv"]):
        proc = subprocess.run([BIN, "merge", f"s3://{b}/in/x.tsv", f"s3://{b}/in/y.tsv", *extra],
                              capture_output=True, env=s3.env(), timeout=60)
        assert_refused(proc, extra[-1])
    assert s3.client.get_object(Bucket=b, Key="in/x.tsv")["Body"].read() == X.encode()
    assert s3.client.get_object(Bucket=b, Key="in/y.tsv")["Body"].read() == Y.encode()
    assert "Contents" not in s3.client.list_objects_v2(Bucket=b, Prefix="o.tsv")
    assert not s3.client.list_multipart_uploads(Bucket=b).get("Uploads")


# --- Finding 6: links, devices, FIFOs, descriptors ----------------------------------------------------

def test_output_symlink_is_followed_and_kept(inputs):
    """The target is replaced; the link stays. The target lives on another file system
    (/dev/shm): a temporary beside the link could not be renamed over it."""
    shm = pathlib.Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(inputs).st_dev:
        pytest.skip("needs /dev/shm on another file system than the test's temp dir")
    target = shm / f"cloudmerge-out-{os.getpid()}.tsv"
    target.write_text("old result\n")
    try:
        os.symlink(target, inputs / "out.tsv")
        run_merge("xa.tsv", "ya.tsv", "-o", "out.tsv", cwd=inputs)
        assert (inputs / "out.tsv").is_symlink() and os.readlink(inputs / "out.tsv") == str(target)
        assert target.read_text() == MERGED
        assert not [p for p in shm.iterdir() if p.name.startswith(target.name + ".")], "no temporary left"
    finally:
        target.unlink(missing_ok=True)


def test_relative_and_dangling_symlinks_create_their_target(inputs):
    (inputs / "results").mkdir()
    os.symlink("results/new.tsv", inputs / "out.tsv")  # relative to the link's directory, target absent
    os.symlink("../out.tsv", inputs / "results" / "again.tsv")  # a chain through another directory
    run_merge("xa.tsv", "ya.tsv", "-o", "results/again.tsv", "--report", "rep.json", cwd=inputs)
    assert (inputs / "results" / "new.tsv").read_text() == MERGED
    assert (inputs / "out.tsv").is_symlink() and (inputs / "results" / "again.tsv").is_symlink()
    assert sorted(p.name for p in (inputs / "results").iterdir()) == ["again.tsv", "new.tsv"]


def test_symlink_loop_is_a_clear_error(inputs):
    os.symlink("loop2", inputs / "loop1")
    os.symlink("loop1", inputs / "loop2")
    proc = run_merge("xa.tsv", "ya.tsv", "-o", "loop1", check=False, cwd=inputs)
    msg = proc.stderr.decode()
    assert proc.returncode == 4, msg
    assert "loop1" in msg and "symbolic links" in msg, msg
    assert (inputs / "loop1").is_symlink() and (inputs / "loop2").is_symlink()


@pytest.mark.parametrize("how", ["proc-link", "dev-fd"])
def test_descriptor_destination_is_written_not_replaced(inputs, how):
    """`-o` naming standard output (a link to /proc/self/fd/1, or /dev/fd/1) writes to the
    descriptor the shell opened; as root the old code replaced the link with a regular file
    and left the redirect empty."""
    if how == "proc-link":
        os.symlink("/proc/self/fd/1", inputs / "stdout-link")
        dest = "stdout-link"
    else:
        dest = "/dev/fd/1"
    with open(inputs / "redirect.tsv", "wb") as redirect:
        proc = subprocess.run([BIN, "merge", "xa.tsv", "ya.tsv", "-o", dest], stdout=redirect,
                              stderr=subprocess.PIPE, cwd=inputs)
    assert proc.returncode == 0, proc.stderr.decode()
    assert (inputs / "redirect.tsv").read_text() == MERGED
    if how == "proc-link":
        assert (inputs / "stdout-link").is_symlink(), "the link must stay a link"
    assert sorted(p.name for p in inputs.iterdir() if "cloudmerge-tmp" in p.name) == []


def test_descriptor_destination_appends_where_the_shell_left_it(inputs):
    """`>> file`: the result is appended, not written over the file's start."""
    (inputs / "log.tsv").write_text("before\n")
    with open(inputs / "log.tsv", "ab") as redirect:
        proc = subprocess.run([BIN, "merge", "xa.tsv", "ya.tsv", "-o", "/dev/fd/1"], stdout=redirect,
                              stderr=subprocess.PIPE, cwd=inputs)
    assert proc.returncode == 0, proc.stderr.decode()
    assert (inputs / "log.tsv").read_text() == "before\n" + MERGED


def test_fifo_destination_is_written_directly(inputs):
    fifo = inputs / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    run_merge("xa.tsv", "ya.tsv", "-o", "pipe", cwd=inputs)
    reader.join(timeout=30)
    assert got == [MERGED.encode()]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_dash_is_standard_output(inputs):
    proc = run_merge("xa.tsv", "ya.tsv", "-o", "-", cwd=inputs)
    assert proc.stdout.decode() == MERGED
    assert sorted(p.name for p in inputs.iterdir()) == ["xa.tsv", "ya.tsv"]


# --- cp with S3 (issue 20, CLI polish): folders keep the file name; bytes unless asked -------------

def cp(s3, *args, cwd=None):
    proc = subprocess.run([BIN, "cp", *map(str, args)], capture_output=True, env=s3.env(), cwd=cwd, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc


def test_s3_cp_into_a_folder_keeps_the_file_name(s3, tmp_path):
    b = s3.new_bucket()
    s3.client.put_object(Bucket=b, Key="job1/merged.tsv", Body=MERGED.encode())
    (tmp_path / "data").mkdir()
    cp(s3, f"s3://{b}/job1/merged.tsv", "data/", cwd=tmp_path)
    assert (tmp_path / "data" / "merged.tsv").read_text() == MERGED
    (tmp_path / "xa.tsv").write_text(X)
    cp(s3, "xa.tsv", f"s3://{b}/inputs/", cwd=tmp_path)
    assert s3.client.get_object(Bucket=b, Key="inputs/xa.tsv")["Body"].read() == X.encode()


def test_s3_cp_copies_compressed_bytes_unless_asked(s3, tmp_path):
    import gzip
    body = "".join(f"{i}\tv{i}\n" for i in range(5000)).encode()
    stored = gzip.compress(body, compresslevel=1)  # a re-compression (level 6) would differ
    (tmp_path / "x.gz").write_bytes(stored)
    b = s3.new_bucket()
    cp(s3, tmp_path / "x.gz", f"s3://{b}/x.gz")
    assert s3.client.get_object(Bucket=b, Key="x.gz")["Body"].read() == stored
    cp(s3, f"s3://{b}/x.gz", tmp_path / "back.gz")
    assert (tmp_path / "back.gz").read_bytes() == stored
    cp(s3, f"s3://{b}/x.gz", tmp_path / "x.tsv", "--decompress")
    assert (tmp_path / "x.tsv").read_bytes() == body
