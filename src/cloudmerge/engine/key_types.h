// Key types: how the script decides whether two IDs are equal.
//
// pandas' read_csv infers one dtype per column (file), trying int64, then
// (after an int64 overflow only) uint64, then float64, then bool, else object.
// The script then compares x's and y's ID values with Python's ==, so:
//   - numeric files (int64/uint64/float64/bool) compare by value (007 == 7 == 7.0,
//     True == 1), a number never equals a text, NaN never equals anything;
//   - text files compare exact strings; NA markers ("", NA, NaN, null, ...) are NaN.
// A float64 file's values are the doubles pandas' own parser gives (ParseDouble:
// precise_xstrtod, which is not the nearest double), so equality is the script's.
// KeyScan reproduces the inference from one pass over a file's ID values, in
// file order, including pandas' quirks: an integer too large for uint64 makes the
// column text; a uint64 column mixed with negatives or NAs becomes text in which
// NA markers stay literal strings (KeyMode::kTextRaw).
//
// Deliberate deviation: pandas upcasts int64 columns containing NAs (and the
// script upcasts all-numeric rows) to float64, so 2^53+1 == 2^53 there; we
// compare 64-bit integers exactly.
//
// Thread safety: all functions are pure; a KeyScan is owned by one thread, and
// partial scans of consecutive chunks are combined with Append in file order.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace cloudmerge {

enum class KeyMode : uint8_t { kInt64, kUInt64, kFloat, kBool, kText, kTextRaw };

// The pandas whose read_csv the script's answer is reproduced under
// (docs/pandas-versions.md lists the rules that differ). 1.5 is the reference.
enum class PandasVersion : uint8_t { k1_5, k2_2, k3_0, k3_1 };
// Parses "1.5", "2.2", "3.0", "3.1" (also "1", "2", "3": the newest of that major).
bool ParsePandasVersion(std::string_view s, PandasVersion* out);
const char* PandasVersionName(PandasVersion v);

// The read_csv rules of one pandas version, carried by MergeOptions into every
// engine (KeyScan, ToNumericKey, MakeKey, PartitionHash). Default: pandas 1.5.3.
struct PandasRules {
  PandasVersion version = PandasVersion::k1_5;
  // Rule 1: "None" is a missing-value marker from pandas 2.0 on.
  bool none_is_na() const { return version >= PandasVersion::k2_2; }
  // Rule 5: from 3.0 a float's exponent may exceed 308 or any width (inf / 0), an
  // infinite result is a float, and an integer overflow followed by text (e.g.
  // "18446744073709551616.0") no longer makes the column text.
  bool wide_floats() const { return version >= PandasVersion::k3_0; }
  // Rule 6: from 3.1 floats are the nearest double (precise_xstrtod before).
  bool correct_rounding() const { return version >= PandasVersion::k3_1; }
  // Rules 3-4: from 3.0 integers beyond 64 bits are Python ints (compared as
  // numbers); cloudmerge refuses such an ID under these versions.
  bool python_big_ints() const { return version >= PandasVersion::k3_0; }
};

constexpr bool IsNumeric(KeyMode m) { return m != KeyMode::kText && m != KeyMode::kTextRaw; }
const char* KeyModeName(KeyMode m);

// pandas' default missing-value markers, matched against the whole field.
bool IsNaMarker(std::string_view v, PandasRules rules = {});

// pandas' str_to_int64 / str_to_uint64 (surrounding ASCII whitespace allowed).
enum class IntParse : uint8_t { kOk, kOverflow, kInvalid };
IntParse ParseInt64(std::string_view v, int64_t* out);
// For uint64: kNegative is pandas' "seen a signed value" (no error, no value).
enum class UIntParse : uint8_t { kOk, kNegative, kOverflow, kInvalid };
UIntParse ParseUInt64(std::string_view v, uint64_t* out);
// pandas' float parsing, bit for bit: the value pandas 1.5.3 (and 2.x, 3.0) holds for a
// field of a float64 column: decimal, optional exponent, surrounding whitespace, and the
// exact words inf/+inf/-inf/infinity (any case). It is NOT a correct rounding: at most 17
// digits (leading zeros included) are kept and the value is scaled by one power of ten
// (see key_types.cc). Exponents above 308 and results beyond double range fail. This is
// the one float parser of every engine (in memory, out of core, streamed).
bool ParseDouble(std::string_view v, double* out);
// The same grammar, with the nearest double as value (strtod).
bool ParseDoubleCorrectlyRounded(std::string_view v, double* out);
// The float64 value the given pandas holds for a field (ParseDouble under 1.5-2.2;
// with rule 5's wider grammar under 3.0; that grammar correctly rounded under 3.1).
bool ParsePandasFloat(std::string_view v, double* out, PandasRules rules);
// True for an integer spelling beyond 64 bits (optional sign, digits, surrounding
// whitespace; neither ParseInt64 nor ParseUInt64 holds it): pandas 3's Python ints.
bool IsBigIntegerSpelling(std::string_view v);
// True for an integer spelling (as ParseInt64/ParseUInt64 accept it, `nearest` being the
// integer converted to double) whose value as a pandas float differs from `nearest`: more than 17 digits counting
// leading zeros ("000000000000000007" is 0.0), or a 17-digit accumulation rounding
// beyond 2^53. Such a value hashes by its integer value (PartitionHash) but keys by
// pandas' float in a float64 file, so the engines re-key a float file that has one.
bool IntSpellingLosesInFloat(std::string_view v, double nearest, PandasRules rules = {});
// pandas' bool words: true/false in any case, nothing else.
bool ParseBool(std::string_view v, bool* out);

