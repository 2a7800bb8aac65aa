"""spark/merge_job.py's port of pandas' ID rules and tokenizer, checked with the
same expectations as the C++ reference (tests/unit/key_types_test.cc, observed
with pandas 1.5.3) and against pandas itself on the tokenizer. No Spark needed."""
import sys

import pytest

from conftest import ROOT, load_oracle

sys.path.insert(0, str(ROOT / "spark"))
import merge_job as mj  # noqa: E402

INFER = [
    (["1", "007", " 7 ", "+5", "-0"], "int64"), (["1", "NA"], "int64"), (["\f1", "1\v"], "int64"),
    (["1", "2.5"], "float64"), ([".5", "5.", "1E5", "1e+5", "1e-400"], "float64"),
    (["inf", "-Infinity", "+INF", "iNf"], "float64"), (["1.8e308"], "text"), (["inf "], "text"),
    (["1e"], "text"), (["1d5"], "text"), (["0x10"], "text"), (["1,000"], "text"), (["1_000"], "text"),
    (["NAN"], "text"), (["1. 5"], "text"),
    (["True", "FALSE", "tRue"], "bool"), (["True", "NA"], "bool"), (["True", "1"], "text"), ([" True"], "text"),
    (["18446744073709551615", "1"], "uint64"), (["9223372036854775808"], "uint64"),
    (["-9223372036854775808"], "int64"), (["-9223372036854775809"], "text"),
    (["18446744073709551616", "1"], "text"), (["1.5", "18446744073709551616"], "float64"),
    (["18446744073709551616", "1.5"], "text"), (["-1", "18446744073709551615", "1.5"], "float64"),
    (["18446744073709551615", "-1"], "text_raw"), (["NA", "18446744073709551615"], "text_raw"),
    (["-1", "9223372036854775808"], "text_raw"), (["-abc", "18446744073709551615", "NA"], "text"),
    (["99999999999999999999x"], "text"), (["1", "X"], "text"), ([" ", "1"], "text"), ([], "text"),
    (["٣"], "text"),  # a non-ASCII digit is not a number for pandas' C parser
]


@pytest.mark.parametrize("values,mode", INFER)
def test_inference_matches_cpp_reference(values, mode):
    assert mj.infer(values) == mode


def test_append_is_file_order():
    a, b = mj.KeyScan(), mj.KeyScan()
    a.add("18446744073709551616")
    b.add("1.5")
    ab = mj.KeyScan()
    ab.append(a)
    ab.append(b)
    ba = mj.KeyScan()
    ba.append(b)
    ba.append(a)
    assert (ab.decide(), ba.decide()) == ("text", "float64")


def test_na_markers_exactly_pandas_defaults():
    for v in ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
              "N/A", "NA", "NULL", "NaN", "n/a", "nan", "null"]:
        assert mj.is_na(v), v
    for v in [" ", " NA", "na", "Null", "NAN", "None", "none", "1"]:
        assert not mj.is_na(v), v


def test_numeric_keys():
    k = mj.join_key
    assert k("int64", "007") == k("float64", "7.0") == k("float64", "7e0")
    assert k("float64", "1e3") == k("int64", "1000")
    assert k("float64", "-0.0") == k("int64", "0")
    assert k("bool", "True") == k("int64", "1") and k("bool", "false") == k("float64", "0.0")
    assert k("uint64", "5") == k("int64", "5")
    assert k("float64", "inf") == k("float64", "Infinity") != k("float64", "-inf")
    assert k("int64", "9007199254740993") != k("int64", "9007199254740992")  # exact 64-bit integers
    assert k("uint64", "9223372036854775809") != k("int64", "9223372036854775807")
    assert k("float64", "9007199254740993") == k("int64", "9007199254740992")  # pandas' float rounding
    assert k("float64", "1.5") != k("float64", "1.25")
    assert k("int64", "-1") != k("uint64", "18446744073709551615")
    assert k("float64", "NaN") is None and k("int64", "") is None and k("text", "NA") is None
    assert k("text_raw", "NA") == k("text_raw", "NA") is not None
    assert k("text", "7") != k("int64", "7")  # a number never equals a text


TOKENIZE = [
    "ID\tvalue\n1\ta\n", "ID\tvalue\r\n1\ta\r\n\r\n  \r\n2\tb", "ID\tvalue\r1\ta\r2\tb\r",
    'ID\tvalue\n"a\tb"\t"x ""y"""\n"multi\nline"\tq\n', 'ID\tvalue\n"ab"cd\t"e"\n', 'ID\tv\na"b\tc\n',
    "\ufeffID\tvalue\n1\t2\n", "ID\tvalue\n \t1\n",
]


@pytest.mark.parametrize("text", TOKENIZE)
def test_tokenizer_agrees_with_pandas(text, tmp_path):
    import pandas as pd
    p = tmp_path / "t.tsv"
    p.write_bytes(text.encode())
    df = pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False)
    records = [f for _, f in mj.tokenize(text)]
    assert records[0] == list(df.columns)
    assert records[1:] == df.values.tolist()


def test_encode_quotes_only_when_needed():
    assert mj.encode("a b") == "a b"
    assert mj.encode('say "hi"') == '"say ""hi"""'
    assert mj.encode("t\tx") == '"t\tx"' and mj.encode("l\nx") == '"l\nx"'


# pandas' float parser (precise_xstrtod), as tests/unit/key_types_test.cc PandasFloat.*;
# tests/e2e/test_float_parity.py compares parse_double with pandas on random spellings.
PANDAS_FLOATS = [
    ("10.357019999999999", "0x1.4b6cb5350092dp+3"), ("10.35702", "0x1.4b6cb5350092dp+3"),
    ("0.30000000000000004", "0x1.3333333333333p-2"), ("0.3", "0x1.3333333333333p-2"),
    ("1e-307", "0x1.1fa182c40c60ep-1020"), ("1.0000000000000000e-307", "0x1.1fa182c40c60dp-1020"),
    ("000000000000000007", "0x0.0p+0"), ("00000000000000007", "0x1.c000000000000p+2"),
    ("9223372036854775807", "0x1.0000000000001p+63"), ("1e4294967297", "0x1.4000000000000p+3"),
    ("0e400", None), ("1e309", None), ("1.8e308", None), ("1e0000000000000000001", None), ("1e", None),
    ("1e-700", "0x0.0p+0"), (" \f5.\v ", "0x1.4000000000000p+2"), ("-.5", "-0x1.0000000000000p-1"),
]


@pytest.mark.parametrize("spelling,value", PANDAS_FLOATS)
def test_parse_double_is_pandas(spelling, value):
    d = mj.parse_double(spelling)
    assert (None if d is None else d.hex()) == value


def test_float_keys_are_pandas_values():
    k = mj.join_key
    assert k("float64", "10.357019999999999") == k("float64", "10.35702")  # the repros
    assert k("float64", "0.3") == k("float64", "0.30000000000000004")
    assert k("float64", "000000000000000007") == k("int64", "0")
    assert k("float64", "1e-307") != k("float64", "1.0000000000000000e-307")
    assert mj.infer(["1.5", "0e400"]) == "text"
    assert mj.infer(["1.5", "0" * 330 + "7"]) == "text" and mj.infer(["0" * 330 + "7"]) == "int64"
