// AWS credentials and region, found the way AWS SDKs and the CLI find them
// (the standard provider chain):
//   1. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN;
//   2. shared files: ~/.aws/credentials and ~/.aws/config (AWS_SHARED_CREDENTIALS_FILE,
//      AWS_CONFIG_FILE), profile from AWS_PROFILE (default "default"); in the
//      config file profiles are "[profile NAME]" except "[default]";
//   3. the container endpoint Lambda/ECS provide: AWS_CONTAINER_CREDENTIALS_FULL_URI
//      or 169.254.170.2 + AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, with
//      AWS_CONTAINER_AUTHORIZATION_TOKEN (or _TOKEN_FILE) as Authorization;
//   4. EC2 instance metadata, IMDSv2 (PUT /latest/api/token, then GET the role's
//      credentials); skipped when AWS_EC2_METADATA_DISABLED=true. The endpoint
//      is AWS_EC2_METADATA_SERVICE_ENDPOINT or http://169.254.169.254.
// Temporary credentials (3, 4) are refreshed before they expire.
// Region: AWS_REGION, AWS_DEFAULT_REGION, then the profile's `region`, else us-east-1.
//
// Secrets never appear in a Status message or a log: describe credentials with
// AwsCredentials::Describe(), which shows the source and the key id's last 4.
// Thread safety: a CredentialsProvider may be shared by threads.
#pragma once

#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "cloudmerge/aws/http.h"
#include "cloudmerge/base/status.h"

namespace cloudmerge {

struct AwsCredentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty for long-term keys
  std::string source;         // e.g. "environment variables", "profile 'dev' in /root/.aws/credentials"
  std::time_t expiration = 0; // 0: does not expire
  // "access key ...WXYZ from <source>": safe to print.
  std::string Describe() const;
};

// Where the chain looks; tests fill it instead of touching the real process
// environment and home directory.
struct AwsEnvironment {
  std::function<std::string(const std::string&)> getenv = [](const std::string&) { return std::string(); };  // "" when unset
  std::string home;                                       // for ~/.aws
  static AwsEnvironment FromProcess();
};

class CredentialsProvider {
 public:
  virtual ~CredentialsProvider() = default;
  virtual Result<AwsCredentials> Get() = 0;
};

// The standard chain. `transport` is used for the container and IMDS endpoints.
std::shared_ptr<CredentialsProvider> NewDefaultCredentialsChain(const AwsEnvironment& env,
                                                                std::shared_ptr<HttpTransport> transport);
// Fixed credentials (tests, or keys given explicitly).
std::shared_ptr<CredentialsProvider> NewStaticCredentials(AwsCredentials creds);

std::string ResolveRegion(const AwsEnvironment& env);
// The profile's value of `key` in ~/.aws/config (e.g. "endpoint_url", "s3.addressing_style"), or "".
std::string ProfileConfigValue(const AwsEnvironment& env, const std::string& key);
// The value of `key` (e.g. "sns.endpoint_url") in the "[services NAME]" section
// the profile names with `services = NAME`, or "" (the SDKs' per-service config).
std::string ServicesConfigValue(const AwsEnvironment& env, const std::string& key);

// INI parsing of the shared files: section -> key -> value (exposed for tests).
std::map<std::string, std::map<std::string, std::string>> ParseAwsIni(const std::string& text);

}  // namespace cloudmerge
