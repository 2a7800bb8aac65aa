"""report.html and the emails' links. `serve --local --once` runs jobs; the page
beside report.json is checked against pandas itself (the previews are what the
script's print(df) shows; matched IDs, result rows per ID and the hottest IDs
are what pandas counts), for HTML escaping (values, job names and IDs holding
<script> and &), an empty and a huge result, the cost arithmetic with
overridden prices; the keys and run sections of a job spilled by `serve
--memory-limit --temp-dir` in headless Chromium (screenshot in
$CLOUDMERGE_ARTIFACTS); the success email links report.html and the result
(file:// locally; presigned S3 URLs in queue mode against moto, fetched
without credentials); the failure email says where the logs are. About 40 s."""
import collections
import email
import html.parser
import json
import re
import shutil
import struct
import subprocess
import urllib.parse
import urllib.request
import zlib

import numpy as np
import pandas as pd
import pytest

from conftest import BIN, CASES, add_job as conftest_add_job
from s3_server import s3  # noqa: F401  (fixture)
from test_dashboard import ARTIFACTS, chromium, png_has_content  # headless Chromium helpers
from test_serve_queue import pipeline, serve as serve_queue  # noqa: F401  (fixture, helper)

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
    return conftest_add_job(root, job, x=x, y=y)


def mail_text(root, kind):
    (path,) = sorted((root / "outbox").glob(f"*-{kind}.eml"))
    msg = email.message_from_bytes(path.read_bytes())
    parts = {p.get_content_type(): p.get_payload(decode=True).decode() for p in msg.walk()
             if p.get_content_type().startswith("text/")}
    return parts["text/plain"], parts["text/html"]


def pandas_key_stats(x_path, y_path):
    """What the keys section shows, counted by pandas on the files the script reads: result rows per
    matched ID (x rows times y rows), and the histogram by powers of two ({"1": n, "2": n, "4": n, ...})."""
    x, y = (pd.read_csv(p, sep="\t") for p in (x_path, y_path))
    xc, yc = x.iloc[:, 0].value_counts(), y.iloc[:, 0].value_counts()
    per_key = {k: int(xc[k]) * int(yc[k]) for k in xc.index.intersection(yc.index)}
    histogram = collections.Counter(str(1 << (n.bit_length() - 1)) for n in per_key.values())
    return per_key, dict(histogram)


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
    engine = report["engine_stats"]
    assert [p["name"] for p in engine["phases"]] and all(p["name"] in page.text for p in engine["phases"])
    assert report["version"] in text and "native" in text
    assert f"{report['rows']['output']} (x: {report['rows']['x']}, y: {report['rows']['y']})" in text
    # The keys, as pandas counts them (many_to_many: IDs 1 and 2, each 2 x 2 = 4 result rows).
    per_key, histogram = pandas_key_stats(d / "x_list.txt", d / "y_list.txt")
    assert engine["matched_keys"] == len(per_key) == 2
    assert engine["matches_per_key_log2"] == histogram == {"4": 2}
    assert sorted(k["output_rows"] for k in engine["hottest_keys"]) == sorted(per_key.values())
    assert f"{len(per_key)} of {report['y_distinct_keys']} distinct IDs in y (100%)" in text
    assert "2 IDs" in page.text and "4\u20137" in page.text  # the chart's one bar
    assert "peak memory" in text and "out of core" in text and "not measured" not in text
    assert engine["memory"]["peak_rss_bytes"] > 0 and engine["out_of_core"]["used"] is False
    assert report["phases_seconds"]["total"] > 0  # kept for older readers
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


HOT = "<script>alert(1)</script>"  # an ID: the hottest one, shown in a table
HISTOGRAM_BAR = (0x7B, 0x3F, 0xA0)  # the fill of the keys chart's bars, a colour nothing else on the page uses


def png_rgb(path):
    """The pixels of an 8-bit RGB(A) PNG as an (h, w, 3) array. Rows may use any of PNG's five filters
    (Chromium mixes them); Paeth and Average depend on the pixel to the left, so rows are decoded
    along anti-diagonals, each pixel needing only its left, upper and upper-left neighbours: numpy
    over a diagonal at a time, a few seconds for a 1280x3200 screenshot."""
    data = path.read_bytes()
    pos, idat = 8, b""
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        if data[pos + 4:pos + 8] == b"IHDR":
            w, h, depth, color = struct.unpack(">IIBB", data[pos + 8:pos + 18])
        elif data[pos + 4:pos + 8] == b"IDAT":
            idat += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    assert depth == 8 and color in (2, 6), f"unexpected PNG type: depth {depth}, colour type {color}"
    bpp = 3 if color == 2 else 4
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(h, w * bpp + 1)
    filters = raw[:, 0].astype(np.int16)
    filtered = raw[:, 1:].reshape(h, w, bpp).astype(np.int16)
    out = np.zeros((h + 1, w + 1, bpp), dtype=np.int16)  # the zero row above and column left PNG assumes
    for d in range(w + h - 1):
        ys = np.arange(max(0, d - w + 1), min(h, d + 1))
        xs = d - ys
        a, b, c = out[ys + 1, xs], out[ys, xs + 1], out[ys, xs]
        pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        f = filters[ys][:, None]
        predicted = np.select([f == 1, f == 2, f == 3, f == 4], [a, b, (a + b) >> 1, paeth], 0)
        out[ys + 1, xs + 1] = (filtered[ys, xs] + predicted) & 255
    return out[1:, 1:, :3].astype(np.uint8)


