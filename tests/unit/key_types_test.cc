// Key type inference and normalisation, checked against what pandas 1.5.3's
// read_csv does (each expectation was observed with Debian's python3-pandas).
#include "cloudmerge/engine/key_types.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <string>

#include "cloudmerge/engine/join_keys.h"

namespace cloudmerge {
namespace {

KeyMode Infer(std::initializer_list<const char*> values) {
  KeyScan s;
  for (const char* v : values) s.Add(v);
  return s.Decide();
}

TEST(KeyInference, IntegersWithPandasAcceptedForms) {
  EXPECT_EQ(Infer({"1", "007", " 7 ", "+5", "-0"}), KeyMode::kInt64);
  EXPECT_EQ(Infer({"1", "NA"}), KeyMode::kInt64);  // pandas: float64 with NaN; same values
  EXPECT_EQ(Infer({"\f1", "1\v"}), KeyMode::kInt64);
}

TEST(KeyInference, FloatsAndTheirEdges) {
  EXPECT_EQ(Infer({"1", "2.5"}), KeyMode::kFloat);
  EXPECT_EQ(Infer({".5", "5.", "1E5", "1e+5", "1e-400"}), KeyMode::kFloat);
  EXPECT_EQ(Infer({"inf", "-Infinity", "+INF", "iNf"}), KeyMode::kFloat);
  EXPECT_EQ(Infer({"1.8e308"}), KeyMode::kText);   // beyond double range
  EXPECT_EQ(Infer({"inf "}), KeyMode::kText);      // inf words must be exact
  EXPECT_EQ(Infer({"1e"}), KeyMode::kText);
  EXPECT_EQ(Infer({"1d5"}), KeyMode::kText);
  EXPECT_EQ(Infer({"0x10"}), KeyMode::kText);
  EXPECT_EQ(Infer({"1,000"}), KeyMode::kText);
  EXPECT_EQ(Infer({"1_000"}), KeyMode::kText);
  EXPECT_EQ(Infer({"NAN"}), KeyMode::kText);       // not a pandas NA marker
  EXPECT_EQ(Infer({"1. 5"}), KeyMode::kText);
}

TEST(KeyInference, Booleans) {
  EXPECT_EQ(Infer({"True", "FALSE", "tRue"}), KeyMode::kBool);
  EXPECT_EQ(Infer({"True", "NA"}), KeyMode::kBool);
  EXPECT_EQ(Infer({"True", "1"}), KeyMode::kText);
  EXPECT_EQ(Infer({" True"}), KeyMode::kText);
}

TEST(KeyInference, UInt64AndOverflowQuirks) {
  EXPECT_EQ(Infer({"18446744073709551615", "1"}), KeyMode::kUInt64);
  EXPECT_EQ(Infer({"9223372036854775808"}), KeyMode::kUInt64);
  EXPECT_EQ(Infer({"-9223372036854775808"}), KeyMode::kInt64);
  EXPECT_EQ(Infer({"-9223372036854775809"}), KeyMode::kText);
  EXPECT_EQ(Infer({"18446744073709551616", "1"}), KeyMode::kText);
  EXPECT_EQ(Infer({"1.5", "18446744073709551616"}), KeyMode::kFloat);  // order matters in pandas
  EXPECT_EQ(Infer({"18446744073709551616", "1.5"}), KeyMode::kText);
  EXPECT_EQ(Infer({"-1", "18446744073709551615", "1.5"}), KeyMode::kFloat);
  EXPECT_EQ(Infer({"18446744073709551615", "-1"}), KeyMode::kTextRaw);
  EXPECT_EQ(Infer({"NA", "18446744073709551615"}), KeyMode::kTextRaw);
  EXPECT_EQ(Infer({"-1", "9223372036854775808"}), KeyMode::kTextRaw);
  EXPECT_EQ(Infer({"-abc", "18446744073709551615", "NA"}), KeyMode::kText);
  EXPECT_EQ(Infer({"99999999999999999999x"}), KeyMode::kText);
}

TEST(KeyInference, TextAndMissing) {
  EXPECT_EQ(Infer({"1", "X"}), KeyMode::kText);
  EXPECT_EQ(Infer({" ", "1"}), KeyMode::kText);  // a space is not missing
  EXPECT_EQ(Infer({}), KeyMode::kText);
}

TEST(KeyInference, AppendIsFileOrder) {
  KeyScan a, b;
  a.Add("18446744073709551616");
  b.Add("1.5");
  KeyScan ab = a;
  ab.Append(b);
  EXPECT_EQ(ab.Decide(), KeyMode::kText);
  KeyScan ba = b;
  ba.Append(a);
  EXPECT_EQ(ba.Decide(), KeyMode::kFloat);
}

TEST(NaMarkers, ExactlyPandasDefaults) {
  for (const char* v : {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                        "<NA>", "N/A", "NA", "NULL", "NaN", "n/a", "nan", "null"})
    EXPECT_TRUE(IsNaMarker(v)) << v;
  for (const char* v : {" ", " NA", "na", "Null", "NAN", "None", "none", "1"}) EXPECT_FALSE(IsNaMarker(v)) << v;
}

NumericKey Key(KeyMode mode, const char* v) {
  NumericKey k{};
  EXPECT_TRUE(ToNumericKey(mode, v, &k)) << v;
  return k;
}

TEST(NumericKeys, EqualValuesEqualKeys) {
  EXPECT_EQ(Key(KeyMode::kInt64, "007"), Key(KeyMode::kFloat, "7.0"));
  EXPECT_EQ(Key(KeyMode::kFloat, "1e3"), Key(KeyMode::kInt64, "1000"));
  EXPECT_EQ(Key(KeyMode::kFloat, "-0.0"), Key(KeyMode::kInt64, "0"));
  EXPECT_EQ(Key(KeyMode::kBool, "True"), Key(KeyMode::kInt64, "1"));
  EXPECT_EQ(Key(KeyMode::kBool, "false"), Key(KeyMode::kFloat, "0.0"));
  EXPECT_EQ(Key(KeyMode::kUInt64, "5"), Key(KeyMode::kInt64, "5"));
  EXPECT_EQ(Key(KeyMode::kUInt64, "18446744073709551615").tag, NumericKey::kUnsigned);
  EXPECT_EQ(Key(KeyMode::kFloat, "inf"), Key(KeyMode::kFloat, "Infinity"));
}

TEST(NumericKeys, IntegersAreExact) {  // the documented deviation from the script's float upcast
  EXPECT_FALSE(Key(KeyMode::kInt64, "9007199254740993") == Key(KeyMode::kInt64, "9007199254740992"));
  EXPECT_FALSE(Key(KeyMode::kUInt64, "9223372036854775809") == Key(KeyMode::kInt64, "9223372036854775807"));
  // In a float64 file pandas has already rounded the value: that rounding is the script's answer.
  EXPECT_EQ(Key(KeyMode::kFloat, "9007199254740993"), Key(KeyMode::kInt64, "9007199254740992"));
}

TEST(NumericKeys, DistinctValuesDistinctKeys) {
  EXPECT_FALSE(Key(KeyMode::kFloat, "1.5") == Key(KeyMode::kFloat, "1.25"));
  EXPECT_FALSE(Key(KeyMode::kFloat, "inf") == Key(KeyMode::kFloat, "-inf"));
  EXPECT_FALSE(Key(KeyMode::kInt64, "-1") == Key(KeyMode::kUInt64, "18446744073709551615"));
}

TEST(NumericKeys, MissingNeverMatches) {
  NumericKey k;
  EXPECT_FALSE(ToNumericKey(KeyMode::kFloat, "NaN", &k));
  EXPECT_FALSE(ToNumericKey(KeyMode::kInt64, "", &k));
}


// pandas' float parser (precise_xstrtod), bit for bit: the repros, as Debian's
// pandas 1.5.3 reads them (tests/e2e/test_float_parity.py checks 2*10^5 more against pandas).
std::string Hex(const char* v) {
  double d;
  if (!ParseDouble(v, &d)) return "ERR";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%a", d);
  return buf;
}

TEST(PandasFloat, SeventeenDigitsRoundAsPandasDoes) {
  EXPECT_EQ(Hex("10.357019999999999"), "0x1.4b6cb5350092dp+3");  // strtod: ...092c
  EXPECT_EQ(Hex("10.35702"), "0x1.4b6cb5350092dp+3");
  EXPECT_EQ(Hex("0.30000000000000004"), "0x1.3333333333333p-2");  // strtod: ...334, pandas: 0.3
  EXPECT_EQ(Hex("0.3"), "0x1.3333333333333p-2");
  EXPECT_EQ(Hex("1e-307"), "0x1.1fa182c40c60ep-1020");
  EXPECT_EQ(Hex("1.0000000000000000e-307"), "0x1.1fa182c40c60dp-1020");  // != 1e-307 in pandas
  EXPECT_EQ(Hex("9223372036854775807"), "0x1.0000000000001p+63");
}

TEST(PandasFloat, DigitBudgetCountsLeadingZeros) {
  EXPECT_EQ(Hex("000000000000000007"), "0x0p+0");  // 17 zeros fill the budget, the 7 is dropped
  EXPECT_EQ(Hex("00000000000000007"), "0x1.cp+2");  // 17 digits: kept
  EXPECT_EQ(Hex("0000000000000000000000000000001"), "0x0p+0");
}

TEST(PandasFloat, ExponentRules) {
  EXPECT_EQ(Hex("0e400"), "ERR");                 // above 308: an error even for zero
  EXPECT_EQ(Hex("1e309"), "ERR");
  EXPECT_EQ(Hex("1.8e308"), "ERR");               // infinite result
  EXPECT_EQ(Hex("1e0000000000000000001"), "ERR");  // 18 exponent digits: the last is trailing text
  EXPECT_EQ(Hex("1e00000000000000001"), "0x1.4p+3");
  EXPECT_EQ(Hex("1e4294967297"), "0x1.4p+3");     // a C int wraps: exponent 1
  EXPECT_EQ(Hex("1e-700"), "0x0p+0");
  EXPECT_EQ(Hex("1e"), "ERR");
  EXPECT_EQ(Hex("1e+"), "ERR");
  EXPECT_EQ(Hex(" \f5.\v "), "0x1.4p+2");
  EXPECT_EQ(Hex("-.5"), "-0x1p-1");
  EXPECT_EQ(Hex("."), "ERR");
  EXPECT_EQ(Hex("-INF"), "-inf");
}

TEST(PandasFloat, TypeInferenceFollowsTheParser) {
  EXPECT_EQ(Infer({"1.5", "0e400"}), KeyMode::kText);  // strtod would accept 0e400
  EXPECT_EQ(Infer({"1.5", "1e0000000000000000001"}), KeyMode::kText);
  EXPECT_EQ(Infer({"1.5", std::string(330, '0').append("7").c_str()}), KeyMode::kText);  // exponent 314
  EXPECT_EQ(Infer({std::string(330, '0').append("7").c_str()}), KeyMode::kInt64);
}

TEST(PandasFloat, FloatKeysAreThePandasValues) {
  // The repros: x ID vs y ID, same file type (float64) on both sides.
  EXPECT_EQ(Key(KeyMode::kFloat, "10.357019999999999"), Key(KeyMode::kFloat, "10.35702"));
  EXPECT_EQ(Key(KeyMode::kFloat, "0.3"), Key(KeyMode::kFloat, "0.30000000000000004"));
  EXPECT_EQ(Key(KeyMode::kInt64, "0"), Key(KeyMode::kFloat, "000000000000000007"));
  EXPECT_FALSE(Key(KeyMode::kFloat, "1e-307") == Key(KeyMode::kFloat, "1.0000000000000000e-307"));
  EXPECT_EQ(Key(KeyMode::kFloat, "00000000000000007"), Key(KeyMode::kInt64, "7"));
}

TEST(PandasFloat, LossyIntegerSpellingsAreFlagged) {
  auto lossy = [](std::initializer_list<const char*> values) {
    KeyScan s;
    for (const char* v : values) s.Add(v);
    return s.lossy_int();
  };
  EXPECT_TRUE(lossy({"000000000000000007", "1.5"}));
  EXPECT_TRUE(lossy({"9223372036854775807"}));
  EXPECT_TRUE(lossy({"1.5", "9223372036854775808"}));  // uint64 spelling: 2^63 + 2048 in pandas
  EXPECT_FALSE(lossy({"1.5", "18446744073709551615"}));  // 2^64 both ways
  EXPECT_FALSE(lossy({"7", "00000000000000007", "9007199254740993", "1.5"}));
}

// The out-of-core partition pass hashes and type-scans a key in one step; plain
// integers take a fast path that must hash exactly as PartitionHash and count in
// the scan exactly as KeyScan::Add.
TEST(PartitionHash, ScanningFastPathHashesAndCountsAsTheGeneralPath) {
  const PandasRules rules{};
  KeyScan fast(rules), general(rules);
  for (std::string_view v : {"0", "-0", "7", "007", "000000000000007", "-123456789012345", "999999999999999",
                             "1234567890123456", "7.0", "1e3", "abc", "", "NA", "True", " 8", "+9", "-"}) {
    SCOPED_TRACE(std::string(v));
    EXPECT_EQ(PartitionHashScanning(v, nullptr, rules, &fast), PartitionHash(v, rules));
    general.Add(v);
  }
  EXPECT_EQ(fast.values(), general.values());
  EXPECT_EQ(fast.plain_ints(), general.plain_ints());
  EXPECT_EQ(fast.plain_ints(), 7u) << "the plain integers take the fast path";
  EXPECT_EQ(fast.Decide(), general.Decide());
  KeyScan known_scan(rules);
  const KeyMode known = KeyMode::kFloat;
  EXPECT_EQ(PartitionHashScanning("000000000000000007", &known, rules, &known_scan),
            PartitionHashUnder(KeyMode::kFloat, "000000000000000007", rules));
}

TEST(PandasFloat, PartitionHashUnderTheKnownType) {
  // A float file's lossy spelling meets its partner once partitioned under its type.
  EXPECT_EQ(PartitionHashUnder(KeyMode::kFloat, "000000000000000007", PandasRules{}), PartitionHash("0", PandasRules{}));
  EXPECT_NE(PartitionHash("000000000000000007", PandasRules{}), PartitionHash("0", PandasRules{}));  // why the engines re-partition
  EXPECT_EQ(PartitionHashUnder(KeyMode::kInt64, "000000000000000007", PandasRules{}), PartitionHash("7", PandasRules{}));
  EXPECT_EQ(PartitionHashUnder(KeyMode::kFloat, "10.357019999999999", PandasRules{}), PartitionHash("10.35702", PandasRules{}));
  EXPECT_EQ(PartitionHashUnder(KeyMode::kBool, "True", PandasRules{}), PartitionHash("1", PandasRules{}));
  EXPECT_EQ(PartitionHashUnder(KeyMode::kText, "7", PandasRules{}), PartitionHashUnder(KeyMode::kText, "7", PandasRules{}));
}


// docs/pandas-versions.md: the rules each --pandas-version applies.
TEST(PandasRulesTest, VersionsAndSpellings) {
  PandasVersion v;
  EXPECT_TRUE(ParsePandasVersion("3", &v) && v == PandasVersion::k3_1);
  EXPECT_TRUE(ParsePandasVersion("2", &v) && v == PandasVersion::k2_2);
  EXPECT_TRUE(ParsePandasVersion("3.0", &v) && v == PandasVersion::k3_0);
  EXPECT_FALSE(ParsePandasVersion("2.0", &v));
  EXPECT_STREQ(PandasVersionName(PandasVersion::k1_5), "1.5");
}

TEST(PandasRulesTest, NoneIsMissingFrom2) {
  EXPECT_FALSE(IsNaMarker("None", PandasRules{PandasVersion::k1_5}));
  EXPECT_TRUE(IsNaMarker("None", PandasRules{PandasVersion::k2_2}));
  KeyScan s{PandasRules{PandasVersion::k2_2}};
  s.Add("None");
  s.Add("1");
  EXPECT_EQ(s.Decide(), KeyMode::kInt64);
}

TEST(PandasRulesTest, WideFloatsFrom3AndCorrectRoundingIn31) {
  const PandasRules v15{PandasVersion::k1_5}, v30{PandasVersion::k3_0}, v31{PandasVersion::k3_1};
  double d = 0;
  EXPECT_FALSE(ParsePandasFloat("1e309", &d, v15));
  EXPECT_TRUE(ParsePandasFloat("1e309", &d, v30) && std::isinf(d) && d > 0);
  EXPECT_TRUE(ParsePandasFloat("-0e400", &d, v30) && d == 0 && !std::signbit(d));
  EXPECT_TRUE(ParsePandasFloat("1e0000000000000000001", &d, v30) && d == 10.0);
  EXPECT_TRUE(ParsePandasFloat("1e4294967297", &d, v15) && d == 10.0);  // wraps as a C int
  EXPECT_TRUE(ParsePandasFloat("1e4294967297", &d, v30) && std::isinf(d));
  double a, b;
  ASSERT_TRUE(ParsePandasFloat("10.357019999999999", &a, v30) && ParsePandasFloat("10.35702", &b, v30));
  EXPECT_EQ(a, b);  // precise_xstrtod up to 3.0
  ASSERT_TRUE(ParsePandasFloat("10.357019999999999", &a, v31) && ParsePandasFloat("10.35702", &b, v31));
  EXPECT_NE(a, b);  // nearest doubles in 3.1
  for (PandasRules r : {v15, v30}) {
    KeyScan s{r};
    s.Add("18446744073709551616.0");
    EXPECT_EQ(s.Decide(), r.wide_floats() ? KeyMode::kFloat : KeyMode::kText);
  }
}

TEST(PandasRulesTest, BigIntegersFoundIn3WithTheirPosition) {
  const PandasRules v22{PandasVersion::k2_2}, v30{PandasVersion::k3_0};
  KeyScan first{v30}, second{v30};
  first.Add("1");
  first.Add("2");
  second.Add("x");
  second.Add(" -99999999999999999999 ");
  second.Add("18446744073709551616");
  first.Append(second);
  EXPECT_EQ(first.big_int_at(), 4u);
  EXPECT_EQ(first.big_int(), " -99999999999999999999 ");
  KeyScan old{v22};
  old.Add("18446744073709551616");
  EXPECT_EQ(old.big_int_at(), 0u);
  EXPECT_FALSE(IsBigIntegerSpelling("18446744073709551616.0"));
  EXPECT_FALSE(IsBigIntegerSpelling("18446744073709551615"));
  EXPECT_TRUE(IsBigIntegerSpelling("+18446744073709551616"));
}


// The plain-integer fast path (ParsePlainInt): exactly '-'? and 1-15 digits.
TEST(PlainInt, AcceptsOnlyPlainSpellings) {
  int64_t i = 0;
  EXPECT_TRUE(ParsePlainInt("0", &i)); EXPECT_EQ(i, 0);
  EXPECT_TRUE(ParsePlainInt("007", &i)); EXPECT_EQ(i, 7);
  EXPECT_TRUE(ParsePlainInt("-0", &i)); EXPECT_EQ(i, 0);
  EXPECT_TRUE(ParsePlainInt("999999999999999", &i)); EXPECT_EQ(i, 999999999999999);
  EXPECT_TRUE(ParsePlainInt("-999999999999999", &i)); EXPECT_EQ(i, -999999999999999);
  for (const char* v : {"", "-", "+7", " 7", "7 ", "1.0", "1e3", "0x1", "1234567890123456", "NA", "1.#IND", "7\r",
                        "--1", "1-", "٣"})
    EXPECT_FALSE(ParsePlainInt(v, &i)) << v;
}

// Whatever path a value takes, its key under every numeric mode is the one the
// general parsers give: ParseInt64 (int64, uint64) and pandas' float (float64).
TEST(PlainInt, KeysEqualTheGeneralParsers) {
  for (const char* v : {"0", "-0", "7", "007", "000000000000007", "-42", "123456789012345", "-123456789012345",
                        "9007199254740", "900719925474099"}) {
    int64_t i;
    ASSERT_EQ(ParseInt64(v, &i), IntParse::kOk) << v;
    NumericKey k;
    ASSERT_TRUE(ToNumericKey(KeyMode::kInt64, v, &k)) << v;
    EXPECT_EQ(k, (NumericKey{static_cast<uint64_t>(i), NumericKey::kSigned})) << v;
    double d;
    ASSERT_TRUE(ParseDouble(v, &d)) << v;
    ASSERT_TRUE(ToNumericKey(KeyMode::kFloat, v, &k)) << v;
    EXPECT_EQ(k, CanonicalFromDouble(d)) << v;
    uint64_t u;
    bool has_uint = ParseUInt64(v, &u) == UIntParse::kOk;
    EXPECT_EQ(ToNumericKey(KeyMode::kUInt64, v, &k), has_uint) << v;  // "-0" and negatives: no uint64 value
    if (has_uint) EXPECT_EQ(k, (NumericKey{u, NumericKey::kSigned})) << v;
    EXPECT_FALSE(ToNumericKey(KeyMode::kBool, v, &k)) << v;
  }
}

TEST(PlainInt, ScanCountsTheFastPathAndInfersAsBefore) {
  KeyScan s;
  for (const char* v : {"1", "-2", "007", " 8", "+9"}) s.Add(v);
  EXPECT_EQ(s.plain_ints(), 3u);  // " 8" and "+9" take the general path
  EXPECT_EQ(s.values(), 5u);
  EXPECT_EQ(s.Decide(), KeyMode::kInt64);
  // "-0" is a signed value for pandas' uint64 pass, fast path or not.
  EXPECT_EQ(Infer({"-0", "18446744073709551615"}), KeyMode::kTextRaw);
  EXPECT_EQ(Infer({"18446744073709551615", "-0"}), KeyMode::kTextRaw);
  EXPECT_EQ(Infer({"18446744073709551615", "5"}), KeyMode::kUInt64);
  EXPECT_EQ(Infer({"1", "2.5"}), KeyMode::kFloat);
  EXPECT_EQ(Infer({"1", "true"}), KeyMode::kText);
}

// Once a scan is certain to be text, later values are only counted, except that
// pandas 3 still finds an integer beyond 64 bits among them.
TEST(PlainInt, SettledTextStillCountsAndFindsBigIntegers) {
  KeyScan s(PandasRules{PandasVersion::k3_0});
  s.Add("abc");
  s.Add("1");
  s.Add("123456789012345678901234567890");
  EXPECT_EQ(s.values(), 3u);
  EXPECT_EQ(s.big_int_at(), 3u);
  EXPECT_EQ(s.Decide(), KeyMode::kText);
  KeyScan a, b;
  a.Add("x1");
  b.Add("1.5");
  b.Add("NA");
  a.Append(b);
  EXPECT_EQ(a.values(), 3u);
  EXPECT_EQ(a.Decide(), KeyMode::kText);
  EXPECT_EQ(Infer({"1.5", "x", "2"}), KeyMode::kText);
  EXPECT_EQ(Infer({"99999999999999999999", "x", "2"}), KeyMode::kText);  // overflow first: not settled, same answer
}

}  // namespace
}  // namespace cloudmerge
