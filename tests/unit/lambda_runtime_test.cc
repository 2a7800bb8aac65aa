// RunLambdaLoop and ReportLambdaInitError against a fake Runtime API: a
// scripted HttpTransport that serves queued events on GET /next and records
// every request, so paths, request ids, headers and bodies can be checked
// offline.
#include "cloudmerge/pipeline/lambda_runtime.h"

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace cloudmerge {
namespace {

constexpr const char* kApi = "127.0.0.1:9001";
constexpr const char* kBase = "http://127.0.0.1:9001/2018-06-01/runtime";

struct Recorded {
  std::string method;
  std::string url;
  HttpHeaders headers;
  std::string body;
  long timeout_ms;
  std::string Header(const std::string& name) const {
    for (const auto& [k, v] : headers)
      if (k == name) return v;
    return "";
  }
};

// Each GET /next takes the front of `next`; an empty queue is a refused
// connection. POSTs answer `post_status` (202 unless a test says otherwise).
class FakeRuntimeApi : public HttpTransport {
 public:
  struct Next {
    Status transport_error;  // when not ok, Send fails with it
    long status = 200;
    std::string request_id;
    std::string deadline_ms;
    std::string arn = "arn:aws:lambda:eu-west-1:123456789012:function:cloudmerge";
    std::string trace_id;
    std::string body;
  };

  void QueueEvent(std::string id, std::string body, std::string deadline = "", std::string trace = "") {
    Next n;
    n.request_id = std::move(id);
    n.body = std::move(body);
    n.deadline_ms = deadline.empty() ? std::to_string(NowMillis() + 60000) : std::move(deadline);
    n.trace_id = std::move(trace);
    next.push_back(std::move(n));
  }
  void QueueTransportError() {
    Next n;
    n.transport_error = Status::IOError("connection refused (fake)");
    next.push_back(std::move(n));
  }
  void QueueStatus(long status) {
    Next n;
    n.status = status;
    n.body = "{\"errorMessage\":\"fake\"}";
    next.push_back(std::move(n));
  }

  Result<HttpResponse> Send(const HttpRequest& request) override {
    requests.push_back({request.method, request.url, request.headers, std::string(request.body), request.timeout_ms});
    if (request.method == "GET" && request.url == std::string(kBase) + "/invocation/next") return ServeNext();
    HttpResponse resp;
    resp.status = post_statuses.empty() ? post_status : PopPostStatus();
    resp.body = resp.status == 202 ? "{\"status\":\"OK\"}" : "{\"errorMessage\":\"fake\"}";
    return resp;
  }

  std::vector<Recorded> Posts() const {
    std::vector<Recorded> out;
    for (const auto& r : requests)
      if (r.method == "POST") out.push_back(r);
    return out;
  }
  size_t NextCalls() const {
    size_t n = 0;
    for (const auto& r : requests) n += r.method == "GET";
    return n;
  }

  std::deque<Next> next;
  std::vector<Recorded> requests;
  long post_status = 202;
  std::deque<long> post_statuses;  // consumed first, one per POST

 private:
  long PopPostStatus() {
    long s = post_statuses.front();
    post_statuses.pop_front();
    return s;
  }

  Result<HttpResponse> ServeNext() {
    if (next.empty()) return Status::IOError("connection refused (fake, no more events)");
    Next n = std::move(next.front());
    next.pop_front();
    if (!n.transport_error.ok()) return n.transport_error;
    HttpResponse resp;
    resp.status = n.status;
    resp.body = n.body;
    if (n.status == 200) {
      // Names lower-cased, as HttpTransport promises.
      resp.headers = {{"content-type", "application/json"},
                      {"lambda-runtime-aws-request-id", n.request_id},
                      {"lambda-runtime-deadline-ms", n.deadline_ms},
                      {"lambda-runtime-invoked-function-arn", n.arn}};
      if (!n.trace_id.empty()) resp.headers.emplace_back("lambda-runtime-trace-id", n.trace_id);
    }
    return resp;
  }
};

// A JsonLog over a temporary file, read back as parsed lines.
class CapturedLog {
 public:
  CapturedLog() : file_(std::tmpfile()), log_(file_) {}
  ~CapturedLog() { std::fclose(file_); }
  JsonLog* log() { return &log_; }
  std::vector<nlohmann::json> Lines() {
    std::fflush(file_);
    std::rewind(file_);
    std::vector<nlohmann::json> out;
    char buf[8192];
    while (std::fgets(buf, sizeof buf, file_)) out.push_back(nlohmann::json::parse(buf));
    std::fseek(file_, 0, SEEK_END);
    return out;
  }

 private:
  FILE* file_;
  JsonLog log_;
};

Result<std::string> EchoOrFail(const std::string& event, const LambdaContext& ctx) {
  if (event.find("\"fail\"") != std::string::npos) return Status::InvalidInput("asked to fail: " + ctx.request_id);
  return "{\"echo\":" + event + "}";
}

TEST(LambdaRuntime, ServesQueuedEventsAndPostsToTheirRequestIds) {
  FakeRuntimeApi api;
  api.QueueEvent("req-1", "{\"n\":1}");
  api.QueueEvent("req-2", "{\"n\":\"fail\"}");
  api.QueueEvent("req-3", "{\"n\":3}");
  CapturedLog log;

  Status st = RunLambdaLoop(&api, kApi, EchoOrFail, log.log(), 3);
  ASSERT_TRUE(st.ok()) << st.message();

  EXPECT_EQ(api.NextCalls(), 3u);
  auto posts = api.Posts();
  ASSERT_EQ(posts.size(), 3u);
  EXPECT_EQ(posts[0].url, std::string(kBase) + "/invocation/req-1/response");
  EXPECT_EQ(posts[0].body, "{\"echo\":{\"n\":1}}");
  EXPECT_EQ(posts[0].Header("Lambda-Runtime-Function-Error-Type"), "");

  EXPECT_EQ(posts[1].url, std::string(kBase) + "/invocation/req-2/error");
  EXPECT_EQ(posts[1].Header("Lambda-Runtime-Function-Error-Type"), "Function.InvalidInput");
  EXPECT_EQ(posts[1].Header("Content-Type"), "application/json");
  auto err = nlohmann::json::parse(posts[1].body);
  EXPECT_EQ(err["errorType"], "Function.InvalidInput");
  EXPECT_EQ(err["errorMessage"], "asked to fail: req-2");

  EXPECT_EQ(posts[2].url, std::string(kBase) + "/invocation/req-3/response");
  EXPECT_EQ(posts[2].body, "{\"echo\":{\"n\":3}}");
}

TEST(LambdaRuntime, NextWaitsLongAndPostsDoNot) {
  FakeRuntimeApi api;
  api.QueueEvent("req-1", "{}");
  ASSERT_TRUE(RunLambdaLoop(&api, kApi, EchoOrFail, nullptr, 1).ok());
  ASSERT_EQ(api.requests.size(), 2u);
  // /next blocks until an event arrives: no client timeout worth the name.
  EXPECT_GE(api.requests[0].timeout_ms, 60L * 60 * 1000);
  EXPECT_GT(api.requests[1].timeout_ms, 0);
  EXPECT_LT(api.requests[1].timeout_ms, api.requests[0].timeout_ms);
}

TEST(LambdaRuntime, StopsAfterMaxInvocations) {
  FakeRuntimeApi api;
  api.QueueEvent("a", "{}");
  api.QueueEvent("b", "{}");
  api.QueueEvent("c", "{}");
  ASSERT_TRUE(RunLambdaLoop(&api, kApi, EchoOrFail, nullptr, 2).ok());
  EXPECT_EQ(api.NextCalls(), 2u);
  EXPECT_EQ(api.Posts().size(), 2u);
  EXPECT_EQ(api.next.size(), 1u);  // "c" was never fetched

  FakeRuntimeApi idle;
  idle.QueueEvent("a", "{}");
  ASSERT_TRUE(RunLambdaLoop(&idle, kApi, EchoOrFail, nullptr, 0).ok());
  EXPECT_TRUE(idle.requests.empty());
}

TEST(LambdaRuntime, UnlimitedLoopEndsWhenNextFailsForGood) {
  FakeRuntimeApi api;
  api.QueueEvent("a", "{}");
  api.QueueEvent("b", "{}");
  Status st = RunLambdaLoop(&api, kApi, EchoOrFail, nullptr, -1);
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Status::Code::kIOError);
  EXPECT_EQ(api.Posts().size(), 2u);
  // Two events, then the retries on the refused connection.
  EXPECT_EQ(api.NextCalls(), 2u + 5u);
}

TEST(LambdaRuntime, ContextCarriesDeadlineArnAndTrace) {
  FakeRuntimeApi api;
  int64_t deadline = NowMillis() + 5000;
  api.QueueEvent("req-1", "{}", std::to_string(deadline), "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1");
  api.QueueEvent("req-2", "{}", "not-a-number");
  std::vector<LambdaContext> seen;
  std::vector<std::string> trace_env;
  auto handler = [&](const std::string&, const LambdaContext& ctx) -> Result<std::string> {
    seen.push_back(ctx);
    const char* t = std::getenv("_X_AMZN_TRACE_ID");
    trace_env.push_back(t ? t : "<unset>");
    return std::string("{}");
  };
  ASSERT_TRUE(RunLambdaLoop(&api, kApi, handler, nullptr, 2).ok());
  ASSERT_EQ(seen.size(), 2u);

  EXPECT_EQ(seen[0].request_id, "req-1");
  EXPECT_EQ(seen[0].deadline_ms, deadline);
  EXPECT_EQ(seen[0].function_arn, "arn:aws:lambda:eu-west-1:123456789012:function:cloudmerge");
  EXPECT_EQ(seen[0].trace_id, "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1");
  int64_t remaining = seen[0].RemainingMs();
  EXPECT_GT(remaining, 0);
  EXPECT_LE(remaining, 5000);
  EXPECT_EQ(trace_env[0], seen[0].trace_id);

  // A malformed deadline reads as none (0: long past), never as garbage.
  EXPECT_EQ(seen[1].deadline_ms, 0);
  EXPECT_LT(seen[1].RemainingMs(), 0);
  // No trace header: the previous invocation's trace must not leak into this one.
  EXPECT_EQ(trace_env[1], "<unset>");
}

TEST(LambdaRuntime, RemainingMsCountsDownToTheDeadline) {
  LambdaContext ctx;
  ctx.deadline_ms = NowMillis() + 900000;
  EXPECT_GT(ctx.RemainingMs(), 899000);
  EXPECT_LE(ctx.RemainingMs(), 900000);
  ctx.deadline_ms = NowMillis() - 1000;
  EXPECT_LE(ctx.RemainingMs(), -1000);
}

TEST(LambdaRuntime, RetriesTransientNextFailures) {
  FakeRuntimeApi api;
  api.QueueTransportError();
  api.QueueStatus(503);
  api.QueueEvent("req-1", "{}");
  CapturedLog log;
  Status st = RunLambdaLoop(&api, kApi, EchoOrFail, log.log(), 1);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(api.NextCalls(), 3u);
  ASSERT_EQ(api.Posts().size(), 1u);
  EXPECT_EQ(api.Posts()[0].url, std::string(kBase) + "/invocation/req-1/response");
  size_t retries = 0;
  for (const auto& line : log.Lines()) retries += line["event"] == "lambda.next.retry";
  EXPECT_EQ(retries, 2u);
}

TEST(LambdaRuntime, GivesUpAfterRepeatedNextFailures) {
  FakeRuntimeApi api;
  for (int i = 0; i < 10; ++i) api.QueueTransportError();
  Status st = RunLambdaLoop(&api, kApi, EchoOrFail, nullptr, 1);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("connection refused"), std::string::npos) << st.message();
  EXPECT_EQ(api.NextCalls(), 5u);
  EXPECT_TRUE(api.Posts().empty());
}

