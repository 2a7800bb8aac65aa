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
// Region and the shared files: shared_config.h.
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
#include "cloudmerge/aws/shared_config.h"
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

}  // namespace cloudmerge
