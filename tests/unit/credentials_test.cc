// The credentials chain offline: a map stands in for the process environment,
// a temporary directory for $HOME, and a scripted HttpTransport for the
// container endpoint and EC2 instance metadata. Checks the chain's order, each
// provider, caching and refresh, the shared-file parser, region precedence,
// and that no secret leaks into Describe() or an error message.
#include <gtest/gtest.h>

#include <strings.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "aws_home_test_base.h"
#include "cloudmerge/aws/credentials.h"

namespace cloudmerge {
namespace {

namespace fs = std::filesystem;

constexpr const char* kSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
constexpr const char* kToken = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN";

// What the fake saw of one request (the body view is not kept).
struct SeenRequest {
  std::string method;
  std::string url;
  HttpHeaders headers;
  long timeout_ms = 0;

  std::string Header(const std::string& name) const {
    for (const auto& [n, v] : headers) {
      if (strcasecmp(n.c_str(), name.c_str()) == 0) return v;
    }
    return "";
  }
};

// Answers from `routes` ("METHOD URL" -> response); anything else is a
// connection failure, as off AWS.
class FakeTransport final : public HttpTransport {
 public:
  std::map<std::string, std::function<Result<HttpResponse>(const SeenRequest&)>> routes;

  Result<HttpResponse> Send(const HttpRequest& request) override {
    SeenRequest seen{request.method, request.url, request.headers, request.timeout_ms};
    std::function<Result<HttpResponse>(const SeenRequest&)> route;
    {
      std::lock_guard<std::mutex> lock(mu_);
      seen_.push_back(seen);
      auto it = routes.find(request.method + " " + request.url);
      if (it != routes.end()) route = it->second;
    }
    if (!route) return Status::IOError("connection refused (fake) for " + request.url);
    return route(seen);
  }

  void Answer(const std::string& method_and_url, long status, std::string body) {
    routes[method_and_url] = [status, body](const SeenRequest&) -> Result<HttpResponse> {
      HttpResponse r;
      r.status = status;
      r.body = body;
      return r;
    };
  }

  std::vector<SeenRequest> seen() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }

 private:
  std::mutex mu_;
  std::vector<SeenRequest> seen_;
};

std::string Iso8601(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string CredentialsJson(const std::string& key_id, std::time_t expires) {
  return std::string(R"({"Code":"Success","Type":"AWS-HMAC","AccessKeyId":")") + key_id +
         R"(","SecretAccessKey":")" + kSecret + R"(","Token":")" + kToken + R"(","Expiration":")" +
         Iso8601(expires) + R"("})";
}

class CredentialsTest : public AwsHomeTest {
 protected:
  void SetUp() override {
    AwsHomeTest::SetUp();
    transport_ = std::make_shared<FakeTransport>();
  }

  std::string PathOf(const std::string& relative) { return (fs::path(home_) / relative).string(); }

  std::shared_ptr<CredentialsProvider> Chain() { return NewDefaultCredentialsChain(Env(), transport_); }

  // The ECS-style relative URI, answered with credentials expiring at `expires`.
  void ServeContainer(std::time_t expires, const std::string& key_id = "ASIACONTAINERKEY1") {
    vars_["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] = "/v2/credentials/task-1";
    transport_->Answer("GET http://169.254.170.2/v2/credentials/task-1", 200, CredentialsJson(key_id, expires));
  }

  void ServeImds(const std::string& base, std::time_t expires) {
    transport_->Answer("PUT " + base + "/latest/api/token", 200, "IMDS-SESSION-TOKEN");
    transport_->Answer("GET " + base + "/latest/meta-data/iam/security-credentials/", 200, "web-role\n");
    transport_->Answer("GET " + base + "/latest/meta-data/iam/security-credentials/web-role", 200,
                       CredentialsJson("ASIAINSTANCEKEY2", expires));
  }

  std::shared_ptr<FakeTransport> transport_;
};

void ExpectNoSecrets(const std::string& text) {
  EXPECT_EQ(text.find(kSecret), std::string::npos) << text;
  EXPECT_EQ(text.find(kToken), std::string::npos) << text;
}

// ---- environment ----

TEST_F(CredentialsTest, EnvironmentComesFirst) {
  vars_["AWS_ACCESS_KEY_ID"] = "AKIAENVIRONMENT1";
  vars_["AWS_SECRET_ACCESS_KEY"] = kSecret;
  vars_["AWS_SESSION_TOKEN"] = kToken;
  Write(".aws/credentials", "[default]\naws_access_key_id = AKIAFILE\naws_secret_access_key = x\n");
  ServeContainer(std::time(nullptr) + 3600);
  auto c = Chain()->Get();
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->access_key_id, "AKIAENVIRONMENT1");
  EXPECT_EQ(c->secret_access_key, kSecret);
  EXPECT_EQ(c->session_token, kToken);
  EXPECT_EQ(c->source, "environment variables");
  EXPECT_EQ(c->expiration, 0);
  EXPECT_TRUE(transport_->seen().empty());
}

