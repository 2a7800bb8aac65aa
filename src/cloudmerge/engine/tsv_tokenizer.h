// TSV tokenizer: splits bytes into records and fields exactly as pandas'
// read_csv(sep="\t") C parser does with its defaults:
//   - records end at "\n", "\r\n" or a lone "\r";
//   - lines that are empty or hold only spaces are skipped;
//   - a field starting with '"' is quoted: '""' inside is one '"', tabs and line
//     breaks inside are data; characters after the closing quote up to the next
//     tab or line end are appended (pandas does the same);
//   - a '"' inside an unquoted field is an ordinary character.
// It does not check field counts or encodings: table_scan does, with context.
//
// Hot loop: no allocation per record (Record is reused), no exceptions. Fields
// point into the input, except quoted fields, whose unescaped text lives in the
// Record's scratch buffer until the next record.
// Thread safety: Tokenize is reentrant; each thread uses its own Record.
#pragma once

#include <emmintrin.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace cloudmerge {

struct Field {
  const char* data;
  uint32_t size;
  std::string_view view() const { return {data, size}; }
};

// The fields of a record: a flat array reused from record to record. Unlike
// std::vector, whose push_back the compiler kept out of line (7 % of a merge's
// time in perf), appending is an inline store and a compare; the array grows,
// out of line, only while the first records of a thread's scan are seen.
class FieldList {
 public:
  FieldList() = default;
  FieldList(const FieldList& o) : storage_(o.storage_), data_(storage_.data()), n_(o.n_), cap_(storage_.size()) {}
  FieldList& operator=(const FieldList& o) {
    if (this != &o) {
      storage_ = o.storage_;
      data_ = storage_.data();
      n_ = o.n_;
      cap_ = storage_.size();
    }
    return *this;
  }
  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  void clear() { n_ = 0; }
  Field& operator[](size_t i) { return data_[i]; }
  const Field& operator[](size_t i) const { return data_[i]; }
  Field& back() { return data_[n_ - 1]; }
  const Field& back() const { return data_[n_ - 1]; }
  Field* begin() { return data_; }
  Field* end() { return data_ + n_; }
  const Field* begin() const { return data_; }
  const Field* end() const { return data_ + n_; }
  void push_back(Field f) {
    if (n_ == cap_) [[unlikely]] Grow();
    data_[n_++] = f;
  }

 private:
  [[gnu::noinline]] void Grow() {
    storage_.resize(storage_.empty() ? 8 : 2 * storage_.size());
    data_ = storage_.data();
    cap_ = storage_.size();
  }
  std::vector<Field> storage_;
  Field* data_ = nullptr;
  size_t n_ = 0, cap_ = 0;
};

struct Record {
  const char* begin = nullptr;  // first byte of the record
  const char* end = nullptr;    // one past its last byte, line terminator excluded
  bool has_quote_char = false;  // a '"' occurs: fields must be re-encoded on output
  FieldList fields;
  std::string scratch;          // unescaped text of quoted fields
};

enum class TokenizeError { kNone, kUnterminatedQuote };

struct TokenizeOutcome {
  TokenizeError error = TokenizeError::kNone;
  const char* where = nullptr;  // for errors: where the offending field starts
  const char* stopped_at = nullptr;  // where tokenizing stopped (end, or after the last record consumed)
};

namespace detail {
// 1 for bytes that end an unquoted field: tab, LF, CR; 2 for '"'.
struct FieldStopTable {
  uint8_t v[256] = {};
  constexpr FieldStopTable() {
    v[static_cast<uint8_t>('\t')] = 1;
    v[static_cast<uint8_t>('\n')] = 1;
    v[static_cast<uint8_t>('\r')] = 1;
    v[static_cast<uint8_t>('"')] = 2;
  }
};
inline constexpr FieldStopTable kFieldStop{};
}  // namespace detail

