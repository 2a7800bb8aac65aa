"""The out-of-core engine (issue 3) end to end: the same bytes as the in-memory
run, and the script's answer, for every memory limit, spill fanout and thread
count.

  - the 50 conformance cases under a tiny limit (1 and 2 threads);
  - ~1,000,000 rows per side of several key families (ints with leading zeros
    and NA markers, floats spelled many ways, ints vs floats (500k), text)
    under 2 MiB with fanout 4 (several spill levels), 16 MiB and in memory, 1
    and 2 threads; the in-memory output equals the oracle's (--fast), every
    other output equals it byte for byte; a smaller family (100k) with quoted
    keys and values holding tabs and newlines;
  - peak RSS under a limit stays within the limit plus a constant;
  - skew: one key bigger than memory (block nested loop), one key hot on both sides;
  - --any-order, --max-output-rows, compressed inputs and outputs;
  - the spill directory is gone after success and after a bad input.

Runtime: ~2m10s of CPU; 3-4 minutes wall on 2 shared cores (the oracle on the
1M-row families is a third of it).
"""
import gzip
import pathlib
import re
import shutil
import subprocess
from collections import Counter

import pytest

from conftest import CASES, oracle_agrees
from ooc_util import (assert_same_bytes, count_rows, generate, parse_size, rng_for, run, sorted_lines_digest,
                      spill_dirs, write_rows)

BIG_ROWS = 1_000_000
TINY = "2MiB"     # with fanout 4: partitioned at least twice for 1M rows
SMALL = "16MiB"   # below what 1M rows need in memory: out of core, few levels
NA = ["", "NA", "NaN", "nan", "null", "NULL", "N/A", "<NA>"]
# Peak RSS beyond --memory-limit that a run may use: the binary and its
# libraries (~11 MiB), I/O buffers and the input pages in flight.
RSS_SLACK = 40 << 20


@pytest.fixture
def temp_parent(tmp_path):
    """The --temp-dir of a test; checked to hold no spill directory once the test's runs are over."""
    d = tmp_path / "spill"
    d.mkdir()
    yield d
    assert not spill_dirs(d), f"spill directories left behind: {spill_dirs(d)}"


def check_no_spill_left(parent):
    left = spill_dirs(parent)
    assert not left, f"spill directories left behind after the run: {[p.name for p in left]}"


# ---- Conformance corpus under a tiny limit ------------------------------------

@pytest.mark.parametrize("threads", [1, 2])
def test_conformance_cases_out_of_core(threads, oracle, tmp_path):
    spill = tmp_path / "spill"
    spill.mkdir()
    failures, in_memory = [], []
    for case in CASES:
        mem, ooc = tmp_path / f"{case.name}.mem.tsv", tmp_path / f"{case.name}.ooc.tsv"
        run(case / "x.tsv", case / "y.tsv", mem, threads=threads)
        r = run(case / "x.tsv", case / "y.tsv", ooc, threads=threads, limit="1MiB", fanout=4, temp_dir=spill,
                report=tmp_path / "r.json", check=False)
        if r.returncode != 0:
            failures.append(f"{case.name}: exit {r.returncode}: {r.stderr.strip()[:300]}")
        elif not oracle_agrees(oracle, case / "expected.tsv", ooc):
            failures.append(f"{case.name}: differs from expected.tsv")
        elif mem.read_bytes() != ooc.read_bytes():
            failures.append(f"{case.name}: differs from the in-memory output")
        elif not r.ooc["used"]:
            in_memory.append(case.name)
        check_no_spill_left(spill)
    assert not failures, "\n".join(failures)
    # 1 MiB is below the engine's fixed needs (chunks in flight), so even these tiny cases spill.
    assert not in_memory, f"ran in memory, so the test did not exercise the spill path: {in_memory}"


# ---- ~1M rows per side, several key families ----------------------------------

def value(rng, i):
    r = rng.random()
    if r < 0.03:
        return rng.choice(NA)
    if r < 0.5:
        return f"{rng.uniform(-1000, 1000):.4f}"
    return f"val{i:07d}"


def int_key(rng, key_range):
    r = rng.random()
    if r < 0.02:
        return rng.choice(NA)
    k = rng.randrange(key_range)
    if r < 0.07:
        return f"{k:08d}"  # leading zeros: 00000042 == 42 in a numeric column
    if r < 0.09:
        return f"+{k}"
    return str(k)