TEST_F(CredentialsTest, HalfSetEnvironmentIsAnErrorNamingTheMissingVariable) {
  vars_["AWS_SECRET_ACCESS_KEY"] = kSecret;
  Write(".aws/credentials", "[default]\naws_access_key_id = AKIAFILE\naws_secret_access_key = x\n");
  auto c = Chain()->Get();
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(c.status().message().find("AWS_ACCESS_KEY_ID is not"), std::string::npos) << c.status().message();
  ExpectNoSecrets(c.status().message());
}

// ---- shared files ----

TEST_F(CredentialsTest, DefaultProfileFromTheCredentialsFile) {
  Write(".aws/credentials",
        "# comment\n[default]\naws_access_key_id=AKIADEFAULTPROF\naws_secret_access_key = " + std::string(kSecret) +
            "\n");
  auto c = Chain()->Get();
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->access_key_id, "AKIADEFAULTPROF");
  EXPECT_EQ(c->secret_access_key, kSecret);
  EXPECT_EQ(c->session_token, "");
  EXPECT_EQ(c->source, "profile 'default' in " + PathOf(".aws/credentials"));
}

TEST_F(CredentialsTest, AwsProfileSelectsTheSection) {
  vars_["AWS_PROFILE"] = "dev";
  Write(".aws/credentials",
        "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = a\n"
        "[dev]\naws_access_key_id = AKIADEVPROFILE\naws_secret_access_key = b\naws_session_token = t\n");
  auto c = Chain()->Get();
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->access_key_id, "AKIADEVPROFILE");
  EXPECT_EQ(c->session_token, "t");
  EXPECT_NE(c->source.find("profile 'dev'"), std::string::npos);
}

TEST_F(CredentialsTest, ConfigFileProfileNeedsTheProfilePrefix) {
  vars_["AWS_PROFILE"] = "dev";
  // A bare [dev] in the config file is not the profile "dev".
  Write(".aws/config", "[dev]\naws_access_key_id = AKIAWRONG\naws_secret_access_key = a\n");
  auto c = Chain()->Get();
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("profile 'dev' (from AWS_PROFILE)"), std::string::npos) << c.status().message();

  Write(".aws/config", "[profile dev]\naws_access_key_id = AKIACONFIGDEV\naws_secret_access_key = a\n");
  c = Chain()->Get();
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->access_key_id, "AKIACONFIGDEV");
  EXPECT_EQ(c->source, "profile 'dev' in " + PathOf(".aws/config"));
}

TEST_F(CredentialsTest, CredentialsFileWinsOverConfigFile) {
  Write(".aws/config", "[default]\naws_access_key_id = AKIACONFIG\naws_secret_access_key = a\n");
  Write(".aws/credentials", "[default]\naws_access_key_id = AKIACREDFILE\naws_secret_access_key = b\n");
  auto c = Chain()->Get();
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->access_key_id, "AKIACREDFILE");
}