// Calls on_record(const Record&) for each record in [begin, end), which must
// start at a record boundary. on_record returns false to stop early.
template <class OnRecord>
TokenizeOutcome Tokenize(const char* begin, const char* end, Record& rec, OnRecord&& on_record) {
  TokenizeOutcome outcome;
  const char* p = begin;
  while (p < end) {
    // Skip blank lines and lines of spaces only (pandas' skip_blank_lines).
    const char* q = p;
    while (q < end && *q == ' ') ++q;
    if (q == end) { p = end; break; }
    if (*q == '\n') { p = q + 1; continue; }
    if (*q == '\r') { p = q + 1; if (p < end && *p == '\n') ++p; continue; }

    rec.begin = p;
    rec.has_quote_char = false;
    rec.fields.clear();
    rec.scratch.clear();
    bool any_quoted = false;
    // Quoted fields first store offsets into scratch (it may grow); fixed below.
    for (;;) {
      if (p < end && *p == '"') {
        const char* field_start = p;
        rec.has_quote_char = true;
        any_quoted = true;
        size_t off = rec.scratch.size();
        ++p;
        for (;;) {
          const char* close = static_cast<const char*>(std::memchr(p, '"', static_cast<size_t>(end - p)));
          if (!close) {
            outcome.error = TokenizeError::kUnterminatedQuote;
            outcome.where = field_start;
            outcome.stopped_at = field_start;
            return outcome;
          }
          rec.scratch.append(p, close);
          p = close + 1;
          if (p < end && *p == '"') { rec.scratch.push_back('"'); ++p; continue; }
          break;
        }
        while (p < end && *p != '\t' && *p != '\n' && *p != '\r') rec.scratch.push_back(*p++);
        // Sentinel pointer: offset into scratch, resolved after the record.
        rec.fields.push_back(Field{reinterpret_cast<const char*>(off + 1),
                                   static_cast<uint32_t>(rec.scratch.size() - off)});
        rec.fields.back().size |= 0x80000000u;  // mark as scratch-relative
      } else {
        const char* f = p;
        uint8_t stop = 0;
        while (p < end && !(stop = detail::kFieldStop.v[static_cast<uint8_t>(*p)])) ++p;
        while (stop == 2) {  // a literal '"' inside an unquoted field
          rec.has_quote_char = true;
          ++p;
          stop = 0;
          while (p < end && !(stop = detail::kFieldStop.v[static_cast<uint8_t>(*p)])) ++p;
        }
        rec.fields.push_back(Field{f, static_cast<uint32_t>(p - f)});
      }
      if (p < end && *p == '\t') { ++p; continue; }
      break;
    }
    rec.end = p;
    if (p < end) {  // consume the line terminator
      if (*p == '\r') { ++p; if (p < end && *p == '\n') ++p; }
      else ++p;
    }
    if (any_quoted) {
      for (Field& fld : rec.fields) {
        if (fld.size & 0x80000000u) {
          size_t off = reinterpret_cast<size_t>(fld.data) - 1;
          fld.size &= 0x7fffffffu;
          fld.data = rec.scratch.data() + off;
        }
      }
    }
    if (!on_record(static_cast<const Record&>(rec))) { outcome.stopped_at = p; return outcome; }
  }
  outcome.stopped_at = p;
  return outcome;
}

// TokenizeSimple: the same records as Tokenize for input that holds no '"'
// (table_scan knows this per file), found with SSE2: each 64-byte block yields
// a bit mask of its tabs and line-break bytes, and the loop visits only those
// positions instead of every byte (simdjson's stage-1 idea).
// REQUIRES: no '"' in [begin, end).
namespace detail {
inline uint64_t SeparatorMask(const char* p) {
  const __m128i tab = _mm_set1_epi8('\t'), lf = _mm_set1_epi8('\n'), cr = _mm_set1_epi8('\r');
  uint64_t m = 0;
  for (int k = 0; k < 4; ++k) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * k));
    __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, tab), _mm_cmpeq_epi8(v, lf)), _mm_cmpeq_epi8(v, cr));
    m |= static_cast<uint64_t>(static_cast<uint16_t>(_mm_movemask_epi8(hit))) << (16 * k);
  }
  return m;
}
inline uint64_t SeparatorMaskTail(const char* p, size_t n) {  // n < 64
  uint64_t m = 0;
  for (size_t i = 0; i < n; ++i)
    if (p[i] == '\t' || p[i] == '\n' || p[i] == '\r') m |= uint64_t{1} << i;
  return m;
}
inline bool AllSpaces(const char* b, const char* e) {
  for (; b < e; ++b)
    if (*b != ' ') return false;
  return true;
}
}  // namespace detail

template <class OnRecord>
TokenizeOutcome TokenizeSimple(const char* begin, const char* end, Record& rec, OnRecord&& on_record) {
  TokenizeOutcome outcome;
  rec.has_quote_char = false;
  rec.scratch.clear();
  rec.fields.clear();
  const char* field = begin;  // start of the current field
  const char* line = begin;   // start of the current line
  const char* skip_lf = nullptr;  // a '\n' that completes a "\r\n" already handled
  auto end_line = [&](const char* at) -> bool {  // the line [line, at) ends at a line break or EOF
    rec.fields.push_back(Field{field, static_cast<uint32_t>(at - field)});
    bool blank = rec.fields.size() == 1 && detail::AllSpaces(line, at);
    bool go_on = true;
    if (!blank) {
      rec.begin = line;
      rec.end = at;
      go_on = on_record(static_cast<const Record&>(rec));
    }
    rec.fields.clear();
    return go_on;
  };
  for (const char* block = begin; block < end; block += 64) {
    size_t n = static_cast<size_t>(end - block);
    uint64_t mask = n >= 64 ? detail::SeparatorMask(block) : detail::SeparatorMaskTail(block, n);
    while (mask) {
      const char* p = block + __builtin_ctzll(mask);
      mask &= mask - 1;
      char c = *p;
      if (c == '\t') {
        rec.fields.push_back(Field{field, static_cast<uint32_t>(p - field)});
        field = p + 1;
        continue;
      }
      if (p == skip_lf) continue;
      if (!end_line(p)) { outcome.stopped_at = p + 1; return outcome; }
      field = line = p + 1;
      if (c == '\r' && p + 1 < end && p[1] == '\n') {
        skip_lf = p + 1;
        field = line = p + 2;
      }
    }
  }
  if (line < end && !(rec.fields.empty() && field == end)) {
    if (!end_line(end)) { outcome.stopped_at = end; return outcome; }
  }
  outcome.stopped_at = end;
  return outcome;
}

// True when a value must be quoted on output: it holds a tab, quote or line break.
bool NeedsQuoting(std::string_view value);
// Appends value to out, quoted (with '"' doubled) only when NeedsQuoting.
void AppendEncoded(std::string& out, std::string_view value);

}  // namespace cloudmerge
