// report.html rendering: the pandas-shaped previews, the cost estimate and the
// page itself. See report_html.h.
#include "cloudmerge/pipeline/report_html.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <set>

#include <fmt/format.h>

namespace cloudmerge {
namespace {

using nlohmann::json;

// ---- pandas-shaped preview ------------------------------------------------

// The strings pandas.read_csv reads as NaN by default.
bool IsNaMarker(const std::string& v) {
  static const std::set<std::string> kNa = {"",      "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN",
                                            "-nan",  "1.#IND", "1.#QNAN", "<NA>", "N/A",  "NA",      "NULL",
                                            "NaN",   "None", "n/a",    "nan",  "null"};
  return kNa.count(v) > 0;
}

// One TSV line's fields; a field in quotes loses them and its "" become ".
std::vector<std::string> SplitTsv(const std::string& line) {
  std::vector<std::string> out;
  size_t pos = 0;
  for (;;) {
    size_t tab = line.find('\t', pos);
    std::string f = line.substr(pos, tab == std::string::npos ? std::string::npos : tab - pos);
    if (f.size() >= 2 && f.front() == '"' && f.back() == '"') {
      std::string u;
      for (size_t i = 1; i + 1 < f.size(); ++i) {
        u += f[i];
        if (f[i] == '"' && f[i + 1] == '"') ++i;
      }
      f = u;
    }
    out.push_back(f);
    if (tab == std::string::npos) return out;
    pos = tab + 1;
  }
}

bool ParseInt(const std::string& v, long long* out) {
  if (v.empty()) return false;
  size_t i = (v[0] == '+' || v[0] == '-') ? 1 : 0;
  if (i == v.size()) return false;
  for (size_t k = i; k < v.size(); ++k)
    if (v[k] < '0' || v[k] > '9') return false;
  errno = 0;
  *out = std::strtoll(v.c_str(), nullptr, 10);
  return errno == 0;
}

bool ParseFloat(const std::string& v, double* out) {
  if (v.empty()) return false;
  char* end = nullptr;
  *out = std::strtod(v.c_str(), &end);
  while (*end == ' ') ++end;
  return end != v.c_str() && *end == '\0' && v.find_first_of("xXpP") == std::string::npos;  // no hex floats
}

bool IsBool(const std::string& v) {
  return v == "True" || v == "False" || v == "TRUE" || v == "FALSE" || v == "true" || v == "false";
}

size_t DisplayWidth(const std::string& s) {  // UTF-8 code points
  return static_cast<size_t>(std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

std::string RightJustify(const std::string& s, size_t w) {
  size_t n = DisplayWidth(s);
  return n >= w ? s : std::string(w - n, ' ') + s;
}

// pandas' FloatArrayFormatter, approximately: fixed with 6 decimals, trailing
// zeros trimmed alike for the whole column; scientific for tiny values or
// large values that would print too long.
std::vector<std::string> FormatFloats(const std::vector<std::optional<double>>& vals) {
  bool small = false, large = false;
  for (const auto& v : vals)
    if (v && std::isfinite(*v)) {
      double a = std::fabs(*v);
      small |= a > 0 && a < 1e-6;
      large |= a > 1e6;
    }
  auto fmt_one = [](double v, bool sci) {
    if (std::isnan(v)) return std::string("NaN");
    if (std::isinf(v)) return std::string(v < 0 ? "-inf" : "inf");
    return sci ? fmt::format("{:.6e}", v) : fmt::format("{:.6f}", v);
  };
  std::vector<std::string> out;
  size_t longest = 0;
  for (const auto& v : vals) out.push_back(v ? fmt_one(*v, false) : "NaN"), longest = std::max(longest, out.back().size());
  bool sci = small || (large && longest > 6 + 6);
  if (sci) {
    out.clear();
    for (const auto& v : vals) out.push_back(v ? fmt_one(*v, true) : "NaN");
  } else {
    auto trimmable = [&] {
      bool any = false;
      for (const auto& s : out) {
        size_t dot = s.find('.');
        if (dot == std::string::npos) continue;
        if (s.back() != '0' || dot + 2 >= s.size()) return false;
        any = true;
      }
      return any;
    };
    while (trimmable())
      for (auto& s : out)
        if (s.find('.') != std::string::npos) s.pop_back();
  }
  for (auto& s : out)
    if (s[0] != '-') s = " " + s;  // pandas leaves room for a sign
  return out;
}

enum class Kind { kInt, kFloat, kBool, kText };

// One column's cells as pandas prints them, and whether pandas sees it as numeric.
std::vector<std::string> FormatColumn(const std::vector<std::string>& raw, bool* numeric) {
  bool has_na = false, all_int = true, all_float = true, all_bool = true;
  for (const auto& v : raw) {
    if (IsNaMarker(v)) {
      has_na = true;
      continue;
    }
    long long i;
    double d;
    all_int &= ParseInt(v, &i);
    all_float &= ParseFloat(v, &d);
    all_bool &= IsBool(v);
  }
  Kind kind = Kind::kText;
  if (all_bool && !has_na && !raw.empty()) kind = Kind::kBool;
  else if (all_int && !has_na && !raw.empty()) kind = Kind::kInt;
  else if (all_float) kind = Kind::kFloat;  // also ints with a NaN, and all-missing columns, as in pandas
  *numeric = kind != Kind::kText;
  std::vector<std::string> out;
  if (kind == Kind::kFloat) {
    std::vector<std::optional<double>> vals;
    for (const auto& v : raw) {
      double d = 0;
      vals.push_back(!IsNaMarker(v) && ParseFloat(v, &d) ? std::optional<double>(d) : std::nullopt);
    }
    return FormatFloats(vals);
  }
  for (const auto& v : raw) {
    long long i = 0;
    if (kind == Kind::kInt && ParseInt(v, &i)) out.push_back(i < 0 ? std::to_string(i) : " " + std::to_string(i));
    else if (kind == Kind::kBool) out.push_back(v[0] == 'T' || v[0] == 't' ? " True" : " False");
    else out.push_back(IsNaMarker(v) ? " NaN" : " " + v);
  }
  return out;
}

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

std::string PandasPreview(const std::vector<std::string>& lines) {
  if (lines.empty()) return "(no header)";
  std::vector<std::string> header = SplitTsv(lines[0]);
  if (lines.size() == 1) {
    std::string cols;
    for (size_t i = 0; i < header.size(); ++i) cols += (i ? ", " : "") + header[i];
    return "Empty DataFrame\nColumns: [" + cols + "]\nIndex: []";
  }
  size_t rows = lines.size() - 1;
  std::vector<std::vector<std::string>> cells(header.size());
  for (size_t r = 1; r < lines.size(); ++r) {
    auto f = SplitTsv(lines[r]);
    f.resize(header.size());  // pandas pads a short row with NaN
    for (size_t c = 0; c < header.size(); ++c) cells[c].push_back(f[c]);
  }
  size_t index_w = std::to_string(rows - 1).size();
  std::vector<std::string> out(rows + 1);
  out[0] = std::string(index_w, ' ');
  for (size_t r = 0; r < rows; ++r) {
    std::string idx = std::to_string(r);
    out[r + 1] = idx + std::string(index_w - idx.size(), ' ');
  }
  for (size_t c = 0; c < header.size(); ++c) {
    bool numeric = false;
    auto col = FormatColumn(cells[c], &numeric);
    std::string name = numeric ? " " + header[c] : header[c];
    size_t w = DisplayWidth(name);
    for (const auto& v : col) w = std::max(w, DisplayWidth(v));
    out[0] += " " + RightJustify(name, w);
    for (size_t r = 0; r < rows; ++r) out[r + 1] += " " + RightJustify(col[r], w);
  }
  std::string text;
  for (size_t i = 0; i < out.size(); ++i) text += (i ? "\n" : "") + out[i];
  return text;
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
  // or create + parts + complete), report.json, report.html, the five state
  // markers (claim, received, done, two notified-*), and two LISTs.
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
)";

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

double Num(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : 0.0;
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

// Horizontal bars, one per phase, scaled to the longest (inline SVG).
std::string PhaseChart(const json& phases) {
  std::vector<std::pair<std::string, double>> bars;
  double longest = 0;
  for (const char* k : {"scan_y", "build", "scan_x", "probe_and_write"}) {
    bars.emplace_back(k, Num(phases, k));
    longest = std::max(longest, bars.back().second);
  }
  std::string svg = fmt::format("<svg role=\"img\" aria-label=\"time per phase\" width=\"560\" height=\"{}\" "
                                "xmlns=\"http://www.w3.org/2000/svg\" font-size=\"13\">", 24 * bars.size() + 4);
  for (size_t i = 0; i < bars.size(); ++i) {
    double w = longest > 0 ? 340 * bars[i].second / longest : 0;
    int y = static_cast<int>(24 * i + 2);
    svg += fmt::format("<text x=\"0\" y=\"{}\">{}</text><rect x=\"130\" y=\"{}\" width=\"{:.1f}\" height=\"16\" "
                       "fill=\"#3b6fb6\"/><text x=\"{:.1f}\" y=\"{}\">{:.3f} s</text>",
                       y + 13, bars[i].first, y, std::max(w, 1.0), 136 + w, y + 13, bars[i].second);
  }
  return svg + "</svg>\n";
}

std::string MatchesSection(const json& r) {
  const json& rows = r.value("rows", json::object());
  double x = Num(rows, "x"), y = Num(rows, "y"), out = Num(rows, "output"), keys = Num(r, "y_distinct_keys");
  std::string s = "<h2>Matches</h2><table>\n";
  s += Row("result rows", fmt::format("{:.0f}", out));
  s += Row("result rows per x row (mean)", x > 0 ? fmt::format("{:.3f}", out / x) : NotMeasured("x has no rows"));
  s += Row("distinct IDs in y", fmt::format("{:.0f}", keys));
  s += Row("y rows per distinct ID (mean)", keys > 0 ? fmt::format("{:.3f}", y / keys) : NotMeasured("y has no IDs"));
  const char* why = "the engine does not count matches per ID yet";
  s += Row("IDs matched (in both files)", NotMeasured(why));
  s += Row("x rows with no match", NotMeasured(why));
  s += Row("distribution of matches per ID", NotMeasured(why));
  return s + "</table>\n";
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
  const json& phases = r.value("phases_seconds", json::object());
  s += "<h2>Time per phase</h2>\n" + PhaseChart(phases);
  s += fmt::format("<p class=\"muted\">engine total {:.3f} s; the run, with reading previews and writing the report, "
                   "{:.3f} s</p>\n", Num(phases, "total"), Num(r, "seconds"));
  s += MatchesSection(r);
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