TEST_F(CredentialsTest, FileLocationsFromTheEnvironment) {
  Write("elsewhere/creds", "[ci]\naws_access_key_id = AKIAELSEWHERE\naws_secret_access_key = b\n");
  Write("elsewhere/conf", "[profile ci]\nregion = ap-south-1\n");
  Write(".aws/credentials", "[ci]\naws_access_key_id = AKIAHOMEDIR\naws_secret_access_key = b\n");
  vars_["AWS_SHARED_CREDENTIALS_FILE"] = PathOf("elsewhere/creds");
  vars_["AWS_CONFIG_FILE"] = "~/elsewhere/conf";
  vars_["AWS_PROFILE"] = "ci";
  auto c = Chain()->Get();
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->access_key_id, "AKIAELSEWHERE");
  EXPECT_EQ(ResolveRegion(Env()), "ap-south-1");
}

TEST_F(CredentialsTest, ProfileWithOnlyAKeyIdIsAnErrorWithoutTheSecret) {
  Write(".aws/credentials", "[default]\naws_secret_access_key = " + std::string(kSecret) + "\n");
  auto c = Chain()->Get();
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(c.status().message().find("no aws_access_key_id"), std::string::npos) << c.status().message();
  ExpectNoSecrets(c.status().message());
}

TEST_F(CredentialsTest, RoleArnProfileIsExplainedAsUnsupported) {
  vars_["AWS_EC2_METADATA_DISABLED"] = "true";
  Write(".aws/config", "[default]\nrole_arn = arn:aws:iam::123456789012:role/x\nsource_profile = base\n");
  auto c = Chain()->Get();
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("uses role_arn, which cloudmerge does not support"), std::string::npos)
      << c.status().message();
  EXPECT_NE(c.status().message().find("aws configure export-credentials"), std::string::npos);
}

// ---- container endpoint ----

TEST_F(CredentialsTest, ContainerRelativeUriWithAuthorizationToken) {
  std::time_t expires = std::time(nullptr) + 3600;
  ServeContainer(expires);
  vars_["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "Basic abc";
  auto c = Chain()->Get();
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->access_key_id, "ASIACONTAINERKEY1");
  EXPECT_EQ(c->secret_access_key, kSecret);
  EXPECT_EQ(c->session_token, kToken);
  EXPECT_EQ(c->expiration, expires);
  EXPECT_EQ(c->source, "container credentials endpoint at 169.254.170.2");
  auto seen = transport_->seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "GET");
  EXPECT_EQ(seen[0].Header("Authorization"), "Basic abc");
  EXPECT_GT(seen[0].timeout_ms, 0);
  EXPECT_LE(seen[0].timeout_ms, 5000);
}

TEST_F(CredentialsTest, ContainerFullUriWithTokenFileWhichWinsOverTheVariable) {
  Write("token", "eks-pod-identity-token\n");
  vars_["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = "http://169.254.170.23/v1/credentials";
  vars_["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = PathOf("token");
  vars_["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "stale";
  transport_->Answer("GET http://169.254.170.23/v1/credentials", 200,
                     CredentialsJson("ASIAPODIDENTITY3", std::time(nullptr) + 3600));
  auto c = Chain()->Get();
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->access_key_id, "ASIAPODIDENTITY3");
  ASSERT_EQ(transport_->seen().size(), 1u);
  EXPECT_EQ(transport_->seen()[0].Header("Authorization"), "eks-pod-identity-token");
}

TEST_F(CredentialsTest, ContainerFullUriToAStrangeHostIsRefused) {
  vars_["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = "http://attacker.example.com/creds";
  vars_["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "secret-ish";
  auto c = Chain()->Get();
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("attacker.example.com"), std::string::npos) << c.status().message();
  EXPECT_TRUE(transport_->seen().empty());
  // Loopback and https are fine.
  vars_["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = "http://127.0.0.1:8080/creds";
  transport_->Answer("GET http://127.0.0.1:8080/creds", 200, CredentialsJson("ASIALOOPBACK", std::time(nullptr) + 3600));
  EXPECT_TRUE(Chain()->Get().ok());
}

TEST_F(CredentialsTest, ContainerErrorsSayWhatHappenedWithoutSecrets) {
  ServeContainer(0);
  transport_->Answer("GET http://169.254.170.2/v2/credentials/task-1", 500, "oops");
  auto c = Chain()->Get();
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Status::Code::kIOError);
  EXPECT_NE(c.status().message().find("HTTP 500"), std::string::npos) << c.status().message();

  // A 200 whose JSON is broken: the body (holding the secret) is not quoted.
  transport_->Answer("GET http://169.254.170.2/v2/credentials/task-1", 200,
                     std::string(R"({"AccessKeyId":"ASIA","SecretAccessKey":")") + kSecret + "\", truncated");
  c = Chain()->Get();
  ASSERT_FALSE(c.ok());
  ExpectNoSecrets(c.status().message());

  transport_->Answer("GET http://169.254.170.2/v2/credentials/task-1", 200,
                     std::string(R"({"AccessKeyId":"ASIA","SecretAccessKey":")") + kSecret +
                         R"(","Token":")" + kToken + R"(","Expiration":"soon"})");
  c = Chain()->Get();
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("not an ISO 8601 time"), std::string::npos) << c.status().message();
  ExpectNoSecrets(c.status().message());

  transport_->Answer("GET http://169.254.170.2/v2/credentials/task-1", 200, R"({"AccessKeyId":7})");
  c = Chain()->Get();
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("not strings"), std::string::npos) << c.status().message();
}

