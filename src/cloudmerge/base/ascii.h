// ASCII text helpers for protocol and configuration text (HTTP headers, the
// AWS shared files, endpoint URLs), where case and blanks are ASCII-only by
// definition; never for user data, whose bytes the engine keeps as they are.
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace cloudmerge {

inline std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

inline bool IsAsciiBlank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// Without leading and trailing spaces, tabs, CRs and LFs.
inline std::string TrimBlanks(std::string_view s) {
  while (!s.empty() && IsAsciiBlank(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsAsciiBlank(s.back())) s.remove_suffix(1);
  return std::string(s);
}

}  // namespace cloudmerge
