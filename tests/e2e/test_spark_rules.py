"""The cluster path's split tasks (`cloudmerge cluster-task`, engine/split_tasks.h)
without Spark: a file cut into splits anywhere (inside "\\r\\n", on blank lines,
on the last byte) is read as the same records as the whole file; the splits'
KeyScans combined in file order decide pandas' type exactly as one pass does
(the C++ unit tests' expectations, observed with pandas 1.5.3); a '"' in a
split sends the file to a whole-file read; joins and writes order matches as
the script. The Spark job has no rules of its own: there is nothing to port.
Runtime: a few seconds."""
import struct
import subprocess
import sys

import pytest

from conftest import BIN, ROOT

sys.path.insert(0, str(ROOT / "spark"))
import merge_job as mj  # noqa: E402

MODES = ["int64", "uint64", "float64", "bool", "text", "text_raw"]
INFER = [
    (["1", "007", " 7 ", "+5", "-0"], "int64"), (["1", "NA"], "int64"),
    (["1", "2.5"], "float64"), ([".5", "5.", "1E5", "1e+5", "1e-400"], "float64"),
    (["inf", "-Infinity", "+INF", "iNf"], "float64"), (["1.8e308"], "text"), (["inf "], "text"),
    (["1e"], "text"), (["0x10"], "text"), (["1,000"], "text"), (["NAN"], "text"),
    (["True", "FALSE", "tRue"], "bool"), (["True", "NA"], "bool"), (["True", "1"], "text"),
    (["18446744073709551615", "1"], "uint64"), (["9223372036854775808"], "uint64"),
    (["-9223372036854775808"], "int64"), (["-9223372036854775809"], "text"),
    (["18446744073709551616", "1"], "text"), (["1.5", "18446744073709551616"], "float64"),
    (["18446744073709551616", "1.5"], "text"), (["-1", "18446744073709551615", "1.5"], "float64"),
    (["18446744073709551615", "-1"], "text_raw"), (["NA", "18446744073709551615"], "text_raw"),
    (["-1", "9223372036854775808"], "text_raw"), (["-abc", "18446744073709551615", "NA"], "text"),
    (["99999999999999999999x"], "text"), (["1", "X"], "text"), ([], "text"),
]


def task(args, data=b""):
    rc, out, err = mj.run_binary(BIN, args, data)
    assert rc == 0, err
    return out


def plan(x, y):
    return mj.plan_inputs(BIN, str(x), str(y), "1", "1", False)


def scan(path, p, split=None, partitions=2, extra=()):
    args = ["scan", str(path), "--partitions", partitions, *extra]
    if split:
        args += ["--split", split[0], split[1], "--size", p["size"], "--body", p["body"]]
    fr = mj.frames(task(args))
    assert fr[-1][0] == mj.SUMMARY_TAG and all(t != mj.SUMMARY_TAG for t, _ in fr[:-1])  # the summary comes last
    rows, end, quote = struct.unpack_from("<QQB", fr[-1][1])
    pieces = {}
    for t, b in fr[:-1]:  # a partition's records may come in several frames, in file order
        pieces.setdefault(t, []).append(b)
    return rows, end, bool(quote), fr[-1][1][17:], pieces


def varint(b, p):
    v = shift = 0
    while True:
        c = b[p]
        p += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return v, p


def records(pieces, stored_ids=None):
    """[(file position, ID, text)] of record blobs (split_tasks.h: varint position delta from
    the blob's previous record, varint ID length << 1 | ID in text, the ID's offset in the text
    when it is there, varint text length, the ID when it is not, text). stored_ids, a list,
    gets whether each record stored its ID apart from its text."""
    out = []
    for b in pieces:
        p = pos = 0
        while p < len(b):
            delta, p = varint(b, p)
            key_word, p = varint(b, p)
            klen, in_text = key_word >> 1, key_word & 1
            at = 0
            if in_text:
                at, p = varint(b, p)
            tlen, p = varint(b, p)
            pos += delta
            stored = 0 if in_text else klen
            text = b[p + stored:p + stored + tlen]
            out.append((pos, text[at:at + klen] if in_text else b[p:p + klen], text))
            if stored_ids is not None:
                stored_ids.append(not in_text)
            p += stored + tlen
    return out


def side_frames(tag, pieces):
    return b"".join(mj.frame(tag, b) for b in pieces)


def decide(scans):
    return MODES[mj.combine(BIN, scans)[0]]