TEST_F(CredentialsTest, ExpirationWithFractionAndOffsetIsParsed) {
  vars_["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] = "/c";
  transport_->Answer("GET http://169.254.170.2/c", 200,
                     R"({"AccessKeyId":"ASIA1","SecretAccessKey":"s","Token":"t","Expiration":"2099-01-01T02:00:00.123+02:00"})");
  auto c = Chain()->Get();
  ASSERT_TRUE(c.ok()) << c.status().message();
  std::tm tm{};
  tm.tm_year = 2099 - 1900;
  tm.tm_mday = 1;
  EXPECT_EQ(c->expiration, timegm(&tm));
}

// ---- EC2 instance metadata ----

TEST_F(CredentialsTest, ImdsV2TokenFirstThenRoleThenCredentials) {
  std::time_t expires = std::time(nullptr) + 6 * 3600;
  ServeImds("http://169.254.169.254", expires);
  auto c = Chain()->Get();
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->access_key_id, "ASIAINSTANCEKEY2");
  EXPECT_EQ(c->session_token, kToken);
  EXPECT_EQ(c->expiration, expires);
  EXPECT_EQ(c->source, "EC2 instance metadata (role web-role)");

  auto seen = transport_->seen();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].method, "PUT");
  EXPECT_EQ(seen[0].url, "http://169.254.169.254/latest/api/token");
  EXPECT_FALSE(seen[0].Header("X-aws-ec2-metadata-token-ttl-seconds").empty());
  EXPECT_EQ(seen[1].method, "GET");
  EXPECT_EQ(seen[1].url, "http://169.254.169.254/latest/meta-data/iam/security-credentials/");
  EXPECT_EQ(seen[2].url, "http://169.254.169.254/latest/meta-data/iam/security-credentials/web-role");
  for (size_t i = 1; i < seen.size(); ++i) EXPECT_EQ(seen[i].Header("X-aws-ec2-metadata-token"), "IMDS-SESSION-TOKEN");
  for (const auto& r : seen) {
    EXPECT_GT(r.timeout_ms, 0);
    EXPECT_LE(r.timeout_ms, 5000);
  }
}

TEST_F(CredentialsTest, ImdsEndpointFromTheEnvironment) {
  vars_["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = "http://127.0.0.1:1338/";
  ServeImds("http://127.0.0.1:1338", std::time(nullptr) + 3600);
  auto c = Chain()->Get();
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->access_key_id, "ASIAINSTANCEKEY2");
}

