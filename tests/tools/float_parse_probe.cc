// float_parse_probe: prints, for each line of standard input, the float64 that
// cloudmerge's pandas float parser (ParseDouble, key_types.h) gives it, as the 16
// hex digits of its bits, or "ERR" when the field is not a pandas float.
// tests/e2e/test_float_parity.py compares these with what pandas itself reads.
//   --nearest: the correctly rounded parser instead (ParseDoubleCorrectlyRounded).
//   --pandas V: the float pandas V holds (ParsePandasFloat; V = 1.5, 2.2, 3.0, 3.1).
// Lines end at \n only, so a field may hold \r, \v, \f.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include "cloudmerge/engine/key_types.h"

int main(int argc, char** argv) {
  bool nearest = argc > 1 && std::strcmp(argv[1], "--nearest") == 0;
  cloudmerge::PandasRules rules;
  bool versioned = argc > 2 && std::strcmp(argv[1], "--pandas") == 0;
  if (versioned && !cloudmerge::ParsePandasVersion(argv[2], &rules.version)) {
    std::fprintf(stderr, "unknown pandas version %s\n", argv[2]);
    return 2;
  }
  std::ios::sync_with_stdio(false);
  std::string line, out;
  char buf[24];
  while (std::getline(std::cin, line)) {
    double d;
    bool ok = nearest     ? cloudmerge::ParseDoubleCorrectlyRounded(line, &d)
              : versioned ? cloudmerge::ParsePandasFloat(line, &d, rules)
                          : cloudmerge::ParseDouble(line, &d);
    if (ok) {
      uint64_t bits;
      std::memcpy(&bits, &d, sizeof bits);
      std::snprintf(buf, sizeof buf, "%016llx\n", static_cast<unsigned long long>(bits));
      out += buf;
    } else {
      out += "ERR\n";
    }
    if (out.size() > (1 << 16)) { std::cout << out; out.clear(); }
  }
  std::cout << out;
  return 0;
}
