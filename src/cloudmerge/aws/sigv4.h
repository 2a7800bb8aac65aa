// AWS Signature Version 4, computed by us with OpenSSL (Debian's curl 7.88
// signs several S3 requests wrongly: unsorted query strings, `?uploads`,
// streamed bodies hashed as empty). Also gives presigned URLs.
// Pure functions; thread-safe.
#pragma once

#include "cloudmerge/base/ascii.h"

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cloudmerge/aws/credentials.h"
#include "cloudmerge/aws/http.h"
#include "cloudmerge/aws/sha256.h"

namespace cloudmerge {

// UriEncode (RFC 3986 percent-encoding as SigV4 wants it): base/ascii.h.

inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";

struct SigningInput {
  std::string method;         // "GET", "PUT", ...
  std::string host;           // Host header value, with ":port" when not the default
  std::string canonical_uri;  // path, already URI-encoded (each segment, '/' kept), e.g. "/bucket/my%20key"
  std::vector<std::pair<std::string, std::string>> query;  // raw (unencoded) name/value pairs, any order
  HttpHeaders headers;        // extra headers to sign (e.g. range, content-type, x-amz-*), any case
  std::string payload_sha256; // hex SHA-256 of the body, or kUnsignedPayload
  std::string region;
  std::string service = "s3";
  std::time_t now = 0;        // request time (UTC seconds)
};

// Returns the headers to add to the request: host, x-amz-date,
// x-amz-content-sha256, x-amz-security-token (when the credentials have a
// session token) and authorization. `headers` from the input are not repeated.
HttpHeaders SignRequest(const SigningInput& in, const AwsCredentials& creds);

// The canonical query string (sorted, encoded) for `query`: what goes after '?'.
std::string CanonicalQueryString(const std::vector<std::pair<std::string, std::string>>& query);

// A presigned URL (query-string auth) valid for `expires_seconds` (1..604800).
// `scheme_and_host` is e.g. "https://bucket.s3.eu-west-1.amazonaws.com".
std::string PresignUrl(const SigningInput& in, const AwsCredentials& creds, std::string_view scheme_and_host,
                       int64_t expires_seconds);

}  // namespace cloudmerge