TEST(LambdaRuntime, ContainerErrorOnNextIsNotRetried) {
  // 500 from /next: "container error, non-recoverable state; exit promptly".
  FakeRuntimeApi api;
  api.QueueStatus(500);
  api.QueueEvent("req-1", "{}");
  Status st = RunLambdaLoop(&api, kApi, EchoOrFail, nullptr, 1);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("HTTP 500"), std::string::npos) << st.message();
  EXPECT_EQ(api.NextCalls(), 1u);
}

TEST(LambdaRuntime, HandlerExceptionBecomesAnInvocationError) {
  FakeRuntimeApi api;
  api.QueueEvent("req-1", "{}");
  api.QueueEvent("req-2", "{}");
  int calls = 0;
  auto handler = [&](const std::string&, const LambdaContext&) -> Result<std::string> {
    if (++calls == 1) return nlohmann::json::parse("{not json").dump();  // throws parse_error
    return std::string("{}");
  };
  ASSERT_TRUE(RunLambdaLoop(&api, kApi, handler, nullptr, 2).ok());
  auto posts = api.Posts();
  ASSERT_EQ(posts.size(), 2u);
  EXPECT_EQ(posts[0].url, std::string(kBase) + "/invocation/req-1/error");
  EXPECT_EQ(posts[0].Header("Lambda-Runtime-Function-Error-Type"), "Function.Internal");
  EXPECT_NE(nlohmann::json::parse(posts[0].body)["errorMessage"].get<std::string>().find("parse"), std::string::npos);
  // The runtime survived and served the next one.
  EXPECT_EQ(posts[1].url, std::string(kBase) + "/invocation/req-2/response");
}