def float_key(rng, key_range):
    r = rng.random()
    if r < 0.02:
        return rng.choice(["nan", "NaN", "NA", ""])
    q = rng.randrange(4 * key_range)  # quarters: exact in binary, so every spelling parses to one double
    whole, frac = divmod(q, 4)
    if frac == 0:
        return rng.choice([str(whole), f"{whole}.0", f"{whole}.00", f"{whole}e0", f"{whole * 10}E-1", f"00{whole}"])
    v = q / 4
    return rng.choice([repr(v), f"{v:.3f}", f"{q * 25}e-2", f"0{v}"])


def plain_int_key(rng, key_range):
    return str(rng.randrange(key_range))  # no NA: x stays int64 against y's float64


def float_spelled_key(rng, key_range):
    k = rng.randrange(key_range)
    r = rng.random()
    if r < 0.1:
        return f"{k}.5"  # never matches an integer
    return rng.choice([f"{k}.0", f"{k}e0", f"{k}.000"])


def text_key(rng, key_range):
    r = rng.random()
    if r < 0.02:
        return rng.choice(NA)  # missing in a text column too: never matches
    k = rng.randrange(key_range)
    if r < 0.05:
        return f"g{k:07d}"  # case matters for text
    if r < 0.07:
        return str(k)  # digits in a text column stay text: "42" != "042"
    if r < 0.08:
        return f"{k:03d}"
    if r < 0.09:
        return f"Ω{k}"
    return f"G{k:07d}"


def write_family(path, n, key_fn, seed, key_range):
    rng = rng_for(seed)
    return write_rows(path, "ID\tvalue", (f"{key_fn(rng, key_range)}\t{value(rng, i)}" for i in range(n)))


