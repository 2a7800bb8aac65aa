// The tokenizer against pandas' reading of awkward inputs.
#include "cloudmerge/tsv_tokenizer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace cloudmerge {
namespace {

using Rows = std::vector<std::vector<std::string>>;

Rows Tok(const std::string& s, TokenizeError* err = nullptr) {
  Rows rows;
  Record rec;
  TokenizeOutcome out = Tokenize(s.data(), s.data() + s.size(), rec, [&](const Record& r) {
    std::vector<std::string> row;
    for (const Field& f : r.fields) row.emplace_back(f.view());
    rows.push_back(row);
    return true;
  });
  if (err) *err = out.error;
  return rows;
}

TEST(Tokenizer, LineEndingsAndBlankLines) {
  EXPECT_EQ(Tok("a\tb\n1\t2\n"), (Rows{{"a", "b"}, {"1", "2"}}));
  EXPECT_EQ(Tok("a\tb\r\n1\t2\r\n"), (Rows{{"a", "b"}, {"1", "2"}}));
  EXPECT_EQ(Tok("a\tb\r1\t2\r"), (Rows{{"a", "b"}, {"1", "2"}}));
  EXPECT_EQ(Tok("a\tb\n1\t2"), (Rows{{"a", "b"}, {"1", "2"}}));  // no final newline
  EXPECT_EQ(Tok("\n  \na\n\r\n   \r\nb\n   "), (Rows{{"a"}, {"b"}}));
  EXPECT_EQ(Tok(" \t \n"), (Rows{{" ", " "}}));  // a tab makes it a row
  EXPECT_EQ(Tok("\t\n"), (Rows{{"", ""}}));
  EXPECT_EQ(Tok(""), Rows{});
}

TEST(Tokenizer, QuotingAsPandas) {
  EXPECT_EQ(Tok("\"a\tb\"\t1\n"), (Rows{{"a\tb", "1"}}));
  EXPECT_EQ(Tok("\"x \"\"y\"\"\"\t1\n"), (Rows{{"x \"y\"", "1"}}));
  EXPECT_EQ(Tok("\"line\nbreak\"\t1\n"), (Rows{{"line\nbreak", "1"}}));
  EXPECT_EQ(Tok("a\"b\t1\n"), (Rows{{"a\"b", "1"}}));         // quote inside unquoted field
  EXPECT_EQ(Tok("\"ab\"cd\t1\n"), (Rows{{"abcd", "1"}}));     // text after the closing quote
  EXPECT_EQ(Tok("  \"a b\"\t1\n"), (Rows{{"  \"a b\"", "1"}}));
  EXPECT_EQ(Tok("\"\"\t1\n"), (Rows{{"", "1"}}));
}

TEST(Tokenizer, UnterminatedQuoteIsAnError) {
  TokenizeError err;
  Tok("a\t\"open\n", &err);
  EXPECT_EQ(err, TokenizeError::kUnterminatedQuote);
}

TEST(Encoding, QuotesOnlyWhenNeeded) {
  std::string out;
  AppendEncoded(out, "plain");
  out.push_back('|');
  AppendEncoded(out, "a\tb");
  out.push_back('|');
  AppendEncoded(out, "say \"hi\"");
  out.push_back('|');
  AppendEncoded(out, "cr\rlf\n");
  EXPECT_EQ(out, "plain|\"a\tb\"|\"say \"\"hi\"\"\"|\"cr\rlf\n\"");
}

}  // namespace
}  // namespace cloudmerge
