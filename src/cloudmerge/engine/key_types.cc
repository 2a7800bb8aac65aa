#include "cloudmerge/engine/key_types.h"

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

namespace cloudmerge {
namespace {

inline bool IsSpaceAscii(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}
inline bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

}  // namespace

const char* KeyModeName(KeyMode m) {
  switch (m) {
    case KeyMode::kInt64: return "int64";
    case KeyMode::kUInt64: return "uint64";
    case KeyMode::kFloat: return "float64";
    case KeyMode::kBool: return "bool";
    case KeyMode::kText: return "text";
    case KeyMode::kTextRaw: return "text (NA markers kept as text)";
  }
  return "?";
}

bool ParsePandasVersion(std::string_view s, PandasVersion* out) {
  if (s == "1.5" || s == "1") *out = PandasVersion::k1_5;
  else if (s == "2.2" || s == "2") *out = PandasVersion::k2_2;
  else if (s == "3.0") *out = PandasVersion::k3_0;
  else if (s == "3.1" || s == "3") *out = PandasVersion::k3_1;
  else return false;
  return true;
}

const char* PandasVersionName(PandasVersion v) {
  switch (v) {
    case PandasVersion::k1_5: return "1.5";
    case PandasVersion::k2_2: return "2.2";
    case PandasVersion::k3_0: return "3.0";
    case PandasVersion::k3_1: return "3.1";
  }
  return "?";
}

bool IsNaMarker(std::string_view v, PandasRules rules) {
  if (v.empty()) return true;
  if (v.size() > 8) return false;
  switch (v[0]) {  // cheap dispatch: most IDs fail here
    case '#': return v == "#N/A" || v == "#N/A N/A" || v == "#NA";
    case '-': return v == "-1.#IND" || v == "-1.#QNAN" || v == "-NaN" || v == "-nan";
    case '1': return v == "1.#IND" || v == "1.#QNAN";
    case '<': return v == "<NA>";
    case 'N': return v == "N/A" || v == "NA" || v == "NULL" || v == "NaN" || (v == "None" && rules.none_is_na());
    case 'n': return v == "n/a" || v == "nan" || v == "null";
    default: return false;
  }
}

IntParse ParseInt64(std::string_view v, int64_t* out) {
  const char* p = v.data();
  const char* e = p + v.size();
  while (p < e && IsSpaceAscii(*p)) ++p;
  bool neg = false;
  if (p < e && *p == '-') { neg = true; ++p; }
  else if (p < e && *p == '+') ++p;
  if (p == e || !IsDigit(*p)) return IntParse::kInvalid;
  // Overflow is detected digit by digit, before trailing characters are looked
  // at, as pandas does: "99999999999999999999x" is an overflow, not invalid.
  int64_t number = 0;
  if (neg) {
    constexpr int64_t pre_min = std::numeric_limits<int64_t>::min() / 10;
    constexpr int dig_pre_min = -static_cast<int>(std::numeric_limits<int64_t>::min() % 10);
    while (p < e && IsDigit(*p)) {
      int d = *p - '0';
      if (number > pre_min || (number == pre_min && d <= dig_pre_min)) number = number * 10 - d;
      else return IntParse::kOverflow;
      ++p;
    }
  } else {
    constexpr int64_t pre_max = std::numeric_limits<int64_t>::max() / 10;
    constexpr int dig_pre_max = static_cast<int>(std::numeric_limits<int64_t>::max() % 10);
    while (p < e && IsDigit(*p)) {
      int d = *p - '0';
      if (number < pre_max || (number == pre_max && d <= dig_pre_max)) number = number * 10 + d;
      else return IntParse::kOverflow;
      ++p;
    }
  }
  while (p < e && IsSpaceAscii(*p)) ++p;
  if (p != e) return IntParse::kInvalid;
  *out = number;
  return IntParse::kOk;
}

UIntParse ParseUInt64(std::string_view v, uint64_t* out) {
  const char* p = v.data();
  const char* e = p + v.size();
  while (p < e && IsSpaceAscii(*p)) ++p;
  if (p < e && *p == '-') return UIntParse::kNegative;  // pandas: seen_sint, no error
  if (p < e && *p == '+') ++p;
  if (p == e || !IsDigit(*p)) return UIntParse::kInvalid;
  constexpr uint64_t pre_max = std::numeric_limits<uint64_t>::max() / 10;
  constexpr unsigned dig_pre_max = std::numeric_limits<uint64_t>::max() % 10;
  uint64_t number = 0;
  while (p < e && IsDigit(*p)) {
    unsigned d = static_cast<unsigned>(*p - '0');
    if (number < pre_max || (number == pre_max && d <= dig_pre_max)) number = number * 10 + d;
    else return UIntParse::kOverflow;
    ++p;
  }
  while (p < e && IsSpaceAscii(*p)) ++p;
  if (p != e) return UIntParse::kInvalid;
  *out = number;
  return UIntParse::kOk;
}

namespace {

// 10^0 .. 10^308, each the double nearest the power (as the literals of pandas'
// table are): built once by the correctly rounding strtod.
const double* PowersOfTen() {
  static const std::array<double, 309> table = [] {
    std::array<double, 309> t{};
    char buf[8];
    for (int k = 0; k <= 308; ++k) {
      std::snprintf(buf, sizeof buf, "1e%d", k);
      t[k] = std::strtod(buf, nullptr);
    }
    return t;
  }();
  return table.data();
}

// pandas' words for infinity, accepted by _try_double only as the whole field.
bool ParseInfinityWord(std::string_view w, double* out) {
  bool neg = false;
  if (!w.empty() && (w[0] == '+' || w[0] == '-')) { neg = w[0] == '-'; w.remove_prefix(1); }
  if (!EqualsIgnoreCase(w, "inf") && !EqualsIgnoreCase(w, "infinity")) return false;
  *out = neg ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
  return true;
}

}  // namespace

// A re-implementation of precise_xstrtod (pandas/_libs/src/parser/tokenizer.c,
// pandas 1.3 to 3.0, the default float_precision="high"), as _try_double calls
// it: decimal '.', no thousands separator, trailing whitespace skipped, and the
// whole field consumed. Its rules, which make it differ from a correct parse:
//   - at most 17 digits enter the mantissa, counted from the first digit
//     written, leading zeros included ("000000000000000007" keeps 17 zeros: 0);
//     further integer digits only raise the exponent, further decimals are dropped;
//   - the mantissa is accumulated in a double (number * 10 + digit, rounding at
//     each step past 2^53), then scaled by ONE multiplication or division by a
//     power of ten from a table (two divisions below 1e-308), so about a third of
//     17-digit decimals end one bit away from the nearest double;
//   - the exponent takes at most 17 digits, in a C int (wrapping past 2^31, as
//     the compiled code does); an exponent above 308 is an error, even for 0e400;
//     a result of +-infinity is an error (1.8e308); below -616 the value is 0.
// Differentially tested against pandas itself: tests/e2e/test_float_parity.py.
namespace {

// precise_xstrtod's grammar and arithmetic (see above). `wide` is pandas 3.0's
// acceptance (rule 5 of docs/pandas-versions.md): the exponent takes any number
// of digits and does not wrap, an exponent above 308 gives +-inf (+0.0, even for -0e400, for a zero
// mantissa), and an infinite result is a value, not an error.
bool ParseDoubleImpl(std::string_view v, double* out, bool wide) {
  const char* p = v.data();
  const char* const e = p + v.size();
  while (p < e && IsSpaceAscii(*p)) ++p;
  bool negative = false;
  if (p < e && (*p == '-' || *p == '+')) negative = *p++ == '-';
  constexpr int kMaxDigits = 17;
  double number = 0.0;
  // A C int in pandas 1.5 (wrapped to 32 bits below); int64 holds every count here
  // (the field's length bounds the digit counts, exponent digits are capped).
  int64_t exponent = 0;
  int num_digits = 0;
  for (; p < e && IsDigit(*p); ++p) {
    if (num_digits < kMaxDigits) {
      number = number * 10.0 + (*p - '0');
      ++num_digits;
    } else {
      ++exponent;
    }
  }
  if (p < e && *p == '.') {
    ++p;
    int64_t num_decimals = 0;
    for (; num_digits < kMaxDigits && p < e && IsDigit(*p); ++p) {
      number = number * 10.0 + (*p - '0');
      ++num_digits;
      ++num_decimals;
    }
    if (num_digits >= kMaxDigits)
      while (p < e && IsDigit(*p)) ++p;
    exponent -= num_decimals;
  }
  if (num_digits == 0) return ParseInfinityWord(v, out);
  if (negative) number = -number;
  if (p < e && (*p == 'e' || *p == 'E')) {
    ++p;
    bool exp_negative = false;
    if (p < e && (*p == '-' || *p == '+')) exp_negative = *p++ == '-';
    int exp_digits = 0;
    int64_t n = 0;
    constexpr int64_t kSaturated = int64_t{1} << 40;  // far beyond any finite result, no overflow
    for (; (wide || exp_digits < kMaxDigits) && p < e && IsDigit(*p); ++p, ++exp_digits) {
      n = n * 10 + (*p - '0');
      if (wide && n > kSaturated) n = kSaturated;  // 1.5: at most 17 digits, < 2^57, wrapped below
    }
    if (exp_digits == 0) return false;  // "1e", "1e+": pandas un-reads the 'e', which is then trailing text
    exponent = exp_negative ? exponent - n : exponent + n;
  }
  const int64_t exp10 = wide ? exponent : static_cast<int32_t>(static_cast<uint32_t>(exponent));
  const double* pow10 = PowersOfTen();
  if (exp10 > 308) {
    if (!wide) return false;  // ERANGE
    number = number == 0.0 ? 0.0 : std::copysign(std::numeric_limits<double>::infinity(), number);
  } else if (exp10 > 0) {
    number *= pow10[exp10];
  } else if (exp10 < -308) {  // subnormal range: two divisions
    if (exp10 < -616) {
      number = 0.0;
    } else {
      number /= pow10[-308 - exp10];
      number /= pow10[308];
    }
  } else {
    number /= pow10[-exp10];
  }
  if (std::isinf(number) && !wide) return false;  // ERANGE
  while (p < e && IsSpaceAscii(*p)) ++p;
  if (p != e) return ParseInfinityWord(v, out);
  *out = number;
  return true;
}

// The nearest double for a spelling already accepted by the grammar.
double NearestDouble(std::string_view v) {
  const char* p = v.data();
  const char* e = p + v.size();
  while (p < e && IsSpaceAscii(*p)) ++p;
  while (e > p && IsSpaceAscii(e[-1])) --e;
  std::string s(p, e);
  return std::strtod(s.c_str(), nullptr);
}

}  // namespace

bool ParseDouble(std::string_view v, double* out) { return ParseDoubleImpl(v, out, /*wide=*/false); }

bool ParseDoubleCorrectlyRounded(std::string_view v, double* out) {
  // Same grammar as ParseDouble, the nearest double as value.
  double unused;
  if (!ParseDouble(v, &unused)) return false;
  *out = NearestDouble(v);
  return true;
}

bool ParsePandasFloat(std::string_view v, double* out, PandasRules rules) {
  if (!rules.wide_floats()) return ParseDouble(v, out);
  if (!rules.correct_rounding()) return ParseDoubleImpl(v, out, /*wide=*/true);
  double unused;
  if (!ParseDoubleImpl(v, &unused, /*wide=*/true)) return false;
  *out = NearestDouble(v);
  return true;
}

bool IsBigIntegerSpelling(std::string_view v) {
  int64_t i;
  uint64_t u;
  if (ParseInt64(v, &i) != IntParse::kOverflow) return false;
  UIntParse up = ParseUInt64(v, &u);
  if (up == UIntParse::kOk) return false;
  // An overflow: the digits ran past 64 bits; the rest must be digits and whitespace only.
  size_t a = 0, b = v.size();
  while (a < b && IsSpaceAscii(v[a])) ++a;
  while (b > a && IsSpaceAscii(v[b - 1])) --b;
  if (a < b && (v[a] == '-' || v[a] == '+')) ++a;
  if (a == b) return false;
  for (size_t k = a; k < b; ++k)
    if (!IsDigit(v[k])) return false;
  return true;
}

bool IntSpellingLosesInFloat(std::string_view v, double nearest, PandasRules rules) {
  if (v.size() <= 17 && std::fabs(nearest) <= 9007199254740992.0) return false;  // exact either way
  if (rules.correct_rounding()) return false;  // pandas' float is the nearest double, as `nearest`
  double pandas;
  if (!ParsePandasFloat(v, &pandas, rules)) return false;  // then the file cannot be float64
  return !(CanonicalFromDouble(pandas) == CanonicalFromDouble(nearest));
}

bool ParseBool(std::string_view v, bool* out) {
  if (EqualsIgnoreCase(v, "true")) { *out = true; return true; }
  if (EqualsIgnoreCase(v, "false")) { *out = false; return true; }
  return false;
}

void KeyScan::AddGeneral(std::string_view value) {
  ++values_;
  if (IsNaMarker(value, rules_)) { any_na_ = true; return; }
  int64_t i;
  IntParse ip = ParseInt64(value, &i);
  if (ip == IntParse::kOk) {
    all_bool_ = false;
    if (i < 0 || value.find('-') != std::string_view::npos) seen_sint_ = true;  // "-0" too
    if (value.size() > 15) {
      // As a float (if the file turns out float64) pandas may read it otherwise,
      // and with more than 325 digits (leading zeros) not at all: "0...07" is text then.
      double d;
      if (value.size() > 325 && all_float_ && !ParsePandasFloat(value, &d, rules_)) all_float_ = false;
      lossy_int_ |= IntSpellingLosesInFloat(value, static_cast<double>(i), rules_);
    }
    return;
  }
  if (!int_broken_) { int_broken_ = true; int_broken_by_overflow_ = ip == IntParse::kOverflow; }
  if (ip == IntParse::kOverflow && big_int_at_ == 0 && rules_.python_big_ints() && IsBigIntegerSpelling(value)) {
    big_int_at_ = values_;
    big_int_.assign(value);
  }
  uint64_t u;
  switch (ParseUInt64(value, &u)) {
    case UIntParse::kOk:
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) seen_uint_ = true;
      lossy_int_ |= IntSpellingLosesInFloat(value, static_cast<double>(u), rules_);
      break;
    case UIntParse::kNegative: seen_sint_ = true; break;
    case UIntParse::kOverflow:
    case UIntParse::kInvalid:
      if (!uint_error_) { uint_error_ = true; uint_error_overflow_ = ParseUInt64(value, &u) == UIntParse::kOverflow; }
      break;
  }
  double d;
  if (all_float_ && !ParsePandasFloat(value, &d, rules_)) all_float_ = false;
  bool b;
  if (all_bool_ && !ParseBool(value, &b)) all_bool_ = false;
  settled_text_ = int_broken_ && !int_broken_by_overflow_ && !all_float_ && !all_bool_;
}

