// PandasPreview (report_html.h): the first rows of a TSV shaped like the
// script's print(df).
#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cloudmerge/engine/key_types.h"
#include "cloudmerge/engine/tsv_tokenizer.h"
#include "cloudmerge/report/report_html.h"

namespace cloudmerge {
namespace {

// ---- pandas-shaped preview ------------------------------------------------

// Cells are read by the engine's own rules (tsv_tokenizer.h; IsNaMarker,
// ParseInt64, ParseDouble, ParseBool of key_types.h): one copy of pandas' reading.

// One TSV line's fields as pandas reads them. A preview line may end inside a
// quoted field (its line break was data, the line was cut there): the quote is
// taken as closed at the line's end.
std::vector<std::string> SplitTsv(const std::string& line) {
  std::vector<std::string> out;
  Record rec;
  auto keep = [&](const Record& r) {
    for (const Field& f : r.fields) out.emplace_back(f.view());
    return false;  // one line, one record
  };
  TokenizeOutcome t = Tokenize(line.data(), line.data() + line.size(), rec, keep);
  if (t.error == TokenizeError::kUnterminatedQuote) {
    out.clear();
    const std::string closed = line + '"';
    Tokenize(closed.data(), closed.data() + closed.size(), rec, keep);
  }
  if (out.empty()) out.emplace_back();  // a blank line: one empty field
  return out;
}

bool IsInt(std::string_view v, int64_t* out) { return ParseInt64(v, out) == IntParse::kOk; }

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
    int64_t i;
    double d;
    bool b;
    all_int &= IsInt(v, &i);
    all_float &= ParseDouble(v, &d);
    all_bool &= ParseBool(v, &b);
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
      vals.push_back(!IsNaMarker(v) && ParseDouble(v, &d) ? std::optional<double>(d) : std::nullopt);
    }
    return FormatFloats(vals);
  }
  for (const auto& v : raw) {
    int64_t i = 0;
    if (kind == Kind::kInt && IsInt(v, &i)) out.push_back(i < 0 ? std::to_string(i) : " " + std::to_string(i));
    else if (kind == Kind::kBool) out.push_back(v[0] == 'T' || v[0] == 't' ? " True" : " False");
    else out.push_back(IsNaMarker(v) ? " NaN" : " " + v);
  }
  return out;
}

}  // namespace

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

}  // namespace cloudmerge
