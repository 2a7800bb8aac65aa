// One Lambda invocation of the pipeline: the event's S3 notifications (sent
// directly, or wrapped in SNS, or a batch of SQS messages) run their jobs
// against the input bucket each names and the configured output.
//
// SQS batches: each record is handled on its own; the records that must come
// back (a failure, a job another invocation holds) are answered as
// batchItemFailures, so only those messages are delivered again (the event
// source mapping has ReportBatchItemFailures). Other events: a failure is the
// invocation's error.
//
// Per-bucket stores: the input store of a bucket is made on its first event
// and kept for the life of the process (the Lambda's warm invocations).
//
// The deadline watchdog: a run that would outlive the function's timeout is
// stopped shortly before it (deadline_margin_ms), with a clear error, instead
// of being killed without a word (see DeadlineWatchdog).
//
// Threading: Handle is called by one thread at a time (the Runtime API loop);
// the watchdog calls its callback on its own thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "cloudmerge/io/env.h"
#include "cloudmerge/pipeline/job_runner.h"
#include "cloudmerge/pipeline/json_log.h"
#include "cloudmerge/pipeline/lambda_runtime.h"
#include "cloudmerge/pipeline/notify/notifier.h"
#include "cloudmerge/pipeline/store/job_store.h"

namespace cloudmerge {

// Calls `expired` (on its own thread) `margin_ms` before `deadline_ms`
// (NowMillis() time) unless destroyed first; deadline_ms <= 0: never.
class DeadlineWatchdog {
 public:
  using Expired = std::function<void(const std::string& message)>;
  DeadlineWatchdog(int64_t deadline_ms, int64_t margin_ms, Expired expired);
  ~DeadlineWatchdog();
  DeadlineWatchdog(const DeadlineWatchdog&) = delete;
  DeadlineWatchdog& operator=(const DeadlineWatchdog&) = delete;

  // What the invocation's error says when the watchdog fires with `remaining_ms` left.
  static std::string Message(int64_t remaining_ms);

 private:
  void Watch();
  int64_t deadline_ms_, margin_ms_;
  Expired expired_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

struct LambdaBatchOptions {
  std::string input_prefix;         // only keys under it are jobs ("" : all)
  int64_t deadline_margin_ms = 10000;
  // The input store of a bucket (called once per bucket).
  std::function<std::unique_ptr<JobStore>(const std::string& bucket)> make_input;
  // Called by the watchdog (with the invocation and the message) when a run
  // would outlive the function: report the error and end the process
  // (tools/lambda_command.cc). Unset: no watchdog.
  std::function<void(const LambdaContext& context, const std::string& message)> on_deadline;
};

class LambdaBatchHandler {
 public:
  LambdaBatchHandler(JobStore* output, Env* env, Notifier* notifier, JsonLog* log, PipelineOptions runner_options,
                     LambdaBatchOptions options);

  // One invocation: the response body ({"status":"ok"}, or {"batchItemFailures":[...]}
  // for an SQS batch), or the invocation's error.
  Result<std::string> Handle(const std::string& event, const LambdaContext& context);

 private:
  // One S3 notification (any wrapping): its jobs run; non-ok when it must come back.
  Status HandleNotification(const std::string& body);
  JobStore* InputFor(const std::string& bucket);

  JobStore* output_;
  Env* env_;
  Notifier* notifier_;
  JsonLog* log_;
  PipelineOptions runner_options_;
  LambdaBatchOptions options_;
  std::map<std::string, std::unique_ptr<JobStore>> inputs_;  // by bucket
};

}  // namespace cloudmerge
