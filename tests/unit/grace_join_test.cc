// The out-of-core join (grace_join.h) against the in-memory one, in process:
// identical bytes for many memory limits, fan-outs, thread counts and key
// types; and the bad conditions through a fault-injecting Env — a spill file
// damaged between write and read, a temp dir that fills up — which must fail
// clearly and leave neither an output nor a spill file behind.
#include <gtest/gtest.h>

#include <filesystem>
#include <algorithm>
#include <fstream>
#include <random>
#include <string>

#include "cloudmerge/io/env.h"
#include "cloudmerge/engine/merge.h"
#include "faulty_env.h"

namespace cloudmerge {
namespace {

namespace fs = std::filesystem;

bool IsSpill(const std::string& p) { return p.size() > 6 && p.compare(p.size() - 6, 6, ".spill") == 0; }

// Faults hit spill files only: the inputs and the output stay sound.
FaultyEnv SpillFaultEnv() {
  FaultyEnv env;
  env.applies = IsSpill;
  return env;
}

// Nothing left in the temp dir but cloudmerge's (empty) private directory, cloudmerge-<uid>.
bool NoSpillLeft(const fs::path& tmp) {
  const fs::path root = tmp / ("cloudmerge-" + std::to_string(::geteuid()));
  for (const auto& e : fs::directory_iterator(tmp))
    if (e.path() != root) return false;
  return !fs::exists(root) || fs::is_empty(root);
}

class GraceJoinTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("cm_grace_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "tmp");
  }
  void TearDown() override { fs::remove_all(dir_); }

  // x and y with `rows` rows each; keys drawn from `keys` (with repeats on both sides).
  void Write(const std::vector<std::string>& keys, size_t rows, uint32_t seed) {
    std::mt19937 rng(seed);
    std::ofstream x(dir_ / "x.tsv"), y(dir_ / "y.tsv");
    x << "ID\tvalue\n";
    y << "ID\tvalue\n";
    for (size_t i = 0; i < rows; ++i) {
      x << keys[rng() % keys.size()] << "\tx" << i << "\n";
      y << keys[rng() % keys.size()] << "\ty" << i << "\n";
    }
  }

  MergeOptions Options(const char* out) {
    MergeOptions o;
    o.x_path = (dir_ / "x.tsv").string();
    o.y_path = (dir_ / "y.tsv").string();
    o.out_path = (dir_ / out).string();
    o.temp_dir = (dir_ / "tmp").string();
    o.chunk_bytes = 16 << 10;
    return o;
  }

  std::string Read(const MergeOptions& o) {
    std::ifstream f(o.out_path);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }

  // The in-memory result, then every out-of-core configuration must equal it.
  void ExpectSameEverywhere() {
    MergeOptions ref = Options("ref.tsv");
    ref.memory_limit = uint64_t{1} << 34;
    ref.key_stats = true;
    MergeStats rs;
    Status st = RunMerge(Env::Default(), ref, &rs);
    ASSERT_TRUE(st.ok()) << st.message();
    ASSERT_FALSE(rs.out_of_core);
    const std::string expected = Read(ref);
    for (uint64_t limit : {uint64_t{16} << 10, uint64_t{256} << 10}) {
      for (unsigned fanout : {2u, 3u, 4u, 0u}) {  // 3: merged runs not a power of two (the loser tree pads)
        for (unsigned threads : {1u, 2u}) {
          MergeOptions o = Options("out.tsv");
          o.memory_limit = limit;
          o.spill_fanout = fanout;
          o.threads = threads;
          o.key_stats = true;
          MergeStats s;
          Status st = RunMerge(Env::Default(), o, &s);
          ASSERT_TRUE(st.ok()) << st.message();
          if (limit == 16 << 10) {
            EXPECT_TRUE(s.out_of_core);
          }
          EXPECT_EQ(s.output_rows, rs.output_rows);
          EXPECT_EQ(s.y_distinct_keys, rs.y_distinct_keys);
          EXPECT_EQ(s.matched_keys, rs.matched_keys);
          EXPECT_EQ(s.matches_per_key, rs.matches_per_key);
          ASSERT_EQ(s.hottest_keys.size(), rs.hottest_keys.size());
          for (size_t i = 0; i < s.hottest_keys.size(); ++i)
            EXPECT_EQ(s.hottest_keys[i].output_rows(), rs.hottest_keys[i].output_rows());
          EXPECT_EQ(Read(o), expected) << "limit " << limit << " fanout " << fanout << " threads " << threads;
          EXPECT_TRUE(NoSpillLeft(dir_ / "tmp")) << "spill files left behind";
        }
      }
    }
  }