TEST_F(CredentialsTest, ImdsDisabledMeansNoRequestAndAHelpfulError) {
  vars_["AWS_EC2_METADATA_DISABLED"] = "true";
  ServeImds("http://169.254.169.254", std::time(nullptr) + 3600);
  auto c = Chain()->Get();
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(transport_->seen().empty());
  const std::string& m = c.status().message();
  EXPECT_NE(m.find("environment variables"), std::string::npos) << m;
  EXPECT_NE(m.find(PathOf(".aws/credentials")), std::string::npos) << m;
  EXPECT_NE(m.find("container credentials endpoint"), std::string::npos) << m;
  EXPECT_NE(m.find("disabled by AWS_EC2_METADATA_DISABLED"), std::string::npos) << m;
  EXPECT_NE(m.find("export AWS_ACCESS_KEY_ID"), std::string::npos) << m;
}

TEST_F(CredentialsTest, NothingAnywhereListsEverySourceTried) {
  auto c = Chain()->Get();  // the fake refuses every connection
  ASSERT_FALSE(c.ok());
  const std::string& m = c.status().message();
  EXPECT_NE(m.find("1) environment variables"), std::string::npos) << m;
  EXPECT_NE(m.find("2) shared files for profile 'default'"), std::string::npos) << m;
  EXPECT_NE(m.find("file not found"), std::string::npos) << m;
  EXPECT_NE(m.find("3) container credentials endpoint"), std::string::npos) << m;
  EXPECT_NE(m.find("4) EC2 instance metadata at http://169.254.169.254 (not reachable"), std::string::npos) << m;
  ASSERT_EQ(transport_->seen().size(), 1u);  // the token PUT, nothing after it failed
}

TEST_F(CredentialsTest, NoRoleAttachedIsNotAnError) {
  transport_->Answer("PUT http://169.254.169.254/latest/api/token", 200, "T");
  transport_->Answer("GET http://169.254.169.254/latest/meta-data/iam/security-credentials/", 404, "");
  auto c = Chain()->Get();
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(c.status().message().find("no IAM role is attached"), std::string::npos) << c.status().message();
}

// ---- order between the HTTP sources and the files ----

TEST_F(CredentialsTest, ProfileBeatsContainerWhichBeatsImds) {
  ServeContainer(std::time(nullptr) + 3600);
  ServeImds("http://169.254.169.254", std::time(nullptr) + 3600);
  Write(".aws/credentials", "[default]\naws_access_key_id = AKIAPROFILE\naws_secret_access_key = b\n");
  auto c = Chain()->Get();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->access_key_id, "AKIAPROFILE");
  EXPECT_TRUE(transport_->seen().empty());

  fs::remove(PathOf(".aws/credentials"));
  c = Chain()->Get();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->access_key_id, "ASIACONTAINERKEY1");
  auto seen = transport_->seen();
  ASSERT_EQ(seen.size(), 1u);  // IMDS never asked
  EXPECT_EQ(seen[0].url, "http://169.254.170.2/v2/credentials/task-1");
}

// ---- caching and refresh ----

TEST_F(CredentialsTest, TemporaryCredentialsAreCachedUntilNearExpiry) {
  ServeContainer(std::time(nullptr) + 3600);
  auto chain = Chain();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(chain->Get().ok());
  EXPECT_EQ(transport_->seen().size(), 1u);
}

TEST_F(CredentialsTest, CredentialsExpiringWithinFiveMinutesAreRefreshed) {
  ServeContainer(std::time(nullptr) + 120, "ASIAFIRST");
  auto chain = Chain();
  auto first = chain->Get();
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->access_key_id, "ASIAFIRST");
  ServeContainer(std::time(nullptr) + 3600, "ASIASECOND");
  auto second = chain->Get();
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->access_key_id, "ASIASECOND");
  EXPECT_EQ(transport_->seen().size(), 2u);
  ASSERT_TRUE(chain->Get().ok());
  EXPECT_EQ(transport_->seen().size(), 2u);  // now fresh: cached
}

TEST_F(CredentialsTest, ImdsRefreshAsksForANewTokenEachTime) {
  ServeImds("http://169.254.169.254", std::time(nullptr) + 60);
  auto chain = Chain();
  ASSERT_TRUE(chain->Get().ok());
  ASSERT_TRUE(chain->Get().ok());
  auto seen = transport_->seen();
  ASSERT_EQ(seen.size(), 6u);
  EXPECT_EQ(seen[3].method, "PUT");
}

