#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/<harness>/ from the shared conformance
cases (../shared/conformance/cases/*/{x,y}.tsv), tests/e2e/data and a few
hand-written documents. Run once when seeds change; the output is committed.
Files are named by content hash, so re-running is idempotent; regression inputs
(crashes found and fixed) live beside them under names starting 'regress-'."""
import hashlib
import pathlib

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
        '{"recipients":"a@example.org","any_order":"yes"}', '{"output":"a/b\\u0000c"}',
    ]:
        put("job_spec", spec)


def key_seeds():
    for key in ["exp42/x_list.txt", "2026/nov/run1/y_list.txt.gz", "a/../b", "../x", "/abs", "a//b",
                "a/./b", "a\\b", "a\x01b", "..", "...", "a/..", "a/b/", "a" * 1100, "ok/.._/x", "\x7f",
                "\u00e9t\u00e9/x_list.txt"]:
        put("check_key", key)
        put("job_spec", key)


if __name__ == "__main__":
    tsv_seeds()
    xml_seeds()
    json_seeds()
    key_seeds()
    for d in sorted(OUT.iterdir()):
        print(f"{d.name}: {len(list(d.iterdir()))} files")
