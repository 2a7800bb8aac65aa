// The AWS Lambda Runtime API client loop (custom runtime, provided.al2023):
// GET  /2018-06-01/runtime/invocation/next     -> the event and its context
// POST /2018-06-01/runtime/invocation/{id}/response | /error
// POST /2018-06-01/runtime/init/error           when set-up fails
// Small, like aws-lambda-cpp's: the handler returns a result or a failure; the
// HTTP transport is passed in, so the loop is testable offline; clients are
// built once, before the loop (cold start), by the caller.
//
// Thread safety: RunLambdaLoop runs on the calling thread, one invocation at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "cloudmerge/aws/http.h"
#include "cloudmerge/pipeline/json_log.h"
#include "cloudmerge/base/status.h"

namespace cloudmerge {

struct LambdaContext {
  std::string request_id;
  int64_t deadline_ms = 0;  // epoch milliseconds (Lambda-Runtime-Deadline-Ms)
  std::string function_arn;
  std::string trace_id;
  // Milliseconds left before the deadline (negative when past).
  int64_t RemainingMs() const;
};

// Returns the JSON response body, or a Status whose message becomes the
// invocation error (errorType from the Status code, errorMessage).
using LambdaHandler = std::function<Result<std::string>(const std::string& event, const LambdaContext& context)>;

// `runtime_api` is AWS_LAMBDA_RUNTIME_API ("127.0.0.1:9001"). Returns after
// `max_invocations` (< 0: never, as in Lambda) or when `next` fails for good.
Status RunLambdaLoop(HttpTransport* transport, const std::string& runtime_api, const LambdaHandler& handler,
                     JsonLog* log, int max_invocations = -1);

// Reports a failed cold start (POST /runtime/init/error).
Status ReportLambdaInitError(HttpTransport* transport, const std::string& runtime_api, const Status& error);

}  // namespace cloudmerge
