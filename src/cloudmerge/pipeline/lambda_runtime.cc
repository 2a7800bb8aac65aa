// The Lambda Runtime API client loop: fetch the next invocation, run the
// handler, post its response or error; and the init-error report.
//
// Threading: RunLambdaLoop runs on the calling thread, one invocation at a
// time, as Lambda sends them. It sets the process environment variable
// _X_AMZN_TRACE_ID before each handler call (the X-Ray convention every AWS
// SDK reads), so nothing else should be changing the environment meanwhile.
//
// The transport must not give up on a quiet connection: GET /next blocks,
// sending nothing, until an event arrives (minutes, or forever in RIE). Build
// it with HttpTransportOptions::low_speed_timeout_s = 0; the loop sets a long
// whole-request timeout on /next itself.
#include "cloudmerge/pipeline/lambda_runtime.h"

#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cloudmerge/aws/retry_policy.h"

namespace cloudmerge {
namespace {

constexpr const char* kApiVersion = "2018-06-01";
// /next waits for an event as long as it takes; a day is "forever" but still
// bounded, so a wedged connection is eventually noticed.
constexpr long kNextTimeoutMs = 24L * 60 * 60 * 1000;
// Posting a result to the local Runtime API is quick; 6 MB at most.
constexpr long kPostTimeoutMs = 60000;
// Transient /next failures (the Runtime API not yet listening, a reset
// connection): 5 tries within 0.75 s (the AWS calls' retry policy, with
// full jitter), then the runtime exits and Lambda replaces the execution
// environment. The Runtime API is local and unsigned: only the policy is shared.
constexpr RetryPolicy kNextRetry{5, 50, 400};

std::string CodeName(Status::Code code) {
  switch (code) {
    case Status::Code::kOk: return "OK";
    case Status::Code::kInvalidInput: return "InvalidInput";
    case Status::Code::kIOError: return "IOError";
    case Status::Code::kInvalidArgument: return "InvalidArgument";
    case Status::Code::kNoSpace: return "NoSpace";
    case Status::Code::kInternal: return "Internal";
    case Status::Code::kNotFound: return "NotFound";
    case Status::Code::kCorruption: return "Corruption";
  }
  return "Unknown";
}

// Lambda takes any errorType but recommends "Category.Reason"
// (Runtime.NoSuchHandler, ...): "Function.*" for a failed invocation,
// "Runtime.*" for a failed cold start.
std::string ErrorType(const char* category, const Status& status) {
  return fmt::format("{}.{}", category, CodeName(status.code()));
}

std::string ErrorDocument(const std::string& error_type, const std::string& message) {
  nlohmann::json doc = {{"errorMessage", message}, {"errorType", error_type}};
  // A message may quote bytes from a damaged input: replace, never throw.
  return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Request ids are UUIDs, but one goes into a URL path: encode anything else.
std::string PathSegment(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

std::string BaseUrl(const std::string& runtime_api) {
  return fmt::format("http://{}/{}/runtime", runtime_api, kApiVersion);
}

// 0 when absent or malformed (RemainingMs then reads as long past).
int64_t ParseDeadline(const std::string& text) {
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return 0;
  return value;
}

struct Invocation {
  std::string event;
  LambdaContext context;
};

// One GET /next. `retryable` tells the caller whether another try may help.
Result<Invocation> FetchOnce(HttpTransport* transport, const std::string& runtime_api, bool* retryable) {
  HttpRequest req;
  req.method = "GET";
  req.url = BaseUrl(runtime_api) + "/invocation/next";
  req.timeout_ms = kNextTimeoutMs;
  Result<HttpResponse> resp = transport->Send(req);
  if (!resp.ok()) {
    *retryable = true;
    return resp.status();
  }
  if (resp->status != 200) {
    // 500 means "container error, non-recoverable: exit promptly"; 4xx will
    // not change on retry. Gateway-style 5xx may.
    *retryable = resp->status == 429 || resp->status == 502 || resp->status == 503 || resp->status == 504;
    return Status::IOError(fmt::format("Lambda Runtime API: GET {} answered HTTP {}: {}", req.url, resp->status,
                                       resp->body.substr(0, 512)));
  }
  Invocation inv;
  inv.context.request_id = resp->Header("lambda-runtime-aws-request-id");
  if (inv.context.request_id.empty()) {
    *retryable = false;
    return Status::IOError(fmt::format(
        "Lambda Runtime API: GET {} answered an event without Lambda-Runtime-Aws-Request-Id; "
        "is AWS_LAMBDA_RUNTIME_API ({}) the Runtime API?",
        req.url, runtime_api));
  }
  inv.context.deadline_ms = ParseDeadline(resp->Header("lambda-runtime-deadline-ms"));
  inv.context.function_arn = resp->Header("lambda-runtime-invoked-function-arn");
  inv.context.trace_id = resp->Header("lambda-runtime-trace-id");
  inv.event = std::move(resp->body);
  return inv;
}

Result<Invocation> FetchNext(HttpTransport* transport, const std::string& runtime_api, JsonLog* log) {
  std::optional<Result<Invocation>> inv;
  kNextRetry.Run(
      [&](int) {
        bool retryable = false;
        inv.emplace(FetchOnce(transport, runtime_api, &retryable));
        return inv->ok() || !retryable ? RetryVerdict::kStop : RetryVerdict::kAgain;
      },
      [&](int attempt, int delay_ms) {
        if (log)
          log->Warn("lambda.next.retry", "", inv->status().message(), {{"attempt", attempt}, {"backoff_ms", delay_ms}});
      });
  return std::move(*inv);
}

// POSTs `body` to `url`; any answer but 202 Accepted is an error. `http_status`
// gets the answer's code (0 when there was none).
Status Post(HttpTransport* transport, const std::string& url, const std::string& body, HttpHeaders headers,
            long* http_status = nullptr) {
  HttpRequest req;
  req.method = "POST";
  req.url = url;
  req.headers = std::move(headers);
  req.body = body;
  req.timeout_ms = kPostTimeoutMs;
  if (http_status) *http_status = 0;
  Result<HttpResponse> resp = transport->Send(req);
  if (!resp.ok()) return resp.status();
  if (http_status) *http_status = resp->status;
  if (resp->status == 202) return Status::OK();
  std::string what = fmt::format("Lambda Runtime API: POST {} answered HTTP {}: {}", url, resp->status,
                                 resp->body.substr(0, 512));
  return Status::IOError(what);
}

Status PostError(HttpTransport* transport, const std::string& url, const std::string& error_type,
                 const std::string& message, long* http_status = nullptr) {
  return Post(transport, url, ErrorDocument(error_type, message),
              {{"Content-Type", "application/json"}, {"Lambda-Runtime-Function-Error-Type", error_type}},
              http_status);
}

void SetTraceEnv(const std::string& trace_id) {
  if (trace_id.empty()) {
    unsetenv("_X_AMZN_TRACE_ID");
  } else {
    setenv("_X_AMZN_TRACE_ID", trace_id.c_str(), 1);
  }
}

// The handler's verdict; an escaped exception becomes an Internal failure
// rather than a dead runtime and a lost invocation.
Result<std::string> CallHandler(const LambdaHandler& handler, const Invocation& inv) {
  try {
    return handler(inv.event, inv.context);
  } catch (const std::exception& e) {
    return Status::Internal(fmt::format("the handler threw an exception: {}", e.what()));
  } catch (...) {
    return Status::Internal("the handler threw a non-standard exception");
  }
}

struct Outcome {
  Status posted;           // whether the Runtime API took our answer
  long http_status = 0;    // its answer to the last POST (0: none)
  std::string error_type;  // empty when the handler succeeded
  size_t response_bytes = 0;
};

// Posts the handler's result (or its failure) for one invocation.
Outcome Answer(HttpTransport* transport, const std::string& runtime_api, const std::string& request_id,
               const Result<std::string>& result) {
  std::string base = fmt::format("{}/invocation/{}", BaseUrl(runtime_api), PathSegment(request_id));
  Outcome out;
  if (result.ok()) {
    out.response_bytes = result.value().size();
    out.posted = Post(transport, base + "/response", result.value(), {}, &out.http_status);
    if (out.http_status != 413) return out;
    // Over Lambda's payload limit (6 MB): turn it into an invocation error
    // the caller sees, rather than a silent timeout.
    out.error_type = "Function.ResponseSizeTooLarge";
    out.posted = PostError(transport, base + "/error", out.error_type,
                           fmt::format("the response ({} bytes) is over Lambda's payload limit", out.response_bytes),
                           &out.http_status);
    return out;
  }
  out.error_type = ErrorType("Function", result.status());
  out.posted = PostError(transport, base + "/error", out.error_type, result.status().message(), &out.http_status);
  return out;
}

void LogStart(JsonLog* log, const Invocation& inv) {
  if (!log) return;
  log->Info("lambda.invocation.start", "", "invocation started",
            {{"request_id", inv.context.request_id},
             {"function_arn", inv.context.function_arn},
             {"remaining_ms", inv.context.RemainingMs()},
             {"event_bytes", inv.event.size()}});
}

void LogEnd(JsonLog* log, const Invocation& inv, const Result<std::string>& result, const Outcome& out,
            long long elapsed_ms) {
  if (!log) return;
  nlohmann::json fields = {{"request_id", inv.context.request_id}, {"duration_ms", elapsed_ms}};
  if (out.error_type.empty()) {
    fields["response_bytes"] = out.response_bytes;
  } else {
    fields["error_type"] = out.error_type;
  }
  if (!out.posted.ok()) fields["post_error"] = out.posted.message();
  bool failed = !out.error_type.empty() || !out.posted.ok();
  std::string message = result.ok() ? "invocation succeeded" : result.status().message();
  if (failed) {
    log->Error("lambda.invocation.end", "", message, std::move(fields));
  } else {
    log->Info("lambda.invocation.end", "", message, std::move(fields));
  }
}

// A posting failure ends the loop only when the Runtime API says the
// environment is broken (HTTP 500 "container error": exit promptly). Others
// (a rejected id, a dropped connection) cost only that invocation.
bool Fatal(const Outcome& out) { return !out.posted.ok() && out.http_status == 500; }

}  // namespace

int64_t LambdaContext::RemainingMs() const { return deadline_ms - static_cast<int64_t>(NowMillis()); }

Status RunLambdaLoop(HttpTransport* transport, const std::string& runtime_api, const LambdaHandler& handler,
                     JsonLog* log, int max_invocations) {
  if (transport == nullptr || runtime_api.empty()) {
    return Status::InvalidArgument(
        "Lambda runtime: AWS_LAMBDA_RUNTIME_API is not set; this mode runs only inside AWS Lambda "
        "or the Runtime Interface Emulator.");
  }
  for (int done = 0; max_invocations < 0 || done < max_invocations; ++done) {
    Result<Invocation> inv = FetchNext(transport, runtime_api, log);
    if (!inv.ok()) return inv.status();
    SetTraceEnv(inv->context.trace_id);
    LogStart(log, *inv);
    long long start = NowMillis();
    Result<std::string> result = CallHandler(handler, *inv);
    Outcome out = Answer(transport, runtime_api, inv->context.request_id, result);
    LogEnd(log, *inv, result, out, NowMillis() - start);
    if (Fatal(out)) return out.posted;
  }
  return Status::OK();
}

Status ReportLambdaInitError(HttpTransport* transport, const std::string& runtime_api, const Status& error) {
  if (transport == nullptr || runtime_api.empty()) {
    return Status::InvalidArgument("Lambda runtime: AWS_LAMBDA_RUNTIME_API is not set; cannot report the init error.");
  }
  return PostError(transport, BaseUrl(runtime_api) + "/init/error", ErrorType("Runtime", error), error.message());
}

}  // namespace cloudmerge
