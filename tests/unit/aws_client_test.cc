// AwsClient (aws/aws_client.h): signing for the service, one retry policy,
// error answers parsed whatever the protocol.
#include "cloudmerge/aws/aws_client.h"

#include <deque>
#include <mutex>

#include <gtest/gtest.h>

namespace cloudmerge {
namespace {

class ScriptedTransport : public HttpTransport {
 public:
  Result<HttpResponse> Send(const HttpRequest& r) override {
    std::lock_guard<std::mutex> lock(mu);
    HttpRequest copy = r;
    bodies.push_back(std::string(r.body));
    copy.body = {};
    seen.push_back(copy);
    if (script.empty()) return Status::IOError("connection refused");
    auto next = script.front();
    script.pop_front();
    return next;
  }
  std::mutex mu;
  std::deque<Result<HttpResponse>> script;
  std::vector<HttpRequest> seen;
  std::vector<std::string> bodies;
};

HttpResponse Answer(long status, std::string body, HttpHeaders headers = {}) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.headers = std::move(headers);
  return r;
}

AwsClient Client(std::shared_ptr<ScriptedTransport> t) {
  AwsCredentials c;
  c.access_key_id = "AKIDEXAMPLE";
  c.secret_access_key = "secret";
  c.source = "test";
  return AwsClient(ParseEndpointUrl("http://127.0.0.1:5000/base/"), "eu-west-1", "logs", NewStaticCredentials(c), t,
                   RetryPolicy{3, 1, 2});
}

TEST(AwsClient, SignsForTheServiceAndRegionAtTheEndpoint) {
  auto t = std::make_shared<ScriptedTransport>();
  t->script = {Answer(200, "{}")};
  auto a = Client(t).SendJson("Logs_20140328.PutLogEvents", "application/x-amz-json-1.1", "{\"a\":1}");
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_TRUE(a->ok());
  ASSERT_EQ(t->seen.size(), 1u);
  const HttpRequest& r = t->seen[0];
  EXPECT_EQ(r.url, "http://127.0.0.1:5000/base/");
  bool target = false, auth = false;
  for (auto& [k, v] : r.headers) {
    if (k == "x-amz-target") target = v == "Logs_20140328.PutLogEvents";
    if (k == "authorization") auth = v.find("/eu-west-1/logs/aws4_request") != std::string::npos;
  }
  EXPECT_TRUE(target && auth);
  EXPECT_EQ(t->bodies[0], "{\"a\":1}");
}

TEST(AwsClient, RetriesThrottlingAnd5xxThenSucceeds) {
  auto t = std::make_shared<ScriptedTransport>();
  t->script = {Answer(400, R"({"__type":"ThrottlingException","message":"slow down"})"),
               Status::IOError("reset"), Answer(200, "{}")};
  auto a = Client(t).SendJson("X.Y", "application/x-amz-json-1.1", "{}");
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->ok());
  EXPECT_EQ(a->attempts, 3);
}

TEST(AwsClient, PermanentErrorIsNotRetriedAndIsParsed) {
  auto t = std::make_shared<ScriptedTransport>();
  t->script = {Answer(400, R"({"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"no queue"})")};
  auto a = Client(t).SendJson("X.Y", "application/x-amz-json-1.0", "{}");
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(a->ok());
  EXPECT_EQ(a->attempts, 1);
  EXPECT_EQ(a->error.code, "com.amazonaws.sqs#QueueDoesNotExist");
  EXPECT_EQ(a->error.message, "no queue");
  EXPECT_NE(a->credentials.find("MPLE"), std::string::npos);  // Describe(): the key's tail, never the secret
}

TEST(AwsClient, NoAnswerIsAnIOErrorNamingTheEndpoint) {
  auto t = std::make_shared<ScriptedTransport>();
  auto a = Client(t).SendJson("X.Y", "application/x-amz-json-1.1", "{}");
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), Status::Code::kIOError);
  EXPECT_NE(a.status().message().find("http://127.0.0.1:5000/base"), std::string::npos) << a.status().message();
  EXPECT_EQ(t->seen.size(), 3u);
}

TEST(ParseAwsError, JsonXmlAndHeader) {
  AwsError e = ParseAwsError(Answer(400, "<ErrorResponse><Error><Code>NotFound</Code><Message>Topic does not "
                                         "exist</Message></Error></ErrorResponse>"));
  EXPECT_EQ(e.code, "NotFound");
  EXPECT_EQ(e.message, "Topic does not exist");
  e = ParseAwsError(Answer(404, R"({"Message":"gone"})", {{"x-amzn-errortype", "ResourceNotFoundException:http://x"}}));
  EXPECT_EQ(e.code, "ResourceNotFoundException");
  EXPECT_EQ(e.message, "gone");
}

TEST(RetryPolicy, FullJitterIsCapped) {
  RetryPolicy p{5, 100, 1000};
  EXPECT_EQ(p.DelayMs(1, 200), 200 % 101);  // the first retry waits up to the base
  EXPECT_EQ(p.DelayMs(2, 200), 200 % 201);
  for (uint64_t r : {0ull, 999ull, 12345678ull}) EXPECT_LE(p.DelayMs(10, r), 1000);
}

TEST(RetryPolicy, RunStopsAtTheBudgetAndProgressRenewsIt) {
  RetryPolicy p{3, 0, 0};
  std::vector<int> seen, retries;
  int last = p.Run([&](int n) { seen.push_back(n); return RetryVerdict::kAgain; },
                   [&](int n, int) { retries.push_back(n); });
  EXPECT_EQ(last, 3);
  EXPECT_EQ(seen, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(retries, (std::vector<int>{1, 2}));
  // Progress (kAgainFresh) starts the count over: 2 failures, progress, 3 failures.
  seen.clear();
  int calls = 0;
  p.Run([&](int n) {
    seen.push_back(n);
    return ++calls == 3 ? RetryVerdict::kAgainFresh : RetryVerdict::kAgain;
  });
  EXPECT_EQ(seen, (std::vector<int>{1, 2, 3, 2, 3}));
  seen.clear();
  EXPECT_EQ(p.Run([&](int n) { seen.push_back(n); return RetryVerdict::kStop; }), 1);
  EXPECT_EQ(seen.size(), 1u);
}

}  // namespace
}  // namespace cloudmerge