# name -> (x's key function, y's key function, rows per side)
FAMILIES = {
    "int_zeros_na": (int_key, int_key, BIG_ROWS),
    "float_spellings": (float_key, float_key, BIG_ROWS),
    "int_vs_float": (plain_int_key, float_spelled_key, BIG_ROWS // 2),
    "text": (text_key, text_key, BIG_ROWS),
}


def quoted_key(rng, key_range):
    k = rng.randrange(key_range)
    r = rng.random()
    if r < 0.2:
        return f'"K{k}\tT"'
    if r < 0.4:
        return f'"K{k}\nN"'
    if r < 0.5:
        return f'"K{k}""Q"""'
    if r < 0.7:
        return f'"K{k}"'  # the same ID as K{k} unquoted
    return f"K{k}"


def quoted_value(rng, i):
    return rng.choice([f'"a\tb{i}"', f'"line\nbreak {i}"', f'"say ""hi"" {i}"', f"plain{i}", ""])


def write_quoted(path, n, seed, key_range):
    rng = rng_for(seed)
    return write_rows(path, "ID\tvalue", (f"{quoted_key(rng, key_range)}\t{quoted_value(rng, i)}" for i in range(n)))


class Dataset:
    def __init__(self, name, directory, x, y, mem, expected_rows):
        self.name, self.dir, self.x, self.y, self.mem, self.expected_rows = (name, directory, x, y, mem,
                                                                             expected_rows)


@pytest.fixture(scope="module", params=list(FAMILIES) + ["quoted_small"])
def dataset(request, tmp_path_factory):
    """A generated pair, its in-memory output (1 thread) and that output's row count; removed afterwards."""
    name = request.param
    d = tmp_path_factory.mktemp(name)
    if name == "quoted_small":
        n = 100_000
        x, y = write_quoted(d / "x.tsv", n, f"{name}-x", n), write_quoted(d / "y.tsv", n, f"{name}-y", n)
    else:
        kx, ky, n = FAMILIES[name]
        x = write_family(d / "x.tsv", n, kx, f"{name}-x", n)
        y = write_family(d / "y.tsv", n, ky, f"{name}-y", n)
    mem = d / "mem.tsv"
    r = run(x, y, mem, threads=1, report=d / "mem.json")
    assert not r.ooc["used"], "the in-memory reference must not spill"
    yield Dataset(name, d, x, y, mem, r.report["output"]["rows"])
    shutil.rmtree(d, ignore_errors=True)


def test_in_memory_reference_matches_oracle(dataset, oracle):
    x, y = oracle.read(str(dataset.x)), oracle.read(str(dataset.y))
    expected = dataset.dir / "expected.tsv"
    oracle.fast_result(x, y).to_csv(expected, sep="\t", index=False, na_rep="")
    assert oracle_agrees(oracle, expected, dataset.mem), f"{dataset.name}: in-memory output differs from the oracle"
    assert dataset.expected_rows > 10_000, "the family should produce a real join, not a near-empty one"
    expected.unlink()


# name -> (memory limit or None for the default, spill fanout or None)
CONFIGS = {
    "tiny_fanout4": (TINY, 4),
    "small": (SMALL, None),
    "in_memory": (None, None),
}
# In memory with 1 thread is the reference itself (the dataset fixture).
RUNS = [("tiny_fanout4", 1), ("tiny_fanout4", 2), ("small", 1), ("small", 2), ("in_memory", 2)]


@pytest.mark.parametrize("config,threads", RUNS, ids=[f"{c}-{t}" for c, t in RUNS])
def test_every_limit_gives_the_same_bytes(dataset, config, threads, tmp_path, temp_parent):
    limit, fanout = CONFIGS[config]
    out = tmp_path / "out.tsv"
    r = run(dataset.x, dataset.y, out, threads=threads, limit=limit, fanout=fanout, temp_dir=temp_parent,
            report=tmp_path / "r.json")
    assert_same_bytes(out, dataset.mem, f"{dataset.name} {config} threads={threads}")
    rep = r.report
    assert rep["output"]["rows"] == dataset.expected_rows
    if limit is None:
        assert not rep["out_of_core"]["used"]
        return
    assert rep["memory"]["limit_bytes"] == parse_size(limit)
    y_bytes = dataset.y.stat().st_size
    if y_bytes > parse_size(limit):  # y alone does not fit: the join cannot run in memory
        assert r.ooc["used"], f"y is {y_bytes} bytes, the limit {limit}, yet the run did not spill"
    if config == "tiny_fanout4":
        assert r.ooc["used"]
        assert r.ooc["spill_levels"] >= 2, f"{TINY} with fanout 4 should re-partition: {r.ooc}"
        assert r.ooc["partitions"] >= 16, r.ooc
        assert r.ooc["spilled_bytes"] > 0, r.ooc
    # The process's own account of its peak matches what the kernel measured. It reads its peak
    # before it writes the report: pages first touched after that count only in the outside
    # reading (1.2 MiB once, under AddressSanitizer in CI), hence a few MiB of slack below,
    # against peaks of hundreds.
    reported = rep["memory"]["peak_rss_bytes"]
    assert r.peak_rss - (4 << 20) <= reported <= r.ru_maxrss + (1 << 20), (reported, r.peak_rss, r.ru_maxrss)


@pytest.mark.rss_bound
def test_peak_rss_stays_near_the_limit(tmp_path, temp_parent):
    # 2M rows per side (~38 MB each): the in-memory engine peaks near 140 MB here; under a limit the
    # peak must not grow with the input (issue 3: "within the limit plus a small constant, measured").
    x = generate("x", 2_000_000, tmp_path / "x.tsv", seed=3)
    y = generate("y", 2_000_000, tmp_path / "y.tsv", seed=3)
    r = run(x, y, "/dev/null", limit=SMALL, temp_dir=temp_parent, threads=2, report=tmp_path / "r.json")
    assert r.ooc["used"]
    assert r.peak_rss <= parse_size(SMALL) + RSS_SLACK, \
        f"peak RSS {r.peak_rss / 2**20:.0f} MiB with --memory-limit {SMALL} (allowed: the limit + " \
        f"{RSS_SLACK >> 20} MiB)"


@pytest.mark.rss_bound
def test_a_join_run_in_memory_keeps_its_whole_peak_within_the_limit(tmp_path, temp_parent):
    # The in-memory engine runs only when its estimate fits --memory-limit; the estimate must
    # count the whole process: y's mapped bytes, its rows, the tables as built (a 1/16 slack per
    # table), the partition bytes, the key counters that --report keeps, the binary itself. It
    # used to count 40 bytes a row and y: 10^7 rows under 650 MiB ran in memory and peaked at
    # 739 MiB with --stats. Limits swept across the boundary: in memory means within the limit.
    x = generate("x", 1_000_000, tmp_path / "x.tsv", seed=11)
    y = generate("y", 1_000_000, tmp_path / "y.tsv", seed=11)
    free = run(x, y, "/dev/null", threads=2, report=tmp_path / "r.json")
    assert not free.ooc["used"]
    start = int(free.peak_rss * 0.6) >> 20
    in_memory, spilled = [], []
    for mib in range(start, (free.peak_rss >> 20) + 64, 6):
        r = run(x, y, "/dev/null", threads=2, limit=f"{mib}MiB", temp_dir=temp_parent, report=tmp_path / "r.json")
        (spilled if r.ooc["used"] else in_memory).append((mib, r.peak_rss >> 20))
        if not r.ooc["used"]:
            assert r.peak_rss <= mib << 20, \
                f"ran in memory under --memory-limit {mib}MiB and peaked at {r.peak_rss / 2**20:.1f} MiB"
    assert in_memory and spilled, f"the sweep missed the boundary: in memory {in_memory}, spilled {spilled}"


def _cache_as_readahead_leaves_it(path):
    """Drops path's pages from the page cache and reads it back in order, as `cat` or a first
    run would: readahead then caches it in large folios (ext4 on recent kernels), and a fault on
    one byte of the mapping maps the whole folio around it."""
    import os
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        while os.read(fd, 1 << 20):
            pass
    finally:
        os.close(fd)


@pytest.mark.rss_bound
def test_peak_rss_stays_near_the_limit_with_inputs_cached_by_readahead(tmp_path, temp_parent):
    # Finding chunk boundaries touches one line per chunk; with the input cached in large folios
    # each touch mapped a folio bigger than the chunk, and the whole input (~80 MB here) became
    # resident before the pages were given back: a peak above the limit at 3e7 rows / 512 MiB.
    x = generate("x", 4_000_000, tmp_path / "x.tsv", seed=5)
    y = generate("y", 4_000_000, tmp_path / "y.tsv", seed=5)
    for f in (x, y):
        _cache_as_readahead_leaves_it(f)
    r = run(x, y, "/dev/null", limit=SMALL, temp_dir=temp_parent, threads=2, report=tmp_path / "r.json")
    assert r.ooc["used"]
    assert r.peak_rss <= parse_size(SMALL) + RSS_SLACK, \
        f"peak RSS {r.peak_rss / 2**20:.0f} MiB with --memory-limit {SMALL} and inputs of " \
        f"{y.stat().st_size >> 20} MiB (allowed: the limit + {RSS_SLACK >> 20} MiB)"


# Two families suffice for the order-free path; quoted rows hold newlines, so they cannot be sorted as lines.
@pytest.mark.parametrize("dataset", ["int_zeros_na", "text"], indirect=True)
def test_any_order_tiny_limit_same_lines(dataset, tmp_path, temp_parent):
    out = tmp_path / "any.tsv"
    r = run(dataset.x, dataset.y, out, threads=2, limit=TINY, fanout=4, temp_dir=temp_parent,
            extra=["--any-order"], report=tmp_path / "r.json")
    assert r.ooc["used"]
    got_header, got = sorted_lines_digest(out)
    want_header, want = sorted_lines_digest(dataset.mem)
    assert got_header == want_header
    assert len(got) == len(want)
    assert got == want, f"{dataset.name}: --any-order rows differ from the default order's rows"


# ---- Skew ----------------------------------------------------------------------

def skew_pair(d, hot_x, hot_y, others, y_value_len):
    """x and y with one hot key ("7") on hot_x / hot_y rows spread through the file, and `others`
    rows of keys 1000.. on each side; returns the paths, the exact output row count and the size of
    the hot key's rows in y."""
    rng = rng_for("skew", hot_x, hot_y, others)
    def rows(n_hot, n_other, vlen, side):
        keys = ["7"] * n_hot + [str(1000 + rng.randrange(others)) for _ in range(n_other)]
        rng.shuffle(keys)
        return keys, [f"{k}\t{side}{i:0{vlen}d}" for i, k in enumerate(keys)]
    kx, lx = rows(hot_x, others, 6, "x")
    ky, ly = rows(hot_y, others, y_value_len, "y")
    write_rows(d / "x.tsv", "ID\tvalue", lx)
    write_rows(d / "y.tsv", "ID\tvalue", ly)
    cx, cy = Counter(kx), Counter(ky)
    total = sum(n * cy[k] for k, n in cx.items())
    hot_y_bytes = sum(len(line) + 1 for line, k in zip(ly, ky) if k == "7")
    return d / "x.tsv", d / "y.tsv", total, hot_y_bytes


# name -> (x rows of the hot key, y rows of the hot key, other rows per side, y value width, limit)
SKEW = {
    # The hot key's y rows (~1.3 MB) exceed the limit: only a block nested loop can join it.
    "hot_y_bigger_than_memory": (40, 45_000, 5_000, 24, "1MiB"),
    # A key hot on both sides (3M of the ~3.2M output rows) among 200k other rows per side.
    "hot_on_both_sides": (2_000, 1_500, 200_000, 6, "2MiB"),
}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", SKEW)
def test_skewed_key(name, threads, tmp_path, temp_parent):
    hot_x, hot_y, others, vlen, limit = SKEW[name]
    x, y, total, hot_y_bytes = skew_pair(tmp_path, hot_x, hot_y, others, vlen)
    mem, ooc = tmp_path / "mem.tsv", tmp_path / "ooc.tsv"
    r_mem = run(x, y, mem, threads=threads, report=tmp_path / "mem.json")
    assert r_mem.report["output"]["rows"] == total
    r = run(x, y, ooc, threads=threads, limit=limit, fanout=4, temp_dir=temp_parent, report=tmp_path / "r.json")
    assert_same_bytes(ooc, mem, f"skew {name} threads={threads}")
    assert r.report["output"]["rows"] == total
    assert r.ooc["used"]
    hottest = r.report["hottest_keys"][0]
    assert str(hottest["key"]) == "7" and hottest["x_rows"] == hot_x and hottest["y_rows"] == hot_y, hottest
    if hot_y_bytes > parse_size(limit):
        assert r.ooc["nested_loop_keys"] >= 1, f"hot key's y rows are {hot_y_bytes} bytes > {limit}: {r.ooc}"
    mem.unlink()
    ooc.unlink()


# ---- Join explosion guard ------------------------------------------------------

def explosion_pair(d):
    """A hot key HOTKEY7 (1234 x rows, 567 y rows: 699,678 output rows) and a second one, among
    200k rows per side (so that a tiny limit spills); returns the paths, the exact output row count
    and the number of distinct keys on both sides."""
    rng = rng_for("explosion")
    kx = ["HOTKEY7"] * 1234 + ["WARMKEY3"] * 300 + [f"K{rng.randrange(100_000)}" for _ in range(200_000)]
    ky = ["HOTKEY7"] * 567 + ["WARMKEY3"] * 211 + [f"K{i}" for i in range(200_000)]
    rng.shuffle(kx)
    rng.shuffle(ky)
    write_rows(d / "x.tsv", "ID\tvalue", (f"{k}\tx{i}" for i, k in enumerate(kx)))
    write_rows(d / "y.tsv", "ID\tvalue", (f"{k}\ty{i}" for i, k in enumerate(ky)))
    cy = Counter(ky)
    return d / "x.tsv", d / "y.tsv", sum(cy[k] for k in kx), len(set(kx) & set(ky))


def number_in(text, n):
    """Whether text holds n, written plainly or with thousands separators (, _ ' space or thin space)."""
    pattern = r"(?<![\d.])" + r"[,_' \u2009]?".join(re.escape(d) for d in str(n)) + r"(?![\d])"
    return re.search(pattern, text) is not None


@pytest.mark.parametrize("limit", [None, TINY])
def test_max_output_rows_refuses_and_names_the_hot_key(limit, tmp_path, temp_parent):
    x, y, total, _ = explosion_pair(tmp_path)
    out = tmp_path / "out.tsv"
    r = run(x, y, out, limit=limit, fanout=4 if limit else None, temp_dir=temp_parent, check=False,
            report=tmp_path / "r.json", extra=["--max-output-rows", total - 1, "--progress", "none"])
    assert r.returncode == 3, r.stderr
    # The count is reported either way (issue 3).
    assert r.report is not None, "a refused run still writes its --report"
    assert r.report["output"]["rows"] == total and r.report["output"]["written"] is False, r.report["output"]
    assert r.report["hottest_keys"][0]["key"] == "HOTKEY7"
    assert number_in(r.stderr, total), f"the message should name the row count {total}: {r.stderr}"
    assert "HOTKEY7" in r.stderr, r.stderr
    assert number_in(r.stderr, 1234 * 567) or (number_in(r.stderr, 1234) and number_in(r.stderr, 567)), \
        f"the hottest key's counts should be named: {r.stderr}"
    assert "--max-output-rows" in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "spill", "x.tsv", "y.tsv"], \
        "no OUT, no temporary"


