// JobRunner's end notification, one marker per channel (job_runner.h, step
// 6), against local job stores in a temporary directory and scripted
// channels that accept, fail, or kill the process at a chosen send. A kill is
// real: the run happens in a forked child that _exit()s inside the channel's
// Send, right after the message was accepted (or before), leaving the state a
// SIGKILL leaves; the next worker (this process) then resumes the run.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cloudmerge/io/env.h"
#include "cloudmerge/pipeline/job.h"
#include "cloudmerge/pipeline/job_runner.h"
#include "cloudmerge/pipeline/store/job_store.h"
#include "cloudmerge/pipeline/json_log.h"
#include "cloudmerge/pipeline/notify/notifier.h"
#include "cloudmerge/pipeline/setting_names.h"

namespace cloudmerge {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kJob = "study-7";

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A channel whose behaviour is set per call. Accepted messages are appended
// to a file ("<kind>\n" per message), so those a forked child accepted before
// it died are counted too.
class ScriptedChannel final : public Notifier {
 public:
  enum class Mode {
    kOk,
    kFail,            // IOError: nothing went out
    kPartial,         // went out, a recipient set aside (InvalidInput)
    kDieBeforeSend,   // the process dies inside Send, the message not accepted
    kDieAfterSend,    // the process dies inside Send, the message accepted
    kThrow,           // an exception escapes Send (a bug anywhere in a run)
  };
  ScriptedChannel(std::string name, fs::path record) : name_(std::move(name)), record_(std::move(record)) {}

  // `mode` for messages of `kind` (others: kOk).
  void Set(const std::string& kind, Mode mode) { modes_[kind] = mode; }

  Status Send(const Notification& n) override {
    ++attempts_;
    Mode mode = modes_.count(n.kind) ? modes_[n.kind] : Mode::kOk;
    if (mode == Mode::kDieBeforeSend) _exit(0);
    if (mode == Mode::kThrow) throw std::runtime_error("scripted bug");
    if (mode == Mode::kFail) return Status::IOError(name_ + " is down");
    std::ofstream(record_, std::ios::app) << n.kind << "\n";
    if (mode == Mode::kDieAfterSend) _exit(0);
    if (mode == Mode::kPartial) return Status::InvalidInput("not to \"bad address\": not a usable e-mail address");
    return Status::OK();
  }
  std::string Describe() const override { return "scripted " + name_; }
  std::string Name() const override { return name_; }
  int attempts() const { return attempts_; }

 private:
  std::string name_;
  fs::path record_;
  std::map<std::string, Mode> modes_;
  int attempts_ = 0;
};

using Mode = ScriptedChannel::Mode;

class JobRunnerNotifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("cloudmerge-job-runner-test-" + std::to_string(getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "input" / kJob);
    fs::create_directories(dir_ / "output");
    std::ofstream(dir_ / "input" / kJob / "x_list.txt") << "ID\ta\n1\tx1\n2\tx2\n3\tx3\n";
    std::ofstream(dir_ / "input" / kJob / "y_list.txt") << "ID\tb\n2\ty2\n3\ty3\n4\ty4\n";
    in_ = NewLocalJobStore((dir_ / "input").string());
    out_ = NewLocalJobStore((dir_ / "output").string());
    log_file_ = std::fopen((dir_ / "log.jsonl").c_str(), "a");
    ASSERT_NE(log_file_, nullptr);
    log_ = std::make_unique<JsonLog>(log_file_);
  }
  void TearDown() override {
    log_.reset();
    if (log_file_) std::fclose(log_file_);
    fs::remove_all(dir_);
  }

  // A fan-out of two scripted channels, "smtp" then "sns" (the order serve uses).
  std::unique_ptr<Notifier> Channels(ScriptedChannel** smtp, ScriptedChannel** sns) {
    std::vector<std::unique_ptr<Notifier>> channels;
    auto a = std::make_unique<ScriptedChannel>("smtp", dir_ / "sent-smtp");
    auto b = std::make_unique<ScriptedChannel>("sns", dir_ / "sent-sns");
    *smtp = a.get();
    *sns = b.get();
    channels.push_back(std::move(a));
    channels.push_back(std::move(b));
    return NewFanoutNotifier(std::move(channels));
  }

