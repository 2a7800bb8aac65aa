// Env::OpenRandomAccess on local files (env_posix.cc): what a cluster task reads
// its split through. Byte ranges as asked, the version pinning the bytes the
// driver planned with, and inputs that can only be read in order left out.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "cloudmerge/io/env.h"
#include "temp_dir.h"

namespace cloudmerge {
namespace {

namespace fs = std::filesystem;

class RandomAccessInputTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& bytes) {
    std::ofstream(dir_ / name, std::ios::binary) << bytes;
    return (dir_ / name).string();
  }
  TempDir tmp_{"cm_ra"};
  const fs::path& dir_ = tmp_.path();
};

TEST_F(RandomAccessInputTest, ReadsTheRangesAskedFor) {
  std::string path = Write("x.tsv", "ID\tvalue\n1\ta\n2\tb\n");
  auto in = Env::Default()->OpenRandomAccess(path);
  ASSERT_TRUE(in.ok()) << in.status().message();
  ASSERT_NE(*in, nullptr);
  EXPECT_EQ((*in)->size(), 17u);
  std::string out = "keep:";
  ASSERT_TRUE((*in)->ReadAt(9, 4, &out).ok());
  ASSERT_TRUE((*in)->ReadAt(0, 2, &out).ok());
  EXPECT_EQ(out, "keep:1\ta\nID");  // appended, in the order asked
  Status past = (*in)->ReadAt(15, 4, &out);
  EXPECT_FALSE(past.ok());
  EXPECT_EQ(out, "keep:1\ta\nID") << "a failed read appends nothing";
}

TEST_F(RandomAccessInputTest, TheVersionPinsTheBytesPlannedWith) {
  std::string path = Write("x.tsv", "ID\tvalue\n1\ta\n");
  auto first = Env::Default()->OpenRandomAccess(path);
  ASSERT_TRUE(first.ok());
  std::string version = (*first)->version();
  ASSERT_FALSE(version.empty());
  auto again = Env::Default()->OpenRandomAccess(path, version);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ((*again)->version(), version);

  // Rewritten (other bytes, same size) under the same name: another version. The
  // modification time is set apart explicitly: file times come from a coarse clock,
  // and a rewrite within one tick of it with the same size is not seen (env.h).
  Write("x.tsv", "ID\tvalue\n9\tz\n");
  const struct timespec later[2] = {{0, UTIME_OMIT}, {1700000000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), later, 0), 0);
  auto changed = Env::Default()->OpenRandomAccess(path, version);
  ASSERT_FALSE(changed.ok());
  EXPECT_NE(changed.status().message().find(path + " changed while the merge was reading it"), std::string::npos)
      << changed.status().message();
}

TEST_F(RandomAccessInputTest, AFileCutShortWhileOpenIsAnError) {
  std::string path = Write("x.tsv", std::string(10000, 'a'));
  auto in = Env::Default()->OpenRandomAccess(path);
  ASSERT_TRUE(in.ok());
  ASSERT_EQ(::truncate(path.c_str(), 100), 0);
  std::string out;
  Status st = (*in)->ReadAt(50, 1000, &out);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("changed while the merge was reading it"), std::string::npos) << st.message();
  EXPECT_TRUE(out.empty());
}

TEST_F(RandomAccessInputTest, InputsReadOnlyInOrderHaveNone) {
  std::string fifo = (dir_ / "fifo").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  int keep_open = ::open(fifo.c_str(), O_RDWR | O_NONBLOCK);  // so that opening it to read does not block
  ASSERT_GE(keep_open, 0);
  auto f = Env::Default()->OpenRandomAccess(fifo);
  ::close(keep_open);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(*f, nullptr);
  auto in = Env::Default()->OpenRandomAccess("-");
  ASSERT_TRUE(in.ok());
  EXPECT_EQ(*in, nullptr);
  auto missing = Env::Default()->OpenRandomAccess((dir_ / "absent.tsv").string());
  EXPECT_FALSE(missing.ok());
}

}  // namespace
}  // namespace cloudmerge