TEST_F(CredentialsTest, FailedRefreshKeepsServingStillValidCredentials) {
  ServeContainer(std::time(nullptr) + 120, "ASIASTILLVALID");
  auto chain = Chain();
  ASSERT_TRUE(chain->Get().ok());
  transport_->Answer("GET http://169.254.170.2/v2/credentials/task-1", 503, "");
  auto again = chain->Get();
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->access_key_id, "ASIASTILLVALID");
  EXPECT_EQ(transport_->seen().size(), 2u);  // it did try
  // ...and does not hammer the endpoint on every call after a failure.
  ASSERT_TRUE(chain->Get().ok());
  EXPECT_EQ(transport_->seen().size(), 2u);
}

TEST_F(CredentialsTest, ExpiredCredentialsAreNotServedWhenRefreshFails) {
  ServeContainer(std::time(nullptr) - 10, "ASIAEXPIRED");
  auto chain = Chain();
  ASSERT_TRUE(chain->Get().ok());  // handed out as fetched; the caller may fail with them
  transport_->Answer("GET http://169.254.170.2/v2/credentials/task-1", 503, "");
  auto again = chain->Get();
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("HTTP 503"), std::string::npos) << again.status().message();
}

TEST_F(CredentialsTest, ConcurrentCallersShareOneFetch) {
  std::atomic<int> calls{0};
  vars_["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] = "/c";
  transport_->routes["GET http://169.254.170.2/c"] = [&calls](const SeenRequest&) -> Result<HttpResponse> {
    ++calls;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    HttpResponse r;
    r.status = 200;
    r.body = CredentialsJson("ASIASHARED", std::time(nullptr) + 3600);
    return r;
  };
  auto chain = Chain();
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] { ok += chain->Get().ok(); });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 8);
  EXPECT_EQ(calls.load(), 1);
}

TEST_F(CredentialsTest, StaticCredentialsAreReturnedAsGiven) {
  AwsCredentials given;
  given.access_key_id = "AKIASTATIC";
  given.secret_access_key = kSecret;
  auto c = NewStaticCredentials(given)->Get();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->access_key_id, "AKIASTATIC");
  EXPECT_EQ(c->secret_access_key, kSecret);
  EXPECT_FALSE(c->source.empty());
}

// ---- Describe ----

TEST(AwsCredentialsDescribe, ShowsTheKeyTailAndSourceNeverTheSecret) {
  AwsCredentials c;
  c.access_key_id = "AKIAIOSFODNN7EXAMPLE";
  c.secret_access_key = kSecret;
  c.session_token = kToken;
  c.source = "environment variables";
  EXPECT_EQ(c.Describe(), "access key ...MPLE from environment variables");
  ExpectNoSecrets(c.Describe());
  c.access_key_id = "AK";
  EXPECT_EQ(c.Describe(), "access key ...AK from environment variables");
}

// ---- the INI parser ----

TEST(ParseAwsIni, CommentsSpacingAndSections) {
  auto ini = ParseAwsIni(
      "# leading comment\n"
      "; another\n"
      "orphan = ignored\n"
      "[default]\n"
      "aws_access_key_id=AKIA1\n"
      "aws_secret_access_key   =   s3cr/et+  \n"
      "Region = eu-west-1 # inline comment\n"
      "endpoint_url = http://h/a#b;c\n"
      "\t; indented comment\n"
      "\n"
      "[profile dev] ; trailing\n"
      "region=us-west-2\r\n"
      "[ spaced ]\n"
      "k = v = w\n"
      "empty =\n");
  ASSERT_EQ(ini.size(), 3u);
  EXPECT_EQ(ini["default"]["aws_access_key_id"], "AKIA1");
  EXPECT_EQ(ini["default"]["aws_secret_access_key"], "s3cr/et+");
  EXPECT_EQ(ini["default"]["region"], "eu-west-1");       // keys lower-cased, comment dropped
  EXPECT_EQ(ini["default"]["endpoint_url"], "http://h/a#b;c");  // no whitespace before: kept
  EXPECT_EQ(ini["default"].count("orphan"), 0u);
  EXPECT_EQ(ini["profile dev"]["region"], "us-west-2");  // CRLF tolerated
  EXPECT_EQ(ini["spaced"]["k"], "v = w");
  EXPECT_EQ(ini["spaced"]["empty"], "");
}

