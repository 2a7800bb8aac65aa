#include "cloudmerge/pipeline/lambda_batch.h"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cloudmerge/base/json_fields.h"
#include "cloudmerge/pipeline/events.h"
#include "cloudmerge/pipeline/serve.h"

namespace cloudmerge {

using nlohmann::json;

DeadlineWatchdog::DeadlineWatchdog(int64_t deadline_ms, int64_t margin_ms, Expired expired)
    : deadline_ms_(deadline_ms), margin_ms_(margin_ms), expired_(std::move(expired)) {
  if (deadline_ms_ > 0 && expired_) thread_ = std::thread([this] { Watch(); });
}

DeadlineWatchdog::~DeadlineWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::string DeadlineWatchdog::Message(int64_t remaining_ms) {
  return fmt::format(
      "the job did not finish within the function's time limit ({} ms were left when it was stopped). "
      "Nothing was written to the output. Give the function more memory (more CPU), split the input, or run "
      "this job on the cluster engine (job.json: \"engine\": \"emr-serverless\").",
      remaining_ms);
}

void DeadlineWatchdog::Watch() {
  std::unique_lock<std::mutex> lock(mu_);
  auto wait = std::chrono::milliseconds(std::max<int64_t>(deadline_ms_ - NowMillis() - margin_ms_, 0));
  if (cv_.wait_for(lock, wait, [&] { return done_; })) return;
  expired_(Message(deadline_ms_ - NowMillis()));
}

LambdaBatchHandler::LambdaBatchHandler(JobStore* output, Env* env, Notifier* notifier, JsonLog* log,
                                       PipelineOptions runner_options, LambdaBatchOptions options)
    : output_(output),
      env_(env),
      notifier_(notifier),
      log_(log),
      runner_options_(std::move(runner_options)),
      options_(std::move(options)) {}

JobStore* LambdaBatchHandler::InputFor(const std::string& bucket) {
  auto& store = inputs_[bucket];
  if (!store) store = options_.make_input(bucket);
  return store.get();
}

Status LambdaBatchHandler::HandleNotification(const std::string& body) {
  auto parsed = ParseS3Events(body);
  if (!parsed.ok()) return parsed.status();
  std::map<std::string, bool> buckets;
  for (const auto& e : parsed->created) buckets[e.bucket] = true;
  for (const auto& [bucket, unused] : buckets) {
    JobStore* in = InputFor(bucket);
    CM_RETURN_IF_ERROR(JobRunner::CheckNoSelfTrigger(*in, *output_));
    JobRunner runner(in, output_, env_, notifier_, log_, runner_options_);
    auto outcomes = HandleS3Event(body, &runner, bucket, options_.input_prefix, log_);
    if (!outcomes.ok()) return outcomes.status();
    for (const auto& [job, outcome] : *outcomes)
      if (outcome == JobOutcome::kBusy)
        return Status::IOError(fmt::format("job {} is being processed by another invocation; retry later", job));
  }
  return Status::OK();
}

Result<std::string> LambdaBatchHandler::Handle(const std::string& event, const LambdaContext& context) {
  DeadlineWatchdog watchdog(context.deadline_ms, options_.deadline_margin_ms,
                            options_.on_deadline ? [&](const std::string& message) { options_.on_deadline(context, message); }
                                                 : DeadlineWatchdog::Expired());
  // "auto" budgets against the time left, and a wait for a cluster run stops
  // before the watchdog would end the process.
  runner_options_.deadline_ms = context.deadline_ms > 0 ? context.deadline_ms - options_.deadline_margin_ms : 0;
  json doc = json::parse(event, nullptr, false);
  const json& records = JsonMember(doc, "Records");
  bool sqs_batch = records.is_array() && !records.empty() && JsonString(records[0], "eventSource") == "aws:sqs";
  if (!sqs_batch) {
    CM_RETURN_IF_ERROR(HandleNotification(event));
    return std::string(R"({"status":"ok"})");
  }
  json failures = json::array();
  for (const auto& record : records) {
    Status st = HandleNotification(JsonString(record, "body"));
    if (!st.ok()) {
      log_->Error("lambda.record_failed", "", st.message(), {{"message_id", JsonString(record, "messageId")}});
      failures.push_back({{"itemIdentifier", JsonString(record, "messageId")}});
    }
  }
  return json{{"batchItemFailures", failures}}.dump();
}

}  // namespace cloudmerge
