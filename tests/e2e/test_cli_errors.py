"""Bad input and bad conditions: a one-paragraph error naming the file, line and
column, a non-zero exit, and never a half-written OUT (golden-style checks)."""
import os
import pathlib
import signal
import subprocess
import time

import pytest

from conftest import BIN, run_merge

OK = "ID\tvalue\n1\tq\n"

BAD = {
    # name: (content of x, expected exit code, fragments the message must contain)
    "extra_field": ("ID\tvalue\n1\ta\n2\tb\tc\n", 3, ["x.tsv, line 3, column 5", "3 field(s)", "header has 2"]),
    "missing_field": ("ID\tvalue\n1\ta\n2\n", 3, ["x.tsv, line 3", "1 field(s)", "add the missing"]),
    "unterminated_quote": ("ID\tvalue\n1\t\"abc\n2\tb\n", 3, ["line 2, column 3", "closing quote"]),
    "invalid_utf8_key": ("ID\tvalue\n1\ta\n\xff\tb\n", 3, ["line 3, column 1", "0xFF", "UTF-8", "iconv"]),
    "nul_byte": ("ID\tvalue\n1\ta\x00b\n", 3, ["line 2, column 4", "NUL"]),
    "empty_file": ("", 3, ["x.tsv is empty", "header"]),
    "missing_header": ("1\t2\n3\t4\n", 3, ["line 1", "no header", "--allow-numeric-header"]),
    "crlf_extra_field": ("ID\tvalue\r\n1\ta\r\n2\tb\tc\r\n", 3, ["line 3, column 5"]),
}


@pytest.mark.parametrize("name", BAD)
def test_bad_input_is_reported_and_nothing_written(name, tmp_path):
    content, code, fragments = BAD[name]
    (tmp_path / "x.tsv").write_bytes(content.encode("utf-8", "surrogateescape") if "\xff" not in content
                                     else content.encode("latin-1"))
    (tmp_path / "y.tsv").write_text(OK)
    out = tmp_path / "out.tsv"
    proc = run_merge(tmp_path / "x.tsv", tmp_path / "y.tsv", "-o", out, check=False, cwd=tmp_path)
    msg = proc.stderr.decode(errors="replace")
    assert proc.returncode == code, msg
    assert msg.startswith("Error [cloudmerge merge]: "), msg
    assert msg.count("\n") == 1, "one paragraph"
    for frag in fragments:
        assert frag in msg, f"{frag!r} not in {msg!r}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.tsv", "y.tsv"], "no output, no temporary"


def test_bad_row_in_y_is_reported_with_y_name(tmp_path):
    (tmp_path / "x.tsv").write_text(OK)
    (tmp_path / "y.tsv").write_text("ID\tvalue\n1\ta\tb\n")
    proc = run_merge("x.tsv", "y.tsv", check=False, cwd=tmp_path)
    assert proc.returncode == 3
    assert "y.tsv, line 2" in proc.stderr.decode()


def test_error_in_late_chunk_reports_true_line(tmp_path):
    rows = "".join(f"{i}\tv{i}\n" for i in range(20000))
    (tmp_path / "x.tsv").write_text("ID\tvalue\n" + rows + "5\tbad\textra\n" + rows)
    (tmp_path / "y.tsv").write_text(OK)
    proc = run_merge("x.tsv", "y.tsv", "--chunk-kib", "4", "--threads", "2", check=False, cwd=tmp_path)
    assert proc.returncode == 3
    assert "x.tsv, line 20002, column 7" in proc.stderr.decode(), proc.stderr.decode()


def test_missing_file(tmp_path):
    (tmp_path / "y.tsv").write_text(OK)
    proc = run_merge("nope.tsv", "y.tsv", check=False, cwd=tmp_path)
    assert proc.returncode == 4
    assert "cannot open input nope.tsv: No such file or directory" in proc.stderr.decode()


def test_unwritable_destination_fails_before_work(tmp_path):
    (tmp_path / "x.tsv").write_text(OK)
    proc = run_merge("x.tsv", "x.tsv", "-o", "no/such/dir/out.tsv", check=False, cwd=tmp_path)
    assert proc.returncode == 4
    assert "cannot create output no/such/dir/out.tsv" in proc.stderr.decode()


