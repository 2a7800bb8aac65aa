"""Streamed inputs (.gz / .zst files; S3 objects in test_s3_merge.py): read in
segments of whole records, never whole (table_scan.h).

The mapped-file engine is checked against the oracle elsewhere; here every
streamed run must give the same bytes (or the same error, with the same line
and column) as the same inputs read from plain local files, with segments small
enough that records, quoted fields with line breaks, CRLF pairs and blank lines
straddle many segment boundaries, in memory and out of core, with 1 and 2
threads. Then: memory stays bounded for an input bigger than the limit, the
second pass over a streamed x (type speculation failed) reads it again, and a
damaged stream fails cleanly with no output.
"""
import gzip
import pathlib
import random
import subprocess

import pytest

import ooc_util
from conftest import BIN


def compress(src, dst):
    data = pathlib.Path(src).read_bytes()
    if str(dst).endswith(".gz"):
        # Several gzip members, as pigz/bgzip write them: the decoder must go on.
        half = len(data) // 2
        pathlib.Path(dst).write_bytes(gzip.compress(data[:half]) + gzip.compress(data[half:]))
    else:
        subprocess.run(["zstd", "-q", "-f", "-o", str(dst), str(src)], check=True)
    return dst


def merge(x, y, out, *extra):
    proc = subprocess.run([BIN, "merge", str(x), str(y), "-o", str(out), "--progress", "none", *map(str, extra)],
                          capture_output=True, text=True)
    return proc.returncode, proc.stderr


def awkward_file(rng, rows, eol, key_pool, quote_rate):
    """A TSV whose records are hard to cut: quoted fields with tabs and line breaks (some longer than a
    1 KiB segment), doubled quotes, blank and space-only lines, a BOM, the given line ends."""
    out = ["\ufeffID\tvalue" if rng.random() < 0.3 else "ID\tvalue"]
    for i in range(rows):
        key = rng.choice(key_pool)
        r = rng.random()
        if r < quote_rate:
            body = "".join(rng.choice(["a", "b", "\t", eol, '""', "Ω", " "]) for _ in range(rng.randint(1, 40)))
            if rng.random() < 0.02:
                body += "z" * rng.randint(1500, 5000) + eol + "tail"
            value = f'"{body}"'
        elif r < quote_rate + 0.02:
            value = 'in"side'  # a quote inside an unquoted field is ordinary text
        else:
            value = f"v{i}"
        if rng.random() < 0.1:
            key = f'"{key}"'
        out.append(f"{key}\t{value}")
        if rng.random() < 0.03:
            out.append(rng.choice(["", "   "]))
    text = eol.join(out)
    return text + (eol if rng.random() < 0.8 else "")


CASES = [
    # (seed, x line end, y line end, quote rate, key pool)
    (1, "\n", "\n", 0.0, [str(i) for i in range(40)]),
    (2, "\r\n", "\n", 0.1, [str(i) for i in range(40)]),
    (3, "\n", "\r\n", 0.3, ["a", "b", "7", "007", "x y", "Ω"]),
    (4, "\r", "\r", 0.1, [str(i) for i in range(25)]),
    (5, "\r\n", "\r\n", 0.5, ["1", "1.0", "2", "2.5", "NA", ""]),
]


@pytest.mark.parametrize("seed,x_eol,y_eol,quote_rate,pool", CASES)
def test_streamed_equals_mapped(tmp_path, seed, x_eol, y_eol, quote_rate, pool):
    rng = random.Random(seed)
    x = tmp_path / "x.tsv"
    y = tmp_path / "y.tsv"
    x.write_bytes(awkward_file(rng, 3000, x_eol, pool, quote_rate).encode())
    y.write_bytes(awkward_file(rng, 1500, y_eol, pool, quote_rate).encode())
    expected = tmp_path / "expected.tsv"
    rc, err = merge(x, y, expected)
    assert rc == 0, err
    xz = compress(x, tmp_path / "x.tsv.gz")
    yz = compress(y, tmp_path / "y.tsv.zst")
    for extra in (["--segment-kib", "1"], ["--segment-kib", "3", "--threads", "1"],
                  ["--segment-kib", "1", "--memory-limit", "256KiB", "--temp-dir", tmp_path],
                  ["--segment-kib", "2", "--memory-limit", "256KiB", "--temp-dir", tmp_path, "--threads", "1"],
                  ["--segment-kib", "1", "--any-order", "--memory-limit", "256KiB", "--temp-dir", tmp_path]):
        out = tmp_path / "streamed.tsv"
        rc, err = merge(xz, yz, out, *extra)
        assert rc == 0, (extra, err)
        if "--any-order" in extra:
            assert sorted(out.read_bytes().split(b"\n")) == sorted(expected.read_bytes().split(b"\n")), extra
        else:
            ooc_util.assert_same_bytes(out, expected, f"streamed {extra}")
    assert not list(tmp_path.glob("cloudmerge-*/cloudmerge-spill-*"))


