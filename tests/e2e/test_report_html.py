"""report.html and the emails' links. `serve --local --once` runs jobs; the page
beside report.json is checked against pandas itself (the previews are what the
script's print(df) shows), for HTML escaping (values and job names holding
<script> and &), an empty and a huge result, the cost arithmetic with
overridden prices; the success email links report.html and the result
(file:// locally; presigned S3 URLs in queue mode against moto, fetched
without credentials); the failure email says where the logs are. About 25 s."""
import email
import html.parser
import json
import re
import shutil
import subprocess
import urllib.parse
import urllib.request

import pandas as pd
import pytest

from conftest import BIN, CASES
from s3_server import s3  # noqa: F401  (fixture)
from test_serve_queue import pipeline, serve as serve_queue, smtp  # noqa: F401  (fixtures, helper)

CASE = {c.name: c for c in CASES}
EVIL = "<script>alert(1)</script>&amp;"


class Page(html.parser.HTMLParser):
    """The elements and text of a page, as a browser's parser sees them."""

    def __init__(self, text):
        super().__init__()
        self.tags, self.text, self.pres, self._pre = [], [], [], None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "pre":
            self._pre = ""

    def handle_endtag(self, tag):
        if tag == "pre":
            self.pres.append(self._pre)
            self._pre = None

    def handle_data(self, data):
        self.text.append(data)
        if self._pre is not None:
            self._pre += data


def serve_once(root, *args, env=None):
    proc = subprocess.run([BIN, "serve", "--local", str(root), "--once", *args], capture_output=True, timeout=120,
                          env=env)
    return proc


def add_job(root, job, x, y):
    d = root / "input" / job
    d.mkdir(parents=True)
    (d / "x_list.txt").write_text(x)
    (d / "y_list.txt").write_text(y)
    return d


def mail_text(root, kind):
    (path,) = sorted((root / "outbox").glob(f"*-{kind}.eml"))
    msg = email.message_from_bytes(path.read_bytes())
    parts = {p.get_content_type(): p.get_payload(decode=True).decode() for p in msg.walk()
             if p.get_content_type().startswith("text/")}
    return parts["text/plain"], parts["text/html"]


