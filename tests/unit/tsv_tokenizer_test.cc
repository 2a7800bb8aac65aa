// The tokenizer against pandas' reading of awkward inputs.
#include "cloudmerge/engine/tsv_tokenizer.h"
#include "cloudmerge/engine/error_report.h"

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

namespace cloudmerge {
namespace {

Rows TokSimple(const std::string& s) {
  Rows rows;
  Record rec;
  TokenizeSimple(s.data(), s.data() + s.size(), rec, [&](const Record& r) {
    std::vector<std::string> row;
    for (const Field& f : r.fields) row.emplace_back(f.view());
    rows.push_back(row);
    // The record's span must be the line without its terminator.
    EXPECT_EQ(std::string(r.begin, r.end).find_first_of("\r\n"), std::string::npos);
    return true;
  });
  return rows;
}

// The SIMD tokenizer must split every quote-free input exactly as the reference one.
TEST(TokenizeSimple, AgreesWithTokenizeOnRandomQuoteFreeInput) {
  const char alphabet[] = {'a', 'b', '1', ' ', ' ', '\t', '\t', '\n', '\n', '\r', '.', '-'};
  uint64_t state = 12345;
  auto next = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(state >> 33);
  };
  for (int iter = 0; iter < 20000; ++iter) {
    std::string s(next() % 300, 'x');
    for (char& c : s) c = alphabet[next() % sizeof(alphabet)];
    ASSERT_EQ(TokSimple(s), Tok(s)) << "input: " << ::testing::PrintToString(s);
  }
}

TEST(TokenizeSimple, AwkwardLines) {
  for (std::string s : std::vector<std::string>{"a\tb\r\n1\t2\r\n", "a\tb\r1\t2\r", "\n  \na\n\r\n   \r\nb\n   ", " \t \n", "\t\n", "",
                        "x", "x\r", "a\tb\n1\t2", std::string(200, 'a') + "\t" + std::string(100, 'b') + "\r\n"})
    EXPECT_EQ(TokSimple(s), Tok(s)) << ::testing::PrintToString(s);
}


// Record::fields (a FieldList reused from record to record) grows past its first
// capacity mid-record, and a wide record between narrow ones leaves no stale
// fields, with both tokenizers (quoted fields live in the scratch buffer).
TEST(Tokenizer, FieldListGrowsAndIsReused) {
  std::string wide, wide_quoted;
  std::vector<std::string> expect_wide;
  for (int i = 0; i < 37; ++i) {
    wide += (i ? "\t" : "") + std::to_string(i * 1000003);
    wide_quoted += (i ? "\t\"" : "\"") + std::to_string(i) + "\"\"q\"";
    expect_wide.push_back(std::to_string(i * 1000003));
  }
  std::string in = "a\tb\n" + wide + "\r\n7\t8\n";
  Rows expect{{"a", "b"}, expect_wide, {"7", "8"}};
  EXPECT_EQ(Tok(in), expect);
  Rows simple;
  Record rec;
  TokenizeSimple(in.data(), in.data() + in.size(), rec, [&](const Record& r) {
    std::vector<std::string> row;
    for (const Field& f : r.fields) row.emplace_back(f.view());
    simple.push_back(row);
    return true;
  });
  EXPECT_EQ(simple, expect);
  Rows q = Tok("x\n" + wide_quoted + "\ny\tz\n");
  ASSERT_EQ(q.size(), 3u);
  ASSERT_EQ(q[1].size(), 37u);
  EXPECT_EQ(q[1][36], "36\"q");
  EXPECT_EQ(q[2], (std::vector<std::string>{"y", "z"}));
  Record copy = rec;  // a copy owns its own fields
  EXPECT_EQ(copy.fields.size(), rec.fields.size());
  if (!rec.fields.empty()) EXPECT_NE(&copy.fields[0], &rec.fields[0]);
}

}  // namespace
}  // namespace cloudmerge

namespace cloudmerge {
namespace {

// FindEncodingError checks 64 bytes at a time while they are plain ASCII: a NUL,
// a stray high byte or a cut UTF-8 character is found at its exact position
// wherever it falls in a block or the tail; valid UTF-8 anywhere passes.
TEST(FindEncodingError, FindsEachBadByteWhereverItFallsInABlock) {
  const std::string ascii(300, 'a');
  std::string what;
  EXPECT_EQ(FindEncodingError(ascii.data(), ascii.data() + ascii.size(), &what), ascii.data() + ascii.size());
  for (size_t at = 0; at < ascii.size(); ++at) {
    for (char bad : {'\0', '\xff'}) {
      std::string s = ascii;
      s[at] = bad;
      EXPECT_EQ(FindEncodingError(s.data(), s.data() + s.size(), &what), s.data() + at) << at;
      EXPECT_NE(what.find(bad == '\0' ? "NUL" : "not valid UTF-8"), std::string::npos) << what;
    }
    std::string ok = ascii;
    ok.replace(at, std::min<size_t>(2, ascii.size() - at), "\xce\xa9");  // Ω
    EXPECT_EQ(FindEncodingError(ok.data(), ok.data() + ok.size(), &what), ok.data() + ok.size()) << at;
  }
}

}  // namespace
}  // namespace cloudmerge
