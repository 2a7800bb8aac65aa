// The out-of-core engine's spill records (engine/out_of_core/spill_records.h):
// partition and output records round-trip, their numbers take varints (small
// on short rows), a partition record stores an ID that is a view into its
// text only once, and a record cut short or with a length past its block is reported as
// bad, never read past the block.
#include "cloudmerge/engine/out_of_core/spill_records.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace cloudmerge::ooc {
namespace {

constexpr uint64_t Pos(uint64_t unit, uint64_t row) { return (unit << 40) | row; }

TEST(SpillRecords, PartitionRecordsRoundTripAtTheEdgesOfTheirFields) {
  struct Rec {
    uint64_t pos;
    std::string key, text;
  };
  const std::vector<Rec> recs = {
      {Pos(0, 0), "1", "1\tx"},
      {Pos(0, 127), "", ""},
      {Pos(0, 128), "007", std::string(300, 'v')},  // a two-byte text length
      {Pos(3, kRowMask), "k", "t"},                 // the largest row of a unit
      {Pos(4, 1), std::string(100, 'a'), std::string(116, 'b')},  // the longest put together on the stack
      {Pos(4, 2), std::string(100, 'a'), std::string(117, 'b')},  // the shortest appended piece by piece
      {Pos((uint64_t{1} << 24) - 1, 5), std::string(70000, 'k'), "\t\n"},
      {Pos((uint64_t{1} << 24) - 1, 7), "", "v"},
      {Pos(2, 0), "k", "k"},  // a smaller position than the record before (mod 2^64)
  };
  std::string block;
  PartRecordWriter writer;
  for (const Rec& r : recs) writer.Append(block, r.pos, r.key, r.text);
  // Keys that are views into their texts: stored once.
  const std::string row = "k1\tvalue\tk22", long_row = std::string(200, 'a') + std::string(60, 'b');
  const std::string_view r(row), lr(long_row);
  const std::vector<PartRecord> views = {
      {Pos(5, 0), r.substr(0, 2), r},          // the key leads the text
      {Pos(5, 1), r.substr(9), r},             // the key ends the text ("k22")
      {Pos(5, 2), r.substr(3, 5), r},          // the key inside the text: stored
      {Pos(5, 3), lr.substr(0, 200), lr},      // stored once, short enough to put together on the stack
      {Pos(5, 4), r.substr(0, 0), r},          // an empty key
  };
  for (const PartRecord& v : views) writer.Append(block, v.pos, v.key, v.text);
  PartRecords walker(block);
  PartRecord got;
  bool bad = false;
  for (const Rec& r : recs) {
    ASSERT_TRUE(walker.Next(&got, &bad));
    EXPECT_EQ(got.pos, r.pos);
    EXPECT_EQ(got.key, r.key);
    EXPECT_EQ(got.text, r.text);
  }
  for (const PartRecord& v : views) {
    ASSERT_TRUE(walker.Next(&got, &bad));
    EXPECT_EQ(got.pos, v.pos);
    EXPECT_EQ(got.key, v.key);
    EXPECT_EQ(got.text, v.text);
  }
  EXPECT_FALSE(walker.Next(&got, &bad));
  EXPECT_FALSE(bad);
}

TEST(SpillRecords, ShortRowsTakeSmallHeaders) {
  // An int ID row of x: its ID is the start of its text, so it is not stored
  // again. The block's first record takes its whole position (6 bytes), the
  // next one the difference from it (2 bytes for 256 rows on): 3 + 18 bytes a row, not 5 + 7 + 18.
  std::string block;
  PartRecordWriter writer;
  const std::string_view row1 = "1234567\t-12.345678", row2 = "1234999\t-12.345678";
  writer.Append(block, Pos(2, 5000), row1.substr(0, 7), row1);
  EXPECT_EQ(block.size(), 6 + 1 + 1 + 18);
  writer.Append(block, Pos(2, 5256), row2.substr(0, 7), row2);
  EXPECT_EQ(block.size(), 26 + 2 + 1 + 1 + 18);
  // A row of y (its text is the row without the ID) stores the ID.
  writer.Reset();
  std::string y_block;
  writer.Append(y_block, Pos(0, 3), "1234567", "-12.345678");
  EXPECT_EQ(y_block.size(), 1 + 1 + 1 + 7 + 10);
  PartRecords walker(block);
  PartRecord got;
  bool bad = false;
  ASSERT_TRUE(walker.Next(&got, &bad));
  ASSERT_TRUE(walker.Next(&got, &bad));
  EXPECT_EQ(got.pos, Pos(2, 5256));
  EXPECT_EQ(got.key, "1234999");
  EXPECT_EQ(got.text, "1234999\t-12.345678");
  std::string out;
  OutRecordWriter w;
  w.Append(out, Pos(2, 5000), Pos(1, 300), 30);  // a block's first x: the whole position (6 bytes)
  w.Append(out, Pos(2, 5001), Pos(1, 301), 30);  // then x's difference: one byte
  EXPECT_EQ(out.size(), (6 + 3 + 1) + (1 + 3 + 1));
}

TEST(SpillRecords, OutputRecordsDecodeFromEachBlocksStart) {
  struct Rec {
    uint64_t x, y;
    std::string line;
  };
  const std::vector<std::vector<Rec>> blocks = {
      {{Pos(0, 9), Pos(4, 1), "a\tb\n"}, {Pos(0, 9), Pos(4, 2), "a\tc\n"}, {Pos(7, 0), Pos(0, 0), "d\n"}},
      {{Pos(7, 3), Pos(1, 1), "e\n"}, {Pos(7, 2), Pos(1, 1), "f\n"}},  // a decrease still decodes (mod 2^64)
  };
  OutRecordWriter w;
  for (const auto& recs : blocks) {
    std::string block;
    w.Reset();  // a new block
    for (const Rec& r : recs) {
      w.Append(block, r.x, r.y, r.line.size());
      block += r.line;
    }
    OutRecords reader(block);
    for (const Rec& r : recs) {
      ASSERT_FALSE(reader.done());
      uint64_t x, y;
      std::string_view line;
      ASSERT_TRUE(reader.Next(&x, &y, &line));
      EXPECT_EQ(x, r.x);
      EXPECT_EQ(y, r.y);
      EXPECT_EQ(line, r.line);
    }
    EXPECT_TRUE(reader.done());
  }
}

TEST(SpillRecords, ARecordCutShortIsBadAtEveryCut) {
  const std::string_view row = "12\tvalue";
  for (std::string_view key : {row.substr(0, 2), std::string_view("7")}) {  // the key in the text, and stored
  std::string part;
  PartRecordWriter writer;
  writer.Append(part, Pos(1, 200), key, row);
  for (size_t cut = 1; cut < part.size(); ++cut) {
    PartRecords walker(std::string_view(part.data(), cut));
    PartRecord got;
    bool bad = false;
    EXPECT_FALSE(walker.Next(&got, &bad)) << cut;
    EXPECT_TRUE(bad) << cut;
  }
  }
  std::string out;
  OutRecordWriter w;
  w.Append(out, Pos(1, 200), Pos(2, 300), 4);
  out += "abc\n";
  for (size_t cut = 1; cut < out.size(); ++cut) {
    OutRecords reader(std::string_view(out.data(), cut));
    uint64_t x, y;
    std::string_view line;
    EXPECT_FALSE(reader.Next(&x, &y, &line)) << cut;
  }
}

TEST(SpillRecords, ALengthBeyondTheBlockIsBadNotARead) {
  auto bad_record = [](uint64_t key_ref, uint64_t text_len) {
    std::string part;
    PutVarint(part, 0);  // position
    PutVarint(part, key_ref);
    PutVarint(part, text_len);
    part += "abcd";
    PartRecords walker(part);
    PartRecord got;
    bool bad = false;
    return !walker.Next(&got, &bad) && bad;
  };
  EXPECT_TRUE(bad_record(~uint64_t{0} - 3, 4));  // a stored key's length that would wrap a pointer sum
  EXPECT_TRUE(bad_record(1 << 2, ~uint64_t{0} - 1));  // a text length that would
  EXPECT_TRUE(bad_record(5 << 2 | kKeyLeadsText, 4));  // a key longer than the text it is in
  EXPECT_TRUE(bad_record(5 << 2 | kKeyEndsText, 4));
  EXPECT_TRUE(bad_record(1 << 2 | 3, 3));  // no such place
  EXPECT_FALSE(bad_record(4 << 2 | kKeyEndsText, 4));
  PartRecord got;
  bool bad = false;
  std::string ten_bytes_too_long(11, '\xff');  // a varint beyond 64 bits
  PartRecords walker2(ten_bytes_too_long);
  bad = false;
  EXPECT_FALSE(walker2.Next(&got, &bad));
  EXPECT_TRUE(bad);
}

}  // namespace
}  // namespace cloudmerge::ooc