TEST(LambdaRuntime, OversizedResponseIsReportedAsAnError) {
  FakeRuntimeApi api;
  api.QueueEvent("req-1", "{}");
  api.post_statuses = {413, 202};
  CapturedLog log;
  ASSERT_TRUE(RunLambdaLoop(&api, kApi, EchoOrFail, log.log(), 1).ok());
  auto posts = api.Posts();
  ASSERT_EQ(posts.size(), 2u);
  EXPECT_EQ(posts[0].url, std::string(kBase) + "/invocation/req-1/response");
  EXPECT_EQ(posts[1].url, std::string(kBase) + "/invocation/req-1/error");
  EXPECT_EQ(posts[1].Header("Lambda-Runtime-Function-Error-Type"), "Function.ResponseSizeTooLarge");
}

TEST(LambdaRuntime, RejectedPostCostsOnlyThatInvocation) {
  FakeRuntimeApi api;
  api.QueueEvent("req-1", "{}");
  api.QueueEvent("req-2", "{}");
  api.post_statuses = {400, 202};
  CapturedLog log;
  ASSERT_TRUE(RunLambdaLoop(&api, kApi, EchoOrFail, log.log(), 2).ok());
  EXPECT_EQ(api.Posts().size(), 2u);
  auto lines = log.Lines();
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[1]["level"], "error");
  EXPECT_NE(lines[1]["post_error"].get<std::string>().find("HTTP 400"), std::string::npos);
}

