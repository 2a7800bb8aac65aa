// SqsClient: the few Amazon SQS calls `cloudmerge serve` needs, over the AWS
// JSON 1.0 protocol (what current SDKs speak), through AwsClient (SigV4, the
// shared retry policy).
// The endpoint is taken from the queue URL unless one is configured
// (aws/endpoints.h: AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL, the profile).
// Errors: a missing queue is NotFound, any other answer that retrying cannot
// change (access denied, bad request) InvalidArgument; IOError only for what
// may pass (network, throttling, 5xx) once the retries are spent.
//
// Thread safety: all methods may be called from several threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cloudmerge/aws/aws_client.h"
#include "cloudmerge/aws/credentials.h"
#include "cloudmerge/aws/http.h"
#include "cloudmerge/base/status.h"

namespace cloudmerge {

struct SqsMessage {
  std::string message_id;
  std::string receipt_handle;
  std::string body;
  int receive_count = 0;  // ApproximateReceiveCount
};

class SqsClient {
 public:
  SqsClient(std::string queue_url, std::string region, std::string endpoint_url,
            std::shared_ptr<CredentialsProvider> credentials, std::shared_ptr<HttpTransport> transport);

  // Long polling: waits up to wait_seconds (<= 20) for a message.
  Result<std::vector<SqsMessage>> Receive(int max_messages, int wait_seconds, int visibility_timeout_seconds);
  Status Delete(const std::string& receipt_handle);
  Status ChangeVisibility(const std::string& receipt_handle, int visibility_timeout_seconds);
  // Sends a message (tests and tools; the pipeline only consumes).
  Status Send(const std::string& body);

  const std::string& queue_url() const { return queue_url_; }

 private:
  Result<std::string> Call(const std::string& action, const std::string& json_body);
  std::string queue_url_;
  AwsClient client_;
};

}  // namespace cloudmerge