  PipelineOptions Options(const std::string& worker) {
    PipelineOptions o;
    o.worker_id = worker;
    o.lease_ms = 300;
    o.threads = 1;
    o.notify_retry_ms = 0;  // retries at once unless a test says otherwise
    o.temp_dir = dir_.string();
    return o;
  }

  Result<JobOutcome> RunOnce(Notifier* notifier, PipelineOptions o) {
    JobRunner runner(in_.get(), out_.get(), Env::Default(), notifier, log_.get(), std::move(o));
    return runner.Run(kJob);
  }

  // Runs the job in a forked child that is expected to die inside a channel's Send.
  void RunInChildThatDies(Notifier* notifier) {
    std::fflush(nullptr);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      (void)RunOnce(notifier, Options("child"));
      _exit(3);  // it should have died inside Send
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0) << "the child finished the run instead of dying inside Send";
    // Its claim (lease 300 ms) must expire before another worker may resume the run.
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
  }

  // Messages of `kind` a channel accepted, in any process.
  int Sent(const std::string& channel, const std::string& kind) {
    std::istringstream lines(ReadFile(dir_ / ("sent-" + channel)));
    int n = 0;
    for (std::string line; std::getline(lines, line);) n += line == kind;
    return n;
  }

  fs::path StateDir() {
    for (const auto& e : fs::directory_iterator(dir_ / "output" / kJob / "_state")) return e.path();
    return {};
  }
  bool Marker(const std::string& name) { return fs::exists(StateDir() / name); }

  std::vector<json> LogEvents(const std::string& event) {
    std::fflush(log_file_);
    std::vector<json> out;
    std::istringstream lines(ReadFile(dir_ / "log.jsonl"));
    for (std::string line; std::getline(lines, line);) {
      json j = json::parse(line, nullptr, false);
      if (j.is_object() && j.value("event", "") == event) out.push_back(j);
    }
    return out;
  }

  fs::path dir_;
  std::unique_ptr<JobStore> in_, out_;
  FILE* log_file_ = nullptr;
  std::unique_ptr<JsonLog> log_;
};

TEST_F(JobRunnerNotifyTest, EachChannelMarkedThenTheWhole) {
  ScriptedChannel *smtp, *sns;
  auto notifier = Channels(&smtp, &sns);
  auto outcome = RunOnce(notifier.get(), Options("w1"));
  ASSERT_TRUE(outcome.ok()) << outcome.status().message();
  EXPECT_EQ(*outcome, JobOutcome::kSucceeded);
  EXPECT_EQ(Sent("smtp", "succeeded"), 1);
  EXPECT_EQ(Sent("sns", "succeeded"), 1);
  EXPECT_TRUE(Marker("notified-succeeded-smtp"));
  EXPECT_TRUE(Marker("notified-succeeded-sns"));
  EXPECT_TRUE(Marker("notified-succeeded"));
  json smtp_marker = json::parse(ReadFile(StateDir() / "notified-succeeded-smtp"));
  EXPECT_EQ(smtp_marker.value("channel", ""), "smtp");
  EXPECT_EQ(smtp_marker.value("worker", ""), "w1");
  // The run's claim is released once it is over.
  for (const auto& e : fs::directory_iterator(StateDir()))
    EXPECT_EQ(e.path().filename().string().rfind("claim-", 0), std::string::npos) << e.path();

  // A duplicate delivery sends nothing.
  outcome = RunOnce(notifier.get(), Options("w2"));
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(*outcome, JobOutcome::kAlreadyDone);
  EXPECT_EQ(smtp->attempts() + sns->attempts(), 4);  // received + succeeded, each on both
}

