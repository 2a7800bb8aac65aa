"""Random TSV pairs for differential testing against the script (the oracle).

Each family stresses one of the script's rules: numeric vs text key files,
leading zeros, int vs float, exponents, NA markers, booleans, 64-bit integers,
uint64, infinities, padded numbers, quoting, CRLF, blank lines, UTF-8. The
inputs stay within what the script handles the same way by design: rows have
as many fields as the header, headers are names, and integers beyond 2^53
only appear where pandas compares them exactly (see README, deviations).
"""
import random

NA = ["", "NA", "NaN", "nan", "null", "NULL", "N/A", "n/a", "<NA>", "#N/A", "-nan", "1.#QNAN"]
TEXT_WORDS = ["A", "a", "A ", " A", "b", "G001", "g001", "Ωmega", "日本", "x y", "1a", "0x10", "NAN",
              "inf ", "True ", "-", "+", ".", "1e", "1,0", "K001", "K01"]


def key_pool(rng, family):
    small = [str(i) for i in range(-3, 12)]
    if family == "int":
        return small
    if family == "zeros":
        return ["7", "007", "08", "8", "+8", " 7", "7 ", "0", "-0", "00"]
    if family == "float":
        return ["1", "1.0", "1.5", "2", "2.0", "2.50", "1e0", "1E1", "10", ".5", "0.5", "5.", "-0.0", "0", "1e-400"]
    if family == "text":
        return TEXT_WORDS + small[:4]
    if family == "bool":
        return ["True", "False"]
    if family == "bool_vs_int":
        return ["True", "False"] if rng.random() < 0.5 else ["0", "1", "2"]
    if family == "bigint":
        base = 2 ** 62
        return [str(base + d) for d in range(4)] + ["12", "-9223372036854775808", "9223372036854775807"]
    if family == "uint64":
        return [str(2 ** 63 + d) for d in range(3)] + [str(2 ** 64 - 1), "5", "9223372036854775807"]
    if family == "overflow":
        return ["18446744073709551616", "99999999999999999999", "1", "2"]
    if family == "inf":
        return ["inf", "-inf", "Infinity", "INF", "1", "2.5", "-Infinity", "+inf"]
    if family == "mixed":
        return small[:5] + ["x", "1.0"]
    raise ValueError(family)


FAMILIES = ["int", "zeros", "float", "text", "bool", "bool_vs_int", "bigint", "uint64", "overflow", "inf", "mixed"]


def encode(value, rng, force_quote=False):
    if force_quote or any(c in value for c in '\t"\n\r') or (value and rng.random() < 0.05):
        return '"' + value.replace('"', '""') + '"'
    return value


def value_cell(rng, numeric_values):
    r = rng.random()
    if r < 0.08:
        return rng.choice(NA)
    if numeric_values:
        return rng.choice([str(rng.randint(-50, 50)), f"{rng.uniform(-100, 100):.3f}", "1e3", "007"])
    return rng.choice(["a", "b c", 'say "hi"', "tab\there", "line\nbreak", "Ωmega", "", "x" * rng.randint(1, 20),
                       "0.500", "1e5", "TrueX"])


def make_file(rng, family, numeric_values, n_rows, ncols=2, text_values=False):
    pool = key_pool(rng, family)
    allow_na = family not in ("bigint", "uint64")  # NA would make pandas upcast big ints to float
    lines = []
    header = ["ID", "value"] if ncols == 2 else ["ID"] + [f"c{i}" for i in range(1, ncols)]
    if rng.random() < 0.3:
        header = [rng.choice(["gene", "name", "id", "Key"])] + [f"v{i}" for i in range(1, ncols)]
    lines.append("\t".join(header))
    for row in range(n_rows):
        if family == "uint64" and row == 0:
            key = str(2 ** 63)  # makes the file uint64 for sure (numpy compares uint64 with int64 via float64)
        elif allow_na and rng.random() < 0.08:
            key = rng.choice(NA)
        else:
            key = rng.choice(pool)
        if text_values:  # a text value column keeps the row an object row: IDs stay exact integers
            values = [rng.choice(["a", "b c", "Ωmega", "x" * rng.randint(1, 9)]) for _ in range(ncols - 1)]
        else:
            values = [value_cell(rng, numeric_values) for _ in range(ncols - 1)]
        cells = [encode(key, rng)] + [encode(v, rng) for v in values]
        lines.append("\t".join(cells))
        if rng.random() < 0.05:
            lines.append(rng.choice(["", "   "]))  # blank lines are skipped
    eol = rng.choice(["\n", "\n", "\r\n"])
    text = eol.join(lines)
    if rng.random() < 0.8:
        text += eol
    return text


def make_pair(seed):
    rng = random.Random(seed)
    fam_x = rng.choice(FAMILIES)
    fam_y = fam_x if rng.random() < 0.7 else rng.choice(FAMILIES)
    if fam_x == "bool_vs_int":
        fam_y = "bool_vs_int"
    # numpy compares a uint64 ID with an int64 ID through float64 (2^63+2 == 2^63-1
    # there); cloudmerge compares exactly (documented deviation): keep such pairs apart.
    if {fam_x, fam_y} == {"bigint", "uint64"}:
        fam_y = fam_x
    # Numeric values on both sides make the script compare IDs as float64, which
    # is exact only below 2^53: keep values textual for the big-integer families.
    big = {"bigint", "uint64"} & {fam_x, fam_y}
    numeric_values = (not big) and rng.random() < 0.3
    x = make_file(rng, fam_x, numeric_values, rng.randint(0, 14), text_values=bool(big))
    y = make_file(rng, fam_y, numeric_values, rng.randint(0, 14), text_values=bool(big))
    return x, y
