// Deterministic TSV generator for the benchmarks.
//   cloudmerge-gen --side x|y --rows N [--key-range R] [--dup-every D] [--key-type int|string] [--seed S]
// y's keys are a permutation of [0, rows) (every D-th row repeats the previous key
// when --dup-every is given); x's keys are uniform in [0, key-range) (default 2*rows,
// so about half the x rows match). Values are decimal numbers with 6 digits.
// Output goes to standard output.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {
uint64_t SplitMix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
}  // namespace

int main(int argc, char** argv) {
  std::string side = "x", key_type = "int";
  uint64_t rows = 1000, key_range = 0, dup_every = 0, seed = 42;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    const char* v = argv[i + 1];
    if (a == "--side") side = v;
    else if (a == "--rows") rows = std::strtoull(v, nullptr, 10);
    else if (a == "--key-range") key_range = std::strtoull(v, nullptr, 10);
    else if (a == "--dup-every") dup_every = std::strtoull(v, nullptr, 10);
    else if (a == "--key-type") key_type = v;
    else if (a == "--seed") seed = std::strtoull(v, nullptr, 10);
    else { std::fprintf(stderr, "unknown option %s\n", a.c_str()); return 2; }
  }
  if (!key_range) key_range = 2 * rows;
  uint64_t s = seed * 1000003 + (side == "x" ? 1 : 2);
  std::vector<uint64_t> keys(rows);
  if (side == "y") {
    for (uint64_t i = 0; i < rows; ++i) keys[i] = i;
    for (uint64_t i = rows; i > 1; --i) std::swap(keys[i - 1], keys[SplitMix(s) % i]);
    if (dup_every)
      for (uint64_t i = 1; i < rows; ++i)
        if (i % dup_every == 0) keys[i] = keys[i - 1];
  } else {
    for (uint64_t i = 0; i < rows; ++i) keys[i] = SplitMix(s) % key_range;
  }
  std::vector<char> buf(1 << 20);
  size_t n = 0;
  auto flush = [&] { fwrite(buf.data(), 1, n, stdout); n = 0; };
  n += std::snprintf(buf.data() + n, buf.size() - n, "ID\tvalue\n");
  for (uint64_t i = 0; i < rows; ++i) {
    if (buf.size() - n < 64) flush();
    uint64_t r = SplitMix(s);
    double v = static_cast<double>(r % 2000000000) / 1e6 - 1000.0;
    if (key_type == "string")
      n += std::snprintf(buf.data() + n, 64, "G%09llu\t%.6f\n", static_cast<unsigned long long>(keys[i]), v);
    else
      n += std::snprintf(buf.data() + n, 64, "%llu\t%.6f\n", static_cast<unsigned long long>(keys[i]), v);
  }
  flush();
  return 0;
}
