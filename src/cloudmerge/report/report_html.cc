// report.html rendering: the cost estimate and the page itself (the previews
// are pandas_preview.cc's). See report_html.h.
#include "cloudmerge/report/report_html.h"

#include "cloudmerge/base/memory_info.h"
#include "cloudmerge/report/safe_text.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <optional>

#include <fmt/format.h>

namespace cloudmerge {
namespace {

using nlohmann::json;

}  // namespace

std::string HtmlEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}


CostPrices CostPrices::FromEnvironment(const std::function<const char*(const char*)>& getenv) {
  CostPrices p;
  auto read = [&](const char* name, double* field) {
    const char* v = getenv(name);
    if (!v || !*v) return false;
    char* end = nullptr;
    double d = std::strtod(v, &end);
    if (*end != '\0' || !std::isfinite(d) || d < 0) return false;
    *field = d;
    return true;
  };
  read("CLOUDMERGE_PRICE_LAMBDA_GB_SECOND", &p.lambda_gb_second);
  read("CLOUDMERGE_PRICE_LAMBDA_PER_MILLION_REQUESTS", &p.lambda_per_million_requests);
  read("CLOUDMERGE_PRICE_S3_GET_PER_1000", &p.s3_get_per_1000);
  read("CLOUDMERGE_PRICE_S3_PUT_PER_1000", &p.s3_put_per_1000);
  read("CLOUDMERGE_PRICE_TRANSFER_PER_GB", &p.transfer_per_gb);
  if (!read("CLOUDMERGE_LAMBDA_MEMORY_MB", &p.lambda_memory_mb)) read("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", &p.lambda_memory_mb);
  if (const char* a = getenv("CLOUDMERGE_PRICE_ASSUMPTION"); a && *a) p.assumption = a;
  return p;
}

json EstimateCost(const RunUsage& u, const CostPrices& p) {
  auto parts = [&](double bytes) { return std::max(1.0, std::ceil(bytes / p.s3_part_bytes)); };
  // GETs: the engine's ranged reads of each input, plus the runner's reads
  // (job.json, the claim, the three previews). PUT tier: the result (one PUT,
  // or create + parts + complete), report.json, report.html, the state
  // markers (claim, received, done, and per kind one notified-<kind>-<channel>
  // plus notified-<kind>: five with one channel), and two LISTs.
  double gets = parts(u.x_bytes) + parts(u.y_bytes) + 5;
  double result_puts = u.result_bytes > p.s3_part_bytes ? parts(u.result_bytes) + 2 : 1;
  double puts = result_puts + 2 + 5 + 2;
  double gb_s = p.lambda_memory_mb / 1024.0 * u.seconds;
  double gb_moved = (u.x_bytes + u.y_bytes + u.result_bytes) / 1e9;
  json usd = {{"lambda_compute", gb_s * p.lambda_gb_second},
              {"lambda_requests", p.lambda_per_million_requests / 1e6},
              {"s3_get", gets * p.s3_get_per_1000 / 1000},
              {"s3_put", puts * p.s3_put_per_1000 / 1000},
              {"transfer", gb_moved * p.transfer_per_gb}};
  double total = 0;
  for (const auto& [k, v] : usd.items()) total += v.get<double>();
  usd["total"] = total;
  return {{"assumption", p.assumption},
          {"prices",
           {{"lambda_gb_second", p.lambda_gb_second},
            {"lambda_per_million_requests", p.lambda_per_million_requests},
            {"s3_get_per_1000", p.s3_get_per_1000},
            {"s3_put_per_1000", p.s3_put_per_1000},
            {"transfer_per_gb", p.transfer_per_gb}}},
          {"lambda_memory_mb", p.lambda_memory_mb},
          {"lambda_seconds", u.seconds},
          {"lambda_gb_seconds", gb_s},
          {"lambda_requests", 1},
          {"s3_get_requests", gets},
          {"s3_put_requests", puts},
          {"gb_transferred", gb_moved},
          {"usd", usd},
          {"how", "one invocation billed for the run's measured seconds (cold start and the notification not "
                  "included); S3 requests counted from the input and result sizes at the part size"}};
}

