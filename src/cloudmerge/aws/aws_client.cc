// AwsClient: sign, send, retry with jitter, parse the error (aws_client.h).
#include "cloudmerge/aws/aws_client.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cloudmerge/aws/sigv4.h"

namespace cloudmerge {
namespace {

using nlohmann::json;

std::string JsonStr(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_string()) return "";
  return j[key].get<std::string>();
}

// The text of the first <tag>...</tag> (error documents are small and flat).
std::string XmlTag(const std::string& body, const std::string& tag) {
  size_t open = body.find("<" + tag + ">");
  if (open == std::string::npos) return "";
  open += tag.size() + 2;
  size_t close = body.find("</" + tag + ">", open);
  return close == std::string::npos ? "" : body.substr(open, close - open);
}

}  // namespace

std::string EncodePathSegment(std::string_view s) { return UriEncode(s, true); }

AwsError ParseAwsError(const HttpResponse& r) {
  AwsError e;
  json j = json::parse(r.body.empty() ? "{}" : r.body, nullptr, false);
  if (j.is_object()) {
    e.code = JsonStr(j, "__type").empty() ? JsonStr(j, "code") : JsonStr(j, "__type");
    e.message = JsonStr(j, "message").empty() ? JsonStr(j, "Message") : JsonStr(j, "message");
  } else {
    e.code = XmlTag(r.body, "Code");
    e.message = XmlTag(r.body, "Message");
  }
  // (HttpResponse::Header lives with the curl transport, outside this library.)
  for (const auto& [name, value] : r.headers)
    if (e.code.empty() && name == "x-amzn-errortype") e.code = value;
  e.code = e.code.substr(0, e.code.find(':'));  // "Type:http://internal.amazon.com/..." (REST JSON)
  if (e.message.empty()) e.message = r.body.substr(0, 300);
  return e;
}

bool IsRetryableAnswer(long status, std::string_view code) {
  return status >= 500 || status == 429 || code.find("Throttl") != std::string_view::npos ||
         code == "RequestLimitExceeded" || code == "TooManyRequestsException" || code == "RequestTimeout" ||
         code == "ServiceUnavailable" || code == "InternalError" || code == "InternalFailure";
}

AwsClient::AwsClient(AwsEndpoint endpoint, std::string region, std::string signing_name,
                     std::shared_ptr<CredentialsProvider> credentials, std::shared_ptr<HttpTransport> transport,
                     RetryPolicy retry)
    : endpoint_(std::move(endpoint)),
      region_(std::move(region)),
      signing_name_(std::move(signing_name)),
      credentials_(std::move(credentials)),
      transport_(std::move(transport)),
      retry_(retry) {}

Result<AwsAnswer> AwsClient::Send(const AwsRequest& request) const {
  std::string path = endpoint_.base_path + request.path;
  Status creds_error, transport_error;
  std::optional<AwsAnswer> answer;
  int attempts = retry_.Run([&](int attempt) {
    auto creds = credentials_->Get();
    if (!creds.ok()) {
      creds_error = creds.status();
      answer.reset();
      return RetryVerdict::kStop;
    }
    SigningInput in;
    in.method = request.method;
    in.host = endpoint_.host;
    in.canonical_uri = path;
    in.headers = request.headers;
    in.payload_sha256 = Sha256Hex(request.body);
    in.region = region_;
    in.service = signing_name_;
    in.now = std::time(nullptr);
    HttpRequest req;
    req.method = request.method;
    req.url = endpoint_.scheme_host + path;
    req.headers = request.headers;
    for (auto& h : SignRequest(in, *creds)) req.headers.push_back(std::move(h));
    req.body = request.body;
    req.timeout_ms = request.timeout_ms;
    auto resp = transport_->Send(req);
    if (!resp.ok()) {
      transport_error = resp.status();
      answer.reset();
      return RetryVerdict::kAgain;
    }
    answer.emplace();
    answer->attempts = attempt;
    answer->credentials = creds->Describe();
    answer->response = std::move(*resp);
    if (answer->ok()) return RetryVerdict::kStop;
    answer->error = ParseAwsError(answer->response);
    return IsRetryableAnswer(answer->response.status, answer->error.code) ? RetryVerdict::kAgain
                                                                          : RetryVerdict::kStop;
  });
  if (answer) return std::move(*answer);
  if (!creds_error.ok()) return creds_error;
  return Status::IOError(fmt::format("no answer from {} after {} attempts: {}. Check the endpoint and the network.",
                                     endpoint_.url(), attempts, transport_error.message()));
}

Result<AwsAnswer> AwsClient::SendJson(const std::string& target, std::string_view content_type,
                                      const std::string& body, long timeout_ms) const {
  AwsRequest r;
  r.headers = {{"content-type", std::string(content_type)}, {"x-amz-target", target}};
  r.body = body;
  r.timeout_ms = timeout_ms;
  return Send(r);
}

}  // namespace cloudmerge