TEST(LambdaRuntime, ContainerErrorOnPostEndsTheLoop) {
  FakeRuntimeApi api;
  api.QueueEvent("req-1", "{}");
  api.QueueEvent("req-2", "{}");
  api.post_status = 500;
  Status st = RunLambdaLoop(&api, kApi, EchoOrFail, nullptr, 2);
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(api.NextCalls(), 1u);
}

TEST(LambdaRuntime, LogsStartAndEndOfEachInvocationAsJsonLines) {
  FakeRuntimeApi api;
  api.QueueEvent("req-1", "{\"a\":1}");
  api.QueueEvent("req-2", "\"fail\"");
  CapturedLog log;
  ASSERT_TRUE(RunLambdaLoop(&api, kApi, EchoOrFail, log.log(), 2).ok());
  auto lines = log.Lines();
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0]["event"], "lambda.invocation.start");
  EXPECT_EQ(lines[0]["request_id"], "req-1");
  EXPECT_EQ(lines[0]["event_bytes"], 7);
  EXPECT_EQ(lines[0]["function_arn"], "arn:aws:lambda:eu-west-1:123456789012:function:cloudmerge");
  EXPECT_EQ(lines[1]["event"], "lambda.invocation.end");
  EXPECT_EQ(lines[1]["level"], "info");
  EXPECT_EQ(lines[1]["request_id"], "req-1");
  EXPECT_TRUE(lines[1].contains("duration_ms"));
  EXPECT_EQ(lines[3]["event"], "lambda.invocation.end");
  EXPECT_EQ(lines[3]["level"], "error");
  EXPECT_EQ(lines[3]["request_id"], "req-2");
  EXPECT_EQ(lines[3]["error_type"], "Function.InvalidInput");
  EXPECT_EQ(lines[3]["message"], "asked to fail: req-2");
}