// ---- the page ---------------------------------------------------------------
namespace {

constexpr const char* kStyle = R"(
body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;padding:0 1em;color:#1d2330}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #dde}
table{border-collapse:collapse} td,th{padding:.2em .8em .2em 0;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f5f6f8;padding:.7em;overflow-x:auto;font:13px/1.35 ui-monospace,monospace}
.badge{display:inline-block;padding:.1em .6em;border-radius:.8em;color:#fff;font-weight:600}
.succeeded{background:#2e7d32} .failed{background:#c62828}
.muted{color:#667} .nm{color:#a15c00;font-style:italic}
table.hot code{word-break:break-all}
)";

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : DumpJson(*it);
}

double Num(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : 0.0;
}

// A count from the report: exact for 64-bit integers (a double would round
// counts above 2^53); 0 when absent or not a non-negative number.
uint64_t CountValue(const json& v) {
  if (!v.is_number()) return 0;
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) return v.get<int64_t>() > 0 ? static_cast<uint64_t>(v.get<int64_t>()) : 0;
  double d = v.get<double>();
  return d > 0 && d < 1.8e19 ? static_cast<uint64_t>(d) : 0;
}

uint64_t Count(const json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() ? 0 : CountValue(*it);
}

// A boolean member; false when absent or of another type.
bool Flag(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}

// The member `key` of `j` when it is an object (older reports lack it): null otherwise.
const json& Object(const json& j, const char* key) {
  static const json kNull;
  auto it = j.find(key);
  return it != j.end() && it->is_object() ? *it : kNull;
}

std::string Percent(double part, double whole) {
  if (whole <= 0) return "";
  double p = 100 * part / whole;
  return p >= 10 || p == 0 ? fmt::format("{:.0f}%", p) : p >= 0.1 ? fmt::format("{:.1f}%", p) : "&lt;0.1%";
}

// At most `max` code points of UTF-8 text (cut on a character boundary), with
// an ellipsis when cut: a key of a megabyte must not make a page of ten.
std::string Shortened(const std::string& s, size_t max) {
  size_t points = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) continue;
    if (points++ == max) return s.substr(0, i) + "\u2026";
  }
  return s;
}

std::string Bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) b /= 1024, ++u;
  return u == 0 ? fmt::format("{:.0f} B", b) : fmt::format("{:.1f} {}", b, units[u]);
}

std::string Usd(double v) { return v == 0 ? "$0" : v < 0.01 ? fmt::format("${:.8f}", v) : fmt::format("${:.4f}", v); }