void KeyScan::Append(const KeyScan& later) {
  if (big_int_at_ == 0 && later.big_int_at_ != 0) {
    big_int_at_ = values_ + later.big_int_at_;
    big_int_ = later.big_int_;
  }
  values_ += later.values_;
  plain_ints_ += later.plain_ints_;
  any_na_ |= later.any_na_;
  if (!int_broken_ && later.int_broken_) {
    int_broken_ = true;
    int_broken_by_overflow_ = later.int_broken_by_overflow_;
  }
  if (!uint_error_ && later.uint_error_) {
    uint_error_ = true;
    uint_error_overflow_ = later.uint_error_overflow_;
  }
  seen_sint_ |= later.seen_sint_;
  seen_uint_ |= later.seen_uint_;
  all_float_ &= later.all_float_;
  all_bool_ &= later.all_bool_;
  lossy_int_ |= later.lossy_int_;
  settled_text_ = int_broken_ && !int_broken_by_overflow_ && !all_float_ && !all_bool_;
}

KeyMode KeyScan::Decide() const {
  if (values_ == 0) return KeyMode::kText;  // pandas: an empty column is object
  if (!int_broken_) return KeyMode::kInt64;  // (with NAs pandas makes it float64: same values)
  if (int_broken_by_overflow_) {
    // pandas retries as uint64 (parsers.pyx _try_uint64 / tokenizer.c uint_state).
    if (uint_error_) {
      // pandas 3 reads an overflow followed by text ("18446744073709551616.0") as a
      // float (rule 5); an integer beyond 64 bits alone is refused (big_int_at).
      if (uint_error_overflow_ && !rules_.wide_floats()) return KeyMode::kText;
      // invalid value: fall through to float64
    } else {
      if (seen_uint_ && (seen_sint_ || any_na_)) return KeyMode::kTextRaw;
      if (seen_sint_) return KeyMode::kText;
      return KeyMode::kUInt64;
    }
  }
  if (all_float_) return KeyMode::kFloat;
  if (all_bool_) return KeyMode::kBool;
  return KeyMode::kText;
}