// The campaign's finding: killed after SMTP took the message, before its
// marker (SNS retrying slowly after it). Only SMTP may repeat it; SNS sends once.
TEST_F(JobRunnerNotifyTest, KilledAfterTheFirstChannelsSendRepeatsOnlyThatChannel) {
  ScriptedChannel *smtp, *sns;
  auto notifier = Channels(&smtp, &sns);
  smtp->Set("succeeded", Mode::kDieAfterSend);
  RunInChildThatDies(notifier.get());
  EXPECT_EQ(Sent("smtp", "succeeded"), 1);
  EXPECT_EQ(Sent("sns", "succeeded"), 0);
  EXPECT_TRUE(Marker("done.json"));
  EXPECT_FALSE(Marker("notified-succeeded-smtp"));

  ScriptedChannel *smtp2, *sns2;
  auto fresh = Channels(&smtp2, &sns2);
  auto outcome = RunOnce(fresh.get(), Options("w2"));
  ASSERT_TRUE(outcome.ok()) << outcome.status().message();
  EXPECT_EQ(*outcome, JobOutcome::kAlreadyDone);
  EXPECT_EQ(Sent("smtp", "succeeded"), 2);  // the one-send window, on the one channel
  EXPECT_EQ(Sent("sns", "succeeded"), 1);
  EXPECT_TRUE(Marker("notified-succeeded"));
  EXPECT_EQ(Sent("smtp", "received"), 1);  // the received notice is not repeated by the resume

  // The log tells the campaign which send the kill interrupted: notify.sending
  // on smtp with no notify.sent after it from the child.
  int child_sending = 0, child_sent = 0;
  for (const auto& e : LogEvents("notify.sending")) child_sending += e.value("kind", "") == "succeeded";
  for (const auto& e : LogEvents("notify.sent"))
    child_sent += e.value("kind", "") == "succeeded" && e.value("channel", "") == "smtp";
  EXPECT_EQ(child_sending, 3);  // child: smtp; resume: smtp, sns
  EXPECT_EQ(child_sent, 1);     // the resume's only
}

TEST_F(JobRunnerNotifyTest, KilledAfterTheSecondChannelsSendRepeatsOnlyThatChannel) {
  ScriptedChannel *smtp, *sns;
  auto notifier = Channels(&smtp, &sns);
  sns->Set("succeeded", Mode::kDieAfterSend);
  RunInChildThatDies(notifier.get());
  EXPECT_TRUE(Marker("notified-succeeded-smtp"));  // marked before SNS was tried

  ScriptedChannel *smtp2, *sns2;
  auto fresh = Channels(&smtp2, &sns2);
  auto outcome = RunOnce(fresh.get(), Options("w2"));
  ASSERT_TRUE(outcome.ok()) << outcome.status().message();
  EXPECT_EQ(Sent("smtp", "succeeded"), 1);
  EXPECT_EQ(Sent("sns", "succeeded"), 2);
  EXPECT_EQ(smtp2->attempts(), 0);
  EXPECT_TRUE(Marker("notified-succeeded"));
}

TEST_F(JobRunnerNotifyTest, KilledInsideASendThatDidNotGoOutLosesNothing) {
  ScriptedChannel *smtp, *sns;
  auto notifier = Channels(&smtp, &sns);
  smtp->Set("succeeded", Mode::kDieBeforeSend);
  RunInChildThatDies(notifier.get());
  ScriptedChannel *smtp2, *sns2;
  auto fresh = Channels(&smtp2, &sns2);
  ASSERT_TRUE(RunOnce(fresh.get(), Options("w2")).ok());
  EXPECT_EQ(Sent("smtp", "succeeded"), 1);
  EXPECT_EQ(Sent("sns", "succeeded"), 1);
}

TEST_F(JobRunnerNotifyTest, FailedRunIsNotifiedPerChannelToo) {
  std::ofstream(dir_ / "input" / kJob / "x_list.txt") << "ID\ta\n1\tx1\n2\tx2\textra\n";
  ScriptedChannel *smtp, *sns;
  auto notifier = Channels(&smtp, &sns);
  smtp->Set("failed", Mode::kDieAfterSend);
  RunInChildThatDies(notifier.get());
  EXPECT_TRUE(Marker("failed.json"));
  ScriptedChannel *smtp2, *sns2;
  auto fresh = Channels(&smtp2, &sns2);
  auto outcome = RunOnce(fresh.get(), Options("w2"));
  ASSERT_TRUE(outcome.ok()) << outcome.status().message();
  EXPECT_EQ(*outcome, JobOutcome::kAlreadyDone);
  EXPECT_EQ(Sent("smtp", "failed"), 2);
  EXPECT_EQ(Sent("sns", "failed"), 1);
  EXPECT_TRUE(Marker("notified-failed"));
}

