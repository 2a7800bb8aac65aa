// HttpTransport: the one seam through which every AWS call leaves the process
// (aws-lambda-cpp style: the transport is passed in, so the S3 client, the
// credential providers and the Lambda runtime loop are testable offline, and
// tests can wrap it to inject faults).
//
// HttpRequest/HttpResponse are plain values. A transport error (connection
// refused/reset, timeout, truncated body) is a non-ok Status; any HTTP status
// code, 5xx included, is a response. Retrying is the caller's business.
//
// Thread safety: Send may be called from many threads at once. The curl
// transport keeps a pool of easy handles so connections are reused.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cloudmerge/base/status.h"

namespace cloudmerge {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method = "GET";
  std::string url;  // absolute, already percent-encoded as it must go on the wire
  HttpHeaders headers;
  std::string_view body;  // not owned; must outlive Send
  // When set, response body bytes of a 2xx response are passed here as they
  // arrive instead of being collected in HttpResponse::body; returning a non-ok
  // Status aborts the transfer and Send returns that Status. Non-2xx bodies
  // are always collected (they hold the error document).
  std::function<Status(std::string_view)> on_body;
  long timeout_ms = 0;  // 0: the transport's default
};

struct HttpResponse {
  long status = 0;
  HttpHeaders headers;  // names lower-cased
  std::string body;
  // Value of the first header called `name` (lower-case), or "".
  std::string Header(std::string_view name) const;
};

struct HttpTransportOptions {
  long connect_timeout_ms = 5000;
  long request_timeout_ms = 300000;   // whole transfer
  long low_speed_timeout_s = 30;      // abort when < 1 byte/s for this long
  bool verify_tls = true;             // off only for loopback test endpoints
};

class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  virtual Result<HttpResponse> Send(const HttpRequest& request) = 0;
};

std::shared_ptr<HttpTransport> NewCurlTransport(const HttpTransportOptions& options = {});

}  // namespace cloudmerge
