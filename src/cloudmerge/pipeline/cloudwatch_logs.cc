// The log sink: a queue of lines and one sender thread (calls in aws/logs_client.h).
#include "cloudmerge/pipeline/cloudwatch_logs.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>

#include <cctype>

#include <fmt/format.h>

namespace cloudmerge {

std::string DescribeCloudWatchStream(const std::string& region, const std::string& group, const std::string& stream) {
  auto console = [](const std::string& name) {
    std::string out;
    for (unsigned char c : name) {
      if (std::isalnum(c) || c == '-' || c == '_' || c == '.') out += static_cast<char>(c);
      else out += fmt::format("$25{:02X}", c);
    }
    return out;
  };
  return fmt::format("CloudWatch Logs, log group {}, log stream {} (open it in the AWS console: "
                     "https://{}.console.aws.amazon.com/cloudwatch/home?region={}#logsV2:log-groups/log-group/{}/"
                     "log-events/{})",
                     group, stream, region, region, console(group), console(stream));
}

namespace {

constexpr size_t kMaxBatchEvents = 10000;
constexpr size_t kMaxBatchBytes = 1000000;  // the API's limit is 1,048,576 incl. 26 bytes per event

}  // namespace

CloudWatchLogsSink::CloudWatchLogsSink(CloudWatchLogsOptions o, std::shared_ptr<CredentialsProvider> credentials,
                                       std::shared_ptr<HttpTransport> transport)
    : o_(std::move(o)),
      client_(ParseEndpointUrl(o_.endpoint_url.empty() ? fmt::format("https://logs.{}.{}", o_.region,
                                                                     AwsDomain(o_.region))
                                                       : o_.endpoint_url),
              o_.region, std::move(credentials), std::move(transport)) {
  if (o_.log_stream.empty()) {
    char host[128] = {0};
    gethostname(host, sizeof(host) - 1);
    o_.log_stream = fmt::format("{}-{}-{}", host, getpid(), std::time(nullptr));
  }
}

CloudWatchLogsSink::~CloudWatchLogsSink() {
  if (!thread_.joinable()) return;
  Flush();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

Status CloudWatchLogsSink::Start() {
  if (Status g = client_.CreateLogGroup(o_.log_group); !g.ok()) return g;
  if (Status s = client_.CreateLogStream(o_.log_group, o_.log_stream); !s.ok()) return s;
  thread_ = std::thread([this] { Loop(); });
  return Status::OK();
}

void CloudWatchLogsSink::Add(std::string line, long long time_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  queued_bytes_ += line.size() + 26;
  queue_.emplace_back(time_ms, std::move(line));
  if (queue_.size() >= kMaxBatchEvents || queued_bytes_ >= kMaxBatchBytes) cv_.notify_all();
}

void CloudWatchLogsSink::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  if (!thread_.joinable()) return;
  flush_requested_ = true;
  cv_.notify_all();
  drained_.wait_for(lock, std::chrono::seconds(30), [&] { return queue_.empty() && in_flight_ == 0; });
}

Status CloudWatchLogsSink::SendBatch(std::deque<std::pair<long long, std::string>>* batch) {
  std::vector<LogEvent> events;
  events.reserve(batch->size());
  for (auto& [t, line] : *batch) events.push_back({t, std::move(line)});
  return client_.PutLogEvents(o_.log_group, o_.log_stream, events);
}

void CloudWatchLogsSink::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait_for(lock, std::chrono::milliseconds(o_.flush_ms), [&] {
      return stop_ || flush_requested_ || queue_.size() >= kMaxBatchEvents || queued_bytes_ >= kMaxBatchBytes;
    });
    while (!queue_.empty()) {
      std::deque<std::pair<long long, std::string>> batch;
      size_t bytes = 0;
      while (!queue_.empty() && batch.size() < kMaxBatchEvents &&
             bytes + queue_.front().second.size() + 26 <= kMaxBatchBytes) {
        bytes += queue_.front().second.size() + 26;
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      if (batch.empty()) {  // one line over the limit: it cannot be sent whole
        queue_.pop_front();
        continue;
      }
      queued_bytes_ -= std::min(queued_bytes_, bytes);
      ++in_flight_;
      lock.unlock();
      Status st = SendBatch(&batch);
      if (!st.ok()) std::fprintf(stderr, "cloudmerge: %zu log lines not sent to CloudWatch Logs: %s\n", batch.size(),
                                 st.message().c_str());
      lock.lock();
      --in_flight_;
    }
    flush_requested_ = false;
    drained_.notify_all();
    if (stop_) return;
  }
}

}  // namespace cloudmerge
