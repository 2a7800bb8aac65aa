// Shared by the S3 integration tests: the live server's coordinates (from the
// environment that tests/e2e/test_s3_client.py sets up around a moto server),
// clients made from them, and a transport wrapper for injecting faults.
//
// Environment (all required; a missing one fails the test, never skips it):
//   CLOUDMERGE_TEST_S3_ENDPOINT   e.g. http://127.0.0.1:PORT
//   CLOUDMERGE_TEST_S3_BUCKET     an existing, empty bucket for these tests
//   AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>

#include "cloudmerge/aws/credentials.h"
#include "cloudmerge/aws/http.h"
#include "cloudmerge/aws/s3_client.h"

namespace cloudmerge::testing {

inline std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// Fails the calling test (ADD_FAILURE) when the variable is missing.
inline std::string RequiredEnv(const char* name) {
  std::string v = Env(name);
  if (v.empty()) ADD_FAILURE() << name << " is not set: run this binary through tests/e2e/test_s3_client.py";
  return v;
}

inline std::string Endpoint() { return RequiredEnv("CLOUDMERGE_TEST_S3_ENDPOINT"); }
inline std::string Bucket() { return RequiredEnv("CLOUDMERGE_TEST_S3_BUCKET"); }

inline AwsCredentials TestCredentials(std::string secret_override = "") {
  AwsCredentials c;
  c.access_key_id = RequiredEnv("AWS_ACCESS_KEY_ID");
  c.secret_access_key = secret_override.empty() ? RequiredEnv("AWS_SECRET_ACCESS_KEY") : secret_override;
  c.source = "the test environment";
  return c;
}

inline S3Config TestConfig() {
  S3Config c;
  c.region = Env("AWS_REGION").empty() ? "us-east-1" : Env("AWS_REGION");
  c.endpoint_url = Endpoint();
  c.path_style = true;
  c.retry.base_delay_ms = 5;  // retries are exercised; keep them quick
  c.retry.max_delay_ms = 50;
  return c;
}

inline std::shared_ptr<HttpTransport> SharedCurl() {
  static std::shared_ptr<HttpTransport> t = NewCurlTransport();
  return t;
}

inline std::shared_ptr<S3Client> NewClient(std::shared_ptr<HttpTransport> transport = SharedCurl(),
                                           S3Config config = TestConfig(),
                                           AwsCredentials creds = TestCredentials()) {
  return std::make_shared<S3Client>(std::move(config), NewStaticCredentials(std::move(creds)), std::move(transport));
}

// A key unique to the running test, so tests never see each other's objects.
inline std::string TestKey(const std::string& leaf) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return std::string(info->test_suite_name()) + "/" + info->name() + "/" + leaf;
}

inline S3Uri TestObject(const std::string& leaf) { return S3Uri{Bucket(), TestKey(leaf)}; }

inline std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    for (size_t j = 0; j < 8 && i + j < n; ++j) s[i + j] = static_cast<char>(v >> (8 * j));
  }
  return s;
}

// Wraps a real transport; `hook` decides per request (numbered from 0) what
// happens: call `inner.Send(request)` to pass it through, or return anything.
class HookTransport final : public HttpTransport {
 public:
  using Hook = std::function<Result<HttpResponse>(const HttpRequest&, int n, HttpTransport& inner)>;
  HookTransport(std::shared_ptr<HttpTransport> inner, Hook hook) : inner_(std::move(inner)), hook_(std::move(hook)) {}
  Result<HttpResponse> Send(const HttpRequest& request) override {
    // Hooks that answer every request themselves have no inner transport:
    // hand them one that refuses, never a null reference.
    struct Refuse final : HttpTransport {
      Result<HttpResponse> Send(const HttpRequest&) override {
        return Status::Internal("this test's transport has no inner transport");
      }
    };
    static Refuse refuse;
    return hook_(request, calls_++, inner_ ? *inner_ : static_cast<HttpTransport&>(refuse));
  }
  int calls() const { return calls_; }

 private:
  std::shared_ptr<HttpTransport> inner_;
  Hook hook_;
  std::atomic<int> calls_{0};
};

inline bool IsPartUpload(const HttpRequest& r) {
  return r.method == "PUT" && r.url.find("partNumber=") != std::string::npos;
}

}  // namespace cloudmerge::testing