@pytest.mark.parametrize("problem", ["fields", "quote", "utf8"])
def test_error_position_counts_lines_across_segments(tmp_path, problem):
    """A bad row deep in a streamed x: the same file, line and column as for the plain file."""
    lines = ["ID\tvalue"] + [f"{i % 50}\t" + ('"two\nlines"' if i % 7 == 0 else f"v{i}") for i in range(20000)]
    bad = {"fields": "17\tv\textra", "quote": '17\t"never closed', "utf8": "17\tv\xff"}[problem]
    lines.insert(15000, bad)
    x = tmp_path / "x.tsv"
    raw = ("\r\n".join(lines) + "\r\n").encode("utf-8", errors="surrogateescape")
    raw = raw.replace("\xff".encode(), b"\xff")
    x.write_bytes(raw)
    y = tmp_path / "y.tsv"
    y.write_text("ID\tw\n17\ty\n")
    rc_plain, err_plain = merge(x, y, tmp_path / "a.tsv")
    xz = compress(x, tmp_path / "x.tsv.gz")
    out = tmp_path / "b.tsv"
    rc, err = merge(xz, y, out, "--segment-kib", "4")
    assert rc_plain != 0 and rc == rc_plain, (err_plain, err)
    assert err.replace(str(xz), "X") == err_plain.replace(str(x), "X")
    assert "line " in err and not out.exists()


def test_streamed_x_is_read_again_when_type_speculation_fails(tmp_path):
    """y numeric, x numeric for 99% of its rows then text: the in-memory engine's speculative
    probe is redone with x's real type, which reads the streamed x a second time."""
    y = tmp_path / "y.tsv"
    y.write_text("ID\tw\n" + "".join(f"{i}\ty{i}\n" for i in range(0, 100, 3)))
    x = tmp_path / "x.tsv"
    x.write_text("ID\tv\n" + "".join(f"{i % 100}\tx{i}\n" for i in range(30000)) + "abc\tlast\n")
    expected = tmp_path / "expected.tsv"
    assert merge(x, y, expected)[0] == 0
    out = tmp_path / "out.tsv"
    rc, err = merge(compress(x, tmp_path / "x.tsv.zst"), y, out, "--segment-kib", "8")
    assert rc == 0, err
    ooc_util.assert_same_bytes(out, expected, "second pass over a streamed x")
    out2 = tmp_path / "out2.tsv"
    rc, err = merge(compress(x, tmp_path / "x.tsv.gz"), y, out2, "--segment-kib", "8", "--max-output-rows", "100000000")
    assert rc == 0, err
    ooc_util.assert_same_bytes(out2, expected, "count pass then write pass over a streamed x")


def test_truncated_stream_fails_cleanly(tmp_path):
    x = tmp_path / "x.tsv"
    x.write_text("ID\tv\n" + "".join(f"{i}\tx{i}\n" for i in range(200000)))
    y = tmp_path / "y.tsv"
    y.write_text("ID\tw\n1\ty\n")
    xz = compress(x, tmp_path / "x.tsv.gz")
    data = xz.read_bytes()
    xz.write_bytes(data[: len(data) * 2 // 3])
    out = tmp_path / "out.tsv"
    rc, err = merge(xz, y, out, "--segment-kib", "16")
    assert rc != 0 and "x.tsv.gz" in err and "truncated" in err.lower(), err
    assert not out.exists() and not list(tmp_path.glob("out.tsv*"))


@pytest.mark.rss_bound
def test_memory_stays_bounded_for_a_streamed_input_bigger_than_the_limit(tmp_path):
    """Both inputs ~100 MB decoded, --memory-limit 48MiB: the run spills, and peak RSS stays
    near the limit (decoded inputs are never held whole)."""
    x = ooc_util.generate("x", 4_000_000, tmp_path / "x.tsv", key_range=3_000_000, seed=3)
    y = ooc_util.generate("y", 4_000_000, tmp_path / "y.tsv", key_range=3_000_000, seed=4)
    expected = tmp_path / "expected.tsv"
    assert merge(x, y, expected, "--any-order")[0] == 0
    xz = compress(x, tmp_path / "x.tsv.zst")
    yz = compress(y, tmp_path / "y.tsv.zst")
    x.unlink()
    y.unlink()
    out = tmp_path / "out.tsv"
    limit = 48 << 20
    r = ooc_util.run(xz, yz, out, limit=limit, temp_dir=tmp_path, report=tmp_path / "report.json",
                     extra=["--any-order", "--progress", "none"])
    assert r.report["out_of_core"]["used"] is True
    assert r.report["x"]["bytes"] > limit and r.report["y"]["bytes"] > limit
    assert sorted(out.read_bytes().split(b"\n")) == sorted(expected.read_bytes().split(b"\n"))
    # The limit, plus the binary and allocator slack (~40 MiB measured for mapped inputs too).
    assert r.peak_rss < limit + (48 << 20), f"peak RSS {r.peak_rss >> 20} MiB"