@pytest.mark.parametrize("values,mode", INFER)
def test_split_scans_combined_in_file_order_decide_as_pandas(values, mode, tmp_path):
    """Cutting the IDs into two splits (at a few places) decides the same type."""
    f = tmp_path / "x.tsv"
    f.write_text("ID\tv\n" + "".join(f"{v}\t.\n" for v in values))
    p = plan(f, f)["x"]
    assert decide([scan(f, p)[3]]) == mode
    data = f.read_bytes()
    for cut in sorted({p["body"] + 1, (p["body"] + len(data)) // 2, len(data) - 2}):
        if cut <= p["body"]:
            continue
        a, b = scan(f, p, (p["body"], cut)), scan(f, p, (cut, p["size"]))
        assert a[0] + b[0] == len(values)
        assert decide([a[3], b[3]]) == mode, f"cut at byte {cut}"


def test_append_order_matters_as_in_pandas(tmp_path):
    f = tmp_path / "x.tsv"
    f.write_text("ID\tv\n18446744073709551616\t.\n1.5\t.\n")
    p = plan(f, f)["x"]
    cut = f.read_text().index("1.5")
    a, b = scan(f, p, (p["body"], cut))[3], scan(f, p, (cut, p["size"]))[3]
    assert (decide([a, b]), decide([b, a])) == ("text", "float64")


@pytest.mark.parametrize("text", ["ID\tv\r\n1\ta\r\n\r\n  \r\n2\tb", "ID\tv\r1\ta\r2\tb\r\r3\tc\r",
                                  "ID\tv\n1\ta\n\n\n2\tb\n   \n3\tc", "\ufeffID\tv\n1\t2\n3\t4\n"])
def test_splits_cut_anywhere_read_the_same_records(text, tmp_path):
    f = tmp_path / "x.tsv"
    f.write_bytes(text.encode())
    p = plan(f, f)["x"]
    whole = scan(f, p, partitions=1)
    for cut in range(p["body"] + 1, p["size"]):
        a, b = scan(f, p, (p["body"], cut), 1), scan(f, p, (cut, p["size"]), 1)
        assert records(a[4].get(0, []) + b[4].get(0, [])) == records(whole[4][0]), f"cut at byte {cut}"
        assert b[1] == whole[1] == p["size"]


def test_a_quote_in_a_split_asks_for_a_whole_file_read(tmp_path):
    f = tmp_path / "x.tsv"
    f.write_text('ID\tv\n1\t"multi\nline"\n2\tb\n')
    p = plan(f, f)["x"]
    cut = f.read_text().index("2\tb")
    assert scan(f, p, (cut, p["size"]))[2] is False  # this split alone cannot know: its quote is earlier
    assert scan(f, p, (p["body"], cut))[2] is True
    assert scan(f, p)[0] == 2  # the whole file: two records


def test_scan_streams_records_in_pieces_in_file_order(tmp_path):
    """A scan sends its records as they are made, a partition in several frames when it grows
    past --piece-bytes (the task holds ~8 MiB per partition, not its whole output): the pieces,
    in order, are the records of one whole blob, the summary comes last, and the join reads a
    side given as many frames exactly as one."""
    rows = "".join("%d\tv%d\n" % (i % 37, i) for i in range(3000))
    (tmp_path / "x.tsv").write_text("ID\tv\n" + rows)
    (tmp_path / "y.tsv").write_text("ID\tw\n" + rows[:2000])
    pl = plan(tmp_path / "x.tsv", tmp_path / "y.tsv")
    whole = scan(tmp_path / "x.tsv", pl["x"], partitions=3)
    fr = mj.frames(task(["scan", str(tmp_path / "x.tsv"), "--partitions", 3, "--piece-bytes", 500]))
    assert fr[-1][0] == mj.SUMMARY_TAG and len(fr) > 3 * 20
    assert all(len(b) < 500 + 64 for _, b in fr[:-1])
    split = scan(tmp_path / "x.tsv", pl["x"], partitions=3, extra=["--piece-bytes", 500])
    assert split[:4] == whole[:4] and all(len(whole[4][t]) == 1 for t in range(3))
    assert {t: records(b) for t, b in split[4].items()} == {t: records(b) for t, b in whole[4].items()}
    y = scan(tmp_path / "y.tsv", pl["y"], partitions=3, extra=["--drop-key"])[4]
    args = ["join", "--x-mode", 0, "--y-mode", 0, "--ranges", 2, "--x-end", whole[1]]
    for part in range(3):
        one = task(args, side_frames(0, whole[4][part]) + side_frames(1, y[part]))
        assert task(args, side_frames(0, split[4][part]) + side_frames(1, y[part])) == one


def test_x_records_carry_their_id_once(tmp_path):
    """An x record's text is its whole row, which holds the ID: the record points at it instead
    of a second copy (a quarter of x's shuffle bytes with short rows), whichever column the ID
    is in; a quoted row (its text re-encoded) and y's records (text without the ID) store it."""
    (tmp_path / "x.tsv").write_text('v\tID\tw\na\t10\tb\nc\t2\td\ne\t"3"\tf\n')
    (tmp_path / "y.tsv").write_text("ID\tw\n10\tp\n2\tq\n")
    pl = plan(tmp_path / "x.tsv", tmp_path / "y.tsv")
    stored = []
    got = sorted(records(scan(tmp_path / "x.tsv", pl["x"], partitions=1, extra=["--key", "ID"])[4][0], stored))
    assert [(i, t) for _, i, t in got] == [(b"10", b"a\t10\tb"), (b"2", b"c\t2\td"), (b"3", b"e\t3\tf")]
    assert stored == [False, False, True]
    blob = b"".join(scan(tmp_path / "x.tsv", pl["x"], partitions=1, extra=["--key", "ID"])[4][0])
    assert len(blob) == sum(len(t) for _, _, t in got) + 4 * 2 + 3 + len(b"3"), "headers + texts + one stored ID"
    stored = []
    ys = records(scan(tmp_path / "y.tsv", pl["y"], partitions=1, extra=["--drop-key"])[4][0], stored)
    assert [(i, t) for _, i, t in ys] == [(b"10", b"p"), (b"2", b"q")] and stored == [True, True]


def test_join_puts_labelled_blobs_in_file_order(tmp_path):
    """The job hands a join its blobs as the shuffle delivers them, each with its label (side,
    split, piece) instead of sorting them first: the binary orders them, so any arrival order
    gives the same matches as the sides given in order."""
    import random
    rows = "".join("%d\tv%d\n" % (i % 37, i) for i in range(3000))
    (tmp_path / "x.tsv").write_text("ID\tv\n" + rows)
    (tmp_path / "y.tsv").write_text("ID\tw\n" + rows[:2000])
    pl = plan(tmp_path / "x.tsv", tmp_path / "y.tsv")
    size = (tmp_path / "x.tsv").stat().st_size
    x_splits = [scan(tmp_path / "x.tsv", pl["x"], split=(a, min(size, a + size // 3 + 1)), partitions=3,
                     extra=["--piece-bytes", 500]) for a in range(pl["x"]["body"], size, size // 3 + 1)]
    y = scan(tmp_path / "y.tsv", pl["y"], partitions=3, extra=["--drop-key", "--piece-bytes", 500])[4]
    args = ["join", "--x-mode", 0, "--y-mode", 0, "--ranges", 2, "--x-end", size]
    rng = random.Random(7)
    for part in range(3):
        x_pieces = [b for sp in x_splits for b in sp[4].get(part, [])]
        in_order = task(args, side_frames(0, x_pieces) + side_frames(1, y.get(part, [])))
        labelled = [struct.pack(mj.LABEL, 0, i, j) + b for i, sp in enumerate(x_splits)
                    for j, b in enumerate(sp[4].get(part, []))]
        labelled += [struct.pack(mj.LABEL, 1, 0, j) + b for j, b in enumerate(y.get(part, []))]
        assert len(labelled) > 4
        rng.shuffle(labelled)
        got = task(args, b"".join(mj.frame(mj.LABELLED_BLOB, b) for b in labelled))
        assert got == in_order and got
    # A label cut short is a damaged frame, not a crash.
    p = subprocess.run([BIN, "cluster-task"] + [str(a) for a in args], input=mj.frame(mj.LABELLED_BLOB, b"\0" * 5),
                       capture_output=True)
    assert p.returncode not in (0, 2, 3) and p.returncode > 0 and b"label cut short" in p.stderr


def test_join_and_write_give_the_scripts_order(tmp_path):
    (tmp_path / "x.tsv").write_text("ID\tv\n7\ta\n007\tb\n8\tc\n7.0\td\n")
    (tmp_path / "y.tsv").write_text("ID\tw\n7\tp\n8\tq\n7\tr\n")
    pl = plan(tmp_path / "x.tsv", tmp_path / "y.tsv")
    x = scan(tmp_path / "x.tsv", pl["x"], partitions=3)
    y = scan(tmp_path / "y.tsv", pl["y"], partitions=3, extra=["--drop-key"])[4]
    xm, ym = mj.combine(BIN, [x[3]])[0], 0
    ranges = []
    for part in range(3):
        data = side_frames(0, x[4].get(part, [])) + side_frames(1, y.get(part, []))
        ranges.append(task(["join", "--x-mode", xm, "--y-mode", ym, "--ranges", 1, "--x-end", x[1]], data))
    out = tmp_path / "out.tsv"
    lines = task(["write", str(out), "--header", pl["header"]], b"".join(ranges))
    assert int(lines) == 7
    assert out.read_text() == ("ID_x\tvalue_x\tvalue_y\n7\ta\tp\n7\ta\tr\n007\tb\tp\n007\tb\tr\n8\tc\tq\n7.0\td\tp\n"
                               "7.0\td\tr\n")


def test_bad_input_is_exit_3_with_file_and_line(tmp_path):
    f = tmp_path / "x.tsv"
    f.write_text("ID\tv\n1\ta\n2\tb\tc\n")
    p = subprocess.run([BIN, "cluster-task", "scan", str(f)], capture_output=True, text=True)
    assert p.returncode == 3 and "x.tsv, line 3" in p.stderr
    p = subprocess.run([BIN, "cluster-task", "nope"], capture_output=True, text=True)
    assert p.returncode == 2 and "unknown step" in p.stderr


@pytest.mark.parametrize("length", [1 << 41, 100])
def test_a_damaged_frame_length_is_an_error_not_a_crash(length):
    """A frame header whose length is beyond any frame (over 2^40) or longer than
    what follows is a clear error (exit 5), not an abort."""
    frame = struct.pack("<IQ", 1, length) + b"short"
    p = subprocess.run([BIN, "cluster-task", "combine"], input=frame, capture_output=True)
    assert p.returncode == 5, (p.returncode, p.stderr)
    assert b"frame" in p.stderr


@pytest.mark.parametrize("record", [
    bytes([0, (5 << 1) | 1, 3, 2]) + b"ab",  # an ID said to be in its text, past the text's end
    bytes([0, (1 << 1) | 1, 9, 2]) + b"ab",  # its offset beyond the text
    bytes([0, (1 << 1) | 1]),                # cut short before the offset
])
def test_a_record_whose_id_points_outside_its_text_is_damaged(record):
    """A join given an x record whose ID offset or length leaves its text says the blob is
    damaged (exit 5), never reads past it."""
    args = ["join", "--x-mode", 0, "--y-mode", 0, "--ranges", 1, "--x-end", 100]
    p = subprocess.run([BIN, "cluster-task"] + [str(a) for a in args],
                       input=mj.frame(0, record) + mj.frame(1, b""), capture_output=True)
    assert p.returncode == 5 and b"the x blob is damaged" in p.stderr, (p.returncode, p.stderr)


@pytest.mark.parametrize("input_mib, parallelism, expected", [
    (373, 2, 4),  # 10^7 rows per side: 3 partitions of 128 MiB would run as a wave of 2 and one of 1
    (100, 2, 2), (0, 2, 2), (256, 2, 2), (257, 2, 4), (1000, 8, 8), (1100, 8, 16), (5, 1, 1), (300, 1, 3),
])
def test_default_partitions_fill_whole_waves_of_at_most_128_mib(input_mib, parallelism, expected):
    got = mj.default_partitions(input_mib << 20, parallelism)
    assert got == expected
    assert got % parallelism == 0 and (input_mib << 20) <= got * mj.PARTITION_BYTES


@pytest.mark.parametrize("master, one_host", [
    ("local[2]", True), ("local", True), ("local-cluster[2,1,1024]", True),
    ("spark://127.0.0.1:7077", True), ("spark://localhost:7077", True), ("spark://[::1]:7077", True),
    ("spark://127.0.0.1:7077,127.0.0.2:7078", True), ("spark://127.0.0.1:7077,10.0.0.5:7077", False),
    ("spark://10.0.0.5:7077", False), ("spark://master.example.com:7077", False), ("yarn", False),
    ("k8s://https://10.0.0.1:443", False), ("", False), ("spark://[::1:7077", False), ("spark://", False),
])
def test_shuffles_are_compressed_unless_every_executor_is_on_this_machine(master, one_host):
    assert mj.single_host_master(master) is one_host
