// SnsClient: SNS Publish over the Query API (a form-encoded POST), through
// AwsClient (endpoint, SigV4 for "sns", the shared retry policy). What a
// notification's subject and text may be, and what an error means to the
// user, stay with the notifier (pipeline/notify/notifier_sns.cc).
//
// Thread safety: immutable after construction; Publish may run on many threads.
#pragma once

#include <memory>
#include <string>

#include "cloudmerge/aws/aws_client.h"

namespace cloudmerge {

class SnsClient {
 public:
  // Four attempts, backoff up to 3.2 s: a notification is small and a
  // stalled attempt is better retried than waited for.
  SnsClient(AwsEndpoint endpoint, std::string region, std::shared_ptr<CredentialsProvider> credentials,
            std::shared_ptr<HttpTransport> transport, RetryPolicy retry = {4, 200, 3200});

  // The answer (2xx with a MessageId, or the last error answer); a non-ok
  // Status only when no answer came at all.
  Result<AwsAnswer> Publish(const std::string& topic_arn, const std::string& subject,
                            const std::string& message) const;
  const AwsClient& client() const { return client_; }

 private:
  AwsClient client_;
};

}  // namespace cloudmerge
