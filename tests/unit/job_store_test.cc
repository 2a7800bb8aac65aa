// The local JobStore writes through its Env (job_store.h): the fault-injecting
// Env (faulty_env.h) reaches it, a failed write leaves neither a half object
// nor a temporary, and a job whose state cannot be written fails cleanly.
// Temporaries are short (.cloudmerge-tmp-<pid>-<hex> beside the key), so a key
// whose name is as long as the file system allows can still be written.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "cloudmerge/io/env.h"
#include "cloudmerge/pipeline/job_runner.h"
#include "cloudmerge/pipeline/json_log.h"
#include "cloudmerge/pipeline/notify/notifier.h"
#include "cloudmerge/pipeline/store/job_store.h"
#include "faulty_env.h"

namespace cloudmerge {
namespace {

namespace fs = std::filesystem;

class JobStoreEnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("cloudmerge-job-store-test-" + std::to_string(getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Every file below dir_, as paths relative to it.
  std::vector<std::string> Files() const {
    std::vector<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(dir_))
      if (!e.is_directory()) out.push_back(fs::relative(e.path(), dir_).generic_string());
    std::sort(out.begin(), out.end());
    return out;
  }
  std::string Read(const std::string& rel) const {
    std::ifstream in(dir_ / rel);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  fs::path dir_;
};

TEST_F(JobStoreEnvTest, AFullDiskLeavesNoHalfObjectAndNoTemporary) {
  FaultyEnv env;
  env.fail_after = 10;
  auto store = NewLocalJobStore(dir_.string(), &env);
  Status st = store->Put("job/report.json", std::string(100, 'x'), "application/json");
  EXPECT_EQ(st.code(), Status::Code::kNoSpace) << st.message();
  EXPECT_TRUE(Files().empty()) << Files().front();
  auto created = store->CreateIfAbsent("job/claim.json", std::string(100, 'c'));
  EXPECT_FALSE(created.ok());
  EXPECT_TRUE(Files().empty()) << Files().front();
}

TEST_F(JobStoreEnvTest, AFailedRenameKeepsTheOldObject) {
  auto plain = NewLocalJobStore(dir_.string());
  ASSERT_TRUE(plain->Put("job/state.json", "old", "application/json").ok());
  FaultyEnv env;
  env.fail_rename = true;
  auto store = NewLocalJobStore(dir_.string(), &env);
  Status st = store->Put("job/state.json", "new", "application/json");
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("injected rename failure"), std::string::npos) << st.message();
  EXPECT_EQ(Files(), std::vector<std::string>{"job/state.json"});
  EXPECT_EQ(Read("job/state.json"), "old");
}

TEST_F(JobStoreEnvTest, TemporariesAreShortAndNeverListed) {
  FaultyEnv env;
  auto store = NewLocalJobStore(dir_.string(), &env);
  // 255 bytes: NAME_MAX. A temporary named after the key would not fit.
  std::string key = "job/" + std::string(255, 'k');
  Status st = store->Put(key, "body", "text/plain");
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(Read(key), "body");
  auto created = store->CreateIfAbsent("job/" + std::string(254, 'm'), "marker");
  ASSERT_TRUE(created.ok()) << created.status().message();
  EXPECT_TRUE(*created);
  // Every write went through the Env (the fault injector saw it), and left nothing else behind.
  EXPECT_EQ(env.appends.size(), 2u);
  EXPECT_EQ(Files().size(), 2u);
  // A leftover temporary of a dead writer is neither listed nor read as an object.
  std::ofstream(dir_ / "job" / ".cloudmerge-tmp-1-deadbeef") << "half";
  auto listed = store->List("job/");
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), 2u);
  ASSERT_TRUE(store->AbortAbandonedWrites("job").ok());
  EXPECT_EQ(Files().size(), 2u);
}

TEST_F(JobStoreEnvTest, AJobWhoseResultsCannotBeStoredFailsCleanly) {
  fs::create_directories(dir_ / "input" / "j1");
  std::ofstream(dir_ / "input" / "j1" / "x_list.txt") << "ID\ta\n1\tx1\n2\tx2\n";
  std::ofstream(dir_ / "input" / "j1" / "y_list.txt") << "ID\tb\n2\ty2\n3\ty3\n";
  FaultyEnv env;
  env.fail_create = true;  // the output store's folder is full: nothing it writes can be created
  auto in = NewLocalJobStore((dir_ / "input").string());
  auto out = NewLocalJobStore((dir_ / "output").string(), &env);
  std::FILE* log_file = std::fopen((dir_ / "log.jsonl").c_str(), "a");
  ASSERT_NE(log_file, nullptr);
  {
    JsonLog log(log_file);
    auto notifier = NewFanoutNotifier({});
    PipelineOptions o;
    o.threads = 1;
    o.temp_dir = dir_.string();
    JobRunner runner(in.get(), out.get(), Env::Default(), notifier.get(), &log, o);
    auto outcome = runner.Run("j1");
    // Not a success, and said so: an error, or the job recorded as failed.
    EXPECT_TRUE(!outcome.ok() || *outcome != JobOutcome::kSucceeded);
    if (!outcome.ok()) EXPECT_NE(outcome.status().message().find("injected"), std::string::npos)
        << outcome.status().message();
  }
  std::fclose(log_file);
  // No object and no temporary in the output store.
  for (const auto& f : Files()) EXPECT_TRUE(f.rfind("output/", 0) != 0) << f;
}

}  // namespace
}  // namespace cloudmerge
