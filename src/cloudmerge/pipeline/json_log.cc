// JSON-lines log and CloudWatch Embedded Metric Format records.
#include "cloudmerge/pipeline/json_log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <ctime>

#include <fmt/format.h>

namespace cloudmerge {

long long NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string NowIso8601() {
  long long ms = NowMillis();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, ms % 1000);
}

std::string IsoSeconds(long long unix_seconds) {
  std::time_t secs = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
}

std::string DescribeLocalLog() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  struct stat st {};
  char path[4096] = {0};
  ssize_t n = readlink("/proc/self/fd/1", path, sizeof(path) - 1);
  if (fstat(STDOUT_FILENO, &st) == 0 && S_ISREG(st.st_mode) && n > 0 && path[0] == '/')
    return fmt::format("the log file {} on the computer {}", std::string(path, static_cast<size_t>(n)), host);
  return fmt::format("the output of the `cloudmerge serve` command on the computer {} (process {}); start it with "
                     "its output sent to a file, e.g. `cloudmerge serve ... >> cloudmerge.log`, to keep it",
                     host, getpid());
}

void JsonLog::Log(const std::string& level, const std::string& event, const std::string& job,
                  const std::string& message, nlohmann::json fields) {
  nlohmann::json line = {{"time", NowIso8601()}, {"level", level}, {"event", event}};
  if (!job.empty()) line["job"] = job;
  line["message"] = message;
  if (fields.is_object())
    for (auto& [k, v] : fields.items())
      if (!line.contains(k)) line[k] = v;
  Write(line);
}

void JsonLog::Metrics(const std::string& job, const std::string& engine, const std::vector<Metric>& metrics) {
  nlohmann::json defs = nlohmann::json::array();
  nlohmann::json line = {{"time", NowIso8601()}, {"level", "info"}, {"event", "metrics"}, {"Engine", engine}};
  if (!job.empty()) line["job"] = job;
  for (const auto& m : metrics) {
    defs.push_back({{"Name", m.name}, {"Unit", m.unit}});
    line[m.name] = m.value;
  }
  line["_aws"] = {{"Timestamp", NowMillis()},
                  {"CloudWatchMetrics",
                   nlohmann::json::array({{{"Namespace", "cloudmerge"},
                                           {"Dimensions", nlohmann::json::array({nlohmann::json::array({"Engine"})})},
                                           {"Metrics", defs}}})}};
  Write(line);
}

void JsonLog::Write(const nlohmann::json& line) {
  // Invalid UTF-8 (e.g. a key from a damaged file) is replaced, never thrown.
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::lock_guard<std::mutex> lock(mu_);
  std::fputs(text.c_str(), out_);
  std::fputc('\n', out_);
  std::fflush(out_);
  ++lines_;
  if (!sinks_.empty()) {
    long long now = NowMillis();
    for (auto& sink : sinks_) sink(text, now);
  }
}

}  // namespace cloudmerge
