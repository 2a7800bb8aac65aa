"""Bad input and bad conditions: a one-paragraph error naming the file, line and
column, a non-zero exit, and never a half-written OUT (golden-style checks)."""
import os
import pathlib
import re
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


# --- Option errors (issue 15, finding 10): exit 2, one line naming what is wrong ---------------------

OPTION_ERRORS = {
    # name: (argv after the binary, fragments the message must contain)
    "unknown_option_after_inputs": (["merge", "x.tsv", "x.tsv", "--bogus"], ["unknown option --bogus"]),
    "unknown_option_before_y": (["merge", "x.tsv", "--bogus"], ["unknown option --bogus"]),
    "unknown_option_with_value": (["merge", "x.tsv", "x.tsv", "--bogus=3"], ["unknown option --bogus"]),
    "unknown_top_level_option": (["--bogus", "merge", "x.tsv", "x.tsv"], ["unknown option --bogus"]),
    "unknown_cp_option": (["cp", "x.tsv", "y.tsv", "--bogus"], ["[cloudmerge cp]", "unknown option --bogus"]),
    "extra_argument": (["merge", "x.tsv", "x.tsv", "z.tsv"], ["unexpected argument z.tsv"]),
    "missing_y": (["merge", "x.tsv"], ["Y is required"]),
    "no_subcommand": ([], ["subcommand is required"]),
    "threads_out_of_range": (["merge", "x.tsv", "x.tsv", "--threads", "0"], ["--threads"]),
    "bad_progress_style": (["merge", "x.tsv", "x.tsv", "--progress", "fancy"], ["--progress", "fancy"]),
    "max_output_rows_zero": (["merge", "x.tsv", "x.tsv", "--max-output-rows", "0"], ["--max-output-rows", '"0"']),
    "max_output_rows_negative": (["merge", "x.tsv", "x.tsv", "--max-output-rows", "-1"],
                                 ["--max-output-rows", '"-1"']),
    "max_output_rows_overflow": (["merge", "x.tsv", "x.tsv", "--max-output-rows", "18446744073709551616"],
                                 ["--max-output-rows", "18446744073709551615"]),
    "max_output_rows_text": (["merge", "x.tsv", "x.tsv", "--max-output-rows", "1e6"], ["--max-output-rows"]),
    "memory_limit_empty": (["merge", "x.tsv", "x.tsv", "--memory-limit", ""], ["--memory-limit", "empty"]),
    "spill_compression_unknown": (["merge", "x.tsv", "x.tsv", "--spill-compression", "lz4"],
                                  ["--spill-compression", "lz4"]),
    "compression_level_zero": (["merge", "x.tsv", "x.tsv", "-o", "o.tsv.zst", "--compression-level", "0"],
                               ["--compression-level"]),
    "compression_level_plain_output": (["merge", "x.tsv", "x.tsv", "-o", "o.tsv", "--compression-level", "3"],
                                       ["--compression-level 3", "o.tsv is not compressed", ".zst or .gz"]),
    "compression_level_standard_output": (["merge", "x.tsv", "x.tsv", "--compression-level", "3"],
                                          ["(standard output) is not compressed"]),
    "compression_level_gzip_too_high": (["merge", "x.tsv", "x.tsv", "-o", "o.tsv.gz", "--compression-level", "12"],
                                        ["--compression-level 12", "gzip's levels are 1 to 9"]),
    "compression_level_spark": (["merge", "x.tsv", "x.tsv", "-o", "o.tsv.zst", "--compression-level", "3",
                                 "--engine", "spark"], ["--compression-level", "Spark engine"]),
}


@pytest.mark.parametrize("name", OPTION_ERRORS)
def test_option_errors_exit_2_with_one_line(name, tmp_path):
    argv, fragments = OPTION_ERRORS[name]
    (tmp_path / "x.tsv").write_text(OK)
    proc = subprocess.run([BIN, *argv], capture_output=True, cwd=tmp_path)
    msg = proc.stderr.decode()
    assert proc.returncode == 2, msg
    assert msg.startswith("Error [cloudmerge"), msg
    assert msg.count("\n") == 1, msg
    for frag in fragments:
        assert frag in msg, f"{frag!r} not in {msg!r}"
    assert "->" not in msg, "no CLI11 internals in messages"
    assert proc.stdout == b"", "nothing merged"


