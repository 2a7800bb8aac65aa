// SQS over AWS JSON 1.0: POST / with X-Amz-Target: AmazonSQS.<Action>.
#include "cloudmerge/aws/sqs_client.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cloudmerge/base/json_fields.h"

namespace cloudmerge {
using nlohmann::json;

SqsClient::SqsClient(std::string queue_url, std::string region, std::string endpoint_url,
                     std::shared_ptr<CredentialsProvider> credentials, std::shared_ptr<HttpTransport> transport)
    : queue_url_(std::move(queue_url)),
      // No endpoint configured: the queue URL's scheme and host, without its path.
      client_(ParseEndpointUrl(endpoint_url.empty() ? ParseEndpointUrl(queue_url_).scheme_host : endpoint_url),
              std::move(region), "sqs",
              std::move(credentials), std::move(transport)) {}

Result<std::string> SqsClient::Call(const std::string& action, const std::string& body) {
  // Long polls take up to 20 s.
  auto answer = client_.SendJson("AmazonSQS." + action, "application/x-amz-json-1.0", body, 60000);
  if (!answer.ok()) return answer.status();
  if (answer->ok()) return answer->response.body;
  const AwsError& e = answer->error;
  std::string what = fmt::format("SQS {} on {} at {}: {} ({} {})", action, queue_url_, client_.endpoint().url(),
                                 e.message, answer->response.status, e.code);
  if (IsRetryableAnswer(answer->response.status, e.code))
    return Status::IOError(fmt::format("{}, after {} attempts.", what, answer->attempts));
  // An answer that retrying cannot change: the caller must not wait it out.
  if (e.code.find("NonExistentQueue") != std::string::npos || e.code.find("QueueDoesNotExist") != std::string::npos)
    return Status::NotFound(fmt::format(
        "{}. Check the queue URL, and that the SQS endpoint is the queue's (set it with AWS_ENDPOINT_URL_SQS or "
        "AWS_ENDPOINT_URL; --endpoint-url is S3's only).", what));
  return Status::InvalidArgument(
      fmt::format("{}. Check the queue URL and that {} may sqs:{} on it.", what, answer->credentials, action));
}

Result<std::vector<SqsMessage>> SqsClient::Receive(int max_messages, int wait_seconds, int visibility) {
  json req = {{"QueueUrl", queue_url_},
              {"MaxNumberOfMessages", max_messages},
              {"WaitTimeSeconds", wait_seconds},
              {"VisibilityTimeout", visibility},
              {"AttributeNames", {"ApproximateReceiveCount"}},
              {"MessageSystemAttributeNames", {"ApproximateReceiveCount"}}};
  auto body = Call("ReceiveMessage", req.dump());
  if (!body.ok()) return body.status();
  json j = json::parse(*body, nullptr, false);
  std::vector<SqsMessage> out;
  if (!j.is_object() || !j.contains("Messages") || !j["Messages"].is_array()) return out;
  for (const auto& m : j["Messages"]) {
    SqsMessage msg;
    msg.message_id = JsonString(m, "MessageId");
    msg.receipt_handle = JsonString(m, "ReceiptHandle");
    msg.body = JsonString(m, "Body");
    if (m.contains("Attributes") && m["Attributes"].is_object())
      msg.receive_count = std::atoi(JsonString(m["Attributes"], "ApproximateReceiveCount", "0").c_str());
    out.push_back(std::move(msg));
  }
  return out;
}

Status SqsClient::Delete(const std::string& receipt_handle) {
  auto r = Call("DeleteMessage", json{{"QueueUrl", queue_url_}, {"ReceiptHandle", receipt_handle}}.dump());
  return r.ok() ? Status::OK() : r.status();
}

Status SqsClient::ChangeVisibility(const std::string& receipt_handle, int visibility) {
  auto r = Call("ChangeMessageVisibility",
                json{{"QueueUrl", queue_url_}, {"ReceiptHandle", receipt_handle}, {"VisibilityTimeout", visibility}}.dump());
  return r.ok() ? Status::OK() : r.status();
}

Status SqsClient::Send(const std::string& body) {
  auto r = Call("SendMessage", json{{"QueueUrl", queue_url_}, {"MessageBody", body}}.dump());
  return r.ok() ? Status::OK() : r.status();
}

}  // namespace cloudmerge
