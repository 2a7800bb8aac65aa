// Endpoint resolution per service (aws/endpoints.h): the SDKs' order, and
// above all that one service's setting never moves another's calls.
#include "cloudmerge/aws/endpoints.h"

#include "aws_home_test_base.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>

#include <gtest/gtest.h>

namespace cloudmerge {
namespace {

namespace fs = std::filesystem;

class EndpointsTest : public AwsHomeTest {
 protected:
  void Config(const std::string& text) { Write(".aws/config", text); }
  std::string Url(AwsService s, const std::string& explicit_url = "") {
    return ResolveEndpoint(s, "eu-west-1", Env(), explicit_url).url();
  }
};

TEST_F(EndpointsTest, PublicEndpointsByDefault) {
  EXPECT_EQ(Url(AwsService::kSqs), "https://sqs.eu-west-1.amazonaws.com");
  EXPECT_EQ(Url(AwsService::kSns), "https://sns.eu-west-1.amazonaws.com");
  EXPECT_EQ(Url(AwsService::kLogs), "https://logs.eu-west-1.amazonaws.com");
  EXPECT_EQ(Url(AwsService::kEmr), "https://elasticmapreduce.eu-west-1.amazonaws.com");
  EXPECT_EQ(Url(AwsService::kEmrServerless), "https://emr-serverless.eu-west-1.amazonaws.com");
  EXPECT_EQ(ResolveEndpoint(AwsService::kSns, "cn-north-1", Env()).url(), "https://sns.cn-north-1.amazonaws.com.cn");
  EXPECT_EQ(ConfiguredEndpointUrl(AwsService::kSqs, Env()), "");
}

TEST_F(EndpointsTest, ExplicitEndpointIsForItsServiceOnly) {
  // What `serve --endpoint-url` gives S3 must not reach SQS, SNS or Logs.
  vars_["AWS_ENDPOINT_URL"] = "http://127.0.0.1:2000";
  EXPECT_EQ(Url(AwsService::kS3, "http://127.0.0.1:1000/"), "http://127.0.0.1:1000");
  EXPECT_EQ(Url(AwsService::kSqs), "http://127.0.0.1:2000");
  EXPECT_EQ(Url(AwsService::kSns), "http://127.0.0.1:2000");
  EXPECT_EQ(Url(AwsService::kLogs), "http://127.0.0.1:2000");
}

TEST_F(EndpointsTest, ServiceVariableBeatsGlobalBeatsProfile) {
  Config("[default]\nendpoint_url = http://profile:1\nsns =\n  endpoint_url = http://profile-sns:1\n");
  EXPECT_EQ(Url(AwsService::kSqs), "http://profile:1");
  EXPECT_EQ(Url(AwsService::kSns), "http://profile-sns:1");
  vars_["AWS_ENDPOINT_URL"] = "http://global:2";
  EXPECT_EQ(Url(AwsService::kSns), "http://global:2");
  for (auto [var, service] : std::map<std::string, AwsService>{{"AWS_ENDPOINT_URL_S3", AwsService::kS3},
                                                               {"AWS_ENDPOINT_URL_SQS", AwsService::kSqs},
                                                               {"AWS_ENDPOINT_URL_SNS", AwsService::kSns},
                                                               {"AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", AwsService::kLogs},
                                                               {"AWS_ENDPOINT_URL_EMR", AwsService::kEmr},
                                                               {"AWS_ENDPOINT_URL_EMR_SERVERLESS",
                                                                AwsService::kEmrServerless}}) {
    vars_[var] = "http://" + std::string(AwsServiceName(service).substr(0, 3)) + ":3";
    std::string source;
    EXPECT_EQ(ConfiguredEndpointUrl(service, Env(), "", &source), vars_[var]) << var;
    EXPECT_EQ(source, var);
  }
  // Each service's own variable moved only that service.
  EXPECT_EQ(Url(AwsService::kSns), "http://SNS:3");
  EXPECT_EQ(Url(AwsService::kEmr), "http://EMR:3");
  // The explicit endpoint still wins.
  EXPECT_EQ(Url(AwsService::kEmr, "http://flag:4"), "http://flag:4");
}

TEST_F(EndpointsTest, LogsAlsoAcceptsItsSigningName) {
  vars_["AWS_ENDPOINT_URL_LOGS"] = "http://logs:5";
  EXPECT_EQ(Url(AwsService::kLogs), "http://logs:5");
  EXPECT_EQ(Url(AwsService::kSns), "https://sns.eu-west-1.amazonaws.com");
}

TEST_F(EndpointsTest, ServicesSectionOfTheProfile) {
  Config("[profile dev]\nservices = local\n[services local]\nsqs =\n  endpoint_url = http://sqs-local:6\n");
  vars_["AWS_PROFILE"] = "dev";
  EXPECT_EQ(Url(AwsService::kSqs), "http://sqs-local:6");
  EXPECT_EQ(Url(AwsService::kSns), "https://sns.eu-west-1.amazonaws.com");
}

TEST_F(EndpointsTest, IgnoreConfiguredEndpoints) {
  vars_["AWS_ENDPOINT_URL"] = "http://global:2";
  vars_["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"] = "true";
  EXPECT_EQ(Url(AwsService::kSqs), "https://sqs.eu-west-1.amazonaws.com");
  EXPECT_EQ(Url(AwsService::kS3, "http://flag:1"), "http://flag:1");
  vars_.erase("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
  Config("[default]\nignore_configured_endpoint_urls = true\n");
  EXPECT_EQ(Url(AwsService::kSqs), "https://sqs.eu-west-1.amazonaws.com");
}

TEST(ParseEndpointUrl, SplitsSchemeHostPortAndPath) {
  AwsEndpoint e = ParseEndpointUrl("http://127.0.0.1:5000/base/?x=1");
  EXPECT_EQ(e.scheme_host, "http://127.0.0.1:5000");
  EXPECT_EQ(e.host, "127.0.0.1:5000");
  EXPECT_EQ(e.base_path, "/base");
  e = ParseEndpointUrl("sqs.eu-west-1.amazonaws.com/123456789012/q");
  EXPECT_EQ(e.scheme_host, "https://sqs.eu-west-1.amazonaws.com");
  EXPECT_EQ(e.base_path, "/123456789012/q");
  e = ParseEndpointUrl("https://h/");
  EXPECT_EQ(e.url(), "https://h");
}

}  // namespace
}  // namespace cloudmerge