// Issue 17: an engine error names the setting to change as the operator spells
// it — the Lambda runtime's variable, serve's flag — never the CLI's flag. A
// missing temporary directory is an I/O error: the run is retried, and the
// error the caller gets and the "job.retry" log line say where to fix it.
TEST_F(JobRunnerNotifyTest, EngineErrorNamesTheSettingAsEachCallerSpellsIt) {
  struct Case {
    SettingNames names;
    std::string want;
  };
  for (const Case& c : {Case{LambdaSettingNames(), "set by the function's environment variable TMPDIR"},
                        Case{ServeSettingNames(), "set by serve's --temp-dir"}}) {
    ScriptedChannel *smtp, *sns;
    auto notifier = Channels(&smtp, &sns);
    PipelineOptions o = Options("w1");
    o.memory_limit = 1;  // out of core: the spill directory is needed
    o.temp_dir = (dir_ / "no-such-dir").string();
    o.setting_names = c.names;
    auto outcome = RunOnce(notifier.get(), o);
    ASSERT_FALSE(outcome.ok());
    const std::string& m = outcome.status().message();
    EXPECT_NE(m.find("no-such-dir"), std::string::npos) << m;
    EXPECT_NE(m.find(c.want), std::string::npos) << m;
    if (c.want.find("TMPDIR") != std::string::npos) EXPECT_EQ(m.find("--temp-dir"), std::string::npos) << m;
    ASSERT_FALSE(LogEvents("job.retry").empty());
    EXPECT_NE(LogEvents("job.retry").back().value("message", "").find(c.want), std::string::npos);
  }
}

// SNS down for good: SMTP is marked at once and never repeated; the run
// reports the notification pending (a transient error: the delivery comes
// back) until SNS takes it.
TEST_F(JobRunnerNotifyTest, ChannelFailingForGoodNeitherBlocksNorRepeatsTheOthers) {
  ScriptedChannel *smtp, *sns;
  auto notifier = Channels(&smtp, &sns);
  sns->Set("succeeded", Mode::kFail);
  auto outcome = RunOnce(notifier.get(), Options("w1"));
  ASSERT_FALSE(outcome.ok());
  EXPECT_EQ(outcome.status().code(), Status::Code::kIOError);
  EXPECT_NE(outcome.status().message().find("did not go out on sns"), std::string::npos)
      << outcome.status().message();
  EXPECT_TRUE(Marker("done.json"));
  EXPECT_TRUE(Marker("notified-succeeded-smtp"));
  EXPECT_FALSE(Marker("notified-succeeded-sns"));
  EXPECT_FALSE(Marker("notified-succeeded"));

  for (int i = 0; i < 3; ++i) {  // redeliveries while SNS is still down
    outcome = RunOnce(notifier.get(), Options("w" + std::to_string(i + 2)));
    EXPECT_FALSE(outcome.ok());
  }
  EXPECT_EQ(Sent("smtp", "succeeded"), 1);
  EXPECT_EQ(sns->attempts(), 1 + 1 + 3);  // received, then succeeded four times

  sns->Set("succeeded", Mode::kOk);
  outcome = RunOnce(notifier.get(), Options("w9"));
  ASSERT_TRUE(outcome.ok()) << outcome.status().message();
  EXPECT_EQ(*outcome, JobOutcome::kAlreadyDone);
  EXPECT_EQ(Sent("smtp", "succeeded"), 1);
  EXPECT_EQ(Sent("sns", "succeeded"), 1);
  EXPECT_TRUE(Marker("notified-succeeded"));
}

