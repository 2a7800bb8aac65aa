// CloudWatch Logs over AWS JSON 1.1: POST / with X-Amz-Target: Logs_20140328.<Action>.
#include "cloudmerge/aws/logs_client.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace cloudmerge {

using nlohmann::json;

LogsClient::LogsClient(AwsEndpoint endpoint, std::string region, std::shared_ptr<CredentialsProvider> credentials,
                       std::shared_ptr<HttpTransport> transport)
    : client_(std::move(endpoint), std::move(region), "logs", std::move(credentials), std::move(transport),
              RetryPolicy{4, 200, 3200}) {}

Status LogsClient::Call(const std::string& action, const std::string& group, const std::string& body) {
  auto answer = client_.SendJson("Logs_20140328." + action, "application/x-amz-json-1.1", body, 30000);
  if (!answer.ok()) return answer.status();
  if (answer->ok() || answer->error.code.find("ResourceAlreadyExists") != std::string::npos) return Status::OK();
  return Status::IOError(fmt::format("CloudWatch Logs {} for group {} at {}: {} ({} {}) with {}", action, group,
                                     client_.endpoint().url(), answer->error.message, answer->response.status,
                                     answer->error.code, answer->credentials));
}

Status LogsClient::CreateLogGroup(const std::string& group) {
  return Call("CreateLogGroup", group, json{{"logGroupName", group}}.dump());
}

Status LogsClient::CreateLogStream(const std::string& group, const std::string& stream) {
  return Call("CreateLogStream", group, json{{"logGroupName", group}, {"logStreamName", stream}}.dump());
}

Status LogsClient::PutLogEvents(const std::string& group, const std::string& stream,
                                const std::vector<LogEvent>& events) {
  json list = json::array();
  for (const auto& e : events) list.push_back({{"timestamp", e.timestamp_ms}, {"message", e.message}});
  // Lines are UTF-8 as written; a stray invalid byte is replaced, not fatal.
  std::string body = json{{"logGroupName", group}, {"logStreamName", stream}, {"logEvents", list}}.dump(
      -1, ' ', false, json::error_handler_t::replace);
  return Call("PutLogEvents", group, body);
}

}  // namespace cloudmerge
