// Internal to s3_client.cc: how one S3 operation is described (S3Op), what
// the retry loop ended with (Outcome), and the message a failed response
// becomes (ErrorFor): what was asked, what S3 said, and what to do. Secrets
// never enter a message: credentials are shown through Describe() only.
// Pure functions; thread-safe.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "cloudmerge/aws/credentials.h"
#include "cloudmerge/aws/http.h"
#include "cloudmerge/aws/s3_client.h"
#include "cloudmerge/aws/s3_xml.h"
#include "cloudmerge/base/status.h"

namespace cloudmerge::s3internal {

using Query = std::vector<std::pair<std::string, std::string>>;

// One S3 operation, as the retry loop and the error messages see it.
struct S3Op {
  std::string name;    // "GetObject": for messages
  std::string action;  // IAM action named in access-denied messages
  std::string method;
  std::string bucket;
  std::string key;     // object operations only
  bool object_level = true;
  std::string display;  // what the message names, e.g. "s3://b/k"
  Query query;
  HttpHeaders headers;  // signed along with the standard ones
  std::string_view body;
  std::function<Status(std::string_view)> on_body;
  bool error_in_200 = false;  // Complete/Copy: S3 may answer 200 with an <Error> body
};

inline S3Op MakeOp(std::string name, std::string action, std::string method, const S3Uri& uri,
                   bool object_level = true) {
  S3Op op;
  op.name = std::move(name);
  op.action = std::move(action);
  op.method = std::move(method);
  op.bucket = uri.bucket;
  op.key = uri.key;
  op.object_level = object_level;
  op.display = uri.ToString();
  return op;
}

// What one call through the retry loop ended with: the last response (2xx or
// not: the caller decides what a 404 or 412 means) and the context needed to
// explain a failure.
struct Outcome {
  HttpResponse response;
  AwsCredentials credentials;  // only Describe() is ever printed
  int attempts = 0;
  bool maybe_applied = false;  // an earlier attempt may have taken effect before failing
};

inline bool Is2xx(long status) { return status >= 200 && status < 300; }

inline std::string Partition(const std::string& region) {
  if (region.rfind("cn-", 0) == 0) return "aws-cn";
  if (region.rfind("us-gov-", 0) == 0) return "aws-us-gov";
  return "aws";
}

inline bool RetryableResponse(long status, const std::string& code) {
  if (status == 429 || status == 500 || status == 502 || status == 503 || status == 504) return true;
  return code == "SlowDown" || code == "Throttling" || code == "ThrottlingException" || code == "RequestTimeout" ||
         code == "InternalError" || code == "ServiceUnavailable" ||
         code == "ConditionalRequestConflict";  // 409 on concurrent conditional writes: AWS says retry
}

inline std::string Arn(const S3Config& cfg, const S3Op& op) {
  return fmt::format("arn:{}:s3:::{}{}", Partition(cfg.region), op.bucket, op.object_level ? "/" + op.key : "");
}

// The code S3 would have put in a body: HEAD responses carry none.
inline std::string CodeOf(const HttpResponse& resp, const s3xml::ErrorDoc& doc) {
  if (!doc.code.empty()) return doc.code;
  switch (resp.status) {
    case 301: return "PermanentRedirect";
    case 403: return "AccessDenied";
    case 404: return "NotFound";
    case 412: return "PreconditionFailed";
    case 416: return "InvalidRange";
    default: return fmt::format("HTTP{}", resp.status);
  }
}

// The bucket's region when S3 says the request went to the wrong one, else "".
inline std::string WrongRegion(const S3Config& cfg, const HttpResponse& resp, const s3xml::ErrorDoc& doc,
                        const std::string& code) {
  bool redirect = resp.status == 301 || code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed" ||
                  code == "IllegalLocationConstraintException";
  if (!redirect && resp.status != 400) return "";
  std::string region = resp.Header("x-amz-bucket-region");
  if (region.empty()) region = doc.region;
  if (region == cfg.region) return "";
  if (region.empty() && redirect) return "?";
  return region;
}

// A Status for a failed S3 response. `code_override` lets a caller that knows
// better (HeadObject's 404: bucket or key?) name the code.
inline Status ErrorFor(const S3Config& cfg, const S3Op& op, const Outcome& out, std::string code_override = "") {
  const HttpResponse& resp = out.response;
  s3xml::ErrorDoc doc = s3xml::ParseError(resp.body);
  std::string code = code_override.empty() ? CodeOf(resp, doc) : code_override;
  std::string what = fmt::format("S3 {} {}", op.name, op.display);
  std::string said = fmt::format("{} {}", resp.status, code);
  std::string who = out.credentials.Describe();

  if (std::string region = WrongRegion(cfg, resp, doc, code); !region.empty()) {
    if (region == "?")
      return Status::IOError(fmt::format("{}: the bucket '{}' is not in region {} ({}). Set AWS_REGION to the "
                                         "bucket's region.", what, op.bucket, cfg.region, said));
    return Status::IOError(fmt::format("{}: the bucket '{}' is in region {}, but requests were signed for {} ({}). "
                                       "Set AWS_REGION={}.", what, op.bucket, region, cfg.region, said, region));
  }
  if (code == "SignatureDoesNotMatch")
    return Status::IOError(fmt::format("{}: S3 rejected the request signature ({}) for {}. The secret access key "
                                       "does not match this key id (or the system clock is wrong); check the "
                                       "credentials.", what, said, who));
  if (code == "InvalidAccessKeyId")
    return Status::IOError(fmt::format("{}: S3 does not know the access key id ({}): {}. Check the credentials "
                                       "and that they belong to this endpoint's account.", what, said, who));
  if (code == "ExpiredToken" || code == "TokenRefreshRequired" || code == "InvalidToken")
    return Status::IOError(fmt::format("{}: the session token was refused ({}) for {}. Obtain fresh temporary "
                                       "credentials.", what, said, who));
  if (code == "RequestTimeTooSkewed")
    return Status::IOError(fmt::format("{}: the system clock is too far from S3's ({}). Synchronize the clock "
                                       "(NTP) and retry.", what, said));
  if (resp.status == 403) {
    // S3 hides whether a key exists from identities that may not list.
    std::string hint;
    if (op.action == "s3:GetObject" && code == "AccessDenied")
      hint = " (Without s3:ListBucket on the bucket, S3 also answers 403 for a key that does not exist.)";
    return Status::IOError(fmt::format("{}: Access denied ({}) for {}. Check that this identity may {} on {}.{}",
                                       what, said, who, op.action, Arn(cfg, op), hint));
  }
  if (code == "NoSuchBucket")
    return Status::NotFound(fmt::format("{}: the bucket '{}' does not exist ({}). Check the bucket name{}.", what,
                                       op.bucket, said, cfg.endpoint_url.empty() ? "" : " and the endpoint"));
  if (code == "NoSuchKey" || (resp.status == 404 && op.object_level && code == "NotFound"))
    return Status::NotFound(fmt::format("{}: no object has the key '{}' in bucket '{}' ({}). Check the key (keys "
                                       "are case-sensitive).", what, op.key, op.bucket, said));
  if (code == "NoSuchUpload")
    return Status::NotFound(fmt::format("{}: the multipart upload no longer exists ({}): it was completed or "
                                       "aborted.", what, said));
  std::string message = doc.message.empty() ? "" : ": " + doc.message;
  if (RetryableResponse(resp.status, code))
    return Status::IOError(fmt::format("{}: S3 is failing or throttling ({}{}) after {} attempts. Retry later.",
                                       what, said, message, out.attempts));
  return Status::IOError(fmt::format("{}: request failed ({}{}).", what, said, message));
}

}  // namespace cloudmerge::s3internal
