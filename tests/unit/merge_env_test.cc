// The merge through a fault-injecting Env: a full disk or a failed rename must
// leave no output and no temporary behind, and say what happened.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "cloudmerge/io/env.h"
#include "cloudmerge/engine/in_memory_build.h"
#include "cloudmerge/engine/join_limits.h"
#include "cloudmerge/engine/join_hash_table.h"
#include "cloudmerge/engine/merge.h"
#include "faulty_env.h"

namespace cloudmerge {
namespace {

namespace fs = std::filesystem;


class MergeEnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("cm_env_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream x(dir_ / "x.tsv"), y(dir_ / "y.tsv");
    x << "ID\tvalue\n";
    y << "ID\tvalue\n";
    for (int i = 0; i < 50000; ++i) {
      x << i << "\tx" << i << "\n";
      y << (i * 7) % 50000 << "\ty" << i << "\n";
    }
  }
  void TearDown() override { fs::remove_all(dir_); }

  MergeOptions Options() {
    MergeOptions o;
    o.x_path = (dir_ / "x.tsv").string();
    o.y_path = (dir_ / "y.tsv").string();
    o.out_path = (dir_ / "out.tsv").string();
    o.chunk_bytes = 4096;
    o.threads = 2;
    return o;
  }
  // The output of a merge of x.tsv and y.tsv under memory_limit (0: none, in
  // memory; else out of core), and its spill levels; the output file is removed.
  std::pair<std::string, unsigned> OutputUnder(uint64_t limit, const std::string& key = "1") {
    MergeOptions o = Options();
    o.memory_limit = limit;
    o.x_key = o.y_key = key;
    MergeStats stats;
    Status st = RunMerge(Env::Default(), o, &stats);
    EXPECT_TRUE(st.ok()) << st.message();
    EXPECT_EQ(stats.out_of_core, limit != 0);
    std::ifstream f(dir_ / "out.tsv");
    std::string out(std::istreambuf_iterator<char>(f), {});
    fs::remove(dir_ / "out.tsv");
    return {out, stats.spill_levels};
  }
  size_t FilesInDir() { return static_cast<size_t>(std::distance(fs::directory_iterator(dir_), {})); }

  fs::path dir_;
};

TEST_F(MergeEnvTest, SucceedsAndRenamesIntoPlace) {
  FaultyEnv env;
  MergeStats stats;
  Status st = RunMerge(&env, Options(), &stats);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(stats.output_rows, 50000u);
  EXPECT_TRUE(fs::exists(dir_ / "out.tsv"));
  EXPECT_EQ(FilesInDir(), 3u);  // x, y, out: no temporary left
}

TEST_F(MergeEnvTest, FullDiskLeavesNothingBehind) {
  FaultyEnv env;
  env.fail_after = 100000;  // part way through the output
  MergeStats stats;
  Status st = RunMerge(&env, Options(), &stats);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Status::Code::kNoSpace);
  EXPECT_NE(st.message().find("no space left"), std::string::npos) << st.message();
  EXPECT_FALSE(fs::exists(dir_ / "out.tsv"));
  EXPECT_EQ(FilesInDir(), 2u);
}

TEST_F(MergeEnvTest, FailedRenameLeavesNothingBehind) {
  FaultyEnv env;
  env.fail_rename = true;
  MergeStats stats;
  Status st = RunMerge(&env, Options(), &stats);
  ASSERT_FALSE(st.ok());
  EXPECT_FALSE(fs::exists(dir_ / "out.tsv"));
  EXPECT_EQ(FilesInDir(), 2u);
}