  fs::path dir_;
};

TEST_F(GraceJoinTest, IntegersLikeInMemory) {
  std::vector<std::string> keys;
  for (int i = 0; i < 3000; ++i) keys.push_back(std::to_string(i));
  Write(keys, 6000, 1);
  ExpectSameEverywhere();
}

TEST_F(GraceJoinTest, NumbersSpelledDifferentlyMeetInOnePartition) {
  // 7, 007, 7.0 and 7e0 are one key when the files are numeric: they must land in one partition.
  std::vector<std::string> keys;
  for (int i = 0; i < 500; ++i) {
    keys.push_back(std::to_string(i));
    keys.push_back("00" + std::to_string(i));
    keys.push_back(std::to_string(i) + ".0");
    keys.push_back(std::to_string(i) + "e0");
  }
  keys.push_back("");  // a missing ID never matches
  Write(keys, 4000, 2);
  ExpectSameEverywhere();
}

TEST_F(GraceJoinTest, TextKeysWithNaMarkers) {
  std::vector<std::string> keys = {"NA", "nan", "null", "", "gene-\xc3\xa9"};
  for (int i = 0; i < 2000; ++i) keys.push_back("g" + std::to_string(i * 7919 % 4001));
  Write(keys, 4000, 3);
  ExpectSameEverywhere();
}

TEST_F(GraceJoinTest, HotKeyBiggerThanMemoryIsJoinedByBlocks) {
  std::vector<std::string> keys(40, "42");  // ~2/3 of all rows hold key 42
  for (int i = 0; i < 20; ++i) keys.push_back(std::to_string(1000 + i));
  Write(keys, 600, 4);
  MergeOptions o = Options("out.tsv");
  o.memory_limit = 16 << 10;
  o.spill_fanout = 4;
  MergeStats s;
  ASSERT_TRUE(RunMerge(Env::Default(), o, &s).ok());
  EXPECT_GE(s.nested_loop_keys, 1u);
  ASSERT_FALSE(s.hottest_keys.empty());
  EXPECT_EQ(s.hottest_keys[0].key, "42");
  ExpectSameEverywhere();
}

TEST_F(GraceJoinTest, OutputRowLimitRefusesWithTheHottestKeys) {
  std::vector<std::string> keys(10, "7");
  for (int i = 0; i < 100; ++i) keys.push_back(std::to_string(i + 100));
  Write(keys, 3000, 5);
  for (uint64_t limit : {uint64_t{1}, uint64_t{1} << 34}) {  // out of core and in memory
    MergeOptions o = Options("out.tsv");
    o.memory_limit = limit;
    o.spill_fanout = 4;
    o.max_output_rows = 1000;
    MergeStats s;
    Status st = RunMerge(Env::Default(), o, &s);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.code(), Status::Code::kInvalidInput);
    EXPECT_NE(st.message().find("more than the output-row limit 1000"), std::string::npos) << st.message();
    EXPECT_EQ(st.setting(), Setting::kMaxOutputRows);
    EXPECT_NE(st.message().find("ID '7'"), std::string::npos) << st.message();
    EXPECT_GT(s.output_rows, 1000u);  // the exact count is reported either way
    EXPECT_FALSE(fs::exists(o.out_path));
    EXPECT_TRUE(NoSpillLeft(dir_ / "tmp"));
  }
}

TEST_F(GraceJoinTest, DamagedSpillFileIsAnErrorNotAWrongAnswer) {
  std::vector<std::string> keys;
  for (int i = 0; i < 5000; ++i) keys.push_back(std::to_string(i));
  Write(keys, 20000, 6);
  FaultyEnv env = SpillFaultEnv();
  env.corrupt_reads = true;
  MergeOptions o = Options("out.tsv");
  o.memory_limit = 64 << 10;
  MergeStats s;
  Status st = RunMerge(&env, o, &s);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Status::Code::kIOError);
  EXPECT_NE(st.message().find("damaged"), std::string::npos) << st.message();
  EXPECT_FALSE(fs::exists(o.out_path));
  EXPECT_TRUE(NoSpillLeft(dir_ / "tmp"));
}