// In one process, a failed channel is retried after a wait that doubles
// (a polling `serve --local` sees every ended run on each scan).
TEST_F(JobRunnerNotifyTest, RetriesOfAFailedChannelBackOffInProcess) {
  ScriptedChannel *smtp, *sns;
  auto notifier = Channels(&smtp, &sns);
  sns->Set("succeeded", Mode::kFail);
  PipelineOptions o = Options("w1");
  o.notify_retry_ms = 60000;
  JobRunner runner(in_.get(), out_.get(), Env::Default(), notifier.get(), log_.get(), o);
  EXPECT_FALSE(runner.Run(kJob).ok());
  auto again = runner.Run(kJob);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(*again, JobOutcome::kBusy);  // "look again later": nothing sent, nothing logged as an error
  EXPECT_EQ(sns->attempts(), 2);         // received + the first succeeded
  EXPECT_EQ(smtp->attempts(), 2);
}

// A channel that took the message but set a recipient aside (InvalidInput):
// sending again would only repeat it to the others, so it is marked.
TEST_F(JobRunnerNotifyTest, PartlyDeliveredIsMarked) {
  ScriptedChannel *smtp, *sns;
  auto notifier = Channels(&smtp, &sns);
  smtp->Set("succeeded", Mode::kPartial);
  auto outcome = RunOnce(notifier.get(), Options("w1"));
  ASSERT_TRUE(outcome.ok()) << outcome.status().message();
  EXPECT_TRUE(Marker("notified-succeeded"));
  json marker = json::parse(ReadFile(StateDir() / "notified-succeeded-smtp"));
  EXPECT_NE(marker.value("warning", "").find("bad address"), std::string::npos) << marker.dump();
  ASSERT_TRUE(RunOnce(notifier.get(), Options("w2")).ok());
  EXPECT_EQ(Sent("smtp", "succeeded"), 1);
}

// A run notified by an earlier version (one `notified-<kind>` after all
// channels, no per-channel markers) is not notified again, on any channel,
// including one configured since.
TEST_F(JobRunnerNotifyTest, OldSingleMarkerCountsAsNotifiedOnEveryChannel) {
  ScriptedChannel *smtp, *sns;
  auto notifier = Channels(&smtp, &sns);
  ASSERT_TRUE(RunOnce(notifier.get(), Options("w1")).ok());
  fs::remove(StateDir() / "notified-succeeded-smtp");
  fs::remove(StateDir() / "notified-succeeded-sns");
  ASSERT_TRUE(Marker("notified-succeeded"));
  std::vector<std::unique_ptr<Notifier>> three;
  three.push_back(std::make_unique<ScriptedChannel>("smtp", dir_ / "sent-smtp"));
  three.push_back(std::make_unique<ScriptedChannel>("sns", dir_ / "sent-sns"));
  three.push_back(std::make_unique<ScriptedChannel>("directory", dir_ / "sent-directory"));
  auto later = NewFanoutNotifier(std::move(three));
  auto outcome = RunOnce(later.get(), Options("w2"));
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(*outcome, JobOutcome::kAlreadyDone);
  EXPECT_EQ(Sent("smtp", "succeeded"), 1);
  EXPECT_EQ(Sent("sns", "succeeded"), 1);
  EXPECT_EQ(Sent("directory", "succeeded"), 0);
}

// The run's own worker holds a live claim while it is still sending (a slow
// channel): a duplicate delivery seen meanwhile must wait, not send too.
TEST_F(JobRunnerNotifyTest, LiveClaimOfTheSendingWorkerDefersTheResume) {
  ScriptedChannel *smtp, *sns;
  auto notifier = Channels(&smtp, &sns);
  ASSERT_TRUE(RunOnce(notifier.get(), Options("w1")).ok());
  // Back to "done.json written, still sending, claim live".
  for (const char* m : {"notified-succeeded", "notified-succeeded-smtp", "notified-succeeded-sns"})
    fs::remove(StateDir() / m);
  json claim = {{"worker", "w1"}, {"expires_ms", NowMillis() + 60000}};
  std::ofstream(StateDir() / "claim-1") << claim.dump();
  auto outcome = RunOnce(notifier.get(), Options("w2"));
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(*outcome, JobOutcome::kBusy);
  EXPECT_EQ(Sent("smtp", "succeeded"), 1);
  EXPECT_EQ(Sent("sns", "succeeded"), 1);

  // Its worker gone (the lease expired): the resume takes the run over and sends.
  claim["expires_ms"] = NowMillis() - 1;
  std::ofstream(StateDir() / "claim-1", std::ios::trunc) << claim.dump();
  outcome = RunOnce(notifier.get(), Options("w2"));
  ASSERT_TRUE(outcome.ok()) << outcome.status().message();
  EXPECT_EQ(*outcome, JobOutcome::kAlreadyDone);
  EXPECT_EQ(Sent("smtp", "succeeded"), 2);
  EXPECT_EQ(Sent("sns", "succeeded"), 2);
  EXPECT_FALSE(fs::exists(StateDir() / "claim-2"));  // released
}


