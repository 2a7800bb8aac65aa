// SqsClient: the few Amazon SQS calls `cloudmerge serve` needs, over the AWS
// JSON 1.0 protocol (what current SDKs speak), signed with our SigV4, with
// bounded retries on throttling, 5xx and transport errors.
// The endpoint is taken from the queue URL unless one is configured.
//
// Thread safety: all methods may be called from several threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cloudmerge/aws/credentials.h"
#include "cloudmerge/aws/http.h"
#include "cloudmerge/status.h"

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
  std::string queue_url_, region_, endpoint_;
  std::shared_ptr<CredentialsProvider> credentials_;
  std::shared_ptr<HttpTransport> transport_;
};

}  // namespace cloudmerge
