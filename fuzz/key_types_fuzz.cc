// Fuzz harness: pandas' ID type inference (key_types.h). The input is a file's
// ID column, one value per line. Properties: no crash; scanning a file in two
// parts and combining them with Append decides what one scan of the whole does
// (table_scan relies on this to scan chunks in parallel); every value of a
// numeric file has a key or is missing. Single-threaded.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "cloudmerge/engine/key_types.h"

namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "key_types_fuzz: property violated: %s\n", what);
    std::abort();
  }
}

std::vector<std::string_view> Lines(std::string_view s) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t nl = s.find('\n', pos);
    if (nl == std::string_view::npos) nl = s.size();
    out.push_back(s.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cloudmerge;
  if (size == 0) return 0;
  std::vector<char> buf(data + 1, data + size);  // exact size: over-reads are ASan errors
  std::vector<std::string_view> values = Lines(std::string_view(buf.data(), buf.size()));
  size_t split = data[0] % (values.size() + 1);

  KeyScan whole, first, second;
  for (size_t i = 0; i < values.size(); ++i) {
    whole.Add(values[i]);
    (i < split ? first : second).Add(values[i]);
  }
  first.Append(second);
  KeyMode mode = whole.Decide();
  Check(first.Decide() == mode, "Append of two partial scans decides differently from one scan");
  Check(first.values() == whole.values(), "Append loses values");
  (void)KeyModeName(mode);
  if (IsNumeric(mode)) {
    for (std::string_view v : values) {
      NumericKey k{};
      bool has_key = ToNumericKey(mode, v, &k);
      (void)HashNumericKey(k);
      Check(has_key || IsNaMarker(v) || v.find_first_not_of(" \t\r\n\f\v") == std::string_view::npos ||
                mode == KeyMode::kFloat || mode == KeyMode::kBool,
            "an integer file's value has no key and is not missing");
    }
  }
  for (std::string_view v : values) {  // the parsers on their own
    int64_t i64;
    uint64_t u64;
    double d;
    bool b;
    (void)ParseInt64(v, &i64);
    (void)ParseUInt64(v, &u64);
    (void)ParseDouble(v, &d);
    (void)ParseBool(v, &b);
  }
  return 0;
}