// Issue 15, finding 3: an exception in a run (it aborted the worker, and after
// the lease the next one) fails that run once; the worker goes on.
TEST_F(JobRunnerNotifyTest, ExceptionInARunFailsItOnce) {
  ScriptedChannel *smtp, *sns;
  auto notifier = Channels(&smtp, &sns);
  smtp->Set("received", Mode::kThrow);
  auto outcome = RunOnce(notifier.get(), Options("w1"));
  ASSERT_TRUE(outcome.ok()) << outcome.status().message();
  EXPECT_EQ(*outcome, JobOutcome::kFailed);
  EXPECT_TRUE(Marker("failed.json"));
  EXPECT_NE(ReadFile(StateDir() / "failed.json").find("internal error (scripted bug)"), std::string::npos);
  EXPECT_EQ(Sent("smtp", "failed"), 1);
  EXPECT_EQ(LogEvents("job.crashed").size(), 1u);
  // Seen again: ended, not retried.
  outcome = RunOnce(notifier.get(), Options("w2"));
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(*outcome, JobOutcome::kAlreadyDone);
  EXPECT_EQ(Sent("smtp", "failed"), 1);
}

// A run whose workers keep dying (an input that crashes or exhausts them) is
// failed after max_attempts instead of being taken over forever.
TEST_F(JobRunnerNotifyTest, RunWhoseWorkersKeepDyingIsFailedNotRetriedForever) {
  ScriptedChannel *smtp, *sns;
  auto notifier = Channels(&smtp, &sns);
  smtp->Set("received", Mode::kDieBeforeSend);
  RunInChildThatDies(notifier.get());  // claim-1, expired
  for (int n : {2, 3}) fs::copy_file(StateDir() / "claim-1", StateDir() / ("claim-" + std::to_string(n)));
  smtp->Set("received", Mode::kOk);
  PipelineOptions o = Options("w2");
  o.max_attempts = 3;
  auto outcome = RunOnce(notifier.get(), o);
  ASSERT_TRUE(outcome.ok()) << outcome.status().message();
  EXPECT_EQ(*outcome, JobOutcome::kFailed);
  EXPECT_NE(ReadFile(StateDir() / "failed.json").find("started 3 times"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir_ / "output" / kJob / "merged.tsv"));
  EXPECT_EQ(Sent("smtp", "failed"), 1);
}

}  // namespace
}  // namespace cloudmerge

// The names that count as a near miss of an input's (issue 20): told at once,
// and the exact names never (they run), nor unrelated files.
TEST(NearMissInputName, SameStemOtherCaseOrExtensionOnly) {
  cloudmerge::JobNaming n;
  for (const char* wrong : {"y_list.tsv", "Y_list.txt", "y_list.txt.txt", "y-list.txt", "Y_LIST.TXT.gz"})
    EXPECT_EQ(cloudmerge::NearMissInputName(wrong, n).value_or("-"), "y_list.txt") << wrong;
  EXPECT_EQ(cloudmerge::NearMissInputName("X_list.csv", n).value_or("-"), "x_list.txt");
  for (const char* fine : {"y_list.txt", "y_list.txt.gz", "x_list.txt.zst", "job.json", "notes.txt", ".y_list.txt"})
    EXPECT_FALSE(cloudmerge::NearMissInputName(fine, n).has_value()) << fine;
  EXPECT_EQ(cloudmerge::JobForUpload("exp/y_list.tsv", n).value_or("-"), "exp");
  EXPECT_FALSE(cloudmerge::JobForUpload("y_list.tsv", n).has_value());  // the top level is no job
}