@pytest.mark.parametrize("dest", ["out/", "out", "link"])
def test_output_directory_is_a_usage_error_before_any_work(dest, tmp_path):
    (tmp_path / "x.tsv").write_text(OK)
    (tmp_path / "out").mkdir()
    (tmp_path / "link").symlink_to("out")
    proc = run_merge("x.tsv", "missing-y.tsv", "-o", dest, check=False, cwd=tmp_path)
    msg = proc.stderr.decode()
    assert proc.returncode == 2, msg
    assert f"output {dest} is a directory" in msg and "name a file" in msg, msg
    assert f"{dest.rstrip('/')}/merged.tsv" in msg, msg
    assert "Not a directory" not in msg
    assert list((tmp_path / "out").iterdir()) == [], "no temporary inside the directory"


def test_report_write_error_names_report_not_o(tmp_path):
    (tmp_path / "x.tsv").write_text(OK)
    proc = run_merge("x.tsv", "x.tsv", "-o", "out.tsv", "--report", "/dev/full", check=False, cwd=tmp_path)
    msg = proc.stderr.decode()
    assert proc.returncode == 4, msg
    assert "--report /dev/full" in msg and "no space left on device" in msg, msg
    assert " -o" not in msg, f"a report's error must not suggest -o: {msg!r}"
    assert "out.tsv is complete" in msg, msg


# --- Help (issue 20, CLI polish) ---------------------------------------------------------------------

def test_top_level_help_lists_subcommands_one_line_each():
    h = subprocess.run([BIN, "--help"], capture_output=True, text=True)
    assert h.returncode == 0
    listing = h.stdout.split("Subcommands:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [line.split()[0] for line in listing] == ["merge", "cp", "serve", "lambda"], listing
    assert len(h.stdout.splitlines()) < 20, h.stdout


@pytest.mark.parametrize("sub", ["merge", "cp", "serve"])
def test_enum_options_show_their_names_only(sub):
    h = subprocess.run([BIN, sub, "--help"], capture_output=True, text=True)
    assert h.returncode == 0
    assert "value in" not in h.stdout and not re.search(r"\{[^}\n]*->", h.stdout) and ":{" not in h.stdout, h.stdout
    if sub == "merge":
        for shown in ["--spill-compression auto|none|zstd", "--progress auto|bar|lines|none",
                      "--engine native|spark|emr|emr-serverless"]:
            assert shown in h.stdout, shown


def test_serve_help_speaks_plainly():
    h = subprocess.run([BIN, "serve", "--help"], capture_output=True, text=True)
    assert "embedded" not in h.stdout
    assert "no AWS account needed" in h.stdout


def test_spill_compression_names_still_work(tmp_path):
    (tmp_path / "x.tsv").write_text(OK)
    for name in ["auto", "none", "zstd", "ZSTD"]:
        proc = run_merge("x.tsv", "x.tsv", "--spill-compression", name, "--memory-limit", "1KiB",
                         "--temp-dir", tmp_path, cwd=tmp_path)
        assert proc.stdout.decode() == "ID_x\tvalue_x\tvalue_y\n1\tq\tq\n"


# --- cp (issue 20, CLI polish): folders keep the file name; bytes unless asked ------------------------

@pytest.mark.parametrize("dest", ["data/", "data", "file://{d}/data/"])
def test_cp_into_a_folder_keeps_the_file_name(dest, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "merged.tsv").write_text(OK)
    proc = subprocess.run([BIN, "cp", "merged.tsv", dest.format(d=tmp_path)], capture_output=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert (tmp_path / "data" / "merged.tsv").read_text() == OK
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["merged.tsv"]


def test_cp_copies_compressed_bytes_unless_asked(tmp_path):
    import gzip
    body = "".join(f"{i}\tv{i}\n" for i in range(5000)).encode()
    # Level 1: not what a re-compression (level 6) would give, so re-encoding shows.
    (tmp_path / "x.gz").write_bytes(gzip.compress(body, compresslevel=1))
    subprocess.run([BIN, "cp", "x.gz", "copy.gz"], check=True, cwd=tmp_path)
    assert (tmp_path / "copy.gz").read_bytes() == (tmp_path / "x.gz").read_bytes()
    subprocess.run([BIN, "cp", "x.gz", "plain.tsv", "--decompress"], check=True, cwd=tmp_path)
    assert (tmp_path / "plain.tsv").read_bytes() == body
    subprocess.run([BIN, "cp", "plain.tsv", "again.gz", "--compress"], check=True, cwd=tmp_path)
    assert gzip.decompress((tmp_path / "again.gz").read_bytes()) == body
    h = subprocess.run([BIN, "cp", "--help"], capture_output=True, text=True).stdout
    assert "--decompress" in h and "as they are" in h
