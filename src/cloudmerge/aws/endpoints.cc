// Endpoint resolution per service (see endpoints.h for the order and why).
#include "cloudmerge/aws/endpoints.h"
#include "cloudmerge/base/ascii.h"

#include <algorithm>
#include <cctype>

namespace cloudmerge {
namespace {

struct ServiceInfo {
  std::string_view name;         // for messages
  std::string_view env_suffix;   // AWS_ENDPOINT_URL_<suffix>
  std::string_view alt_suffix;   // a second accepted spelling, or ""
  std::string_view config_key;   // <key>.endpoint_url in the shared config
  std::string_view host_prefix;  // <prefix>.<region>.<domain>
};

ServiceInfo Info(AwsService s) {
  switch (s) {
    case AwsService::kS3: return {"S3", "S3", "", "s3", "s3"};
    case AwsService::kSqs: return {"SQS", "SQS", "", "sqs", "sqs"};
    case AwsService::kSns: return {"SNS", "SNS", "", "sns", "sns"};
    // The SDKs derive CLOUDWATCH_LOGS from the service id "CloudWatch Logs";
    // LOGS (the signing name) is accepted too.
    case AwsService::kLogs: return {"CloudWatch Logs", "CLOUDWATCH_LOGS", "LOGS", "cloudwatch_logs", "logs"};
    case AwsService::kEmr: return {"EMR", "EMR", "", "emr", "elasticmapreduce"};
    case AwsService::kEmrServerless:
      return {"EMR Serverless", "EMR_SERVERLESS", "", "emr_serverless", "emr-serverless"};
  }
  return {"?", "", "", "", ""};
}

}  // namespace

std::string_view AwsServiceName(AwsService service) { return Info(service).name; }

AwsEndpoint ParseEndpointUrl(std::string_view url) {
  AwsEndpoint e;
  size_t scheme_end = url.find("://");
  std::string scheme = scheme_end == std::string_view::npos ? "https" : std::string(url.substr(0, scheme_end));
  std::string_view rest = scheme_end == std::string_view::npos ? url : url.substr(scheme_end + 3);
  size_t slash = rest.find_first_of("/?#");
  e.host = std::string(rest.substr(0, slash));
  if (slash != std::string_view::npos && rest[slash] == '/') {
    std::string_view path = rest.substr(slash);
    path = path.substr(0, path.find_first_of("?#"));
    e.base_path = std::string(path);
  }
  while (!e.base_path.empty() && e.base_path.back() == '/') e.base_path.pop_back();
  e.scheme_host = scheme + "://" + e.host;
  return e;
}

std::string AwsDomain(const std::string& region) {
  return region.rfind("cn-", 0) == 0 ? "amazonaws.com.cn" : "amazonaws.com";
}

std::string ConfiguredEndpointUrl(AwsService service, const AwsEnvironment& env, const std::string& explicit_url,
                                  std::string* source) {
  auto found = [&](std::string value, std::string from) {
    if (source) *source = std::move(from);
    return value;
  };
  if (!explicit_url.empty()) return found(explicit_url, "the command line");
  bool ignore = AsciiLower(env.getenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")) == "true" ||
                AsciiLower(ProfileConfigValue(env, "ignore_configured_endpoint_urls")) == "true";
  if (ignore) return "";
  ServiceInfo info = Info(service);
  for (std::string_view suffix : {info.env_suffix, info.alt_suffix}) {
    if (suffix.empty()) continue;
    std::string var = "AWS_ENDPOINT_URL_" + std::string(suffix);
    if (std::string v = env.getenv(var); !v.empty()) return found(v, var);
  }
  if (std::string v = env.getenv("AWS_ENDPOINT_URL"); !v.empty()) return found(v, "AWS_ENDPOINT_URL");
  std::string key = std::string(info.config_key) + ".endpoint_url";
  if (std::string v = ServicesConfigValue(env, key); !v.empty()) return found(v, "the profile's services " + key);
  if (std::string v = ProfileConfigValue(env, key); !v.empty()) return found(v, "the profile's " + key);
  if (std::string v = ProfileConfigValue(env, "endpoint_url"); !v.empty()) return found(v, "the profile's endpoint_url");
  return "";
}

AwsEndpoint ResolveEndpoint(AwsService service, const std::string& region, const AwsEnvironment& env,
                            const std::string& explicit_url) {
  std::string source;
  std::string url = ConfiguredEndpointUrl(service, env, explicit_url, &source);
  if (url.empty()) {
    url = "https://" + std::string(Info(service).host_prefix) + "." + region + "." + AwsDomain(region);
    source = "the public endpoint";
  }
  AwsEndpoint e = ParseEndpointUrl(url);
  e.source = std::move(source);
  return e;
}

}  // namespace cloudmerge