NumericKey CanonicalFromDouble(double d) {
  if (std::isfinite(d) && d == std::trunc(d)) {
    if (d >= -9223372036854775808.0 && d < 9223372036854775808.0)
      return NumericKey{static_cast<uint64_t>(static_cast<int64_t>(d)), NumericKey::kSigned};
    if (d >= 0 && d < 18446744073709551616.0)
      return NumericKey{static_cast<uint64_t>(d), NumericKey::kUnsigned};
  }
  uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  return NumericKey{bits, NumericKey::kDouble};
}

bool ToNumericKey(KeyMode mode, std::string_view value, NumericKey* out, PandasRules rules) {
  int64_t plain;
  if (mode != KeyMode::kBool && ParsePlainInt(value, &plain) && (value[0] != '-' || mode != KeyMode::kUInt64)) {
    *out = NumericKey{static_cast<uint64_t>(plain), NumericKey::kSigned};  // the fast path: see ParsePlainInt
    return true;
  }
  if (IsNaMarker(value, rules)) return false;
  switch (mode) {
    case KeyMode::kInt64: {
      int64_t i;
      if (ParseInt64(value, &i) != IntParse::kOk) return false;
      *out = NumericKey{static_cast<uint64_t>(i), NumericKey::kSigned};
      return true;
    }
    case KeyMode::kUInt64: {
      uint64_t u;
      if (ParseUInt64(value, &u) != UIntParse::kOk) return false;
      *out = NumericKey{u, u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ? NumericKey::kUnsigned
                                                                                            : NumericKey::kSigned};
      return true;
    }
    case KeyMode::kFloat: {
      int64_t i;
      // Integers up to 2^53 written with at most 17 characters (so at most 17 digits,
      // within pandas' digit budget) are exact doubles: skip the float parse for them.
      if (value.size() <= 17 && ParseInt64(value, &i) == IntParse::kOk && i >= -(int64_t{1} << 53) &&
          i <= (int64_t{1} << 53)) {
        *out = NumericKey{static_cast<uint64_t>(i), NumericKey::kSigned};
        return true;
      }
      double d;
      if (!ParsePandasFloat(value, &d, rules)) return false;
      *out = CanonicalFromDouble(d);
      return true;
    }
    case KeyMode::kBool: {
      bool b;
      if (!ParseBool(value, &b)) return false;
      *out = NumericKey{b ? 1u : 0u, NumericKey::kSigned};
      return true;
    }
    default: return false;
  }
}

}  // namespace cloudmerge