TEST_F(GraceJoinTest, FullTempDirIsAClearErrorAndLeavesNothing) {
  std::vector<std::string> keys;
  for (int i = 0; i < 5000; ++i) keys.push_back(std::to_string(i));
  Write(keys, 20000, 7);
  for (size_t space : {size_t{0}, size_t{100} << 10}) {  // in the partition phase, and later
    FaultyEnv env = SpillFaultEnv();
    env.fail_after = space;
    MergeOptions o = Options("out.tsv");
    o.memory_limit = 64 << 10;
    o.threads = 2;
    MergeStats s;
    Status st = RunMerge(&env, o, &s);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.code(), Status::Code::kNoSpace);
    // The setting, not a flag of one caller (the CLI names --temp-dir, the Lambda runtime TMPDIR).
    EXPECT_EQ(st.setting(), Setting::kTempDir) << st.message();
    EXPECT_EQ(st.message().find("--temp-dir"), std::string::npos) << st.message();
    EXPECT_FALSE(fs::exists(o.out_path));
    EXPECT_TRUE(NoSpillLeft(dir_ / "tmp"));
  }
}

// Also with x split before its quote check (table_scan.h): the same line.
TEST_F(GraceJoinTest, BadRowDeepInXFailsWithItsLineAndLeavesNoSpill) {
  std::vector<std::string> keys;
  for (int i = 0; i < 100; ++i) keys.push_back(std::to_string(i));
  Write(keys, 5000, 8);
  {
    std::ofstream x(dir_ / "x.tsv", std::ios::app);
    x << "5\ttoo\tmany\n";
  }
  for (uint64_t check_ahead_from : {MergeOptions().quote_check_ahead_from, uint64_t{0}}) {
    MergeOptions o = Options("out.tsv");
    o.memory_limit = 1;
    o.threads = 2;
    o.quote_check_ahead_from = check_ahead_from;
    MergeStats s;
    Status st = RunMerge(Env::Default(), o, &s);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.message().find("line 5002"), std::string::npos) << st.message();
    EXPECT_FALSE(fs::exists(o.out_path));
    EXPECT_TRUE(NoSpillLeft(dir_ / "tmp"));
  }
}

TEST_F(GraceJoinTest, CompressedAndRawSpillsGiveTheSameBytes) {
  std::vector<std::string> keys;
  for (int i = 0; i < 2000; ++i) keys.push_back(std::to_string(i));
  Write(keys, 6000, 9);
  std::string outputs[2];
  uint64_t spilled[2];
  int i = 0;
  for (auto c : {MergeOptions::SpillCompression::kZstd, MergeOptions::SpillCompression::kNone}) {
    MergeOptions o = Options(i ? "raw.tsv" : "zstd.tsv");
    o.memory_limit = 16 << 10;
    o.spill_compression = c;
    MergeStats s;
    ASSERT_TRUE(RunMerge(Env::Default(), o, &s).ok());
    EXPECT_EQ(s.spill_compressed, c == MergeOptions::SpillCompression::kZstd);
    outputs[i] = Read(o);
    spilled[i++] = s.spilled_bytes;
  }
  EXPECT_EQ(outputs[0], outputs[1]);
  EXPECT_LT(spilled[0], spilled[1]);  // zstd does shrink these records
}

// A mapped input big enough is split before it is known to hold no '"', and
// checked in the background just ahead of its scan (table_scan.h). Forced here
// on small files: the same bytes as the check made first, in memory and out of
// core, on 1 and 2 threads.
TEST_F(GraceJoinTest, InputsCheckedForQuotesWhileScannedGiveTheSameBytes) {
  std::vector<std::string> keys;
  for (int i = 0; i < 300; ++i) keys.push_back(std::to_string(i));
  Write(keys, 20000, 11);
  MergeOptions ref = Options("ref.tsv");
  MergeStats rs;
  ASSERT_TRUE(RunMerge(Env::Default(), ref, &rs).ok());
  const std::string expected = Read(ref);
  for (uint64_t limit : {uint64_t{16} << 10, uint64_t{1} << 34}) {
    for (unsigned threads : {1u, 2u}) {
      MergeOptions o = Options("out.tsv");
      o.quote_check_ahead_from = 0;
      o.memory_limit = limit;
      o.threads = threads;
      MergeStats s;
      Status st = RunMerge(Env::Default(), o, &s);
      ASSERT_TRUE(st.ok()) << st.message();
      EXPECT_EQ(s.out_of_core, limit == 16 << 10);
      EXPECT_EQ(Read(o), expected) << "limit " << limit << " threads " << threads;
      EXPECT_TRUE(NoSpillLeft(dir_ / "tmp"));
    }
  }
}

