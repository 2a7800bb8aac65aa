#!/usr/bin/env python3
"""cloudmerge on Spark: the merge of analysis.py as a PySpark job, the same
answer as `cloudmerge merge` (rows, header, values, ID equality, and with
--ordered the script's row order).

Owns: reading TSV the way pandas' C tokenizer splits it (a Python port of
src/cloudmerge/engine/tsv_tokenizer.h), pandas' per-file ID type inference (a port of
src/cloudmerge/engine/key_types.cc), the join, and writing part files or one file.

    spark-submit spark/merge_job.py X Y -o OUT [--ordered] [--single-file]
                 [--key K | --x-key K --y-key K] [--allow-numeric-header]
                 [--stats-file STATS.json] [--s3-endpoint-url URL]

S3 outside EMR (s3://, s3a:// paths on a local Spark) goes through Hadoop's
S3A filesystem: hadoop-aws and aws-java-sdk-bundle must be on the classpath
(`cloudmerge merge --engine spark` adds them from .tools/jars), and the
endpoint comes from the AWS environment (see s3a_settings).

Threading/process contract: run() executes on the driver; the rule functions
below are pure and run inside executors' Python workers (this file is shipped
to them with addPyFile). No state is shared between tasks; per-partition
partial type scans are combined on the driver in file (partition) order.

Exit codes as cloudmerge's: 3 bad input, 2 bad options, 4 I/O; messages start
with "Error [cloudmerge spark]:".
"""
import argparse
import gzip
import ipaddress
import os
import re
import sys
import uuid
from urllib.parse import urlsplit

# ---------------------------------------------------------------------------
# pandas' ID rules (port of src/cloudmerge/engine/key_types.cc; keep the two in step).

