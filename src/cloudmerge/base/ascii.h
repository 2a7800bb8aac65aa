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

// RFC 3986 percent-encoding: unreserved characters (A-Z a-z 0-9 - _ . ~) kept,
// everything else %XX in upper-case hex (as SigV4 requires); '/' kept unless
// encode_slash. Spelled out rather than isalnum(), which follows the locale and
// in a Latin-1 locale would keep 0xE9 unencoded.
inline std::string UriEncode(std::string_view s, bool encode_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3);
  for (unsigned char c : s) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                      c == '_' || c == '.' || c == '~';
    if (unreserved || (c == '/' && !encode_slash)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    }
  }
  return out;
}

}  // namespace cloudmerge
