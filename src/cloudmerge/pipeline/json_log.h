// JsonLog: the pipeline's log, one JSON object per line, the shape CloudWatch
// Logs ingests from Lambda as is and Logs Insights queries by field:
//   {"time":"2026-11-24T22:50:01.123Z","level":"info","event":"job.done",
//    "job":"exp42","message":"...", ...fields}
// Metrics go out in CloudWatch Embedded Metric Format (a "_aws" member), so
// Lambda's log ingestion turns them into CloudWatch metrics with no API call.
//
// Messages and fields must not carry secrets; callers pass descriptions
// (AwsCredentials::Describe), never keys.
// Thread safety: Log/Metric may be called from many threads; each line is
// written whole.
#pragma once

#include <cstdio>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace cloudmerge {

class JsonLog {
 public:
  explicit JsonLog(FILE* out = stdout) : out_(out) {}
  void Info(const std::string& event, const std::string& job, const std::string& message,
            nlohmann::json fields = nlohmann::json::object()) {
    Log("info", event, job, message, std::move(fields));
  }
  void Warn(const std::string& event, const std::string& job, const std::string& message,
            nlohmann::json fields = nlohmann::json::object()) {
    Log("warn", event, job, message, std::move(fields));
  }
  void Error(const std::string& event, const std::string& job, const std::string& message,
             nlohmann::json fields = nlohmann::json::object()) {
    Log("error", event, job, message, std::move(fields));
  }
  void Log(const std::string& level, const std::string& event, const std::string& job, const std::string& message,
           nlohmann::json fields);

  struct Metric {
    std::string name;
    double value;
    std::string unit;  // "Count", "Bytes", "Seconds", ...
  };
  // One EMF record in namespace "cloudmerge", dimension "Engine".
  void Metrics(const std::string& job, const std::string& engine, const std::vector<Metric>& metrics);

  // Also hands every line to `sink` (e.g. a CloudWatchLogsSink), with its time.
  void AddSink(std::function<void(const std::string& line, long long time_ms)> sink) {
    std::lock_guard<std::mutex> lock(mu_);
    sinks_.push_back(std::move(sink));
  }

  // Lines written so far (for tests and the summary).
  size_t lines() const { return lines_; }

 private:
  void Write(const nlohmann::json& line);
  FILE* out_;
  std::mutex mu_;
  size_t lines_ = 0;
  std::vector<std::function<void(const std::string&, long long)>> sinks_;
};

// ISO 8601 UTC with milliseconds, e.g. "2026-11-24T22:50:01.123Z".
std::string NowIso8601();
// ISO 8601 UTC to the second of a Unix time, e.g. "2026-11-24T22:50:01Z".
std::string IsoSeconds(long long unix_seconds);
// Where this process's standard output (its JSON log) goes, in words: "the
// file /var/log/cloudmerge.log on host h" when it is a file, else the output
// of the process (a terminal, a pipe, a service's journal).
std::string DescribeLocalLog();
// Milliseconds since the epoch.
long long NowMillis();

}  // namespace cloudmerge