def test_full_disk_on_standard_output(tmp_path):
    (tmp_path / "x.tsv").write_text(OK)
    with open("/dev/full", "wb") as full:
        proc = subprocess.run([BIN, "merge", "x.tsv", "x.tsv"], stdout=full, stderr=subprocess.PIPE, cwd=tmp_path)
    assert proc.returncode == 4
    assert "no space left on device" in proc.stderr.decode()


def test_unknown_key_column(tmp_path):
    (tmp_path / "x.tsv").write_text(OK)
    proc = run_merge("x.tsv", "x.tsv", "--key", "gene", check=False, cwd=tmp_path)
    assert proc.returncode == 2
    assert "'gene' is not in the header of x.tsv" in proc.stderr.decode()


def test_interrupted_run_leaves_no_partial_output(tmp_path):
    # Big enough that the run is still writing when SIGTERM arrives.
    rows = "".join(f"{i % 1000}\tvalue-{i}\n" for i in range(400000))
    (tmp_path / "x.tsv").write_text("ID\tvalue\n" + rows)
    (tmp_path / "y.tsv").write_text("ID\tvalue\n" + "".join(f"{i}\ty{i}\n{i}\tz{i}\n" for i in range(1000)))
    proc = subprocess.Popen([BIN, "merge", "x.tsv", "y.tsv", "-o", "out.tsv", "--threads", "1"], cwd=tmp_path,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 10
    while time.time() < deadline and not any(p.name.startswith(".cloudmerge-tmp") for p in tmp_path.iterdir()):
        time.sleep(0.001)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    names = sorted(p.name for p in tmp_path.iterdir())
    # The temporary appears before any input is read, so the signal lands mid-run.
    assert proc.returncode == -signal.SIGTERM, proc.stderr
    assert names == ["x.tsv", "y.tsv"], names


def test_help_and_version():
    h = subprocess.run([BIN, "merge", "--help"], capture_output=True, text=True)
    assert h.returncode == 0
    for opt in ["--output", "--key", "--x-key", "--y-key", "--any-order", "--threads", "Examples:"]:
        assert opt in h.stdout
    v = subprocess.run([BIN, "--version"], capture_output=True, text=True)
    assert v.returncode == 0 and v.stdout.startswith("cloudmerge ")


def test_multi_column_and_named_keys(tmp_path):
    (tmp_path / "x.tsv").write_text("a\tgene\tb\n1\tG1\tq\n2\tG2\tr\n3\tG1\ts\n")
    (tmp_path / "y.tsv").write_text("score\tname\n0.5\tG1\n0.7\tG3\n0.9\tG1\n")
    proc = run_merge("x.tsv", "y.tsv", "--x-key", "gene", "--y-key", "2", cwd=tmp_path)
    assert proc.stdout.decode() == ("a_x\tgene_x\tb_x\tscore_y\n"
                                    "1\tG1\tq\t0.5\n1\tG1\tq\t0.9\n3\tG1\ts\t0.5\n3\tG1\ts\t0.9\n")


def test_values_pass_through_and_requote(tmp_path):
    (tmp_path / "x.tsv").write_text('ID\tvalue\n"7"\t1.50\n8\ta"b\n')
    (tmp_path / "y.tsv").write_text('ID\tvalue\n007\t"x\ty"\n8.0\t1e3\n')
    proc = run_merge("x.tsv", "y.tsv", cwd=tmp_path)
    assert proc.stdout.decode() == 'ID_x\tvalue_x\tvalue_y\n7\t1.50\t"x\ty"\n8\t"a""b"\t1e3\n'


def test_device_destination_is_written_not_replaced(tmp_path):
    (tmp_path / "x.tsv").write_text(OK)
    run_merge("x.tsv", "x.tsv", "-o", "/dev/null", cwd=tmp_path)
    import stat
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode), "/dev/null must stay a device"
    assert not any(p.name.startswith(".cloudmerge-tmp") for p in pathlib.Path("/dev").iterdir())