TEST(LambdaRuntime, EventWithoutRequestIdIsAProtocolError) {
  FakeRuntimeApi api;
  api.QueueEvent("", "{}");
  Status st = RunLambdaLoop(&api, kApi, EchoOrFail, nullptr, 1);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("Lambda-Runtime-Aws-Request-Id"), std::string::npos);
  EXPECT_TRUE(api.Posts().empty());
}

TEST(LambdaRuntime, RequestIdIsEncodedInThePath) {
  FakeRuntimeApi api;
  api.QueueEvent("a/b c", "{}");
  ASSERT_TRUE(RunLambdaLoop(&api, kApi, EchoOrFail, nullptr, 1).ok());
  ASSERT_EQ(api.Posts().size(), 1u);
  EXPECT_EQ(api.Posts()[0].url, std::string(kBase) + "/invocation/a%2Fb%20c/response");
}

TEST(LambdaRuntime, NoRuntimeApiIsAnArgumentError) {
  FakeRuntimeApi api;
  Status st = RunLambdaLoop(&api, "", EchoOrFail, nullptr, 1);
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(st.message().find("AWS_LAMBDA_RUNTIME_API"), std::string::npos);
  EXPECT_TRUE(api.requests.empty());
}

TEST(LambdaRuntime, InitErrorIsPostedToInitError) {
  FakeRuntimeApi api;
  Status st = ReportLambdaInitError(&api, kApi, Status::InvalidArgument("CLOUDMERGE_JOB_BUCKET is not set"));
  ASSERT_TRUE(st.ok()) << st.message();
  ASSERT_EQ(api.requests.size(), 1u);
  const Recorded& r = api.requests[0];
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.url, std::string(kBase) + "/init/error");
  EXPECT_EQ(r.Header("Lambda-Runtime-Function-Error-Type"), "Runtime.InvalidArgument");
  auto doc = nlohmann::json::parse(r.body);
  EXPECT_EQ(doc["errorType"], "Runtime.InvalidArgument");
  EXPECT_EQ(doc["errorMessage"], "CLOUDMERGE_JOB_BUCKET is not set");

  FakeRuntimeApi refusing;
  refusing.post_status = 403;
  EXPECT_FALSE(ReportLambdaInitError(&refusing, kApi, Status::Internal("x")).ok());
}

}  // namespace
}  // namespace cloudmerge
