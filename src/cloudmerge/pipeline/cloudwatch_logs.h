// CloudWatchLogsSink: ships the JSON log lines of `serve` (outside Lambda,
// where stdout is not collected) to a CloudWatch Logs stream with
// CreateLogGroup / CreateLogStream / PutLogEvents (aws/logs_client.h).
// Lines are queued by Add() and sent by a background thread in batches (every
// second, or sooner when 1 MB or 10,000 events are queued, the API's limits);
// Flush() sends what is queued and waits. A failed batch is retried a few
// times, then dropped with a message on stderr: logging must never stop the
// pipeline.
//
// Thread safety: Add may be called from any thread; one background sender.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "cloudmerge/aws/credentials.h"
#include "cloudmerge/aws/http.h"
#include "cloudmerge/aws/logs_client.h"
#include "cloudmerge/base/status.h"

namespace cloudmerge {

struct CloudWatchLogsOptions {
  std::string log_group;
  std::string log_stream;    // default: host-pid-start time
  std::string region;
  std::string endpoint_url;  // empty: https://logs.<region>.amazonaws.com
  int flush_ms = 1000;
};

// A log stream in words with the AWS console's link to it, for emails:
// "CloudWatch Logs, log group G, log stream S (AWS console: https://...)".
// The console's fragment escapes each '%' of the URL-encoded names as "$25".
std::string DescribeCloudWatchStream(const std::string& region, const std::string& group, const std::string& stream);

class CloudWatchLogsSink {
 public:
  CloudWatchLogsSink(CloudWatchLogsOptions options, std::shared_ptr<CredentialsProvider> credentials,
                     std::shared_ptr<HttpTransport> transport);
  ~CloudWatchLogsSink();  // flushes
  // Creates the group (if missing) and the stream, then starts sending.
  Status Start();
  void Add(std::string line, long long time_ms);
  void Flush();
  const CloudWatchLogsOptions& options() const { return o_; }

 private:
  void Loop();
  Status SendBatch(std::deque<std::pair<long long, std::string>>* batch);

  CloudWatchLogsOptions o_;
  LogsClient client_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<long long, std::string>> queue_;
  size_t queued_bytes_ = 0;
  bool stop_ = false, flush_requested_ = false;
  size_t in_flight_ = 0;
  std::condition_variable drained_;
  std::thread thread_;
};

}  // namespace cloudmerge
