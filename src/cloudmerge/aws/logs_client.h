// LogsClient: the three CloudWatch Logs calls the log sink needs
// (CreateLogGroup, CreateLogStream, PutLogEvents) over AWS JSON 1.1, through
// AwsClient (endpoint, SigV4, the shared retry policy). Batching and the
// background sender stay with pipeline/cloudwatch_logs.h.
//
// Thread safety: immutable after construction; calls may run on many threads.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cloudmerge/aws/aws_client.h"

namespace cloudmerge {

struct LogEvent {
  long long timestamp_ms = 0;
  std::string message;
};

class LogsClient {
 public:
  LogsClient(AwsEndpoint endpoint, std::string region, std::shared_ptr<CredentialsProvider> credentials,
             std::shared_ptr<HttpTransport> transport);

  // Both succeed when the group / stream already exists.
  Status CreateLogGroup(const std::string& group);
  Status CreateLogStream(const std::string& group, const std::string& stream);
  // At most 10,000 events and ~1 MB per call (the API's limits; the caller batches).
  Status PutLogEvents(const std::string& group, const std::string& stream, const std::vector<LogEvent>& events);

 private:
  Status Call(const std::string& action, const std::string& group, const std::string& body);
  AwsClient client_;
};

}  // namespace cloudmerge