// A price as people write it: 0.0000166667, 0.2, 2 (no exponent, no trailing zeros).
std::string Price(double v) {
  std::string s = fmt::format("{:.10f}", v);
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

std::string Row(const std::string& k, const std::string& v_html) {
  return "<tr><th>" + HtmlEscape(k) + "</th><td>" + v_html + "</td></tr>\n";
}

std::string NotMeasured(const std::string& why) {
  return "<span class=\"nm\">not measured</span> <span class=\"muted\">(" + HtmlEscape(why) + ")</span>";
}

std::string PagePrologue(const std::string& title) {
  return "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
         "<meta name=\"viewport\" content=\"width=device-width\">"
         "<title>" + HtmlEscape(title) + "</title><style>" + kStyle + "</style></head><body>\n";
}

// A preview block: the pandas-shaped text of the first rows, and how many there are.
std::string PreviewBlock(const json& first_rows, double total_rows, const char* absent_why) {
  if (!first_rows.is_array() || first_rows.empty()) return "<p>" + NotMeasured(absent_why) + "</p>\n";
  std::vector<std::string> lines;
  for (const auto& l : first_rows) lines.push_back(l.is_string() ? l.get<std::string>() : "");
  size_t shown = lines.size() - 1;
  std::string note = shown < total_rows ? fmt::format("first {} of {:.0f} rows", shown, total_rows)
                                        : fmt::format("all {} rows", shown);
  return "<p class=\"muted\">" + note + ", as the script's <code>print(df)</code> shows them (types inferred from "
         "these rows)</p><pre>" + HtmlEscape(PandasPreview(lines)) + "</pre>\n";
}

std::string InputSection(const char* name, const json& in, double rows, const std::string& key_type) {
  std::string s = fmt::format("<h3>{}</h3><table>\n", name);
  s += Row("file", "<code>" + HtmlEscape(Str(in, "uri")) + "</code>");
  s += Row("size", HtmlEscape(Bytes(Num(in, "size"))) + fmt::format(" ({:.0f} bytes)", Num(in, "size")));
  s += Row("rows", fmt::format("{:.0f}", rows));
  s += Row("IDs compared as", HtmlEscape(key_type));
  s += "</table>\n";
  return s + PreviewBlock(in.value("first_rows", json()), rows, "compressed input: no preview");
}

// Horizontal bars, one per phase, scaled to the longest (inline SVG). From
// the engine's own phase list (engine_stats.phases: names, rows and bytes)
// when the report has one, else from the older fixed phases_seconds.
struct PhaseBar {
  std::string name;
  double seconds = 0;
  uint64_t rows = 0, bytes = 0;
};

std::vector<PhaseBar> PhasesOf(const json& r) {
  std::vector<PhaseBar> bars;
  const json& engine = Object(r, "engine_stats");
  auto listed = engine.is_object() ? engine.find("phases") : engine.end();
  if (engine.is_object() && listed != engine.end() && listed->is_array() && !listed->empty()) {
    for (const json& p : *listed)
      if (p.is_object()) bars.push_back({Str(p, "name"), Num(p, "seconds"), Count(p, "rows"), Count(p, "bytes")});
    if (!bars.empty()) return bars;
  }
  const json& old = r.value("phases_seconds", json::object());
  for (const char* k : {"scan_y", "build", "scan_x", "probe_and_write"})
    bars.push_back({k, old.is_object() ? Num(old, k) : 0.0, 0, 0});
  return bars;
}

std::string PhaseChart(const std::vector<PhaseBar>& bars) {
  double longest = 0;
  for (const auto& b : bars) longest = std::max(longest, b.seconds);
  std::string svg = fmt::format("<svg role=\"img\" aria-label=\"time per phase\" width=\"720\" height=\"{}\" "
                                "xmlns=\"http://www.w3.org/2000/svg\" font-size=\"13\">", 24 * bars.size() + 4);
  for (size_t i = 0; i < bars.size(); ++i) {
    const PhaseBar& b = bars[i];
    double w = longest > 0 ? 340 * b.seconds / longest : 0;
    int y = static_cast<int>(24 * i + 2);
    // Milliseconds when short: "0.000 s" says nothing about a small job's phases.
    std::string label = b.seconds >= 0.01 || b.seconds == 0 ? fmt::format("{:.3f} s", b.seconds)
                                                            : fmt::format("{:.2f} ms", b.seconds * 1000);
    if (b.rows) label += " \u00b7 " + Grouped(b.rows) + " rows";
    if (b.bytes) label += " \u00b7 " + Bytes(static_cast<double>(b.bytes));
    svg += fmt::format("<text x=\"0\" y=\"{}\">{}</text><rect x=\"130\" y=\"{}\" width=\"{:.1f}\" height=\"16\" "
                       "fill=\"#3b6fb6\"/><text x=\"{:.1f}\" y=\"{}\">{}</text>",
                       y + 13, HtmlEscape(Shortened(b.name, 16)), y, std::max(w, 1.0), 136 + w, y + 13,
                       HtmlEscape(label));
  }
  return svg + "</svg>\n";
}

// "Run": the engine's resources (memory against its limit, spilling) and time
// per phase. Tolerant of reports without engine_stats (older versions, the
// command engine): what they lack is said to be not measured.
std::string RunSection(const json& r) {
  const json& engine = Object(r, "engine_stats");
  std::string s = "<h2 id=\"run\">Run</h2><table>\n";
  if (engine.is_null()) {
    const char* why = "this report has no engine statistics (the command engine, or an older cloudmerge)";
    s += Row("peak memory", NotMeasured(why));
    s += Row("out of core", NotMeasured(why));
  } else {
    const json& mem = Object(engine, "memory");
    uint64_t peak = mem.is_object() ? Count(mem, "peak_rss_bytes") : 0;
    uint64_t limit = mem.is_object() ? Count(mem, "limit_bytes") : 0;
    std::string m = peak ? HtmlEscape(Bytes(static_cast<double>(peak))) : NotMeasured("the engine did not say");
    if (limit) {
      m += " of " + HtmlEscape(Bytes(static_cast<double>(limit))) + " limit";
      if (peak) m += " (" + Percent(static_cast<double>(peak), static_cast<double>(limit)) + ")";
    }
    s += Row("peak memory", m);
    const json& ooc = Object(engine, "out_of_core");
    if (ooc.is_null()) {
      s += Row("out of core", NotMeasured("the engine did not say"));
    } else if (!Flag(ooc, "used")) {
      s += Row("out of core", "no <span class=\"muted\">(the join fit in memory)</span>");
    } else {
      uint64_t levels = Count(ooc, "spill_levels");
      std::string o = fmt::format("yes: {} partitions, {} spill level{}, {} spilled in {} files",
                                  Grouped(Count(ooc, "partitions")), levels, levels == 1 ? "" : "s",
                                  HtmlEscape(Bytes(static_cast<double>(Count(ooc, "spilled_bytes")))),
                                  Grouped(Count(ooc, "spill_files")));
      if (uint64_t nl = Count(ooc, "nested_loop_keys"))
        o += fmt::format("; {} partition{} bigger than memory joined block by block (hot keys)", Grouped(nl), nl == 1 ? "" : "s");
      s += Row("out of core", o);
    }
    if (!ooc.is_null()) {
      if (uint64_t reclaimed = Count(ooc, "reclaimed_temp_bytes"))
        s += Row("reclaimed", HtmlEscape(Bytes(static_cast<double>(reclaimed))) +
                                  " of temporary files left by runs that died");
    }
    if (Flag(engine, "speculation_failed"))
      s += Row("note", "x&#39;s IDs were not of the type assumed from y&#39;s: x was read twice");
  }
  s += "</table>\n";
  const json& phases = r.value("phases_seconds", json::object());
  double total = !engine.is_null() && engine.contains("seconds_total") ? Num(engine, "seconds_total")
                 : phases.is_object()                                   ? Num(phases, "total")
                                                                        : 0.0;
  s += "<h3>Time per phase</h3>\n" + PhaseChart(PhasesOf(r));
  s += fmt::format("<p class=\"muted\">engine total {:.3f} s; the run, with reading previews and writing the report, "
                   "{:.3f} s</p>\n", total, Num(r, "seconds"));
  return s;
}

// The histogram of matched IDs by result rows (matches_per_key_log2: "2^i" ->
// IDs with 2^i .. 2^(i+1)-1 result rows), as labelled bars with log-scaled
// lengths (counts span orders of magnitude: a million IDs matched once, three
// hot ones). Empty when there is nothing to draw.
std::string MatchesPerKeyChart(const json& histogram) {
  std::vector<std::pair<int, uint64_t>> buckets;  // (log2 of the lower bound, IDs)
  if (histogram.is_object()) {
    for (const auto& [k, v] : histogram.items()) {
      char* end = nullptr;
      errno = 0;
      unsigned long long lower = std::strtoull(k.c_str(), &end, 10);
      if (errno || *end || k.empty() || k[0] == '-' || lower == 0 || (lower & (lower - 1)) != 0) continue;
      uint64_t keys = CountValue(v);
      if (keys) buckets.emplace_back(static_cast<int>(std::log2(static_cast<double>(lower)) + 0.5), keys);
    }
  }
  if (buckets.empty()) return "";
  std::sort(buckets.begin(), buckets.end());  // the object's keys sort as text: "1", "1024", "128", ...
  uint64_t most = 0;
  for (const auto& b : buckets) most = std::max(most, b.second);
  std::string svg = fmt::format("<svg role=\"img\" aria-label=\"matched IDs by result rows per ID\" width=\"720\" "
                                "height=\"{}\" xmlns=\"http://www.w3.org/2000/svg\" font-size=\"13\">",
                                24 * buckets.size() + 4);
  for (size_t i = 0; i < buckets.size(); ++i) {
    auto [log2, keys] = buckets[i];
    uint64_t lower = uint64_t{1} << log2;
    uint64_t upper = log2 == 63 ? UINT64_MAX : (lower << 1) - 1;
    std::string label = lower == upper ? Grouped(lower) : Grouped(lower) + "\u2013" + Grouped(upper);
    double w = 340 * std::log2(1 + static_cast<double>(keys)) / std::log2(1 + static_cast<double>(most));
    int y = static_cast<int>(24 * i + 2);
    svg += fmt::format("<text x=\"150\" y=\"{}\" text-anchor=\"end\">{}</text><rect x=\"160\" y=\"{}\" "
                       "width=\"{:.1f}\" height=\"16\" fill=\"#7b3fa0\"/><text x=\"{:.1f}\" y=\"{}\">{} ID{}</text>",
                       y + 13, label, y, std::max(w, 2.0), 166 + w, y + 13, Grouped(keys), keys == 1 ? "" : "s");
  }
  return svg + "</svg>\n";
}

std::string HottestKeysTable(const json& hot, uint64_t result_rows) {
  if (!hot.is_array() || hot.empty()) return "";
  std::string s = "<table class=\"hot\">\n<tr><th>ID</th><th>x rows</th><th>y rows</th><th>result rows</th>"
                  "<th>of the result</th></tr>\n";
  for (const json& k : hot) {
    if (!k.is_object()) continue;
    uint64_t out = Count(k, "output_rows");
    s += "<tr><td><code>" + HtmlEscape(Shortened(Str(k, "key"), 80)) + "</code></td><td class=\"n\">" +
         Grouped(Count(k, "x_rows")) + "</td><td class=\"n\">" + Grouped(Count(k, "y_rows")) +
         "</td><td class=\"n\">" + Grouped(out) + "</td><td class=\"n\">" +
         Percent(static_cast<double>(out), static_cast<double>(result_rows)) + "</td></tr>\n";
  }
  return s + "</table>\n";
}

// "Keys": how the result came about — IDs matched, how many result rows each
// produced (a chart), and the hottest IDs.
std::string KeysSection(const json& r) {
  const json& rows = r.value("rows", json::object());
  double x = Num(rows, "x"), y = Num(rows, "y"), out = Num(rows, "output"), keys = Num(r, "y_distinct_keys");
  const json& engine = Object(r, "engine_stats");
  std::string s = "<h2 id=\"keys\">Keys</h2><table>\n";
  s += Row("result rows", fmt::format("{:.0f}", out));
  s += Row("result rows per x row (mean)", x > 0 ? fmt::format("{:.3f}", out / x) : NotMeasured("x has no rows"));
  // y rows but no distinct IDs: the engine did not count them (its out-of-core path may not).
  bool uncounted = keys == 0 && y > 0;
  s += Row("distinct IDs in y", uncounted ? NotMeasured("not counted in this run") : fmt::format("{:.0f}", keys));
  s += Row("y rows per distinct ID (mean)", keys > 0   ? fmt::format("{:.3f}", y / keys)
                                            : uncounted ? NotMeasured("not counted in this run")
                                                        : NotMeasured("y has no IDs"));
  if (engine.is_null() || !engine.contains("matched_keys")) {
    const char* why = "this report has no engine statistics (the command engine, or an older cloudmerge)";
    s += Row("IDs matched (in both files)", NotMeasured(why));
    s += Row("distribution of matches per ID", NotMeasured(why));
    return s + "</table>\n";
  }
  uint64_t matched = Count(engine, "matched_keys");
  uint64_t distinct = keys > 0 ? static_cast<uint64_t>(keys) : 0;
  std::string m = Grouped(matched);
  if (distinct) m += " of " + Grouped(distinct) + " distinct IDs in y (" + Percent(matched, distinct) + ")";
  s += Row("IDs matched (in both files)", m);
  s += "</table>\n<h3>Result rows per matched ID</h3>\n";
  auto it = engine.find("matches_per_key_log2");
  const json& histogram = it != engine.end() ? *it : json();
  std::string chart = MatchesPerKeyChart(histogram);
  if (chart.empty()) {
    s += "<p class=\"muted\">No ID is in both files: nothing to chart.</p>\n";
  } else {
    uint64_t once = histogram.is_object() ? Count(histogram, "1") : 0;
    s += "<p class=\"muted\">Each matched ID produces (its x rows) &times; (its y rows) result rows. " +
         Grouped(once) + " of " + Grouped(matched) + " matched IDs (" + Percent(once, matched) +
         ") produced exactly one. Bar lengths on a log scale.</p>\n" + chart;
  }
  auto hot = engine.find("hottest_keys");
  std::string table = HottestKeysTable(hot != engine.end() ? *hot : json(), static_cast<uint64_t>(out));
  if (!table.empty()) s += "<h3>Hottest IDs</h3>\n<p class=\"muted\">The IDs producing the most result rows.</p>\n" + table;
  return s;
}

std::string CostSection(const json& c) {
  if (!c.is_object()) return "<h2>Estimated AWS cost</h2><p>" + NotMeasured("no estimate in report.json") + "</p>\n";
  const json& p = c.value("prices", json::object());
  const json& usd = c.value("usd", json::object());
  std::string s = "<h2>Estimated AWS cost</h2><table>\n";
  auto line = [&](const std::string& what, const std::string& amount, const std::string& price, const char* k) {
    s += "<tr><th>" + HtmlEscape(what) + "</th><td class=\"n\">" + HtmlEscape(amount) + "</td><td>" + HtmlEscape(price) +
         "</td><td class=\"n\">" + HtmlEscape(Usd(Num(usd, k))) + "</td></tr>\n";
  };
  s += "<tr><th></th><th>used</th><th>price</th><th>cost</th></tr>\n";
  line(fmt::format("Lambda compute ({:.0f} MB x {:.2f} s)", Num(c, "lambda_memory_mb"), Num(c, "lambda_seconds")),
       fmt::format("{:.3f} GB-s", Num(c, "lambda_gb_seconds")), fmt::format("${} per GB-s", Price(Num(p, "lambda_gb_second"))),
       "lambda_compute");
  line("Lambda requests", fmt::format("{:.0f}", Num(c, "lambda_requests")),
       fmt::format("${} per 1M", Price(Num(p, "lambda_per_million_requests"))), "lambda_requests");
  line("S3 GET requests", fmt::format("{:.0f}", Num(c, "s3_get_requests")),
       fmt::format("${} per 1000", Price(Num(p, "s3_get_per_1000"))), "s3_get");
  line("S3 PUT/LIST requests", fmt::format("{:.0f}", Num(c, "s3_put_requests")),
       fmt::format("${} per 1000", Price(Num(p, "s3_put_per_1000"))), "s3_put");
  line("data moved (inputs read + result written)", fmt::format("{:.4f} GB", Num(c, "gb_transferred")),
       fmt::format("${} per GB", Price(Num(p, "transfer_per_gb"))), "transfer");
  s += "<tr><th>total</th><td></td><td></td><td class=\"n\"><b>" + HtmlEscape(Usd(Num(usd, "total"))) +
       "</b></td></tr>\n</table>\n";
  s += "<p class=\"muted\">Prices: " + HtmlEscape(Str(c, "assumption")) + ". " + HtmlEscape(Str(c, "how")) +
       ". Change them with <code>serve --price-*</code> flags or <code>CLOUDMERGE_PRICE_*</code> variables.</p>\n";
  return s;
}

}  // namespace

