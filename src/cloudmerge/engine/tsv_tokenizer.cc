#include "cloudmerge/engine/tsv_tokenizer.h"

namespace cloudmerge {

bool NeedsQuoting(std::string_view value) {
  for (char c : value)
    if (c == '\t' || c == '"' || c == '\n' || c == '\r') return true;
  return false;
}

void AppendEncoded(std::string& out, std::string_view value) {
  if (!NeedsQuoting(value)) {
    out.append(value);
    return;
  }
  out.push_back('"');
  for (char c : value) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
}

}  // namespace cloudmerge