// As in the AWS CLI (Python's configparser), an indented line after a value
// continues that value, even when it looks like a key.
TEST(ParseAwsIni, IndentedKeyAfterAValueIsAContinuation) {
  auto ini = ParseAwsIni("[default]\naws_access_key_id = AKIA1\n  aws_secret_access_key = s\n");
  EXPECT_EQ(ini["default"]["aws_access_key_id"], "AKIA1\naws_secret_access_key = s");
  EXPECT_EQ(ini["default"].count("aws_secret_access_key"), 0u);
}

TEST(ParseAwsIni, NestedS3SettingsAndContinuations) {
  auto ini = ParseAwsIni(
      "[profile minio]\n"
      "s3 =\n"
      "  addressing_style = path\n"
      "  max_concurrent_requests = 20\n"
      "note = first\n"
      "  second\n"
      "region = us-east-2\n");
  auto& p = ini["profile minio"];
  EXPECT_EQ(p["s3"], "");
  EXPECT_EQ(p["s3.addressing_style"], "path");
  EXPECT_EQ(p["s3.max_concurrent_requests"], "20");
  EXPECT_EQ(p["note"], "first\nsecond");
  EXPECT_EQ(p["region"], "us-east-2");
}

TEST(ParseAwsIni, MalformedLinesAreSkipped) {
  auto ini = ParseAwsIni("[broken\nkey = lost\n[ok]\nno equals sign\n= novalue\nk = v");
  EXPECT_EQ(ini.count("broken"), 0u);
  EXPECT_EQ(ini["ok"].size(), 1u);
  EXPECT_EQ(ini["ok"]["k"], "v");
}

// ---- region and config values ----

TEST_F(CredentialsTest, RegionPrecedence) {
  EXPECT_EQ(ResolveRegion(Env()), "us-east-1");
  Write(".aws/config", "[default]\nregion = eu-central-1\n[profile dev]\nregion = ap-northeast-1\n");
  EXPECT_EQ(ResolveRegion(Env()), "eu-central-1");
  vars_["AWS_PROFILE"] = "dev";
  EXPECT_EQ(ResolveRegion(Env()), "ap-northeast-1");
  vars_["AWS_DEFAULT_REGION"] = "sa-east-1";
  EXPECT_EQ(ResolveRegion(Env()), "sa-east-1");
  vars_["AWS_REGION"] = "eu-north-1";
  EXPECT_EQ(ResolveRegion(Env()), "eu-north-1");
}

TEST_F(CredentialsTest, RegionInTheCredentialsFileIsNotUsed) {
  Write(".aws/credentials", "[default]\nregion = eu-west-3\n");
  EXPECT_EQ(ResolveRegion(Env()), "us-east-1");
}

TEST_F(CredentialsTest, ProfileConfigValueReadsNestedKeys) {
  Write(".aws/config",
        "[profile minio]\nendpoint_url = http://127.0.0.1:9000\ns3 =\n  addressing_style = path\n"
        "[default]\nendpoint_url = https://default\n");
  EXPECT_EQ(ProfileConfigValue(Env(), "endpoint_url"), "https://default");
  EXPECT_EQ(ProfileConfigValue(Env(), "s3.addressing_style"), "");
  vars_["AWS_PROFILE"] = "minio";
  EXPECT_EQ(ProfileConfigValue(Env(), "endpoint_url"), "http://127.0.0.1:9000");
  EXPECT_EQ(ProfileConfigValue(Env(), "s3.addressing_style"), "path");
  EXPECT_EQ(ProfileConfigValue(Env(), "missing"), "");
}

}  // namespace
}  // namespace cloudmerge