TEST_F(MergeEnvTest, SameResultForOneAndTwoThreadsAndAnyOrder) {
  auto run = [&](unsigned threads, bool any_order, const char* name) {
    MergeOptions o = Options();
    o.threads = threads;
    o.any_order = any_order;
    o.out_path = (dir_ / name).string();
    MergeStats stats;
    EXPECT_TRUE(RunMerge(Env::Default(), o, &stats).ok());
    std::ifstream f(o.out_path);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  std::string one = run(1, false, "a.tsv"), two = run(2, false, "b.tsv"), any = run(2, true, "c.tsv");
  EXPECT_EQ(one, two);
  EXPECT_EQ(one.size(), any.size());
}

TEST_F(MergeEnvTest, TemporaryLeftBySigkilledRunIsRemovedByTheNextRun) {
  // A dead writer's temporary, untouched for an hour: removed (as named now, and
  // as earlier versions named it). A recent one (maybe a live writer on another
  // machine sharing the directory): kept. Another user's: kept.
  const pid_t dead = 4194000;  // near pid_max; checked below to be unused
  ASSERT_NE(::kill(dead, 0), 0);
  const std::string tag = std::to_string(dead);
  fs::path stale = dir_ / (".cloudmerge-tmp-" + tag + "-0badf00d");
  fs::path stale_old = dir_ / ("out.tsv.cloudmerge-tmp-" + tag + "-0badf00d");
  fs::path fresh = dir_ / (".cloudmerge-tmp-" + tag + "-00c0ffee");
  fs::path theirs = dir_ / (".cloudmerge-tmp-" + tag + "-0000beef");
  fs::path unrelated = dir_ / (".cloudmerge-tmp-notes");
  for (const fs::path& p : {stale, stale_old, fresh, theirs, unrelated}) std::ofstream(p) << "partial";
  for (const fs::path& p : {stale, stale_old, theirs, unrelated})
    fs::last_write_time(p, fs::file_time_type::clock::now() - std::chrono::hours(1));
  const bool root = geteuid() == 0;
  if (root) {
    ASSERT_EQ(::chown(theirs.c_str(), 65534, 65534), 0);
  }
  MergeStats stats;
  ASSERT_TRUE(RunMerge(Env::Default(), Options(), &stats).ok());
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_FALSE(fs::exists(stale_old));
  EXPECT_TRUE(fs::exists(fresh));
  EXPECT_TRUE(fs::exists(unrelated));
  if (root) {
    EXPECT_TRUE(fs::exists(theirs));
  }
}

TEST_F(MergeEnvTest, TemporaryNameIsShortWhateverTheOutputName) {
  // A 244-byte name leaves no room for a suffix within NAME_MAX (255): the
  // temporary has a short name of its own in the same directory.
  MergeOptions o = Options();
  o.out_path = (dir_ / (std::string(240, 'n') + ".tsv")).string();
  MergeStats stats;
  Status st = RunMerge(Env::Default(), o, &stats);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_TRUE(fs::exists(o.out_path));
  for (const auto& e : fs::directory_iterator(dir_))
    EXPECT_EQ(e.path().filename().string().find(".cloudmerge-tmp-"), std::string::npos) << e.path();
}


// The plain-integer fast path is what types and keys generated IDs, on both
// sides (x while it is probed); text IDs never take it.
TEST_F(MergeEnvTest, PlainIntegerIdsTakeTheFastPath) {
  FaultyEnv env;
  MergeStats stats;
  ASSERT_TRUE(RunMerge(&env, Options(), &stats).ok());
  EXPECT_EQ(stats.plain_int_keys, stats.x_rows + stats.y_rows);
  EXPECT_EQ(stats.x_rows, 50000u);
  std::ofstream(dir_ / "x.tsv") << "ID\tvalue\nG1\ta\nG2\tb\n";
  std::ofstream(dir_ / "y.tsv") << "ID\tvalue\nG2\tc\n";
  MergeStats text;
  ASSERT_TRUE(RunMerge(&env, Options(), &text).ok());
  EXPECT_EQ(text.plain_int_keys, 0u);
  EXPECT_EQ(text.output_rows, 1u);
}

// With room under the memory limit the in-memory join builds sparse hash tables
// (join_hash_table.h TableLoad); a limit with room for compact ones only still
// joins in memory, to the same bytes (text IDs here; numeric ones use the same
// tables).
TEST_F(MergeEnvTest, SparseHashTablesWhenTheLimitHasRoomForThem) {
  {
    std::ofstream x(dir_ / "x.tsv"), y(dir_ / "y.tsv");
    x << "ID\tvalue\n";
    y << "ID\tvalue\n";
    for (int i = 0; i < 50000; ++i) {
      x << "k" << i << "\tx" << i << "\n";
      y << "k" << (i * 7) % 50000 << "\ty" << i << "\n";
    }
  }
  FaultyEnv env;
  MergeStats roomy;
  ASSERT_TRUE(RunMerge(&env, Options(), &roomy).ok());
  EXPECT_TRUE(roomy.sparse_hash_tables);
  EXPECT_FALSE(roomy.out_of_core);
  auto read = [&] {
    std::ifstream f(dir_ / "out.tsv");
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  const std::string first = read();
  fs::remove(dir_ / "out.tsv");
  MergeOptions o = Options();
  const uint64_t y_bytes = fs::file_size(dir_ / "y.tsv");
  const uint64_t sparse =
      InMemoryJoinPeakBytes(y_bytes, 50000, TableLoad::kSparse, o.threads, o.chunk_bytes, o.key_stats);
  // Below the sparse tables, above the estimate that chooses the in-memory engine (compact).
  ASSERT_LT(InMemoryJoinPeakBytes(y_bytes, 50000, TableLoad::kCompact, o.threads, o.chunk_bytes, o.key_stats),
            sparse - 100000);
  o.memory_limit = sparse - 1;
  MergeStats tight;
  ASSERT_TRUE(RunMerge(&env, o, &tight).ok());
  EXPECT_FALSE(tight.sparse_hash_tables);
  EXPECT_FALSE(tight.out_of_core);
  EXPECT_EQ(read(), first);
}

// IDs of 2^15 bytes and more (YRow keeps a shorter key's length beside the text's
// address, and a longer one's before its separator, in_memory_build.h): joined
// in memory like short ones in each layout of y (ID first, ID last, ID in the
// middle: re-encoded), with a duplicate so that chains are walked. Lengths
// straddle the boundary.
TEST_F(MergeEnvTest, IdsOfAnyLengthJoinInMemoryInEveryLayoutOfY) {
  const size_t lengths[] = {3, 32766, 32767, 32768, 70000};
  std::vector<std::string> ids;
  for (size_t i = 0; i < std::size(lengths); ++i) ids.push_back(std::string(lengths[i] - 1, 'a' + i) + "z");
  {
    std::ofstream x(dir_ / "x.tsv");
    x << "ID\tv\n";
    for (size_t i = 0; i < ids.size(); ++i) x << ids[i] << "\tx" << i << "\n" << "miss" << i << "\tm\n";
  }
  struct Layout {
    const char* header;
    std::function<std::string(const std::string&, size_t)> row;
  };
  const Layout layouts[] = {
      {"ID\tb", [](const std::string& id, size_t j) { return id + "\tb" + std::to_string(j); }},
      {"b\tID", [](const std::string& id, size_t j) { return "b" + std::to_string(j) + "\t" + id; }},
      {"a\tID\tb",
       [](const std::string& id, size_t j) { return "a" + std::to_string(j) + "\t" + id + "\tb" + std::to_string(j); }},
  };
  for (const Layout& layout : layouts) {
    // y: every ID in reverse order, then the long ones once more (each key a chain of two).
    std::vector<std::pair<std::string, size_t>> y_rows;
    for (size_t i = ids.size(); i-- > 0;) y_rows.emplace_back(ids[i], y_rows.size());
    for (size_t i = 1; i < ids.size(); ++i) y_rows.emplace_back(ids[i], y_rows.size());
    {
      std::ofstream y(dir_ / "y.tsv");
      y << layout.header << "\n";
      for (const auto& [id, j] : y_rows) y << layout.row(id, j) << "\n";
    }
    std::string expected;
    for (size_t i = 0; i < ids.size(); ++i)
      for (const auto& [id, j] : y_rows) {
        if (id != ids[i]) continue;
        std::string text = layout.row("", j);  // the y row without its ID: drop the empty field's separator
        size_t gap = text.find("\t\t");
        text = gap != std::string::npos ? text.erase(gap, 1) : text.front() == '\t' ? text.substr(1) : text.substr(0, text.size() - 1);
        expected += ids[i] + "\tx" + std::to_string(i) + "\t" + text + "\n";
      }
    MergeOptions o = Options();
    o.y_key = "ID";
    MergeStats stats;
    Status st = RunMerge(Env::Default(), o, &stats);
    ASSERT_TRUE(st.ok()) << st.message();
    EXPECT_FALSE(stats.out_of_core);
    std::ifstream f(dir_ / "out.tsv");
    std::string out(std::istreambuf_iterator<char>(f), {});
    const size_t body = out.find('\n') + 1;
    EXPECT_EQ(out.substr(body), expected) << layout.header;
    fs::remove(dir_ / "out.tsv");
  }
}

// The out-of-core engine writes short output records in one piece and long ones
// piece by piece (RunSink::Emit): rows on both sides of that length, joined out
// of core under a tiny limit, give the in-memory engine's bytes.
TEST_F(MergeEnvTest, OutOfCoreRowsOfEveryLengthGiveTheInMemoryResult) {
  {
    std::ofstream x(dir_ / "x.tsv"), y(dir_ / "y.tsv");
    x << "ID\tvalue\n";
    y << "ID\tvalue\n";
    for (int i = 0; i < 20000; ++i) {
      x << i % 5000 << "\t" << std::string(static_cast<size_t>(i % 300), 'x') << "\n";
      y << (i * 7) % 5000 << "\t" << std::string(static_cast<size_t>((i * 13) % 300), 'y') << "\n";
    }
  }
  const std::string in_memory = OutputUnder(0).first;
  EXPECT_GT(in_memory.size(), 1000000u);
  EXPECT_EQ(OutputUnder(uint64_t{1} << 20).first, in_memory);
}

// What the probe prefetches for a hit (YRow::first_byte, last_byte) spans every
// byte the hit reads: the key, to confirm it, and the text, to write it.
TEST(YRowTest, FirstAndLastBytesSpanTheKeyAndTheText) {
  std::string line = "key123\tsome text";  // key before: "key123", separator, text
  const char* text = line.data() + 7;
  const in_memory::YRow before = in_memory::YRow::KeyBefore(text, 9, 6);
  EXPECT_EQ(before.key(), "key123");
  EXPECT_EQ(before.first_byte(), line.data());
  EXPECT_EQ(before.last_byte(), line.data() + line.size() - 1);
  std::string last = "a\tb\tkey9";  // key after: text "a\tb", separator, key
  const in_memory::YRow after = in_memory::YRow::KeyAfter(last.data(), 3, 4);
  EXPECT_EQ(after.key(), "key9");
  EXPECT_EQ(after.first_byte(), last.data());
  EXPECT_EQ(after.last_byte(), last.data() + last.size() - 1);
  std::string only_key = "k\t";  // y with the ID only: an empty text
  const in_memory::YRow empty = in_memory::YRow::KeyBefore(only_key.data() + 2, 0, 1);
  EXPECT_EQ(empty.first_byte(), only_key.data());
  EXPECT_EQ(empty.last_byte(), only_key.data() + 1);
}

// A partition record keeps x's ID once when it is a view into the row (the ID
// first or last), and stores it apart otherwise (in the middle, or unquoted
// from a quoted field); a re-partition passes records on as they were read.
// Every layout of both sides, split again at a second level, gives the
// in-memory bytes.
TEST_F(MergeEnvTest, OutOfCoreIdsInEveryPlaceOfARowGiveTheInMemoryResult) {
  enum Place { kFirst, kMiddle, kLast };
  auto row = [](Place place, const std::string& id, const std::string& a, const std::string& b) {
    if (place == kFirst) return id + "\t" + a + "\t" + b + "\n";
    if (place == kMiddle) return a + "\t" + id + "\t" + b + "\n";
    return a + "\t" + b + "\t" + id + "\n";
  };
  for (Place xp : {kFirst, kMiddle, kLast}) {
    for (Place yp : {kFirst, kLast, kMiddle}) {
      {
        std::ofstream x(dir_ / "x.tsv"), y(dir_ / "y.tsv");
        x << row(xp, "ID", "xa", "xb");
        y << row(yp, "ID", "ya", "yb");
        for (int i = 0; i < 30000; ++i) {
          // Every 7th ID quoted: its unquoted value is no view into the row.
          const std::string xid = i % 7 ? std::to_string(i % 9000) : "\"" + std::to_string(i % 9000) + "\"";
          x << row(xp, xid, "a" + std::to_string(i), std::string(static_cast<size_t>(i % 40), 'x'));
          y << row(yp, std::to_string((i * 11) % 9000), "b" + std::to_string(i % 13), "c");
        }
      }
      auto run = [&](uint64_t limit) { return OutputUnder(limit, "ID"); };
      const auto in_memory = run(0);
      EXPECT_GT(in_memory.first.size(), 500000u);
      const auto once = run(uint64_t{4} << 20);
      EXPECT_EQ(once.first, in_memory.first) << xp << " " << yp;
      const auto twice = run(uint64_t{1} << 20);
      EXPECT_EQ(twice.first, in_memory.first) << xp << " " << yp;
      EXPECT_GE(twice.second, 2u) << "no second level: the re-partition path went untested";
    }
  }
}

}  // namespace
}  // namespace cloudmerge