def pixels_of_color(path, rgb):
    return int(np.all(png_rgb(path) == np.array(rgb, dtype=np.uint8), axis=2).sum())


def hot_job(root):
    """x: HOT 30 times, k000..k049 once; y: HOT 20 times, k000..k049 once and k000..k004 again. Result rows per
    ID: HOT 600, k000..k004 2, the 45 others 1."""
    x = "ID\tvalue\n" + "".join(f"{HOT}\tx{i}\n" for i in range(30)) + "".join(f"k{i:03d}\tx\n" for i in range(50))
    y = "ID\tvalue\n" + "".join(f"{HOT}\ty{i}\n" for i in range(20)) + "".join(f"k{i:03d}\ty\n" for i in range(50))
    y += "".join(f"k{i:03d}\tz\n" for i in range(5))
    return add_job(root, "hot & cold", x, y)


def test_keys_and_run_out_of_core_in_chromium(tmp_path):
    d = hot_job(tmp_path)
    spill = tmp_path / "spill"
    spill.mkdir()
    # 1 MiB is below the engine's fixed needs: even this job spills, so the run section has something to show.
    proc = serve_once(tmp_path, "--memory-limit", "1MiB", "--temp-dir", str(spill))
    assert proc.returncode == 0, proc.stderr.decode()
    assert not list(spill.iterdir())  # the spill directory went with the run
    out = tmp_path / "output" / "hot & cold"
    report = json.loads((out / "report.json").read_text())
    engine = report["engine_stats"]
    per_key, histogram = pandas_key_stats(d / "x_list.txt", d / "y_list.txt")
    assert engine["matched_keys"] == len(per_key) == 51
    assert engine["matches_per_key_log2"] == histogram == {"1": 45, "2": 5, "512": 1}
    assert engine["hottest_keys"][0] == {"key": HOT, "x_rows": 30, "y_rows": 20, "output_rows": 600}
    assert [k["output_rows"] for k in engine["hottest_keys"]] == sorted(per_key.values(), reverse=True)[:10]
    ooc = engine["out_of_core"]
    assert ooc["used"] and ooc["partitions"] >= 1 and ooc["spilled_bytes"] > 0
    assert engine["memory"]["limit_bytes"] == 1 << 20

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    url = (out / "report.html").as_uri()
    dom = chromium("--dump-dom", url)
    assert "<script" not in dom
    keys = dom[dom.index("<h2 id=\"keys\">Keys</h2>"):dom.index("<h2 id=\"run\">Run</h2>")]
    run = dom[dom.index("<h2 id=\"run\">Run</h2>"):dom.index("<h2>Estimated AWS cost</h2>")]
    if report["y_distinct_keys"]:
        assert "51 of 51 distinct IDs in y (100%)" in keys
    else:  # not counted by the out-of-core path: the page says so rather than showing 0
        assert re.search(r"IDs matched \(in both files\)</th><td>51</td>", keys)
        assert re.search(r"distinct IDs in y</th><td><span class=\"nm\">not measured", keys)
    # The histogram: a labelled bar per bucket, in order, with its count.
    assert re.findall(r'text-anchor="end">([^<]*)</text>', keys) == ["1", "2\u20133", "512\u20131,023"]
    assert re.findall(r">(\d+ IDs?)</text>", keys) == ["45 IDs", "5 IDs", "1 ID"]
    # The hottest IDs, the first one escaped, as text.
    rows = re.findall(r"<tr><td><code>(.*?)</code></td>(.*?)</tr>", keys, re.S)
    assert len(rows) == len(engine["hottest_keys"])
    assert rows[0][0] == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert re.findall(r'<td class="n">([^<]*)</td>', rows[0][1]) == ["30", "20", "600", "92%"]
    # The run: memory against the limit, the spilling, the engine's phases.
    assert "of 1.0 MiB limit" in run
    spilled = re.search(r"yes: (\d+) partitions?, (\d+) spill levels?, [\d.]+ [KMG]?i?B spilled in (\d+) files", run)
    assert spilled and [int(g) for g in spilled.groups()] == [ooc["partitions"], ooc["spill_levels"], ooc["spill_files"]]
    assert all(f">{p['name']}</text>" in run for p in engine["phases"])
    shot = ARTIFACTS / "report-keys.png"
    # Headless Chromium ignores #fragments when taking a screenshot: the window is as tall as the page.
    chromium(f"--screenshot={shot}", "--window-size=1280,3200", url)
    assert png_has_content(shot)
    # The keys chart is in the picture: its three bars, each at least 2 px long and 16 px high.
    assert pixels_of_color(shot, HISTOGRAM_BAR) >= 3 * 2 * 16


def test_serve_refuses_bad_memory_limit_and_temp_dir(tmp_path):
    (tmp_path / "input").mkdir()
    bad = serve_once(tmp_path, "--memory-limit", "lots")
    assert bad.returncode == 2 and b"--memory-limit" in bad.stderr and b"lots" in bad.stderr
    missing = tmp_path / "no-such-dir"
    bad = serve_once(tmp_path, "--temp-dir", str(missing))
    assert bad.returncode == 2 and f"--temp-dir: {missing}: not a directory".encode() in bad.stderr


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
    # Where the log is, in a user's words (serve's output is a pipe here: the command and the computer).
    assert "line 2" in text and "the output of the `cloudmerge serve` command on the computer" in text
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
