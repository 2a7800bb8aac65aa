// Env::OpenFileStream (env_posix.cc) and the tables that use it (table_scan.h):
// a plain file bigger than the memory limit is read in order with read(2), not
// mapped. It must give the file's bytes, refuse what is not such a file, and
// notice a file that changes while it is read or between two passes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "cloudmerge/engine/table_scan.h"
#include "cloudmerge/io/env.h"
#include "temp_dir.h"

namespace cloudmerge {
namespace {

namespace fs = std::filesystem;

class FileStreamTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& bytes) {
    std::ofstream(dir_ / name, std::ios::binary | std::ios::trunc) << bytes;
    return (dir_ / name).string();
  }
  // File times come from a coarse clock: set a rewrite's apart explicitly.
  void Touch(const std::string& path, time_t when) {
    const struct timespec t[2] = {{0, UTIME_OMIT}, {when, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), t, 0), 0);
  }
  static std::string Rows(int n) {
    std::string s = "ID\tvalue\n";
    for (int i = 0; i < n; ++i) s += std::to_string(i) + "\tv" + std::to_string(i) + "\n";
    return s;
  }
  TempDir tmp_{"cm_fs"};
  const fs::path& dir_ = tmp_.path();
};

TEST_F(FileStreamTest, ReadsTheWholeFileInOrder) {
  std::string bytes = Rows(5000);
  std::string path = Write("x.tsv", bytes);
  auto s = Env::Default()->OpenFileStream(path, 1);
  ASSERT_TRUE(s.ok()) << s.status().message();
  ASSERT_NE(*s, nullptr);
  EXPECT_TRUE((*s)->reopenable());
  EXPECT_EQ((*s)->size_hint(), bytes.size());
  auto ra = Env::Default()->OpenRandomAccess(path);
  ASSERT_TRUE(ra.ok() && *ra);
  EXPECT_EQ((*s)->version(), (*ra)->version()) << "the same identity as the file's other readers";
  std::string got;
  for (;;) {
    size_t before = got.size();
    ASSERT_TRUE((*s)->Read(1000, &got).ok());
    if (got.size() == before) break;
  }
  EXPECT_EQ(got, bytes);
}

TEST_F(FileStreamTest, OnlyPlainFilesOfTheSizeAskedFor) {
  std::string path = Write("x.tsv", Rows(10));
  auto small = Env::Default()->OpenFileStream(path, fs::file_size(path) + 1);
  ASSERT_TRUE(small.ok());
  EXPECT_EQ(*small, nullptr) << "smaller than asked: mapped, as before";
  std::string fifo = (dir_ / "fifo").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  int keep_open = ::open(fifo.c_str(), O_RDWR | O_NONBLOCK);
  ASSERT_GE(keep_open, 0);
  auto f = Env::Default()->OpenFileStream(fifo, 0);
  ::close(keep_open);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*f, nullptr) << "a FIFO is OpenStream's (read once, kept for a second pass)";
  auto in = Env::Default()->OpenFileStream("-", 0);
  ASSERT_TRUE(in.ok());
  EXPECT_EQ(*in, nullptr);
  auto dir = Env::Default()->OpenFileStream(dir_.string(), 0);
  ASSERT_TRUE(dir.ok());
  EXPECT_EQ(*dir, nullptr) << "a directory: ReadFile words the error";
  auto missing = Env::Default()->OpenFileStream((dir_ / "absent.tsv").string(), 0);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("absent.tsv"), std::string::npos);
}

// Read to its end: a stream that ends short of (or runs past) the size the file
// had when opened read another file than the one planned with.
TEST_F(FileStreamTest, AFileCutShortOrExtendedWhileReadIsAnError) {
  for (bool grow : {false, true}) {
    std::string path = Write("x.tsv", std::string(100000, 'a'));
    auto s = Env::Default()->OpenFileStream(path, 0);
    ASSERT_TRUE(s.ok() && *s);
    std::string got;
    ASSERT_TRUE((*s)->Read(1000, &got).ok());
    if (grow) std::ofstream(path, std::ios::binary | std::ios::app) << std::string(5000, 'b');
    else ASSERT_EQ(::truncate(path.c_str(), 50000), 0);
    Status st;
    for (;;) {
      size_t before = got.size();
      st = (*s)->Read(1 << 20, &got);
      if (!st.ok() || got.size() == before) break;
    }
    ASSERT_FALSE(st.ok()) << (grow ? "grown" : "cut");
    EXPECT_NE(st.message().find(path + " changed while the merge was reading it"), std::string::npos) << st.message();
  }
}

TEST_F(FileStreamTest, TablesStreamFilesFromTheSizeGiven) {
  std::string path = Write("x.tsv", Rows(3000));
  SegmentSizes seg;
  seg.first = seg.rest = 4096;  // many segments
  auto mapped = Table::Open(Env::Default(), path, "ID", false, 1024, seg);
  ASSERT_TRUE(mapped.ok()) << mapped.status().message();
  EXPECT_FALSE((*mapped)->streamed()) << "0: mapped";
  seg.stream_files_from = fs::file_size(path) + 1;
  auto still = Table::Open(Env::Default(), path, "ID", false, 1024, seg);
  ASSERT_TRUE(still.ok());
  EXPECT_FALSE((*still)->streamed()) << "smaller than the threshold: mapped";
  seg.stream_files_from = fs::file_size(path);
  auto t = Table::Open(Env::Default(), path, "ID", false, 1024, seg);
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_TRUE((*t)->streamed());
  // Two passes read the same bytes, segment by segment.
  for (int pass = 0; pass < 2; ++pass) {
    ASSERT_TRUE((*t)->Rewind().ok());
    std::string all((*t)->data());
    for (;;) {
      auto more = (*t)->NextSegment();
      ASSERT_TRUE(more.ok()) << more.status().message();
      if (!*more) break;
      all += (*t)->data();
    }
    EXPECT_EQ(all, Rows(3000)) << "pass " << pass;
  }
}

// The out-of-core join reads each input twice; a file rewritten in between
// (same header, same size, other rows) must not be read as a mix of both.
TEST_F(FileStreamTest, AFileRewrittenBetweenTwoPassesIsAnError) {
  std::string path = Write("x.tsv", Rows(3000));
  Touch(path, 1600000000);
  SegmentSizes seg;
  seg.first = seg.rest = 4096;
  seg.stream_files_from = 1;
  auto t = Table::Open(Env::Default(), path, "ID", false, 1024, seg);
  ASSERT_TRUE(t.ok() && (*t)->streamed());
  auto more = (*t)->NextSegment();
  ASSERT_TRUE(more.ok() && *more);
  std::string other = Rows(3000);
  other[other.size() - 2] = 'w';  // same size, other bytes
  Write("x.tsv", other);
  Touch(path, 1700000000);
  Status st = (*t)->Rewind();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("changed while the merge was reading it"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace cloudmerge
