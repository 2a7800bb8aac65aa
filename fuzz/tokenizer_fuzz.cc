// Fuzz harness: the TSV tokenizers. Any input: Tokenize must not crash and
// every field must lie inside the input or the record's scratch buffer.
// Quote-free input (the only input TokenizeSimple accepts): TokenizeSimple must
// yield exactly Tokenize's records (differential, as tests/unit/tsv_tokenizer_test.cc
// does on random strings). Single-threaded, as libFuzzer calls it.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "cloudmerge/engine/tsv_tokenizer.h"

namespace {

using Rows = std::vector<std::vector<std::string>>;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "tokenizer_fuzz: property violated: %s\n", what);
    std::abort();
  }
}

bool Inside(const cloudmerge::Field& f, const char* b, const char* e, const cloudmerge::Record& r) {
  auto in = [&](const char* lo, const char* hi) { return f.data >= lo && f.data + f.size <= hi; };
  return in(b, e) || in(r.scratch.data(), r.scratch.data() + r.scratch.size());
}

template <class Fn>
Rows Collect(Fn tokenize, const char* b, const char* e) {
  Rows rows;
  cloudmerge::Record rec;
  tokenize(b, e, rec, [&](const cloudmerge::Record& r) {
    Check(r.begin >= b && r.end <= e && r.begin <= r.end, "record span outside the input");
    std::vector<std::string> row;
    for (const cloudmerge::Field& f : r.fields) {
      Check(Inside(f, b, e, r), "field outside the input and the scratch buffer");
      row.emplace_back(f.view());
    }
    rows.push_back(std::move(row));
    return true;
  });
  return rows;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An exact-size heap copy, so reading one byte past the end is an ASan error.
  std::vector<char> buf(data, data + size);
  const char* b = buf.data();
  const char* e = b + size;
  auto reference = [](auto&&... a) { return cloudmerge::Tokenize(a...); };
  Rows ref = Collect(reference, b, e);
  if (std::string_view(b, size).find('"') == std::string_view::npos) {  // memchr(nullptr, ..) is UB
    auto simple = [](auto&&... a) { return cloudmerge::TokenizeSimple(a...); };
    Check(Collect(simple, b, e) == ref, "TokenizeSimple differs from Tokenize on quote-free input");
  }
  return 0;
}
