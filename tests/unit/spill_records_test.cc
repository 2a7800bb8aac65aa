// The out-of-core engine's spill records (engine/out_of_core/spill_records.h):
// partition and output records round-trip, their numbers take varints (small
// on short rows), and a record cut short or with a length past its block is
// reported as bad, never read past the block.
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
  };
  std::string block;
  for (const Rec& r : recs) AppendPartRecord(block, r.pos, r.key, r.text);
  PartRecords walker(block);
  PartRecord got;
  bool bad = false;
  for (const Rec& r : recs) {
    ASSERT_TRUE(walker.Next(&got, &bad));
    EXPECT_EQ(got.pos, r.pos);
    EXPECT_EQ(got.key, r.key);
    EXPECT_EQ(got.text, r.text);
  }
  EXPECT_FALSE(walker.Next(&got, &bad));
  EXPECT_FALSE(bad);
}

TEST(SpillRecords, ShortRowsTakeSmallHeaders) {
  // An int ID row of x, early in a scan unit: header 1 (unit) + 2 (row) + 1 + 1 bytes, not 16.
  std::string block;
  AppendPartRecord(block, Pos(2, 5000), "1234567", "1234567\t-12.345678");
  EXPECT_EQ(block.size(), 5 + 7 + 18);
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
  std::string part;
  AppendPartRecord(part, Pos(1, 200), "12", "12\tvalue");
  for (size_t cut = 1; cut < part.size(); ++cut) {
    PartRecords walker(std::string_view(part.data(), cut));
    PartRecord got;
    bool bad = false;
    EXPECT_FALSE(walker.Next(&got, &bad)) << cut;
    EXPECT_TRUE(bad) << cut;
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
  std::string part;
  PutVarint(part, 0);
  PutVarint(part, 0);
  PutVarint(part, ~uint64_t{0} - 1);  // a key length that would wrap a pointer sum
  PutVarint(part, 4);
  part += "abcd";
  PartRecords walker(part);
  PartRecord got;
  bool bad = false;
  EXPECT_FALSE(walker.Next(&got, &bad));
  EXPECT_TRUE(bad);
  std::string ten_bytes_too_long(11, '\xff');  // a varint beyond 64 bits
  PartRecords walker2(ten_bytes_too_long);
  bad = false;
  EXPECT_FALSE(walker2.Next(&got, &bad));
  EXPECT_TRUE(bad);
}

}  // namespace
}  // namespace cloudmerge::ooc