def test_max_output_rows_allows_exactly_n(tmp_path, temp_parent):
    x, y, total, matched = explosion_pair(tmp_path)
    for limit in (None, TINY):
        out = tmp_path / f"out-{limit}.tsv"
        r = run(x, y, out, limit=limit, fanout=4 if limit else None, temp_dir=temp_parent,
                extra=["--max-output-rows", total], report=tmp_path / "r.json")
        assert r.report["output"]["rows"] == total and r.report["output"]["written"] is True
        assert count_rows(out) == total
        assert r.ooc["used"] == (limit is not None)
        keys = r.report["hottest_keys"]
        assert [str(k["key"]) for k in keys[:2]] == ["HOTKEY7", "WARMKEY3"], keys
        assert (keys[0]["x_rows"], keys[0]["y_rows"]) == (1234, 567), keys[0]
    assert (tmp_path / f"out-{TINY}.tsv").read_bytes() == (tmp_path / "out-None.tsv").read_bytes()
    assert r.report["matched_keys"] == matched


# ---- Compressed inputs and outputs ---------------------------------------------

@pytest.mark.parametrize("out_ext", ["zst", "gz"])
def test_compressed_inputs_and_output_out_of_core(out_ext, tmp_path, temp_parent):
    x, y, total, _ = explosion_pair(tmp_path)
    mem = tmp_path / "mem.tsv"
    run(x, y, mem)
    xz = tmp_path / "x.tsv.gz"
    xz.write_bytes(gzip.compress(x.read_bytes(), compresslevel=1))
    yz = tmp_path / "y.tsv.zst"
    subprocess.run(["zstd", "-q", "-f", str(y), "-o", str(yz)], check=True)
    out = tmp_path / f"out.tsv.{out_ext}"
    r = run(xz, yz, out, limit=TINY, fanout=4, temp_dir=temp_parent, threads=2, report=tmp_path / "r.json")
    assert r.ooc["used"] and r.ooc["spill_levels"] >= 1
    raw = out.read_bytes()
    if out_ext == "gz":
        assert raw[:2] == b"\x1f\x8b", "a .gz output is gzip"
        plain = gzip.decompress(raw)
    else:
        assert raw[:4] == b"\x28\xb5\x2f\xfd", "a .zst output is zstd"
        plain = subprocess.run(["zstd", "-q", "-d", "-c", str(out)], check=True, capture_output=True).stdout
    assert len(raw) < len(plain) / 2, "compressed"
    assert plain == mem.read_bytes()
    assert r.report["output"]["rows"] == total


