// Escaping and capping of quoted input; see safe_text.h.
#include "cloudmerge/report/safe_text.h"

#include "cloudmerge/engine/error_report.h"

namespace cloudmerge {

std::string DumpJson(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string Quote(std::string_view text, size_t max_chars) { return Printable(text, max_chars); }

std::string QuoteLines(std::string_view text, size_t max_bytes) {
  bool cut = text.size() > max_bytes;
  if (cut) {
    text.remove_prefix(text.size() - max_bytes);
    size_t nl = text.find('\n');  // start at a line start when there is one
    if (nl != std::string_view::npos && nl + 1 < text.size()) text.remove_prefix(nl + 1);
  }
  std::string out = cut ? "…\n" : "";
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    out += Printable(line, max_bytes);
    if (nl == std::string_view::npos) break;
    out += '\n';
    text.remove_prefix(nl + 1);
  }
  return out;
}

}  // namespace cloudmerge