NA_MARKERS = frozenset(["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
                        "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "n/a", "nan", "null"])
INT64_MIN, INT64_MAX, UINT64_MAX = -(1 << 63), (1 << 63) - 1, (1 << 64) - 1
OK, OVERFLOW, INVALID, NEGATIVE = 0, 1, 2, 3

_WS = "[ \t\n\x0b\x0c\r]"  # C isspace in the "C" locale, as pandas' tokenizer uses
_INT_RE = re.compile(r"%s*([+-]?)([0-9]+)(.*)\Z" % _WS, re.S)
_UINT_RE = re.compile(r"%s*(-?)\+?([0-9]+)(.*)\Z" % _WS, re.S)
_TRAIL_RE = re.compile(r"%s*\Z" % _WS)
_PLAIN_INT_RE = re.compile(r"-?[0-9]{1,18}\Z")  # fast path: always an in-range int64


def is_na(v):
    return v in NA_MARKERS


def parse_int64(v):
    """pandas' str_to_int64: (OK|OVERFLOW|INVALID, value). Overflow is found
    before trailing characters are looked at ("99999999999999999999x" overflows)."""
    m = _INT_RE.match(v)
    if not m:
        return INVALID, None
    n = int(m.group(2))
    if m.group(1) == "-":
        n = -n
    if n < INT64_MIN or n > INT64_MAX:
        return OVERFLOW, None
    if not _TRAIL_RE.match(m.group(3)):
        return INVALID, None
    return OK, n


def parse_uint64(v):
    """pandas' str_to_uint64: a leading '-' is NEGATIVE (pandas' seen_sint, no error)."""
    stripped = v.lstrip(" \t\n\x0b\x0c\r")
    if stripped.startswith("-"):
        return NEGATIVE, None
    m = _UINT_RE.match(v)
    if not m:
        return INVALID, None
    n = int(m.group(2))
    if n > UINT64_MAX:
        return OVERFLOW, None
    if not _TRAIL_RE.match(m.group(3)):
        return INVALID, None
    return OK, n


_POW10 = [float("1e%d" % k) for k in range(309)]  # the nearest doubles, as pandas' table
_SPACES = " \t\n\x0b\x0c\r"
_INF = float("inf")


def _i32(n):
    """A C int's wrap-around (pandas keeps the exponent in an int)."""
    n &= 0xFFFFFFFF
    return n - (1 << 32) if n >= (1 << 31) else n


def _infinity_word(v):
    w, neg = v, False
    if w[:1] in ("+", "-"):
        neg, w = w[0] == "-", w[1:]
    if w.isascii() and w.lower() in ("inf", "infinity"):
        return -_INF if neg else _INF
    return None


def parse_double(v):
    """pandas' float parsing, bit for bit (a port of ParseDouble in
    src/cloudmerge/engine/key_types.cc, itself pandas' precise_xstrtod): at most 17
    digits, leading zeros included, enter the mantissa, accumulated in a double;
    one multiplication or division by a power of ten; an exponent of at most 17
    digits, wrapping as a C int; exponents above 308 and infinite results fail.
    Also exactly inf/infinity (any case, optional sign). None if not a float."""
    n, p = len(v), 0
    while p < n and v[p] in _SPACES:
        p += 1
    neg = False
    if p < n and v[p] in "+-":
        neg = v[p] == "-"
        p += 1
    number, exponent, digits = 0.0, 0, 0
    while p < n and "0" <= v[p] <= "9":
        if digits < 17:
            number = number * 10.0 + (ord(v[p]) - 48)
            digits += 1
        else:
            exponent += 1
        p += 1
    if p < n and v[p] == ".":
        p += 1
        decimals = 0
        while digits < 17 and p < n and "0" <= v[p] <= "9":
            number = number * 10.0 + (ord(v[p]) - 48)
            digits += 1
            decimals += 1
            p += 1
        if digits >= 17:
            while p < n and "0" <= v[p] <= "9":
                p += 1
        exponent -= decimals
    if digits == 0:
        return _infinity_word(v)
    if neg:
        number = -number
    if p < n and v[p] in "eE":
        p += 1
        eneg = False
        if p < n and v[p] in "+-":
            eneg = v[p] == "-"
            p += 1
        edigits, e = 0, 0
        while edigits < 17 and p < n and "0" <= v[p] <= "9":
            e = e * 10 + (ord(v[p]) - 48)
            edigits += 1
            p += 1
        if edigits == 0:
            return None
        exponent = exponent - e if eneg else exponent + e
    exponent = _i32(exponent)
    if exponent > 308:
        return None
    if exponent > 0:
        number *= _POW10[exponent]
    elif exponent < -308:
        if exponent < -616:
            number = 0.0
        else:
            number /= _POW10[-308 - exponent]
            number /= _POW10[308]
    else:
        number /= _POW10[-exponent]
    if number in (_INF, -_INF):
        return None
    while p < n and v[p] in _SPACES:
        p += 1
    if p != n:
        return _infinity_word(v)
    return number


def parse_bool(v):
    if v.isascii():
        low = v.lower()
        if low == "true":
            return True
        if low == "false":
            return False
    return None


class KeyScan:
    """Running inference over one file's IDs in file order (KeyScan in C++)."""
    __slots__ = ("values", "any_na", "int_broken", "int_broken_by_overflow", "uint_error",
                 "uint_error_overflow", "seen_sint", "seen_uint", "all_float", "all_bool")

    def __init__(self):
        self.values = 0
        self.any_na = self.int_broken = self.int_broken_by_overflow = False
        self.uint_error = self.uint_error_overflow = self.seen_sint = self.seen_uint = False
        self.all_float = self.all_bool = True

    def __getstate__(self):
        return tuple(getattr(self, s) for s in self.__slots__)

    def __setstate__(self, state):
        for s, v in zip(self.__slots__, state):
            setattr(self, s, v)

    def add(self, v):
        self.values += 1
        if v in NA_MARKERS:
            self.any_na = True
            return
        if _PLAIN_INT_RE.match(v):
            self.all_bool = False
            if v[0] == "-":
                self.seen_sint = True
            return
        ip, i = parse_int64(v)
        if ip == OK:
            self.all_bool = False
            if i < 0 or "-" in v:  # "-0" too
                self.seen_sint = True
            if len(v) > 325 and self.all_float and parse_double(v) is None:
                self.all_float = False  # 300+ leading zeros: beyond pandas' exponent range as a float
            return
        if not self.int_broken:
            self.int_broken, self.int_broken_by_overflow = True, ip == OVERFLOW
        up, u = parse_uint64(v)
        if up == OK:
            if u > INT64_MAX:
                self.seen_uint = True
        elif up == NEGATIVE:
            self.seen_sint = True
        elif not self.uint_error:
            self.uint_error, self.uint_error_overflow = True, up == OVERFLOW
        if self.all_float and parse_double(v) is None:
            self.all_float = False
        if self.all_bool and parse_bool(v) is None:
            self.all_bool = False

    def append(self, later):
        """Combines with the scan of the values that follow this one's in the file."""
        self.values += later.values
        self.any_na |= later.any_na
        if not self.int_broken and later.int_broken:
            self.int_broken, self.int_broken_by_overflow = True, later.int_broken_by_overflow
        if not self.uint_error and later.uint_error:
            self.uint_error, self.uint_error_overflow = True, later.uint_error_overflow
        self.seen_sint |= later.seen_sint
        self.seen_uint |= later.seen_uint
        self.all_float &= later.all_float
        self.all_bool &= later.all_bool

    def decide(self):
        if self.values == 0:
            return "text"  # pandas: an empty column is object
        if not self.int_broken:
            return "int64"
        if self.int_broken_by_overflow:  # pandas retries as uint64
            if self.uint_error:
                if self.uint_error_overflow:
                    return "text"
            else:
                if self.seen_uint and (self.seen_sint or self.any_na):
                    return "text_raw"
                if self.seen_sint:
                    return "text"
                return "uint64"
        if self.all_float:
            return "float64"
        if self.all_bool:
            return "bool"
        return "text"


def infer(values):
    s = KeyScan()
    for v in values:
        s.add(v)
    return s.decide()


def _canonical_double(d):
    # Integral values in [-2^63, 2^64) key as integers so that 7.0 meets 7; -0.0 is 0.
    if d == d and d not in (float("inf"), float("-inf")) and d == int(d) and -(2.0 ** 63) <= d < 2.0 ** 64:
        return "n%d" % int(d)
    return "f" + d.hex()


def join_key(mode, v):
    """The normalised join key of an ID, None when missing. Numbers and texts get
    different prefixes ("n"/"f" vs "t"): a number never equals a text."""
    if mode == "text_raw":
        return "t" + v  # uint64 mixed with negatives/NAs: NA markers are literal strings
    if v in NA_MARKERS:
        return None
    if mode == "text":
        return "t" + v
    if mode == "int64" or mode == "uint64":
        if _PLAIN_INT_RE.match(v):
            return "n%d" % int(v)
        ip, i = parse_int64(v) if mode == "int64" else parse_uint64(v)
        return None if ip != OK else "n%d" % i
    if mode == "float64":
        # Integers up to 2^53 of at most 17 characters are exact doubles; longer
        # spellings go through pandas' parser ("000000000000000007" is 0.0 there).
        ip, i = (OK, int(v)) if len(v) <= 17 and _PLAIN_INT_RE.match(v) else (INVALID, None)
        if ip == OK and -(1 << 53) <= i <= (1 << 53):
            return "n%d" % i
        d = parse_double(v)
        return None if d is None else _canonical_double(d)
    if mode == "bool":
        b = parse_bool(v)
        return None if b is None else ("n1" if b else "n0")
    raise ValueError("unknown key mode " + mode)


# ---------------------------------------------------------------------------
# TSV records (port of src/cloudmerge/engine/tsv_tokenizer.h).

class InputError(Exception):
    """Bad input: reported with exit code 3."""


def needs_quoting(v):
    return "\t" in v or '"' in v or "\n" in v or "\r" in v


def encode(v):
    """A value as cloudmerge writes it: as is, or quoted with '"' doubled."""
    return '"' + v.replace('"', '""') + '"' if needs_quoting(v) else v


def tokenize(text):
    """Yields (line_number, fields) for each record of a whole file's text, as
    pandas splits it: \\n, \\r\\n or \\r ends a record, lines of spaces are skipped,
    a field starting with '"' is quoted ('""' is '"'; tabs/line breaks inside are
    data; text after the closing quote up to the next tab/line end is appended)."""
    p, n, line = 0, len(text), 1
    if text.startswith("\ufeff"):
        p = 1
    while p < n:
        q = p
        while q < n and text[q] == " ":
            q += 1
        if q == n:
            return
        if text[q] in "\r\n":
            p = q + 2 if text.startswith("\r\n", q) else q + 1
            line += 1
            continue
        start_line, fields = line, []
        while True:
            if p < n and text[p] == '"':
                field_start, buf, p = p, [], p + 1
                while True:
                    close = text.find('"', p)
                    if close < 0:
                        raise InputError("line %d: a quoted field opened at character %d of the file is never "
                                         "closed. Close it with \", or write a literal quote as \"\"."
                                         % (start_line, field_start + 1))
                    buf.append(text[p:close])
                    line += text.count("\n", p, close) + text.count("\r", p, close) - \
                        text.count("\r\n", p, close)
                    p = close + 1
                    if p < n and text[p] == '"':
                        buf.append('"')
                        p += 1
                        continue
                    break
                e = p
                while e < n and text[e] not in "\t\r\n":
                    e += 1
                buf.append(text[p:e])
                p = e
                fields.append("".join(buf))
            else:
                e = p
                while e < n and text[e] not in "\t\r\n":
                    e += 1
                fields.append(text[p:e])
                p = e
            if p < n and text[p] == "\t":
                p += 1
                continue
            break
        if p < n:
            p = p + 2 if text.startswith("\r\n", p) else p + 1
            line += 1
        yield start_line, fields


def is_blank(line):
    return line.strip(" ") == ""


# ---------------------------------------------------------------------------
# Spark side. Only this part imports pyspark (the rules above are testable without it).

ROW_BITS = 40  # line-split row ids: partition index << 40 | line index within the partition


class Table:
    """One input: header, key column, its records as an RDD of (row_id, fields)
    in file order (row ids increase with file position), and its ID type."""

    def __init__(self, path, names, key_index, records, mode, rows):
        self.path, self.names, self.key_index = path, names, key_index
        self.records, self.mode, self.rows = records, mode, rows


def _decode_whole(path, data):
    if path.endswith(".gz"):
        data = gzip.decompress(data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError("%s: byte %d is not UTF-8 (%s). Convert the file first, e.g. "
                         "iconv -f latin1 -t utf-8 in.tsv > in.utf8.tsv." % (path, e.start, e.reason))


def _whole_file_records(sc, path):
    """A file with quotes: one task tokenizes it whole (quotes may hide line
    breaks), as cloudmerge does. Row id = the record's first line number."""
    def records(item):
        return tokenize(_decode_whole(path, bytes(item[1])))
    return sc.binaryFiles(path, minPartitions=1).flatMap(records)


def _line_records(lines):
    """A quote-free file: Spark splits lines (\\n, \\r\\n, \\r) in parallel."""
    def gen(pidx, it):
        base = pidx << ROW_BITS
        for j, line in enumerate(it):
            if pidx == 0 and j == 0 and line.startswith("\ufeff"):
                line = line[1:]
            if not is_blank(line):
                yield base | j, line.split("\t")
    return lines.mapPartitionsWithIndex(gen)


def _partial_scan(key, header):
    """Per partition: (header, KeyScan of its IDs, quote seen, first bad row, rows).
    header is (row_id, names) when the driver read it, or None when the
    partition starts with it (a whole-file read); then the key is resolved here,
    and a bad key comes back as a UsageError message instead of a scan."""
    def scan(it):
        hdr, key_index = header, None
        s, quote, bad, rows = KeyScan(), False, None, 0
        for row_id, fields in it:
            if hdr is None:
                hdr = (row_id, fields)
            if key_index is None:
                try:
                    key_index = resolve_key("", hdr[1], key)
                except UsageError as e:
                    yield hdr, str(e), False, None, 0
                    return
            if row_id == hdr[0]:
                continue
            rows += 1
            if not quote:
                quote = any('"' in f for f in fields)
            if len(fields) != len(hdr[1]):
                if bad is None:
                    bad = (row_id, len(fields))
                continue
            s.add(fields[key_index])
        yield hdr, s, quote, bad, rows
    return scan


def resolve_key(path, names, key):
    if key.isdigit():
        pos = int(key)
        if 1 <= pos <= len(names):
            return pos - 1
        raise UsageError("key column %s does not exist in %s: it has %d column(s). Give a position from 1 to %d "
                         "or a column name." % (key, path, len(names), len(names)))
    if key in names:
        return names.index(key)
    raise UsageError("key column '%s' is not in the header of %s, whose columns are: %s. Names are "
                     "case-sensitive; a position (1, 2, ...) also works." % (key, path, ", ".join(
                         "'%s'" % n for n in names)))


class UsageError(Exception):
    """Bad options: exit code 2."""


def _line_number(lines, row_id):
    """Physical line number of a line-split row id (only computed for errors)."""
    pidx, j = row_id >> ROW_BITS, row_id & ((1 << ROW_BITS) - 1)
    counts = lines.mapPartitionsWithIndex(lambda i, it: [(i, sum(1 for _ in it))] if i < pidx else []).collect()
    return sum(c for _, c in counts) + j + 1


SMALL_FILE_BYTES = 16 << 20  # below this a file is read by one task: one Spark job instead of two


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


def _file_size(sc, path):
    jvm = sc._jvm
    p = jvm.org.apache.hadoop.fs.Path(path)
    try:
        return p.getFileSystem(sc._jsc.hadoopConfiguration()).getFileStatus(p).getLen()
    except Exception as e:  # noqa: BLE001 (py4j wraps java.io.FileNotFoundException)
        raise IOError("%s cannot be read: %s. Check the path (and for S3 the credentials and region)."
                      % (path, java_message(e)))


def _scan(records, key, header):
    """Runs the scan job; returns (header, combined KeyScan, quote seen, first bad row, rows)."""
    scan, quote, bad, rows, hdr = KeyScan(), False, None, 0, header
    for h, s, q, b, r in records.mapPartitions(_partial_scan(key, header)).collect():
        if h is None:
            continue  # an empty partition
        if isinstance(s, str):
            raise UsageError(s)
        hdr = hdr or h
        scan.append(s)
        quote, bad, rows = quote or q, bad or b, rows + r
    return hdr, scan, quote, bad, rows


def open_table(sc, path, key, allow_numeric_header, small_file_bytes=SMALL_FILE_BYTES):
    size = _file_size(sc, path)
    lines = sc.textFile(path)
    whole = size < small_file_bytes / (8 if path.endswith(".gz") else 1)
    if whole:
        records = _whole_file_records(sc, path)
        header, scan, quote, bad, rows = _scan(records, key, None)
    else:
        first = _line_records(lines).take(1)
        header = first[0] if first else None
        if header is not None and '"' in "".join(header[1]):
            whole, records = True, _whole_file_records(sc, path)
            header, scan, quote, bad, rows = _scan(records, key, None)
        elif header is not None:
            records = _line_records(lines)
            header, scan, quote, bad, rows = _scan(records, key, header)
            if quote:  # quotes in the body may hide line breaks: tokenize the file whole
                whole, records = True, _whole_file_records(sc, path)
                header, scan, quote, bad, rows = _scan(records, key, None)
    if header is None:
        raise InputError("%s is empty: it has no header line. The merge, like the script, needs a first line "
                         "naming the columns, e.g. ID<TAB>value, followed by the data rows." % path)
    header_id, names = header
    if all(parse_double(nm) is not None for nm in names) and not allow_numeric_header:
        raise InputError("%s, line 1: the header line holds only numbers, so the file seems to have no header and "
                         "its first data row would be lost. Add a header line such as ID<TAB>value at the top; if "
                         "these really are the column names, pass --allow-numeric-header." % path)
    key_index = resolve_key(path, names, key)
    if bad is not None:
        line = bad[0] if whole else _line_number(lines, bad[0])
        fix = ("Remove the extra tab(s), or quote a value that contains a tab (\"a<TAB>b\")." if bad[1] > len(names)
               else "Every row needs a value (possibly empty) for each column: add the missing tab-separated "
               "field(s).")
        raise InputError("%s, line %d: this row has %d field(s) but the header has %d. %s"
                         % (path, line, bad[1], len(names), fix))
    body = records.filter(lambda r: r[0] != header_id)
    return Table(path, names, key_index, body, scan.decide(), rows)


def output_header(x, y):
    if len(x.names) == 2 and len(y.names) == 2 and x.key_index == 0 and y.key_index == 0:
        return "ID_x\tvalue_x\tvalue_y"
    cols = [encode(n + "_x") for n in x.names]
    cols += [encode(n + "_y") for i, n in enumerate(y.names) if i != y.key_index]
    return "\t".join(cols)


def keyed_frame(spark, t, side):
    """DataFrame (k, <side>r, <side>p): join key, row id, encoded output text
    (all columns for x, all but the key for y). Missing IDs are dropped here."""
    from pyspark.sql.types import LongType, StringType, StructField, StructType
    mode, ki = t.mode, t.key_index

    def row(r):
        row_id, fields = r
        k = join_key(mode, fields[ki])
        if k is None:
            return []
        kept = fields if side == "x" else fields[:ki] + fields[ki + 1:]
        return [(k, row_id, "\t".join(encode(f) for f in kept))]

    schema = StructType([StructField("k", StringType(), False), StructField(side + "r", LongType(), False),
                         StructField(side + "p", StringType(), False)])
    return spark.createDataFrame(t.records.flatMap(row), schema)


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


def merge(spark, x_path, y_path, out, ordered=True, single_file=False, x_key="1", y_key="1",
          allow_numeric_header=False, small_file_bytes=SMALL_FILE_BYTES):
    """The merge; returns a dict of statistics. Raises InputError/UsageError/IOError.
    small_file_bytes: files below it are read by one task (tests lower it to 0
    to run the parallel line-split path on small files)."""
    from pyspark.sql import functions as F
    sc = spark.sparkContext
    x_path, y_path, out = (to_hadoop_uri(sc, p) for p in (x_path, y_path, out))
    require_s3a(sc, (x_path, y_path, out))
    x = open_table(sc, x_path, x_key, allow_numeric_header, small_file_bytes)
    y = open_table(sc, y_path, y_key, allow_numeric_header, small_file_bytes)
    xf, yf = keyed_frame(spark, x, "x"), keyed_frame(spark, y, "y")
    joined = xf.join(yf, "k")
    line = F.col("xp") if len(y.names) == 1 else F.concat(F.col("xp"), F.lit("\t"), F.col("yp"))
    body = joined.select("xr", "yr", line.alias("value"))
    if ordered:
        body = body.orderBy("xr", "yr")
    # The output row count, aggregated in the JVM as the rows are written (no
    # second pass). Observed after the sort: the sort's sampling job would
    # otherwise count the rows twice.
    from pyspark.sql import Observation
    observed = Observation("cloudmerge-" + uuid.uuid4().hex)  # unique: merges may run concurrently
    body = body.observe(observed, F.count(F.lit(1)).alias("output_rows"))
    header = spark.createDataFrame([(output_header(x, y),)], "value string")
    result = header.union(body.select("value"))  # union keeps partition order: part-00000 is the header
    target = out + ".parts-" + uuid.uuid4().hex[:8] if single_file else out
    result.write.mode("errorifexists").option("lineSep", "\n").text(target)
    if single_file:
        concat_parts(sc, target, out)
    return {"x_rows": x.rows, "y_rows": y.rows, "x_mode": x.mode, "y_mode": y.mode,
            "output_rows": int(observed.get.get("output_rows", -1))}


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
    from pyspark.sql import SparkSession
    b = SparkSession.builder.appName(app_name)
    if master:
        b = b.master(master)
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
                      allow_numeric_header=a.allow_numeric_header)
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
    except Exception as e:  # noqa: BLE001 - Spark/Hadoop I/O failures surface as Py4J/analysis errors
        msg = str(e).split("\n")[0]
        if "AlreadyExists" in msg or "already exists" in msg:
            print("Error [cloudmerge spark]: the output %s already exists. Remove it or choose another -o."
                  % a.output, file=sys.stderr)
            return 4
        if isinstance(e, IOError):  # ours (_file_size): names the path and the cause
            print("Error [cloudmerge spark]: %s" % e, file=sys.stderr)
            return 4
        msg = java_message(e)
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
