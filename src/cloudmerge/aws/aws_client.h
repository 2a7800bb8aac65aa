// AwsClient: the one way the service clients (SQS, CloudWatch Logs, EMR, EMR
// Serverless, ...) call AWS: the service's endpoint (aws/endpoints.h),
// credentials from the provider, a SigV4 signature, the one retry policy
// (aws/retry_policy.h: capped exponential backoff with full jitter on
// transport errors, throttling and 5xx), and the error answer parsed whatever the protocol (JSON `__type` /
// `message`, `x-amzn-ErrorType`, XML `<Code>` / `<Message>`). What an error
// means to the user (which ID to check, which permission) stays with each
// service client, which turns the AwsAnswer into its Status.
// S3 has its own client (streamed bodies, multipart, presigning) on the same
// endpoints and signing code.
//
// Thread safety: an AwsClient is immutable; Send may run on many threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "cloudmerge/aws/credentials.h"
#include "cloudmerge/aws/endpoints.h"
#include "cloudmerge/aws/http.h"
#include "cloudmerge/aws/retry_policy.h"
#include "cloudmerge/base/status.h"

namespace cloudmerge {

struct AwsError {
  std::string code;     // "ThrottlingException", "AWS.SimpleQueueService.NonExistentQueue", ...
  std::string message;  // the service's words, or the start of the body
};
AwsError ParseAwsError(const HttpResponse& response);
// Worth another attempt: 5xx, 429, throttling codes.
bool IsRetryableAnswer(long http_status, std::string_view code);

// `s` percent-encoded as one segment of AwsRequest::path ('/' encoded too).
std::string EncodePathSegment(std::string_view s);

struct AwsRequest {
  std::string method = "POST";
  std::string path = "/";  // appended to the endpoint's base path; already URI-encoded
  HttpHeaders headers;     // signed and sent
  std::string body;
  long timeout_ms = 60000;
};

struct AwsAnswer {
  HttpResponse response;
  AwsError error;     // empty on 2xx
  int attempts = 0;
  std::string credentials;  // AwsCredentials::Describe() of the signer, for messages
  bool ok() const { return response.status / 100 == 2; }
};

class AwsClient {
 public:
  AwsClient(AwsEndpoint endpoint, std::string region, std::string signing_name,
            std::shared_ptr<CredentialsProvider> credentials, std::shared_ptr<HttpTransport> transport,
            RetryPolicy retry = {});

  // The 2xx answer, or the last error answer (not retryable, or out of
  // attempts). A non-ok Status only when no answer came: the credentials'
  // error, or an IOError naming the endpoint after transport errors.
  Result<AwsAnswer> Send(const AwsRequest& request) const;
  // AWS JSON protocol: POST / with X-Amz-Target: <target>.
  Result<AwsAnswer> SendJson(const std::string& target, std::string_view content_type, const std::string& body,
                             long timeout_ms = 60000) const;

  const AwsEndpoint& endpoint() const { return endpoint_; }
  const std::string& region() const { return region_; }

 private:
  AwsEndpoint endpoint_;
  std::string region_, signing_name_;
  std::shared_ptr<CredentialsProvider> credentials_;
  std::shared_ptr<HttpTransport> transport_;
  RetryPolicy retry_;
};

}  // namespace cloudmerge