def test_report_previews_match_pandas_and_states_the_run(tmp_path):
    case = CASE["many_to_many"]
    d = tmp_path / "input" / "exp1"
    d.mkdir(parents=True)
    shutil.copy(case / "x.tsv", d / "x_list.txt")
    shutil.copy(case / "y.tsv", d / "y_list.txt")
    proc = serve_once(tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    out = tmp_path / "output" / "exp1"
    report = json.loads((out / "report.json").read_text())
    page = Page((out / "report.html").read_text())
    # Self-contained: no script, no external stylesheet, image or frame.
    assert not [t for t, a in page.tags if t in ("script", "link", "img", "iframe")]
    assert not [a for t, a in page.tags if "src" in a or "href" in a]
    expected = [pd.read_csv(p, sep="\t").head(10).to_string() for p in (d / "x_list.txt", d / "y_list.txt",
                                                                         out / "merged.tsv")]
    assert page.pres == expected
    text = " ".join(page.text)
    for phase in ("scan_y", "build", "scan_x", "probe_and_write"):
        assert phase in text
    assert report["version"] in text and "native" in text
    assert f"{report['rows']['output']} (x: {report['rows']['x']}, y: {report['rows']['y']})" in text
    assert "not measured" in text  # matches per ID: the engine does not count them
    assert "us-east-1" in text and "0.0000166667" in text


def test_values_and_job_names_are_escaped(tmp_path):
    job = "a&b<script>alert(1)</script>"
    add_job(tmp_path, job, f"ID\tvalue\n1\t{EVIL}\n2\t\"q\"\"uote\"\n", "ID\tvalue\n1\t<marquee>y</marquee>\n")
    assert serve_once(tmp_path).returncode == 0
    raw = (tmp_path / "output" / job / "report.html").read_text()
    page = Page(raw)
    assert not [t for t, a in page.tags if t in ("script", "marquee")]
    text = "".join(page.text)
    assert job in text and "<script>alert(1)</script>&amp;" in text and "<marquee>y</marquee>" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&amp;amp;" in raw


def test_empty_result(tmp_path):
    add_job(tmp_path, "none", "ID\tvalue\n1\ta\n", "ID\tvalue\n2\tb\n")
    assert serve_once(tmp_path).returncode == 0
    page = Page((tmp_path / "output" / "none" / "report.html").read_text())
    result_pre = page.pres[2]
    assert result_pre == pd.read_csv(tmp_path / "output" / "none" / "merged.tsv", sep="\t").to_string()
    assert "Empty DataFrame" in result_pre


def test_huge_result_shows_a_preview_only(tmp_path):
    n_x, n_y = 1500, 200  # one shared ID: 300 000 result rows
    x = "ID\tvalue\n" + "".join(f"7\tx{i}\n" for i in range(n_x))
    y = "ID\tvalue\n" + "".join(f"7\ty{i}\n" for i in range(n_y))
    add_job(tmp_path, "big", x, y)
    assert serve_once(tmp_path).returncode == 0
    out = tmp_path / "output" / "big"
    assert out.joinpath("merged.tsv").stat().st_size > 3_000_000
    raw = out.joinpath("report.html").read_text()
    assert len(raw) < 30_000
    assert f"first 10 of {n_x * n_y} rows" in raw
    assert "result rows per x row (mean)</th><td>200.000" in raw


def test_cost_uses_the_configured_prices(tmp_path):
    case = CASE["basic_int"]
    d = tmp_path / "input" / "priced"
    d.mkdir(parents=True)
    shutil.copy(case / "x.tsv", d / "x_list.txt")
    shutil.copy(case / "y.tsv", d / "y_list.txt")
    env = {"PATH": "/usr/bin:/bin", "CLOUDMERGE_PRICE_LAMBDA_GB_SECOND": "2", "CLOUDMERGE_PRICE_S3_GET_PER_1000": "1000"}
    proc = serve_once(tmp_path, "--lambda-memory-mb", "2048", "--price-s3-put-1000", "3000", env=env)
    assert proc.returncode == 0, proc.stderr.decode()
    report = json.loads((tmp_path / "output" / "priced" / "report.json").read_text())
    c = report["cost"]
    assert c["prices"]["lambda_gb_second"] == 2 and c["prices"]["s3_put_per_1000"] == 3000
    assert c["lambda_gb_seconds"] == pytest.approx(2 * report["seconds"])
    assert c["usd"]["lambda_compute"] == pytest.approx(4 * report["seconds"])
    assert c["usd"]["s3_get"] == pytest.approx(c["s3_get_requests"]) and c["s3_get_requests"] >= 2
    assert c["usd"]["s3_put"] == pytest.approx(3 * c["s3_put_requests"])
    assert c["usd"]["total"] == pytest.approx(sum(v for k, v in c["usd"].items() if k != "total"))
    page = (tmp_path / "output" / "priced" / "report.html").read_text()
    assert "$2 per GB-s" in page and "2048 MB" in page


def test_success_email_links_the_report_and_result(tmp_path):
    job = "exp 2#&"
    add_job(tmp_path, job, "ID\tvalue\n1\ta\n", "ID\tvalue\n1\tb\n")
    assert serve_once(tmp_path).returncode == 0
    text, html_part = mail_text(tmp_path, "succeeded")
    links = re.findall(r"file://\S+", text)
    targets = {urllib.parse.unquote(urllib.parse.urlparse(l).path) for l in links}
    out = tmp_path / "output" / job
    assert targets == {str(out / "report.html"), str(out / "merged.tsv")}
    hrefs = [a["href"] for t, a in Page(html_part).tags if t == "a"]
    assert sorted(hrefs) == sorted(links)
    assert "valid for 7 days" in text


def test_failure_email_says_where_the_logs_are(tmp_path):
    add_job(tmp_path, "bad", "ID\tvalue\n1\t<i>a</i>\tb\n", "ID\tvalue\n1\tb\n")
    proc = serve_once(tmp_path)
    assert proc.returncode == 0
    text, _ = mail_text(tmp_path, "failed")
    assert "line 2" in text and "of worker " in text
    page = Page((tmp_path / "output" / "bad" / "report.html").read_text())
    assert not [t for t, a in page.tags if t == "i"] and "<i>a</i>" in "".join(page.text)

    other = tmp_path / "lambda"
    add_job(other, "bad", "ID\tvalue\n1\ta\tb\n", "ID\tvalue\n1\tb\n")
    env = {"PATH": "/usr/bin:/bin", "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/cloudmerge",
           "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/24/[$LATEST]abc"}
    assert serve_once(other, env=env).returncode == 0
    text, _ = mail_text(other, "failed")
    assert "log group /aws/lambda/cloudmerge, log stream 2026/11/24/[$LATEST]abc" in text


def test_queue_mode_emails_presigned_links(s3, pipeline, smtp):  # noqa: F811
    p = pipeline
    case = CASE["many_to_many"]
    s3.client.upload_file(str(case / "x.tsv"), p.inb, "exp9/x_list.txt")
    s3.client.upload_file(str(case / "y.tsv"), p.inb, "exp9/y_list.txt")
    proc, log = serve_queue(s3, p, smtp, link_expiry_seconds=3600)
    assert proc.returncode == 0, proc.stderr.decode()
    (msg,) = [m for _, m in smtp.messages if "result ready" in m["Subject"]]
    text = next(part.get_payload(decode=True).decode() for part in msg.walk()
                if part.get_content_type() == "text/plain")
    links = re.findall(r"http://\S+X-Amz-Signature=\S+", text)
    assert len(links) == 2 and all("X-Amz-Expires=3600" in l for l in links)
    bodies = {}
    for link in links:  # no credentials: the signature in the URL is the authorisation
        with urllib.request.urlopen(link, timeout=10) as r:
            bodies[urllib.parse.urlparse(link).path.rsplit("/", 1)[1]] = r.read()
    for key in ("report.html", "merged.tsv"):
        assert bodies[key] == s3.client.get_object(Bucket=p.outb, Key=f"exp9/{key}")["Body"].read()
    head = s3.client.head_object(Bucket=p.outb, Key="exp9/report.html")
    assert head["ContentType"].startswith("text/html")
