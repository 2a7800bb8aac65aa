// One signed call of an AWS JSON-protocol service (SQS, CloudWatch Logs,
// EMR, ...): POST / with X-Amz-Target: <prefix>.<Action>, SigV4-signed.
// Retrying is the caller's business (each service has its own error shapes).
// Thread-safe (a pure function of its arguments).
#pragma once

#include <ctime>
#include <string>

#include "cloudmerge/aws/credentials.h"
#include "cloudmerge/aws/http.h"
#include "cloudmerge/aws/sigv4.h"

namespace cloudmerge {

struct AwsJsonService {
  std::string endpoint;       // "https://sqs.eu-west-1.amazonaws.com", no trailing '/'
  std::string region;
  std::string service;        // signing name: "sqs", "logs", ...
  std::string target_prefix;  // "AmazonSQS", "Logs_20140328", ...
  std::string content_type;   // "application/x-amz-json-1.0" or "-1.1"
};

inline std::string HostOfEndpoint(const std::string& endpoint) {
  size_t scheme = endpoint.find("://");
  std::string rest = scheme == std::string::npos ? endpoint : endpoint.substr(scheme + 3);
  return rest.substr(0, rest.find('/'));
}

inline Result<HttpResponse> SendAwsJson(HttpTransport& transport, const AwsCredentials& creds,
                                        const AwsJsonService& svc, const std::string& action, const std::string& body,
                                        long timeout_ms) {
  SigningInput in;
  in.method = "POST";
  in.host = HostOfEndpoint(svc.endpoint);
  in.canonical_uri = "/";
  in.headers = {{"content-type", svc.content_type}, {"x-amz-target", svc.target_prefix + "." + action}};
  in.payload_sha256 = Sha256Hex(body);
  in.region = svc.region;
  in.service = svc.service;
  in.now = std::time(nullptr);
  HttpRequest req;
  req.method = "POST";
  req.url = svc.endpoint + "/";
  req.headers = in.headers;
  for (auto& h : SignRequest(in, creds)) req.headers.push_back(h);
  req.body = body;
  req.timeout_ms = timeout_ms;
  return transport.Send(req);
}

}  // namespace cloudmerge