# ---- The spill directory is gone after success and after failure --------------

@pytest.mark.parametrize("side", ["x", "y"])
def test_bad_row_deep_in_input_cleans_up(side, tmp_path, temp_parent):
    rows = [f"{i % 50_000}\tv{i}" for i in range(300_000)]
    rows.insert(250_000, "5\tbad\textra")  # line 250,002 of its file (after the header)
    good = [f"{i}\tw{i}" for i in range(100_000)]
    write_rows(tmp_path / "x.tsv", "ID\tvalue", rows if side == "x" else good)
    write_rows(tmp_path / "y.tsv", "ID\tvalue", rows if side == "y" else good)
    out = tmp_path / "out.tsv"
    r = run(tmp_path / "x.tsv", tmp_path / "y.tsv", out, limit="1MiB", fanout=4, temp_dir=temp_parent,
            threads=2, check=False, extra=["--progress", "none"])
    assert r.returncode == 3, r.stderr
    assert f"{side}.tsv, line 250002" in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spill", "x.tsv", "y.tsv"], "no OUT, no temporary"
    assert not list(temp_parent.iterdir()), "the temp dir is left as it was found"


def test_success_leaves_temp_dir_as_found(tmp_path, temp_parent):
    (temp_parent / "unrelated.txt").write_text("not ours")
    x, y, _, _ = explosion_pair(tmp_path)
    r = run(x, y, tmp_path / "out.tsv", limit=TINY, fanout=4, temp_dir=temp_parent, report=tmp_path / "r.json")
    assert r.ooc["used"] and r.ooc["spill_files"] > 0
    assert r.ooc["reclaimed_temp_bytes"] == 0, "nothing was left by earlier runs"
    assert [p.name for p in temp_parent.iterdir()] == ["unrelated.txt"]
