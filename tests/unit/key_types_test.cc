// Key type inference and normalisation, checked against what pandas 1.5.3's
// read_csv does (each expectation was observed with Debian's python3-pandas).
#include "cloudmerge/key_types.h"

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>

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

}  // namespace
}  // namespace cloudmerge
