#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/<harness>/ from the shared conformance
cases (../shared/conformance/cases/*/{x,y}.tsv), tests/e2e/data and a few
hand-written documents. Run once when seeds change; the output is committed.
Files are named by content hash, so re-running is idempotent; regression inputs
(crashes found and fixed) live beside them under names starting 'regress-'."""
import hashlib
import pathlib
import struct
import subprocess

ROOT = pathlib.Path(__file__).resolve().parent.parent
CASES = ROOT.parent / "shared" / "conformance" / "cases"
DATA = ROOT / "tests" / "e2e" / "data"
OUT = ROOT / "fuzz" / "corpus"
MAX_BYTES = 2048  # small seeds: the fuzzer mutates them many times a second


def put(harness, data):
    if isinstance(data, str):
        data = data.encode()
    d = OUT / harness
    d.mkdir(parents=True, exist_ok=True)
    (d / ("seed-" + hashlib.sha1(data).hexdigest()[:16])).write_bytes(data[:MAX_BYTES])


def id_column(tsv):
    return b"\n".join(line.split(b"\t")[0] for line in tsv.splitlines()[1:])


def tsv_seeds():
    for case in sorted(CASES.iterdir())[:40]:
        x, y = (case / "x.tsv").read_bytes(), (case / "y.tsv").read_bytes()
        put("tokenizer", x)
        put("key_types", b"\x00" + id_column(x))
        put("merge", x[:1000] + b"\xff\xfe" + y[:1000])


def xml_seeds():
    ns = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
    for doc in [
        "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>",
        "<Error><Code>AuthorizationHeaderMalformed</Code><Region>eu-west-1</Region></Error>",
        "<Error><Code>PermanentRedirect</Code><Endpoint>b.s3.eu-west-1.amazonaws.com</Endpoint></Error>",
        f"<InitiateMultipartUploadResult {ns}><Bucket>b</Bucket><Key>k</Key><UploadId>abc</UploadId>"
        "</InitiateMultipartUploadResult>",
        f"<ListBucketResult {ns}><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
        "<NextContinuationToken>t1</NextContinuationToken><Contents><Key>a%2Fb+c%zz%4</Key><Size>12</Size>"
        "<ETag>\"e1\"</ETag></Contents><Contents><Key>x</Key><Size>99999999999999999999</Size></Contents>"
        "</ListBucketResult>",
        f"<ListMultipartUploadsResult {ns}><EncodingType>url</EncodingType><Upload><Key>k%20</Key>"
        "<UploadId>u</UploadId></Upload><IsTruncated>false</IsTruncated><NextKeyMarker>m</NextKeyMarker>"
        "</ListMultipartUploadsResult>",
        "<CompleteMultipartUploadResult><ETag>\"x-2\"</ETag></CompleteMultipartUploadResult>",
        "<CopyObjectResult><ETag>&quot;e&quot;</ETag><LastModified>2026-01-01T00:00:00Z</LastModified>"
        "</CopyObjectResult>",
        "<?xml version=\"1.0\"?><!DOCTYPE a [<!ENTITY b \"bb\">]><Error><Code>&b;</Code></Error>",
    ]:
        put("s3_xml", doc)


def json_seeds():
    for f in sorted(DATA.glob("*.json")):
        put("events", f.read_bytes())
    put("events", '{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}')
    put("events", '{"Type":"Notification","Message":"{\\"Records\\":[]}"}')
    put("events", '{"Records":[{"EventSource":"aws:sns","Sns":{"Message":"{}"}}]}')
    put("events", '{"Records":[{"eventSource":"aws:sqs","body":"[1,2]"}, 5, "x"]}')
    put("events", '{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put",'
                  '"s3":{"bucket":{"name":"b"},"object":{"key":"a%2F..%2Fb+c","size":-1}}}]}')
    for spec in [
        '{"key":"ID","output":"merged.tsv","any_order":true,"recipients":["a@example.org"]}',
        '{"x_key":"2","y_key":"gene","engine":"native"}',
        '{"engine":"command","command":["python3","analysis.py","{x}","{y}","{out}"]}',
        '{"engine":"command","command":[]}', '{"output":"../../etc/passwd"}', '[]', '{"key":1}',
        '{"engine":"command","command":"v2"}', '{"output":"report.html"}', '{"output":"_state"}',
        '{"recipients":"a@example.org","any_order":"yes"}', '{"output":"a/b\\u0000c"}',
    ]:
        put("job_spec", spec)


def key_seeds():
    for key in ["exp42/x_list.txt", "2026/nov/run1/y_list.txt.gz", "a/../b", "../x", "/abs", "a//b",
                "a/./b", "a\\b", "a\x01b", "..", "...", "a/..", "a/b/", "a" * 1100, "ok/.._/x", "\x7f",
                "\u00e9t\u00e9/x_list.txt"]:
        put("check_key", key)
        put("job_spec", key)


def spill_frame(raw, records, flags=None, raw_length=None, reserved=b"\0\0\0"):
    """One spill block (docs/spill-format.md) with a zero checksum: the
    spill_reader harness recomputes checksums when its mode byte is odd. flags
    None: zstd (the zstd command, level 1) when that saves an eighth, as the
    writer does; otherwise the stored bytes are `raw` as given."""
    stored = raw
    if flags is None:
        flags = 0
        if raw:
            # --stream-size: the frame records its content size, as the writer's (and the reader demands).
            z = subprocess.run(["zstd", "-1", "-q", "-c", "--no-check", f"--stream-size={len(raw)}"], input=raw,
                               stdout=subprocess.PIPE, check=True).stdout
            if len(z) * 8 < len(raw) * 7:
                stored, flags = z, 1
    if raw_length is None:
        raw_length = len(raw)
    return (b"CMSB" + bytes([flags]) + reserved + struct.pack("<III", len(stored), raw_length, records)
            + b"\0" * 8 + stored)


def partition_records(rows):
    """Partition-file records: (position, key, text), see docs/spill-format.md."""
    return b"".join(struct.pack("<QII", pos, len(k), len(t)) + k + t for pos, k, t in rows)


def spill_seeds():
    rows = [((u << 40) | i, b"id%d" % (i % 7), b"id%d\tvalue %d\tgene%d" % (i % 7, i, i * 31)) for u in range(2)
            for i in range(40)]
    small, big = partition_records(rows[:3]), partition_records(rows)
    run = b"".join(struct.pack("<QQI", i, 1000 + i, 9) + b"a\tb\tc\td\te" for i in range(30))
    repaired = [
        b"",
        spill_frame(small, 3),
        spill_frame(big, len(rows)),
        spill_frame(run, 30),
        spill_frame(small, 3) + spill_frame(b"", 5) + spill_frame(big, len(rows)),
        spill_frame(big, len(rows))[:60],  # truncated
        spill_frame(small, 3, flags=2),  # unknown flags
        spill_frame(small, 3, reserved=b"\0\1\0"),
        spill_frame(big, len(rows))[:28] + b"\0" * 8,  # stored length beyond the end
        spill_frame(small, 3, flags=1),  # "compressed" but not a zstd frame
        spill_frame(big, len(rows), raw_length=17),  # decompresses to another size
        spill_frame(small, 3) + b"CMS",  # trailing garbage
    ]
    for f in repaired:
        put("spill_reader", b"\x01" + f)
    for f in [spill_frame(small, 3), b"XXXX" + spill_frame(small, 3)[4:], b"\0" * 40]:
        put("spill_reader", b"\x00" + f)  # checksums left wrong


if __name__ == "__main__":
    tsv_seeds()
    xml_seeds()
    json_seeds()
    key_seeds()
    spill_seeds()
    for d in sorted(OUT.iterdir()):
        print(f"{d.name}: {len(list(d.iterdir()))} files")
