// Where each AWS service's calls go: endpoint resolution as the AWS SDKs and
// the CLI do it, in one place, for every client (S3, SQS, SNS, CloudWatch
// Logs, EMR, EMR Serverless). For a service, the first that is set wins:
//   1. an explicit endpoint from the caller (S3: `--endpoint-url`; EMR / EMR
//      Serverless: `--emr-endpoint-url` / `--aws-endpoint-url`); other
//      services have none, so `--endpoint-url` never moves SQS, SNS or Logs;
//   2. AWS_ENDPOINT_URL_<SERVICE>: S3, SQS, SNS, CLOUDWATCH_LOGS (also LOGS),
//      EMR, EMR_SERVERLESS;
//   3. AWS_ENDPOINT_URL;
//   4. the shared config: the profile's `services = NAME` section's
//      `<service>.endpoint_url`, the profile's own `<service>.endpoint_url`
//      (the CLI's nested `s3 =` block), then the profile's `endpoint_url`;
//   5. the public regional endpoint (or, for SQS, the queue URL's host).
// AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true (or the profile's
// ignore_configured_endpoint_urls = true) skips 2-4, as in the SDKs.
//
// ParseEndpointUrl is the one place a URL is split into what a request needs
// (scheme and host for the URL, the Host header that is signed, a base path).
// Pure functions of their arguments (the environment is read through
// AwsEnvironment); thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "cloudmerge/aws/credentials.h"

namespace cloudmerge {

enum class AwsService { kS3, kSqs, kSns, kLogs, kEmr, kEmrServerless };

// "S3", "SQS", "SNS", "CloudWatch Logs", "EMR", "EMR Serverless": for messages.
std::string_view AwsServiceName(AwsService service);

struct AwsEndpoint {
  std::string scheme_host;  // "https://sns.eu-west-1.amazonaws.com", "http://127.0.0.1:5000"
  std::string host;         // the Host header: host, with ":port" when the URL has one
  std::string base_path;    // "" or "/prefix" (never a trailing '/')
  std::string source;       // where it came from: "--endpoint-url", "AWS_ENDPOINT_URL_SNS", ...
  // scheme_host + base_path: where to append "/" or a request path.
  std::string url() const { return scheme_host + base_path; }
};

// Splits "http://host:port/base/" (scheme defaults to https when absent).
AwsEndpoint ParseEndpointUrl(std::string_view url);

// "amazonaws.com", or "amazonaws.com.cn" for the China regions.
std::string AwsDomain(const std::string& region);

// The endpoint set by 1-4 above, or "" when none is (the caller then uses its
// default). *source (optional) names the setting it came from.
std::string ConfiguredEndpointUrl(AwsService service, const AwsEnvironment& env,
                                  const std::string& explicit_url = "", std::string* source = nullptr);

// 1-5: always an endpoint. For S3 the public endpoint is the regional
// path-style one (the S3 client itself picks virtual-hosted style when none is
// configured); for SQS it is sqs.<region> (a client with a queue URL prefers its host).
AwsEndpoint ResolveEndpoint(AwsService service, const std::string& region, const AwsEnvironment& env,
                            const std::string& explicit_url = "");

}  // namespace cloudmerge
