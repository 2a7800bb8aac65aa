// OpenBeneath and the confined Env (confined_env.h): a job folder's files are
// read only when they are regular files reached without following a link
// (issue 15, finding 5); and safe_text.h's quoting of command output.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "cloudmerge/pipeline/store/confined_env.h"
#include "cloudmerge/report/safe_text.h"

namespace cloudmerge {
namespace {

namespace fs = std::filesystem;

class ConfinedEnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("cloudmerge-confined-test-" + std::to_string(getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "input" / "job");
    fs::create_directories(dir_ / "outside");
    std::ofstream(dir_ / "input" / "job" / "x_list.txt") << "ID\tv\n1\ta\n";
    std::ofstream(dir_ / "outside" / "secret") << "SECRET\n";
    root_ = (dir_ / "input").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
  std::string root_;
};

TEST_F(ConfinedEnvTest, ReadsARegularFileBelowTheRoot) {
  auto env = NewConfinedEnv(Env::Default(), root_);
  auto data = env->ReadFile(root_ + "/job/x_list.txt");
  ASSERT_TRUE(data.ok()) << data.status().message();
  EXPECT_EQ((*data)->bytes(), "ID\tv\n1\ta\n");
}

TEST_F(ConfinedEnvTest, LinkedFileIsRefusedAndNotRead) {
  fs::create_symlink(dir_ / "outside" / "secret", dir_ / "input" / "job" / "y_list.txt");
  auto env = NewConfinedEnv(Env::Default(), root_);
  auto data = env->ReadFile(root_ + "/job/y_list.txt");
  ASSERT_FALSE(data.ok());
  EXPECT_EQ(data.status().code(), Status::Code::kInvalidInput);
  EXPECT_NE(data.status().message().find("job/y_list.txt is a symbolic link"), std::string::npos);
  EXPECT_EQ(data.status().message().find("SECRET"), std::string::npos);
}

TEST_F(ConfinedEnvTest, LinkedFolderOnTheWayIsRefused) {
  std::ofstream(dir_ / "outside" / "x_list.txt") << "SECRET\n";
  fs::create_symlink(dir_ / "outside", dir_ / "input" / "evil");
  auto fd = OpenBeneath(root_, "evil/x_list.txt");
  ASSERT_FALSE(fd.ok());
  EXPECT_NE(fd.status().message().find("evil is a symbolic link"), std::string::npos);
}

TEST_F(ConfinedEnvTest, FifoIsRefusedWithoutBlocking) {
  ASSERT_EQ(mkfifo((dir_ / "input" / "job" / "y_list.txt").c_str(), 0600), 0);
  auto fd = OpenBeneath(root_, "job/y_list.txt");  // would block forever if it opened the FIFO for reading
  ASSERT_FALSE(fd.ok());
  EXPECT_NE(fd.status().message().find("FIFO"), std::string::npos);
}

TEST_F(ConfinedEnvTest, DotDotAndMissingFiles) {
  EXPECT_FALSE(OpenBeneath(root_, "job/../../outside/secret").ok());
  auto missing = OpenBeneath(root_, "job/nope.txt");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Status::Code::kNotFound);
}

// The streaming path (compressed inputs, devices) is confined too: a link to a
// device swapped in after the listing is refused, never streamed (it would
// otherwise follow the link and read /dev/zero or a FIFO outside the job).
TEST_F(ConfinedEnvTest, StreamOfALinkToADeviceIsRefused) {
  fs::create_symlink("/dev/zero", dir_ / "input" / "job" / "y_list.txt");
  auto env = NewConfinedEnv(Env::Default(), root_);
  auto stream = env->OpenStream(root_ + "/job/y_list.txt");
  ASSERT_FALSE(stream.ok());
  EXPECT_NE(stream.status().message().find("symbolic link"), std::string::npos);
  auto plain = env->OpenStream(root_ + "/job/x_list.txt");  // a regular file: mapped by ReadFile instead
  ASSERT_TRUE(plain.ok()) << plain.status().message();
  EXPECT_EQ(plain->get(), nullptr);
}

TEST_F(ConfinedEnvTest, PathsOutsideTheRootPassThrough) {
  auto env = NewConfinedEnv(Env::Default(), root_);
  auto data = env->ReadFile((dir_ / "outside" / "secret").string());  // the engine's own files, e.g. spills
  ASSERT_TRUE(data.ok());
  EXPECT_EQ((*data)->bytes(), "SECRET\n");
}

TEST(SafeTextTest, QuoteLinesKeepsTheEndEscaped) {
  std::string noisy(5000, 'x');
  noisy += "\nlast \xff words\n";
  std::string q = QuoteLines(noisy, 100);
  EXPECT_LE(q.size(), 120u);
  EXPECT_EQ(q.rfind("…", 0), 0u);
  EXPECT_NE(q.find("last \\xff words"), std::string::npos);
  EXPECT_EQ(Quote(std::string(1000, 'k')).size(), 200 + std::string("…").size());
  EXPECT_EQ(DumpJson(nlohmann::json{{"job", "bad\xff"}}), "{\"job\":\"bad\xEF\xBF\xBD\"}");
}

}  // namespace
}  // namespace cloudmerge
