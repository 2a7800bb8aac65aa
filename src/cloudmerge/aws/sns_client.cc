// SNS Publish: Action=Publish&Version=2010-03-31&... as x-www-form-urlencoded.
#include "cloudmerge/aws/sns_client.h"

#include <fmt/format.h>

#include "cloudmerge/aws/sigv4.h"

namespace cloudmerge {

SnsClient::SnsClient(AwsEndpoint endpoint, std::string region, std::shared_ptr<CredentialsProvider> credentials,
                     std::shared_ptr<HttpTransport> transport, RetryPolicy retry)
    : client_(std::move(endpoint), std::move(region), "sns", std::move(credentials), std::move(transport), retry) {}

Result<AwsAnswer> SnsClient::Publish(const std::string& topic_arn, const std::string& subject,
                                     const std::string& message) const {
  auto enc = [](const std::string& s) { return UriEncode(s, true); };
  AwsRequest r;
  r.path = "/";
  r.headers = {{"content-type", "application/x-www-form-urlencoded; charset=utf-8"}};
  r.body = fmt::format("Action=Publish&Version=2010-03-31&TopicArn={}&Subject={}&Message={}", enc(topic_arn),
                       enc(subject), enc(message));
  r.timeout_ms = 30000;
  return client_.Send(r);
}

}  // namespace cloudmerge
