#include "cloudmerge/engine/error_report.h"

#include <emmintrin.h>

#include <cstdint>
#include <cstring>

#include <fmt/format.h>

namespace cloudmerge {

TextPosition PositionOf(std::string_view data, size_t offset) {
  TextPosition pos;
  if (offset > data.size()) offset = data.size();
  for (size_t i = 0; i < offset; ++i) {
    char c = data[i];
    if (c == '\n' || (c == '\r' && (i + 1 >= data.size() || data[i + 1] != '\n'))) {
      ++pos.line;
      pos.line_begin = i + 1;
    }
  }
  size_t col = 1;
  for (size_t i = pos.line_begin; i < offset; ++i)
    if ((static_cast<unsigned char>(data[i]) & 0xC0) != 0x80) ++col;
  pos.column = col;
  return pos;
}

std::string Printable(std::string_view text, size_t max_chars) {
  std::string out;
  size_t shown = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (shown >= max_chars) { out += "…"; break; }
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\t') out += "<TAB>";
    else if (c == '\r') out += "\\r";
    else if (c == '\n') out += "\\n";
    else if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
    else if (c >= 0x80) {
      // Copy a valid UTF-8 sequence whole, escape stray bytes.
      size_t len = (c >= 0xF0 && c < 0xF5) ? 4 : (c >= 0xE0) && c < 0xF0 ? 3 : (c >= 0xC2 && c < 0xE0) ? 2 : 0;
      bool ok = len > 0 && i + len <= text.size();
      for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(text[i + k]) & 0xC0) == 0x80;
      if (ok) { out.append(text.substr(i, len)); i += len - 1; }
      else out += fmt::format("\\x{:02x}", c);
    } else out.push_back(static_cast<char>(c));
    ++shown;
  }
  return out;
}

Status InputError(const std::string& file, std::string_view data, size_t offset, const std::string& what,
                  const std::string& fix, uint64_t first_line) {
  TextPosition pos = PositionOf(data, offset);
  pos.line += first_line - 1;
  size_t line_end = pos.line_begin;
  while (line_end < data.size() && data[line_end] != '\n' && data[line_end] != '\r') ++line_end;
  std::string line = Printable(data.substr(pos.line_begin, line_end - pos.line_begin));
  return Status::InvalidInput(fmt::format("{}, line {}, column {}: {}. {} Line {}: {}", file, pos.line, pos.column,
                                          what, fix, pos.line, line));
}

namespace {

// Whether the 64 bytes at p are all ASCII and none is NUL (SSE2, as the tokenizer):
// the whole of a typical TSV file, checked a line of cache at a time.
bool PlainAscii64(const unsigned char* p) {
  const __m128i zero = _mm_setzero_si128();
  __m128i any = zero, nul = zero;
  for (int k = 0; k < 4; ++k) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * k));
    any = _mm_or_si128(any, v);
    nul = _mm_or_si128(nul, _mm_cmpeq_epi8(v, zero));
  }
  return _mm_movemask_epi8(_mm_or_si128(any, nul)) == 0;
}

}  // namespace

const char* FindEncodingError(const char* begin, const char* end, std::string* what) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(begin);
  const unsigned char* e = reinterpret_cast<const unsigned char*>(end);
  while (p < e) {
    if (e - p >= 64 && PlainAscii64(p)) {
      p += 64;
      continue;
    }
    // Fast path: 8 ASCII bytes with no NUL among them.
    if (e - p >= 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      bool has_high = (w & 0x8080808080808080ull) != 0;
      bool has_zero = ((w - 0x0101010101010101ull) & ~w & 0x8080808080808080ull) != 0;
      if (!has_high && !has_zero) { p += 8; continue; }
    }
    unsigned char c = *p;
    if (c == 0) {
      *what = "found a NUL byte (0x00); this looks like binary data, not a text TSV file";
      return reinterpret_cast<const char*>(p);
    }
    if (c < 0x80) { ++p; continue; }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
    else {
      *what = fmt::format("found byte 0x{:02X}, which is not valid UTF-8", c);
      return reinterpret_cast<const char*>(p);
    }
    if (static_cast<size_t>(e - p) < len) {
      *what = "the file ends in the middle of a UTF-8 character";
      return reinterpret_cast<const char*>(p);
    }
    for (size_t k = 1; k < len; ++k) {
      if ((p[k] & 0xC0) != 0x80) {
        *what = fmt::format("found byte 0x{:02X}, which is not valid UTF-8", c);
        return reinterpret_cast<const char*>(p);
      }
      cp = (cp << 6) | (p[k] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
      *what = fmt::format("found byte 0x{:02X} starting an invalid UTF-8 sequence", c);
      return reinterpret_cast<const char*>(p);
    }
    p += len;
  }
  return end;
}

}  // namespace cloudmerge