// The fast path of scanning and keying: a plain integer is an optional '-' and 1 to
// 15 ASCII digits, nothing else (no space, no '+'). Such a value is never an NA
// marker, is an int64 below 2^53 in magnitude (so an exact double, within pandas'
// 17-digit budget), and keys alike under int64, uint64 (when not negative) and
// float64: the general parsers (IsNaMarker, ParseInt64 with its overflow checks,
// ParsePandasFloat) are needed only for the other values. Generated and real IDs
// are nearly all plain.
inline bool ParsePlainInt(std::string_view v, int64_t* out) {
  const char* p = v.data();
  size_t n = v.size();
  bool neg = n > 0 && *p == '-';
  p += neg;
  n -= neg;
  if (n == 0 || n > 15) return false;
  uint64_t number = 0;
  for (size_t k = 0; k < n; ++k) {
    unsigned d = static_cast<unsigned char>(p[k]) - unsigned{'0'};
    if (d > 9) return false;
    number = number * 10 + d;
  }
  *out = neg ? -static_cast<int64_t>(number) : static_cast<int64_t>(number);
  return true;
}

// Running inference over a file's ID values in file order.
class KeyScan {
 public:
  explicit KeyScan(PandasRules rules = {}) : rules_(rules) {}
  PandasRules rules() const { return rules_; }
  // Adds a value; plain integers (ParsePlainInt) and, once the file is certain to
  // be text, any value are counted without parsing (the fast paths).
  void Add(std::string_view value) {
    int64_t i;
    if (ParsePlainInt(value, &i)) return AddPlainInt(value[0] == '-');
    if (settled_text_ && !rules_.python_big_ints()) { ++values_; return; }
    AddGeneral(value);
  }
  // Adds a value the caller found plain (ParsePlainInt), negative or not: what Add
  // would do, for a caller that parsed it already.
  void AddPlainInt(bool negative) {
    ++values_;
    ++plain_ints_;
    all_bool_ = false;
    seen_sint_ |= negative;  // "-0" too, as pandas
  }
  // Values that took the plain-integer fast path (tests check that it is taken).
  uint64_t plain_ints() const { return plain_ints_; }
  // Combines with the scan of the values that follow this one's in the file.
  void Append(const KeyScan& later);
  KeyMode Decide() const;
  uint64_t values() const { return values_; }
  // Some integer spelling IntSpellingLosesInFloat: if the file is float64, its keys
  // differ from the type-independent PartitionHash's assumption.
  bool lossy_int() const { return lossy_int_; }
  // Under rules.python_big_ints(): the first integer beyond 64 bits (IsBigIntegerSpelling),
  // with its 1-based position among the scanned values; 0 when none. The engines refuse it.
  uint64_t big_int_at() const { return big_int_at_; }
  const std::string& big_int() const { return big_int_; }

 private:
  friend struct KeyScanCodec;  // split_tasks.cc: a split's scan sent to the driver (cluster path)
  uint64_t values_ = 0, plain_ints_ = 0;
  bool any_na_ = false;
  // int64 pass: the first non-NA value that is not an int64, and why.
  bool int_broken_ = false, int_broken_by_overflow_ = false;
  // uint64 pass (run by pandas only after an int64 overflow).
  bool uint_error_ = false, uint_error_overflow_ = false;
  bool seen_sint_ = false, seen_uint_ = false;
  bool all_float_ = true, all_bool_ = true;
  bool lossy_int_ = false;
  PandasRules rules_;
  uint64_t big_int_at_ = 0;
  std::string big_int_;
  // The values so far make the file text whatever follows (an invalid int that is
  // neither a float nor a bool): later values only count, except for big_int_at.
  bool settled_text_ = false;
  void AddGeneral(std::string_view value);
};

// A numeric ID normalised so that equal values have equal representations:
// integral values in [-2^63, 2^64) are integers (tag kSigned/kUnsigned), other
// values are doubles. -0.0 == 0.
struct NumericKey {
  enum Tag : uint8_t { kSigned = 0, kUnsigned = 1, kDouble = 2 };
  uint64_t bits;
  uint8_t tag;
  bool operator==(const NumericKey& o) const { return bits == o.bits && tag == o.tag; }
};

NumericKey CanonicalFromDouble(double d);
// The normalised key of a value of a numeric file; false for a missing value.
// REQUIRES: mode is numeric and value was part of the scan that decided mode.
bool ToNumericKey(KeyMode mode, std::string_view value, NumericKey* out, PandasRules rules = {});

inline uint64_t HashNumericKey(const NumericKey& k) {
  uint64_t h = k.bits ^ (static_cast<uint64_t>(k.tag) << 56) ^ 0x9e3779b97f4a7c15ull;
  h ^= h >> 33; h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33; h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

}  // namespace cloudmerge
