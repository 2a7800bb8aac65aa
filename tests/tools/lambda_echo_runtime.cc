// A minimal Lambda custom runtime for tests/e2e/test_lambda_rie.py: runs
// RunLambdaLoop over the curl transport against AWS_LAMBDA_RUNTIME_API and
// answers each event with its size and record counts, so the Runtime API
// client can be checked against AWS's Runtime Interface Emulator without the
// job runner. An event containing "fail" (a JSON string) fails with
// InvalidInput; CLOUDMERGE_ECHO_INIT_ERROR=<message> reports a failed cold
// start instead of serving.
//
// Threading: single-threaded, as Lambda runs a runtime (one event at a time).
#include <cstdio>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "cloudmerge/aws/http.h"
#include "cloudmerge/pipeline/json_log.h"
#include "cloudmerge/pipeline/lambda_runtime.h"

namespace {

using cloudmerge::Result;
using cloudmerge::Status;

// S3 event records, counted directly or inside SQS messages (an S3
// notification delivered through a queue arrives as a JSON string body).
size_t CountS3Records(const nlohmann::json& event) {
  size_t n = 0;
  if (!event.is_object() || !event.contains("Records") || !event["Records"].is_array()) return 0;
  for (const auto& record : event["Records"]) {
    if (!record.is_object()) continue;
    if (record.contains("s3")) {
      ++n;
    } else if (record.contains("body") && record["body"].is_string()) {
      n += CountS3Records(nlohmann::json::parse(record["body"].get<std::string>(), nullptr, false));
    }
  }
  return n;
}

Result<std::string> Echo(const std::string& event, const cloudmerge::LambdaContext& context) {
  if (event.find("\"fail\"") != std::string::npos) {
    return Status::InvalidInput("the event asked to fail (it contains \"fail\")");
  }
  // No exceptions: a malformed event is "discarded", and counts nothing.
  nlohmann::json doc = nlohmann::json::parse(event, nullptr, false);
  size_t records = 0;
  if (doc.is_object() && doc.contains("Records") && doc["Records"].is_array()) records = doc["Records"].size();
  nlohmann::json out = {{"event_bytes", event.size()},
                        {"records", records},
                        {"s3_records", CountS3Records(doc)},
                        {"request_id", context.request_id},
                        {"function_arn", context.function_arn},
                        {"remaining_ms", context.RemainingMs()},
                        {"trace_id_env", std::getenv("_X_AMZN_TRACE_ID") ? std::getenv("_X_AMZN_TRACE_ID") : ""}};
  return out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

int main() {
  const char* api = std::getenv("AWS_LAMBDA_RUNTIME_API");
  std::string runtime_api = api ? api : "";
  cloudmerge::HttpTransportOptions options;
  options.low_speed_timeout_s = 0;  // GET /next is silent until an event comes
  auto transport = cloudmerge::NewCurlTransport(options);
  cloudmerge::JsonLog log(stdout);

  if (const char* init_error = std::getenv("CLOUDMERGE_ECHO_INIT_ERROR")) {
    Status st = Status::InvalidArgument(init_error);
    Status reported = cloudmerge::ReportLambdaInitError(transport.get(), runtime_api, st);
    log.Error("lambda.init.error", "", st.message(), {{"reported", reported.ok()}});
    return st.ExitCode();
  }
  Status st = cloudmerge::RunLambdaLoop(transport.get(), runtime_api, Echo, &log);
  if (!st.ok()) {
    log.Error("lambda.runtime.exit", "", st.message());
    return st.ExitCode();
  }
  return 0;
}
