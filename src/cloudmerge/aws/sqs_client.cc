// SQS over AWS JSON 1.0: POST / with X-Amz-Target: AmazonSQS.<Action>.
#include "cloudmerge/random_seed.h"
#include "cloudmerge/aws/sqs_client.h"

#include <chrono>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cloudmerge/aws/aws_json.h"
#include "cloudmerge/json_fields.h"

namespace cloudmerge {
namespace {

using nlohmann::json;

// "https://sqs.eu-west-1.amazonaws.com/123/q" -> "https://sqs.eu-west-1.amazonaws.com"
std::string EndpointOf(const std::string& url) {
  size_t scheme = url.find("://");
  size_t slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  return slash == std::string::npos ? url : url.substr(0, slash);
}

bool Retryable(long status, const std::string& body) {
  return status >= 500 || status == 429 || body.find("Throttl") != std::string::npos ||
         body.find("RequestThrottled") != std::string::npos;
}

}  // namespace

SqsClient::SqsClient(std::string queue_url, std::string region, std::string endpoint_url,
                     std::shared_ptr<CredentialsProvider> credentials, std::shared_ptr<HttpTransport> transport)
    : queue_url_(std::move(queue_url)),
      region_(std::move(region)),
      endpoint_(endpoint_url.empty() ? EndpointOf(queue_url_) : std::move(endpoint_url)),
      credentials_(std::move(credentials)),
      transport_(std::move(transport)) {
  while (!endpoint_.empty() && endpoint_.back() == '/') endpoint_.pop_back();
}

Result<std::string> SqsClient::Call(const std::string& action, const std::string& body) {
  std::mt19937_64 rng(RandomSeed());
  Status last;
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (attempt > 0) {
      int cap = std::min(100 << attempt, 5000);
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % (cap + 1)));
    }
    auto creds = credentials_->Get();
    if (!creds.ok()) return creds.status();
    AwsJsonService svc{endpoint_, region_, "sqs", "AmazonSQS", "application/x-amz-json-1.0"};
    auto resp = SendAwsJson(*transport_, *creds, svc, action, body, 60000);  // long polls take up to 20 s
    if (!resp.ok()) {
      last = resp.status();
      continue;
    }
    if (resp->status == 200) return resp->body;
    json err = json::parse(resp->body, nullptr, false);
    std::string type = JsonString(err, "__type");
    std::string message = JsonString(err, "message", JsonString(err, "Message", resp->body.substr(0, 300)));
    last = Status::IOError(fmt::format("SQS {} on {}: {} ({} {}). Check the queue URL and that {} may sqs:{} on it.",
                                       action, queue_url_, message, resp->status, type, creds->Describe(), action));
    if (!Retryable(resp->status, resp->body)) return last;
  }
  return last;
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
