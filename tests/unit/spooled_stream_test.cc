// SpooledStream: a one-pass input replayed from its copy in the temp dir, read
// on from the input where the copy ends; no copy (never started, or the temp
// dir unusable) is an error only when the replay is asked for.
#include "cloudmerge/io/spooled_stream.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace cloudmerge {
namespace {

namespace fs = std::filesystem;

// Hands out `data` once, in pieces of at most 7 bytes (a pipe's short reads).
class OnePass final : public InputStream {
 public:
  explicit OnePass(std::string data) : data_(std::move(data)) {}
  Status Read(size_t max_bytes, std::string* out) override {
    size_t n = std::min({max_bytes, size_t{7}, data_.size() - pos_});
    out->append(data_, pos_, n);
    pos_ += n;
    return Status::OK();
  }
  uint64_t size_hint() const override { return 0; }
  bool reopenable() const override { return false; }

 private:
  std::string data_;
  size_t pos_ = 0;
};

std::string ReadAll(InputStream* s, size_t piece) {
  std::string all;
  for (;;) {
    size_t before = all.size();
    EXPECT_TRUE(s->Read(piece, &all).ok());
    if (all.size() == before) return all;
  }
}

class SpooledStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("cm_spool_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    for (int i = 0; i < 1000; ++i) data_ += std::to_string(i) + "\tv" + std::to_string(i) + "\n";
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
  std::string data_;
};

TEST_F(SpooledStreamTest, ReplaysFromTheCopyThenReadsOn) {
  SpooledStream s(std::make_unique<OnePass>(data_), "standard input", dir_.string());
  std::string head;
  while (head.size() < 100) ASSERT_TRUE(s.Read(50, &head).ok());
  s.StartSpool({std::string_view(head).substr(0, 40), std::string_view(head).substr(40)});
  std::string middle;
  while (middle.size() < 300) ASSERT_TRUE(s.Read(64, &middle).ok());
  // Rewound halfway: the copy first, then on from the input.
  ASSERT_TRUE(s.Rewind().ok());
  EXPECT_EQ(ReadAll(&s, 33), data_);
  // And again from the end: all of it comes from the copy now.
  ASSERT_TRUE(s.Rewind().ok());
  EXPECT_EQ(ReadAll(&s, 4096), data_);
  EXPECT_TRUE(fs::is_empty(dir_)) << "the copy has no name; the private root is gone again";
}

TEST_F(SpooledStreamTest, NoCopyIsAnErrorOnlyWhenReplayIsAsked) {
  {
    SpooledStream s(std::make_unique<OnePass>(data_), "standard input", dir_.string());
    EXPECT_EQ(ReadAll(&s, 100), data_);  // read once: fine without a copy
    Status st = s.Rewind();
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.message().find("twice"), std::string::npos) << st.message();
  }
  SpooledStream s(std::make_unique<OnePass>(data_), "x.fifo", (dir_ / "missing").string());
  std::string head;
  ASSERT_TRUE(s.Read(10, &head).ok());
  s.StartSpool({head});
  EXPECT_EQ(head + ReadAll(&s, 100), data_) << "the first pass goes on";
  Status st = s.Rewind();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Status::Code::kIOError);
  for (const char* part : {"x.fifo", "twice", "missing", "does not exist", "temporary directory"})
    EXPECT_NE(st.message().find(part), std::string::npos) << part << ": " << st.message();
  EXPECT_EQ(st.setting(), Setting::kTempDir) << st.message();
}

}  // namespace
}  // namespace cloudmerge