// The split at open (before the check) ends chunks at the first line end after
// each point of a grid: a line longer than a chunk covers several points, and
// the last line may have no line end.
TEST_F(GraceJoinTest, GridSplitKeepsLinesLongerThanAChunk) {
  std::vector<std::string> keys;
  for (int i = 0; i < 300; ++i) keys.push_back(std::to_string(i));
  Write(keys, 8000, 14);
  {
    std::ofstream x(dir_ / "x.tsv", std::ios::app), y(dir_ / "y.tsv", std::ios::app);
    x << "7\t" << std::string(100 << 10, 'v') << "\n8\tshort\n9\t" << std::string(40 << 10, 'w');
    y << "9\t" << std::string(70 << 10, 'z') << "\n7\tlast";
  }
  MergeOptions ref = Options("ref.tsv");
  MergeStats rs;
  ASSERT_TRUE(RunMerge(Env::Default(), ref, &rs).ok());
  const std::string expected = Read(ref);
  for (uint64_t limit : {uint64_t{1} << 20, uint64_t{1} << 34}) {
    MergeOptions o = Options("out.tsv");
    o.quote_check_ahead_from = 0;
    o.memory_limit = limit;
    o.threads = 2;
    MergeStats s;
    Status st = RunMerge(Env::Default(), o, &s);
    ASSERT_TRUE(st.ok()) << st.message();
    EXPECT_EQ(Read(o), expected) << "limit " << limit;
  }
}

// A '"' near the end of x, found by the background check once the scan has
// written partitions (the check keeps a sixteenth of the body ahead of it): x
// was split at line ends, one of them inside the quoted field. The scan starts
// over as one chunk, and nothing of the first attempt is left behind.
TEST_F(GraceJoinTest, QuoteFoundBehindTheScanStartsItOver) {
  std::vector<std::string> keys;
  for (int i = 0; i < 50000; ++i) keys.push_back(std::to_string(i));
  Write(keys, 120000, 12);  // several scan units (of 1 MiB) in x
  {
    std::ofstream x(dir_ / "x.tsv", std::ios::app);
    x << "5\t\"two\nlines\tand a tab\"\n7\tlast\n";
  }
  MergeOptions ref = Options("ref.tsv");
  MergeStats rs;
  ASSERT_TRUE(RunMerge(Env::Default(), ref, &rs).ok());
  const std::string expected = Read(ref);
  ASSERT_NE(expected.find("two\nlines"), std::string::npos);
  for (unsigned threads : {1u, 2u}) {
    MergeOptions o = Options("out.tsv");
    o.quote_check_ahead_from = 0;
    o.memory_limit = 1 << 20;
    o.threads = threads;
    MergeStats s;
    Status st = RunMerge(Env::Default(), o, &s);
    ASSERT_TRUE(st.ok()) << st.message();
    EXPECT_TRUE(s.out_of_core);
    EXPECT_EQ(Read(o), expected) << "threads " << threads;
    EXPECT_TRUE(NoSpillLeft(dir_ / "tmp"));
  }
}

// The final merge splits x's positions into ranges, one thread each; a later
// range waits in a temp file for its turn. Same bytes as one range, and a
// failure in any part of it (the range file full or damaged, OUT failing while
// the mergers run) is an error that leaves nothing behind and never hangs.
class ParallelMergeTest : public GraceJoinTest {
 protected:
  void SetUp() override {
    GraceJoinTest::SetUp();
    std::vector<std::string> keys;
    for (int i = 0; i < 4000; ++i) keys.push_back(std::to_string(i));
    Write(keys, 30000, 10);
  }
  MergeOptions Parallel(const char* out) {
    MergeOptions o = Options(out);
    o.memory_limit = 1 << 20;
    o.threads = 2;
    return o;
  }
  static bool IsRangeFile(const std::string& p) { return p.find("/range-") != std::string::npos; }
  // The output's temporary: FaultyEnv::held makes its writes wait until a range file exists.
  static bool HoldsOutput(const std::string& p) { return p.find(".cloudmerge-tmp-") != std::string::npos; }
};

