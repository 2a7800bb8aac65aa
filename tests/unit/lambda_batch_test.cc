// LambdaBatchHandler (lambda_batch.h) against local job stores in a
// temporary directory, a real JobRunner and the native engine: an SQS batch
// with one bad record answers that record alone in batchItemFailures (the
// others' jobs run); each bucket gets its own input store, made once; the
// deadline watchdog fires before the deadline, and not once the run is over.
#include "cloudmerge/pipeline/lambda_batch.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace cloudmerge {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class LambdaBatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("cm-lambda-batch-" + std::to_string(getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "out");
    output_ = NewLocalJobStore((root_ / "out").string());
    notifier_ = NewFanoutNotifier({});
    log_file_ = std::fopen((root_ / "log.jsonl").c_str(), "w");
    log_ = std::make_unique<JsonLog>(log_file_);
  }
  void TearDown() override {
    log_.reset();
    std::fclose(log_file_);
    fs::remove_all(root_);
  }

  // A job folder in bucket `bucket` (the directory in-<bucket>/).
  void AddJob(const std::string& bucket, const std::string& job) {
    fs::path d = root_ / ("in-" + bucket) / job;
    fs::create_directories(d);
    std::ofstream(d / "x_list.txt") << "ID\tvalue\n1\ta\n2\tb\n";
    std::ofstream(d / "y_list.txt") << "ID\tvalue\n1\tz\n";
  }

  LambdaBatchHandler Handler(LambdaBatchOptions bo = {}) {
    if (!bo.make_input) {
      bo.make_input = [this](const std::string& bucket) {
        ++stores_made_[bucket];
        return NewLocalJobStore((root_ / ("in-" + bucket)).string());
      };
    }
    PipelineOptions po;
    po.threads = 1;
    return LambdaBatchHandler(output_.get(), Env::Default(), notifier_.get(), log_.get(), po, bo);
  }

  bool HasResult(const std::string& job) const { return fs::exists(root_ / "out" / job / "merged.tsv"); }

  static json S3Event(const std::string& bucket, const std::string& key) {
    return {{"Records", json::array({{{"eventSource", "aws:s3"},
                                      {"eventName", "ObjectCreated:Put"},
                                      {"s3", {{"bucket", {{"name", bucket}}}, {"object", {{"key", key}, {"size", 10}}}}}}})}};
  }
  static json SqsRecord(const std::string& id, const std::string& body) {
    return {{"eventSource", "aws:sqs"}, {"messageId", id}, {"body", body}};
  }

  fs::path root_;
  std::unique_ptr<JobStore> output_;
  std::unique_ptr<Notifier> notifier_;
  FILE* log_file_ = nullptr;
  std::unique_ptr<JsonLog> log_;
  std::map<std::string, int> stores_made_;
};

TEST_F(LambdaBatchTest, OneBadRecordIsTheOnlyBatchItemFailure) {
  AddJob("lab", "ok1");
  AddJob("lab", "ok2");
  json batch = {{"Records", json::array({SqsRecord("m1", S3Event("lab", "ok1/y_list.txt").dump()),
                                         SqsRecord("m2", "this is not an S3 notification"),
                                         SqsRecord("m3", S3Event("lab", "ok2/x_list.txt").dump())})}};
  auto handler = Handler();
  auto response = handler.Handle(batch.dump(), LambdaContext{});
  ASSERT_TRUE(response.ok()) << response.status().message();
  EXPECT_EQ(json::parse(*response), json::parse(R"({"batchItemFailures":[{"itemIdentifier":"m2"}]})"));
  EXPECT_TRUE(HasResult("ok1"));
  EXPECT_TRUE(HasResult("ok2"));
}

TEST_F(LambdaBatchTest, CleanBatchHasNoFailuresAndDirectEventsAnswerOk) {
  AddJob("lab", "j");
  auto handler = Handler();
  json batch = {{"Records", json::array({SqsRecord("m1", S3Event("lab", "j/x_list.txt").dump())})}};
  auto response = handler.Handle(batch.dump(), LambdaContext{});
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(json::parse(*response), json::parse(R"({"batchItemFailures":[]})"));
  // An S3 notification sent directly: "ok", or the invocation's error.
  response = handler.Handle(S3Event("lab", "j/y_list.txt").dump(), LambdaContext{});
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(*response, R"({"status":"ok"})");
  EXPECT_FALSE(handler.Handle("not an event", LambdaContext{}).ok());
}

