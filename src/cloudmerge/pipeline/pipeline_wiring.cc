#include "cloudmerge/pipeline/pipeline_wiring.h"

#include <fstream>

#include <fmt/format.h>

#include "cloudmerge/aws/endpoints.h"

namespace cloudmerge {
namespace {

Status LoadSmtpSecrets(const std::string& file, SmtpOptions* o) {
  if (file.empty()) return Status::OK();
  std::ifstream in(file);
  if (!in) return Status::InvalidArgument(fmt::format("--smtp-secrets-file: cannot read {}", file));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("user=", 0) == 0) o->username = line.substr(5);
    if (line.rfind("password=", 0) == 0) o->password = line.substr(9);
  }
  return Status::OK();
}

}  // namespace

Status AddNotifierChannels(const PipelineConfig& c, const AwsEnvironment& aws_env,
                           std::shared_ptr<CredentialsProvider> credentials, std::shared_ptr<HttpTransport> transport,
                           std::vector<std::unique_ptr<Notifier>>* channels) {
  if (!c.smtp_url.empty()) {
    SmtpOptions so;
    so.url = c.smtp_url;
    so.from = c.mail_from;
    so.to = c.mail_to;
    so.require_tls = c.smtp_require_tls;
    so.username = c.smtp_user;
    so.password = c.smtp_password;
    CM_RETURN_IF_ERROR(LoadSmtpSecrets(c.smtp_secrets_file, &so));
    channels->push_back(NewSmtpNotifier(so));
  }
  if (!c.sns_topic_arn.empty()) {
    SnsOptions so;
    so.topic_arn = c.sns_topic_arn;
    so.region = ResolveRegion(aws_env);
    so.endpoint_url = ConfiguredEndpointUrl(AwsService::kSns, aws_env);  // "": the topic region's
    channels->push_back(NewSnsNotifier(so, std::move(credentials), std::move(transport)));
  }
  return Status::OK();
}

void LinkS3Objects(std::function<Result<std::shared_ptr<S3Client>>()> s3,
                   std::shared_ptr<CredentialsProvider> credentials, PipelineOptions* o) {
  // Emails link S3 objects by presigned GET URLs (the recipient needs no AWS account).
  o->share_link = [s3](const std::string& uri, int64_t expires_s) -> Result<std::string> {
    if (!S3Uri::IsS3(uri)) return uri;
    auto parsed = S3Uri::Parse(uri);
    if (!parsed.ok()) return parsed.status();
    auto c = s3();
    if (!c.ok()) return c.status();
    return (*c)->PresignGet(*parsed, expires_s);
  };
  // The links die with the credentials that signed them (temporary ones: hours),
  // asked when a link is made, so the email states when they really stop working.
  o->signing_credentials_expiry = [credentials]() -> int64_t {
    auto creds = credentials->Get();
    if (!creds.ok()) return 0;
    // A session token without a stated expiry (Lambda's role, given as variables): temporary, end unknown.
    if (creds->expiration == 0 && !creds->session_token.empty()) return -1;
    return static_cast<int64_t>(creds->expiration);
  };
}

}  // namespace cloudmerge
