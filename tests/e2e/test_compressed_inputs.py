"""Local .gz and .zst inputs are decoded as they are read; a damaged or
truncated stream and a decompression bomb get clear errors and no output."""
import gzip
import subprocess

from conftest import CASES, oracle_agrees, run_merge


def compress(path, dest, kind):
    if kind == "gz":
        dest.write_bytes(gzip.compress(path.read_bytes()))
    else:
        subprocess.run(["zstd", "-q", "-f", str(path), "-o", str(dest)], check=True)
    return dest


def test_every_case_compressed(oracle, tmp_path):
    failures = []
    for i, case in enumerate(CASES):
        kx, ky = ("gz", "zst") if i % 2 else ("zst", "gz")
        x = compress(case / "x.tsv", tmp_path / f"{case.name}_x.tsv.{kx}", kx)
        y = compress(case / "y.tsv", tmp_path / f"{case.name}_y.tsv.{ky}", ky)
        out = tmp_path / f"{case.name}.tsv"
        run_merge(x, y, "-o", out)
        if not oracle_agrees(oracle, case / "expected.tsv", out):
            failures.append(case.name)
    assert not failures


def test_multi_member_gzip(oracle, tmp_path):
    case = next(c for c in CASES if c.name == "many_to_many")
    raw = (case / "x.tsv").read_bytes()
    cut = raw.index(b"\n", len(raw) // 2) + 1
    x = tmp_path / "x.tsv.gz"
    x.write_bytes(gzip.compress(raw[:cut]) + gzip.compress(raw[cut:]))  # what `cat a.gz b.gz` gives
    run_merge(x, case / "y.tsv", "-o", tmp_path / "o.tsv")
    assert oracle_agrees(oracle, case / "expected.tsv", tmp_path / "o.tsv")


def test_truncated_gzip_is_an_error(tmp_path):
    case = next(c for c in CASES if c.name == "random_1_000")
    data = gzip.compress((case / "x.tsv").read_bytes())
    x = tmp_path / "x.tsv.gz"
    x.write_bytes(data[: len(data) // 2])
    proc = run_merge(x, case / "y.tsv", "-o", tmp_path / "o.tsv", check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 3, err
    assert "x.tsv.gz" in err and "damaged" in err and "gzip -t" in err, err
    assert not (tmp_path / "o.tsv").exists()


def test_decompression_bomb_is_bounded(tmp_path):
    x = tmp_path / "bomb.tsv.gz"
    x.write_bytes(gzip.compress(b"ID\tvalue\n" + b"1\t" + b"0" * (50 << 20) + b"\n"))
    assert x.stat().st_size < 200_000
    proc = run_merge(x, x, "-o", tmp_path / "o.tsv", "--max-decompressed-size", "10MiB", check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 3, err
    assert "bomb.tsv.gz" in err and "more than 10485760 bytes" in err and "--max-decompressed-size" in err, err
    assert not (tmp_path / "o.tsv").exists()