TEST_F(LambdaBatchTest, EachBucketHasItsOwnStoreMadeOnce) {
  AddJob("a", "ja");
  AddJob("b", "jb");
  auto handler = Handler();
  json batch = {{"Records", json::array({SqsRecord("m1", S3Event("a", "ja/x_list.txt").dump()),
                                         SqsRecord("m2", S3Event("b", "jb/x_list.txt").dump()),
                                         SqsRecord("m3", S3Event("a", "ja/y_list.txt").dump())})}};
  ASSERT_TRUE(handler.Handle(batch.dump(), LambdaContext{}).ok());
  ASSERT_TRUE(handler.Handle(batch.dump(), LambdaContext{}).ok());  // a warm invocation
  EXPECT_EQ(stores_made_, (std::map<std::string, int>{{"a", 1}, {"b", 1}}));
  // Each job was read from its own bucket's store: ja only exists in a, jb only in b.
  EXPECT_TRUE(HasResult("ja"));
  EXPECT_TRUE(HasResult("jb"));
}

TEST_F(LambdaBatchTest, InputPrefixLimitsTheJobs) {
  AddJob("lab", "jobs/j");
  LambdaBatchOptions bo;
  bo.input_prefix = "jobs/";
  bo.make_input = [this](const std::string& bucket) { return NewLocalJobStore((root_ / ("in-" + bucket) / "jobs").string()); };
  auto handler = Handler(bo);
  ASSERT_TRUE(handler.Handle(S3Event("lab", "jobs/j/x_list.txt").dump(), LambdaContext{}).ok());
  EXPECT_TRUE(HasResult("j"));
}

TEST(DeadlineWatchdog, FiresMarginBeforeTheDeadline) {
  std::atomic<int64_t> fired_at{0};
  std::string message;
  int64_t deadline = NowMillis() + 400;
  {
    DeadlineWatchdog w(deadline, 300, [&](const std::string& m) {
      message = m;
      fired_at = NowMillis();
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(350));
  }
  ASSERT_NE(fired_at.load(), 0) << "the watchdog did not fire";
  EXPECT_GE(fired_at.load(), deadline - 300);
  EXPECT_LT(fired_at.load(), deadline);
  EXPECT_NE(message.find("did not finish within the function's time limit"), std::string::npos) << message;
}

TEST(DeadlineWatchdog, SilentWhenTheRunEndsFirstOrNoDeadline) {
  std::atomic<bool> fired{false};
  {
    DeadlineWatchdog w(NowMillis() + 60000, 1000, [&](const std::string&) { fired = true; });
  }  // the run is over long before
  {
    DeadlineWatchdog none(0, 0, [&](const std::string&) { fired = true; });
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_FALSE(fired.load());
}

// The handler arms the watchdog with the invocation's deadline and margin.
TEST_F(LambdaBatchTest, HandleArmsTheWatchdog) {
  AddJob("lab", "j");
  std::atomic<int> calls{0};
  std::string request;
  LambdaBatchOptions bo;
  bo.deadline_margin_ms = 100000;  // the deadline is already within the margin: fires at once
  bo.on_deadline = [&](const LambdaContext& ctx, const std::string&) {
    request = ctx.request_id;
    ++calls;
  };
  // The run outlasts the watchdog's start (it fires at once), whatever the scheduling.
  bo.make_input = [this](const std::string& bucket) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    return NewLocalJobStore((root_ / ("in-" + bucket)).string());
  };
  auto handler = Handler(bo);
  LambdaContext ctx;
  ctx.request_id = "req-1";
  ctx.deadline_ms = NowMillis() + 5000;
  ASSERT_TRUE(handler.Handle(S3Event("lab", "j/x_list.txt").dump(), ctx).ok());
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(request, "req-1");
}

}  // namespace
}  // namespace cloudmerge