TEST_F(ParallelMergeTest, RangesGiveTheBytesOfOneRange) {
  MergeOptions one = Parallel("one.tsv");
  one.threads = 1;
  MergeStats s1;
  ASSERT_TRUE(RunMerge(Env::Default(), one, &s1).ok());
  EXPECT_EQ(s1.merge_ranges, 1u);
  for (auto c : {MergeOptions::SpillCompression::kZstd, MergeOptions::SpillCompression::kNone}) {
    MergeOptions two = Parallel("two.tsv");
    two.spill_compression = c;
    MergeStats s2;
    ASSERT_TRUE(RunMerge(Env::Default(), two, &s2).ok());
    EXPECT_EQ(s2.merge_ranges, 2u) << "the merge should have split";
    const std::string a = Read(two), b = Read(one);
    // Not EXPECT_EQ: gtest's diff of two ~1 MB strings takes minutes.
    EXPECT_TRUE(a == b) << "outputs differ: " << a.size() << " vs " << b.size() << " bytes, first at byte "
                        << (std::mismatch(a.begin(), a.end(), b.begin(), b.end()).first - a.begin());
    EXPECT_TRUE(NoSpillLeft(dir_ / "tmp"));
  }
  MergeOptions any = Parallel("any.tsv");
  any.any_order = true;
  MergeStats sa;
  ASSERT_TRUE(RunMerge(Env::Default(), any, &sa).ok());
  EXPECT_EQ(sa.merge_ranges, 0u);
}

TEST_F(ParallelMergeTest, FullTempDirWhileARangeWaitsIsAClearError) {
  FaultyEnv env;
  env.applies = IsRangeFile;
  env.fail_after = 64 << 10;
  env.held = HoldsOutput;  // see DamagedRangeFileIsAnErrorNotAWrongAnswer
  MergeOptions o = Parallel("out.tsv");
  MergeStats s;
  Status st = RunMerge(&env, o, &s);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Status::Code::kNoSpace) << st.message();
  EXPECT_FALSE(fs::exists(o.out_path));
  EXPECT_TRUE(NoSpillLeft(dir_ / "tmp"));
}

TEST_F(ParallelMergeTest, DamagedRangeFileIsAnErrorNotAWrongAnswer) {
  FaultyEnv env;
  env.applies = IsRangeFile;
  env.corrupt_reads = true;
  // The output's writes wait until a range file exists: otherwise, on a loaded machine, the writer can
  // reach the second range before its merger wrote anything, the range streams with no file, and there is
  // nothing to damage (seen once in a CI run).
  env.held = HoldsOutput;
  MergeOptions o = Parallel("out.tsv");
  MergeStats s;
  Status st = RunMerge(&env, o, &s);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("damaged"), std::string::npos) << st.message();
  EXPECT_FALSE(fs::exists(o.out_path));
  EXPECT_TRUE(NoSpillLeft(dir_ / "tmp"));
}

TEST_F(ParallelMergeTest, OutputFailingWhileRangesMergeStopsThem) {
  for (size_t room : {size_t{0}, size_t{16} << 10, size_t{200} << 10}) {
    FaultyEnv env;
    // The output: its temporary (DIR/.cloudmerge-tmp-*) and the rename to out.tsv.
    env.applies = [](const std::string& p) {
      return p.find("/.cloudmerge-tmp-") != std::string::npos || p.find("out.tsv") != std::string::npos;
    };
    env.fail_after = room;
    MergeOptions o = Parallel("out.tsv");
    MergeStats s;
    Status st = RunMerge(&env, o, &s);
    ASSERT_FALSE(st.ok()) << "room " << room;
    EXPECT_EQ(st.code(), Status::Code::kNoSpace) << st.message();
    EXPECT_FALSE(fs::exists(o.out_path));
    EXPECT_TRUE(NoSpillLeft(dir_ / "tmp"));
  }
}

}  // namespace
}  // namespace cloudmerge