std::string RenderReportHtml(const json& r) {
  std::string job = Str(r, "job");
  const json& rows = r.value("rows", json::object());
  const json& inputs = r.value("inputs", json::object());
  const json& types = r.value("key_types", json::object());
  std::string s = PagePrologue("cloudmerge report: " + job);
  s += "<h1>Job <code>" + HtmlEscape(job) + "</code> <span class=\"badge succeeded\">" + HtmlEscape(Str(r, "status")) +
       "</span></h1>\n<table>\n";
  s += Row("result", "<code>" + HtmlEscape(Str(r, "result")) + "</code>");
  s += Row("rows", fmt::format("{:.0f} (x: {:.0f}, y: {:.0f})", Num(rows, "output"), Num(rows, "x"), Num(rows, "y")));
  s += Row("time", fmt::format("{:.3f} s", Num(r, "seconds")));
  s += Row("engine", HtmlEscape(Str(r, "engine")) + fmt::format(", {:.0f} threads", Num(r, "threads")));
  s += Row("version", "cloudmerge " + HtmlEscape(Str(r, "version")));
  s += Row("run", "<code>" + HtmlEscape(Str(r, "run")) + "</code> on " + HtmlEscape(Str(r, "worker")));
  s += Row("finished", HtmlEscape(Str(r, "finished")));
  s += "</table>\n<h2>Inputs</h2>\n";
  s += InputSection("x", inputs.value("x", json::object()), Num(rows, "x"), Str(types, "x"));
  s += InputSection("y", inputs.value("y", json::object()), Num(rows, "y"), Str(types, "y"));
  s += "<h2>Result</h2>\n<p class=\"muted\">The script prints the result with its cross-product positions as index; "
       "here rows are numbered from 0.</p>";
  s += PreviewBlock(r.value("result_first_rows", json()), Num(rows, "output"), "the result could not be read back");
  s += KeysSection(r);
  s += RunSection(r);
  s += CostSection(r.value("cost", json()));
  return s + "</body></html>\n";
}

std::string RenderFailureHtml(const json& f) {
  std::string job = Str(f, "job");
  std::string s = PagePrologue("cloudmerge report: " + job + " (failed)");
  s += "<h1>Job <code>" + HtmlEscape(job) + "</code> <span class=\"badge failed\">failed</span></h1>\n";
  s += "<h2>What went wrong</h2><pre>" + HtmlEscape(Str(f, "error")) + "</pre>\n";
  s += "<p>What to do: fix the file named above and upload it again to the same folder; a new upload starts a new "
       "run.</p>\n<table>\n";
  s += Row("run", "<code>" + HtmlEscape(Str(f, "run")) + "</code>");
  s += Row("logs", HtmlEscape(Str(f, "logs")));
  s += Row("time", HtmlEscape(Str(f, "time")));
  s += Row("version", "cloudmerge " + HtmlEscape(Str(f, "version")));
  return s + "</table>\n</body></html>\n";
}

}  // namespace cloudmerge
