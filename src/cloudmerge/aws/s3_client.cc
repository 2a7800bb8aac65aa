// S3Client: builds S3 requests (addressing, query, headers), signs each
// attempt with SigV4, retries what is worth retrying (the one RetryPolicy), and turns S3's error
// documents into messages that say what to do. The XML itself is in s3_xml.h.
//
// Threading: an S3Client holds only its configuration and shared pointers to
// a thread-safe credentials provider and transport, so every method may run
// on many threads at once; all per-request state lives on the stack.
#include "cloudmerge/aws/s3_client.h"

#include <algorithm>
#include <cctype>
#include <ctime>

#include <fmt/format.h>

#include "cloudmerge/aws/endpoints.h"
#include "cloudmerge/aws/s3_errors.h"
#include "cloudmerge/aws/s3_xml.h"
#include "cloudmerge/aws/sigv4.h"

namespace cloudmerge {
namespace {

using namespace s3internal;  // NOLINT: the request vocabulary of this file

bool DnsCompatibleBucket(const std::string& b) {
  if (b.size() < 3 || b.size() > 63) return false;
  // Dots are DNS-valid but break the TLS wildcard certificate of *.s3.amazonaws.com.
  return std::all_of(b.begin(), b.end(),
                     [](unsigned char c) { return std::islower(c) || std::isdigit(c) || c == '-'; });
}

// Where a request goes: the URL, the Host header and the path that is signed.
struct Target {
  std::string scheme_host;  // "https://b.s3.eu-west-1.amazonaws.com"
  std::string host;
  std::string canonical_uri;
};

Target Resolve(const S3Config& cfg, const S3Op& op) {
  Target t;
  std::string base_path;
  if (!cfg.endpoint_url.empty()) {
    AwsEndpoint e = ParseEndpointUrl(cfg.endpoint_url);
    t.host = e.host;
    t.scheme_host = e.scheme_host;
    base_path = e.base_path;
  }
  // A custom endpoint (moto, MinIO, ...) rarely has wildcard DNS for buckets.
  bool path_style = cfg.path_style || !cfg.endpoint_url.empty() || !DnsCompatibleBucket(op.bucket);
  if (cfg.endpoint_url.empty()) {
    std::string s3_host = "s3." + cfg.region + "." + AwsDomain(cfg.region);
    t.host = path_style ? s3_host : op.bucket + "." + s3_host;
    t.scheme_host = "https://" + t.host;
  }
  std::string key_path = op.object_level ? "/" + UriEncode(op.key, false) : "";
  t.canonical_uri = path_style ? base_path + "/" + UriEncode(op.bucket, true) + key_path
                               : base_path + (key_path.empty() ? "/" : key_path);
  return t;
}

const std::string& EmptySha256() {
  static const std::string hash = Sha256Hex("");
  return hash;
}

// One signed attempt. `sink_status` receives the status of op.on_body when it
// refused bytes, so that a refusal is not mistaken for a network failure.
Result<HttpResponse> Attempt(const S3Config& cfg, HttpTransport& transport, const S3Op& op,
                             const AwsCredentials& creds, Status* sink_status) {
  Target target = Resolve(cfg, op);
  SigningInput in;
  in.method = op.method;
  in.host = target.host;
  in.canonical_uri = target.canonical_uri;
  in.query = op.query;
  in.headers = op.headers;
  in.payload_sha256 = op.body.empty() ? EmptySha256() : Sha256Hex(op.body);
  in.region = cfg.region;
  in.now = std::time(nullptr);

  HttpRequest req;
  req.method = op.method;
  req.url = target.scheme_host + target.canonical_uri;
  if (!op.query.empty()) req.url += "?" + CanonicalQueryString(op.query);
  req.headers = op.headers;
  for (auto& h : SignRequest(in, creds)) req.headers.push_back(std::move(h));
  req.body = op.body;
  if (op.on_body) {
    req.on_body = [&](std::string_view data) {
      Status st = op.on_body(data);
      if (!st.ok()) *sink_status = st;
      return st;
    };
  }
  return transport.Send(req);
}

// A credentials failure, said in the context of the request that needed them.
Status Prefixed(const S3Op& op, const Status& st) {
  std::string msg = fmt::format("S3 {} {}: {}", op.name, op.display, st.message());
  switch (st.code()) {
    case Status::Code::kInvalidArgument: return Status::InvalidArgument(std::move(msg));
    case Status::Code::kInvalidInput: return Status::InvalidInput(std::move(msg));
    case Status::Code::kInternal: return Status::Internal(std::move(msg));
    case Status::Code::kNotFound: return Status::NotFound(std::move(msg));
    default: return Status::IOError(std::move(msg));
  }
}

bool IsFailure(const S3Op& op, const HttpResponse& resp) {
  if (!Is2xx(resp.status)) return true;
  return op.error_in_200 && s3xml::ParseError(resp.body).present;
}

// Reads cannot have taken effect; anything else may have, even when its response was lost.
bool ReadOnly(const std::string& method) { return method == "GET" || method == "HEAD"; }

// Sends `op` under cfg.retry (the one retry policy). Returns the last response
// (the caller turns a failure into a message with ErrorFor), or a Status when
// credentials or the network failed for good.
Result<Outcome> Execute(const S3Config& cfg, CredentialsProvider& credentials, HttpTransport& transport,
                        const S3Op& op) {
  Outcome out;
  Status final_error, last_error;
  cfg.retry.Run([&](int attempt) {
    out.attempts = attempt;
    auto creds = credentials.Get();
    if (!creds.ok()) {
      final_error = Prefixed(op, creds.status());
      return RetryVerdict::kStop;
    }
    out.credentials = std::move(creds.value());
    Status sink_status;
    auto r = Attempt(cfg, transport, op, out.credentials, &sink_status);
    if (!sink_status.ok()) {
      final_error = sink_status;
      return RetryVerdict::kStop;
    }
    if (!r.ok()) {
      last_error = r.status();
      if (!ReadOnly(op.method)) out.maybe_applied = true;
      return RetryVerdict::kAgain;
    }
    out.response = std::move(r.value());
    last_error = Status::OK();
    if (!IsFailure(op, out.response)) return RetryVerdict::kStop;
    if (!RetryableResponse(out.response.status, s3xml::ParseError(out.response.body).code)) return RetryVerdict::kStop;
    if (!ReadOnly(op.method)) out.maybe_applied = true;
    return RetryVerdict::kAgain;
  });
  if (!final_error.ok()) return final_error;
  if (last_error.ok()) return out;  // an answer (a retryable S3 error to the end: ErrorFor explains it)
  return Status::IOError(fmt::format("S3 {} {}: {} (gave up after {} attempts). Check the endpoint and the network.",
                                     op.name, op.display, last_error.message(), out.attempts));
}

ObjectInfo InfoFromHeaders(const HttpResponse& resp) {
  ObjectInfo info;
  info.size = std::strtoull(resp.Header("content-length").c_str(), nullptr, 10);
  info.etag = s3xml::StripQuotes(resp.Header("etag"));
  info.version_id = resp.Header("x-amz-version-id");
  info.last_modified = resp.Header("last-modified");
  // Only for single-part objects (an ETag without "-<parts>"): a multipart object's checksum is
  // of its parts (COMPOSITE) or, for FULL_OBJECT CRCs, not reliably reported by every S3-compatible
  // store (moto answers a part-level value); its parts were checked by S3 when uploaded.
  if (resp.Header("x-amz-checksum-type") != "COMPOSITE" && info.etag.find('-') == std::string::npos) {
    for (const char* algorithm : {"sha256", "sha1", "crc32"}) {
      std::string value = resp.Header(std::string("x-amz-checksum-") + algorithm);
      if (value.empty() || value.find('-') != std::string::npos) continue;  // "<b64>-<parts>": composite
      info.checksum_algorithm = algorithm;
      info.checksum = value;
      break;
    }
  }
  return info;
}

// "bytes 100-199/1000" starts at `start`? (No header: nothing to check.)
bool RangeStartsAt(const std::string& content_range, uint64_t start) {
  if (content_range.rfind("bytes ", 0) != 0) return true;
  return std::strtoull(content_range.c_str() + 6, nullptr, 10) == start;
}

Status RequireKey(const S3Op& op) {
  if (!op.key.empty()) return Status::OK();
  return Status::InvalidArgument(fmt::format("S3 {} {}: the URI names a bucket, not an object; give "
                                             "s3://BUCKET/KEY.", op.name, op.display));
}

std::string QuotedEtag(const std::string& etag) { return "\"" + s3xml::StripQuotes(etag) + "\""; }

}  // namespace

// --- S3Uri and S3Config ---------------------------------------------------------

bool S3Uri::IsS3(std::string_view path) {
  return path.rfind("s3://", 0) == 0 || path.rfind("s3a://", 0) == 0 || path.rfind("s3n://", 0) == 0;
}

Result<S3Uri> S3Uri::Parse(std::string_view uri) {
  if (!IsS3(uri))
    return Status::InvalidArgument(fmt::format("'{}' is not an S3 URI: expected s3://BUCKET/KEY.", uri));
  std::string_view rest = uri.substr(uri.find("://") + 3);
  size_t slash = rest.find('/');
  S3Uri out;
  out.bucket = std::string(rest.substr(0, slash));
  if (slash != std::string_view::npos) out.key = std::string(rest.substr(slash + 1));
  if (out.bucket.empty())
    return Status::InvalidArgument(fmt::format("'{}' names no bucket: expected s3://BUCKET/KEY.", uri));
  return out;
}

S3Config S3Config::FromEnvironment(const AwsEnvironment& env) {
  S3Config c;
  c.region = ResolveRegion(env);
  // The SDKs' order: the S3-specific variable, the global one, then the profile.
  c.endpoint_url = ConfiguredEndpointUrl(AwsService::kS3, env);  // endpoints.h: the SDKs' order
  c.path_style = env.getenv("AWS_S3_ADDRESSING_STYLE") == "path" ||
                 ProfileConfigValue(env, "s3.addressing_style") == "path" || !c.endpoint_url.empty();
  if (int n = std::atoi(env.getenv("AWS_MAX_ATTEMPTS").c_str()); n > 0) c.retry.max_attempts = n;
  return c;
}

// --- S3Client ---------------------------------------------------------------------

S3Client::S3Client(S3Config config, std::shared_ptr<CredentialsProvider> credentials,
                   std::shared_ptr<HttpTransport> transport)
    : config_(std::move(config)), credentials_(std::move(credentials)), transport_(std::move(transport)) {}

Result<ObjectInfo> S3Client::HeadObject(const S3Uri& object) {
  S3Op op = MakeOp("HeadObject", "s3:GetObject", "HEAD", object);
  CM_RETURN_IF_ERROR(RequireKey(op));
  op.headers = {{"x-amz-checksum-mode", "ENABLED"}};  // the object's checksum, to verify what a read receives
  auto out = Execute(config_, *credentials_, *transport_, op);
  if (!out.ok()) return out.status();
  if (!IsFailure(op, out->response)) return InfoFromHeaders(out->response);
  if ((out->response.status == 400 || out->response.status == 403) && out->response.body.empty()) {
    // A HEAD error has no body to say why (bad signature? denied? unknown
    // key id?): ask the same thing with a one-byte GET, whose error has one.
    S3Op probe_op = MakeOp("HeadObject", "s3:GetObject", "GET", object);
    probe_op.headers = {{"range", "bytes=0-0"}};
    auto probe = Execute(config_, *credentials_, *transport_, probe_op);
    if (probe.ok() && IsFailure(probe_op, probe->response) && !probe->response.body.empty())
      return ErrorFor(config_, op, *probe);
  }
  if (out->response.status != 404) return ErrorFor(config_, op, *out);
  // A HEAD 404 has no body to say whether the bucket or the key is missing:
  // ask about the bucket (only on this error path).
  S3Op bucket_op = MakeOp("HeadBucket", "s3:ListBucket", "HEAD", object, false);
  auto bucket = Execute(config_, *credentials_, *transport_, bucket_op);
  bool no_bucket = bucket.ok() && bucket->response.status == 404;
  return ErrorFor(config_, op, *out, no_bucket ? "NoSuchBucket" : "NoSuchKey");
}

Status S3Client::GetObjectRange(const S3Uri& object, uint64_t offset, uint64_t length, const std::string& if_match,
                                const std::function<Status(std::string_view)>& sink) {
  S3Op op = MakeOp("GetObject", "s3:GetObject", "GET", object);
  CM_RETURN_IF_ERROR(RequireKey(op));
  if (length == 0) return Status::OK();
  uint64_t received = 0;
  // With if_match, a resumed read is sure to continue the same object version.
  // Without it, a break cannot tell: the transport reports a broken transfer
  // without the headers (and ETag) that had arrived. Readers HEAD first and pass it.
  const std::string& etag = if_match;
  std::string uri = object.ToString();
  Status result;  // what the loop ends with
  Outcome out;    // the last failed answer, for ErrorFor
  Status transport_error;
  // A break after progress is resumed with a fresh budget (kAgainFresh).
  int failures = config_.retry.Run([&](int attempt) {
    op.headers = {{"range", fmt::format("bytes={}-{}", offset + received, offset + length - 1)}};
    if (!etag.empty()) op.headers.emplace_back("if-match", QuotedEtag(etag));
    uint64_t progress = 0;
    op.on_body = [&](std::string_view data) {
      if (data.size() > length - received)
        return Status::IOError(fmt::format("S3 GetObject {}: the server sent more bytes than the {} asked for "
                                           "(it ignored the Range header).", uri, length));
      received += data.size();
      progress += data.size();
      return sink(data);
    };
    auto creds = credentials_->Get();
    if (!creds.ok()) {
      result = Prefixed(op, creds.status());
      return RetryVerdict::kStop;
    }
    Status sink_status;
    auto r = Attempt(config_, *transport_, op, creds.value(), &sink_status);
    if (!sink_status.ok()) {
      result = sink_status;
      return RetryVerdict::kStop;
    }
    if (r.ok() && Is2xx(r->status)) {
      if (r->status == 206 && !RangeStartsAt(r->Header("content-range"), offset + received - progress))
        result = Status::Internal(fmt::format("S3 GetObject {}: the server sent another range than asked ({}).",
                                              uri, r->Header("content-range")));
      else if (received != length)  // the body ended cleanly but short: the object is smaller than asked
        result = Status::IOError(fmt::format("S3 GetObject {}: asked for bytes [{}, {}) but the object ends at "
                                             "byte {} (Content-Range: {}). It may have been replaced by a shorter "
                                             "one; run again.", uri, offset, offset + length, offset + received,
                                             r->Header("content-range")));
      return RetryVerdict::kStop;
    }
    if (r.ok() && r->status == 412) {
      result = Status::IOError(fmt::format("S3 GetObject {}: the object changed while it was being read (its ETag "
                                           "is no longer \"{}\"; 412 PreconditionFailed). Run again to read the "
                                           "new version.", uri, etag));
      return RetryVerdict::kStop;
    }
    out = Outcome();
    out.credentials = creds.value();
    out.attempts = progress > 0 ? 1 : attempt;
    transport_error = Status::OK();
    if (r.ok()) {
      out.response = std::move(r.value());
      if (!RetryableResponse(out.response.status, s3xml::ParseError(out.response.body).code)) {
        result = ErrorFor(config_, op, out);
        return RetryVerdict::kStop;
      }
    } else {
      transport_error = r.status();
    }
    if (received == length) return RetryVerdict::kStop;  // it broke after the last byte: nothing left to ask
    return progress > 0 ? RetryVerdict::kAgainFresh : RetryVerdict::kAgain;
  });
  if (!result.ok() || received == length) return result;
  // Out of attempts.
  if (transport_error.ok()) return ErrorFor(config_, op, out);
  return Status::IOError(fmt::format("S3 GetObject {}: the download failed {} times in a row after {} of {} "
                                     "bytes: {}. Check the endpoint and the network.",
                                     uri, failures, received, length, transport_error.message()));
}

Result<std::string> S3Client::GetObject(const S3Uri& object) {
  S3Op op = MakeOp("GetObject", "s3:GetObject", "GET", object);
  CM_RETURN_IF_ERROR(RequireKey(op));
  auto out = Execute(config_, *credentials_, *transport_, op);
  if (!out.ok()) return out.status();
  if (IsFailure(op, out->response)) return ErrorFor(config_, op, *out);
  return std::move(out->response.body);
}

Result<ObjectInfo> S3Client::PutObject(const S3Uri& object, std::string_view body, const std::string& content_type) {
  S3Op op = MakeOp("PutObject", "s3:PutObject", "PUT", object);
  CM_RETURN_IF_ERROR(RequireKey(op));
  op.headers = {{"content-type", content_type}};
  op.body = body;
  auto out = Execute(config_, *credentials_, *transport_, op);
  if (!out.ok()) return out.status();
  if (IsFailure(op, out->response)) return ErrorFor(config_, op, *out);
  ObjectInfo info = InfoFromHeaders(out->response);
  info.size = body.size();
  return info;
}

Result<bool> S3Client::PutObjectIfAbsent(const S3Uri& object, std::string_view body) {
  S3Op op = MakeOp("PutObject", "s3:PutObject", "PUT", object);
  CM_RETURN_IF_ERROR(RequireKey(op));
  op.headers = {{"content-type", "application/octet-stream"}, {"if-none-match", "*"}};
  op.body = body;
  auto out = Execute(config_, *credentials_, *transport_, op);
  if (!out.ok()) return out.status();
  if (!IsFailure(op, out->response)) return true;
  if (out->response.status != 412) return ErrorFor(config_, op, *out);
  if (!out->maybe_applied) return false;
  // An earlier attempt may have created the object before its response was
  // lost, and then our own retry got the 412. Same bytes at the key: ours.
  auto existing = GetObject(object);
  return existing.ok() && existing.value() == body;
}

Result<std::string> S3Client::CreateMultipartUpload(const S3Uri& object, const std::string& content_type) {
  S3Op op = MakeOp("CreateMultipartUpload", "s3:PutObject", "POST", object);
  CM_RETURN_IF_ERROR(RequireKey(op));
  op.query = {{"uploads", ""}};
  op.headers = {{"content-type", content_type}};
  auto out = Execute(config_, *credentials_, *transport_, op);
  if (!out.ok()) return out.status();
  if (IsFailure(op, out->response)) return ErrorFor(config_, op, *out);
  std::string id = s3xml::ParseUploadId(out->response.body);
  if (id.empty())
    return Status::IOError(fmt::format("S3 CreateMultipartUpload {}: the response holds no UploadId.", op.display));
  if (out->maybe_applied) {
    // An earlier attempt may have created an upload whose answer was lost:
    // nobody would ever complete or abort it. Abort every other upload in
    // progress for exactly this key (a second writer of the same key would be
    // a conflict anyway; the pipeline's claims prevent one).
    auto uploads = ListMultipartUploads(object.bucket, object.key);
    if (uploads.ok())
      for (const auto& [key, other] : *uploads)
        if (key == object.key && other != id) (void)AbortMultipartUpload(object, other);
  }
  return id;
}

Result<std::string> S3Client::UploadPart(const S3Uri& object, const std::string& upload_id, int part_number,
                                         std::string_view body) {
  S3Op op = MakeOp("UploadPart", "s3:PutObject", "PUT", object);
  op.display += fmt::format(" (part {})", part_number);
  op.query = {{"partNumber", std::to_string(part_number)}, {"uploadId", upload_id}};
  op.body = body;
  auto out = Execute(config_, *credentials_, *transport_, op);
  if (!out.ok()) return out.status();
  if (IsFailure(op, out->response)) return ErrorFor(config_, op, *out);
  std::string etag = s3xml::StripQuotes(out->response.Header("etag"));
  if (etag.empty())
    return Status::IOError(fmt::format("S3 UploadPart {}: the response holds no ETag.", op.display));
  return etag;
}

Result<ObjectInfo> S3Client::CompleteMultipartUpload(const S3Uri& object, const std::string& upload_id,
                                                     const std::vector<CompletedPart>& parts) {
  S3Op op = MakeOp("CompleteMultipartUpload", "s3:PutObject", "POST", object);
  std::string body = s3xml::CompleteBody(parts);
  op.query = {{"uploadId", upload_id}};
  op.headers = {{"content-type", "application/xml"}};
  op.body = body;
  op.error_in_200 = true;
  auto out = Execute(config_, *credentials_, *transport_, op);
  if (!out.ok()) return out.status();
  ObjectInfo info;
  if (IsFailure(op, out->response)) {
    // A lost response to a completion that took effect makes the retry see
    // NoSuchUpload: the object is there, with a multipart ETag of our part count.
    if (!out->maybe_applied || s3xml::ParseError(out->response.body).code != "NoSuchUpload")
      return ErrorFor(config_, op, *out);
    auto head = HeadObject(object);
    if (!head.ok() || head->etag.find(fmt::format("-{}", parts.size())) == std::string::npos)
      return ErrorFor(config_, op, *out);
    return head;
  }
  if (!s3xml::ParseResultEtag(out->response.body, "CompleteMultipartUploadResult", &info.etag, nullptr))
    return Status::IOError(fmt::format("S3 CompleteMultipartUpload {}: unexpected response.", op.display));
  info.version_id = out->response.Header("x-amz-version-id");
  // The result document has no size; ask (best effort: a write-only identity
  // may not be allowed to HEAD, and the upload did succeed).
  if (auto head = HeadObject(object); head.ok() && head->etag == info.etag) info = head.value();
  return info;
}

Status S3Client::AbortMultipartUpload(const S3Uri& object, const std::string& upload_id) {
  S3Op op = MakeOp("AbortMultipartUpload", "s3:AbortMultipartUpload", "DELETE", object);
  op.query = {{"uploadId", upload_id}};
  auto out = Execute(config_, *credentials_, *transport_, op);
  if (!out.ok()) return out.status();
  if (!IsFailure(op, out->response)) return Status::OK();
  // Already gone (e.g. an earlier attempt's response was lost): the goal is met.
  if (s3xml::ParseError(out->response.body).code == "NoSuchUpload") return Status::OK();
  return ErrorFor(config_, op, *out);
}

Result<std::vector<std::pair<std::string, std::string>>> S3Client::ListMultipartUploads(const std::string& bucket,
                                                                                       const std::string& prefix) {
  S3Op op = MakeOp("ListMultipartUploads", "s3:ListBucketMultipartUploads", "GET", S3Uri{bucket, prefix}, false);
  std::vector<std::pair<std::string, std::string>> all;
  std::string key_marker, upload_marker;
  for (;;) {
    op.query = {{"uploads", ""}};
    if (!prefix.empty()) op.query.emplace_back("prefix", prefix);
    if (!key_marker.empty()) op.query.emplace_back("key-marker", key_marker);
    if (!upload_marker.empty()) op.query.emplace_back("upload-id-marker", upload_marker);
    auto out = Execute(config_, *credentials_, *transport_, op);
    if (!out.ok()) return out.status();
    if (IsFailure(op, out->response)) return ErrorFor(config_, op, *out);
    s3xml::UploadsPage page = s3xml::ParseListMultipartUploads(out->response.body);
    if (!page.parsed)
      return Status::IOError(fmt::format("S3 ListMultipartUploads {}: unexpected response.", op.display));
    for (auto& u : page.uploads) all.push_back(std::move(u));
    if (!page.truncated || page.next_key_marker.empty()) return all;
    key_marker = page.next_key_marker;
    upload_marker = page.next_upload_id_marker;
  }
}

Result<std::vector<ListedObject>> S3Client::ListObjects(const std::string& bucket, const std::string& prefix,
                                                        int page_size) {
  S3Op op = MakeOp("ListObjectsV2", "s3:ListBucket", "GET", S3Uri{bucket, prefix}, false);
  std::vector<ListedObject> all;
  std::string token;
  for (;;) {
    // encoding-type=url: keys may hold characters that XML 1.0 cannot carry.
    op.query = {{"list-type", "2"}, {"max-keys", std::to_string(std::clamp(page_size, 1, 1000))},
                {"encoding-type", "url"}};
    if (!prefix.empty()) op.query.emplace_back("prefix", prefix);
    if (!token.empty()) op.query.emplace_back("continuation-token", token);
    auto out = Execute(config_, *credentials_, *transport_, op);
    if (!out.ok()) return out.status();
    if (IsFailure(op, out->response)) return ErrorFor(config_, op, *out);
    s3xml::ListPage page = s3xml::ParseListObjectsV2(out->response.body);
    if (!page.parsed) return Status::IOError(fmt::format("S3 ListObjectsV2 {}: unexpected response.", op.display));
    for (auto& o : page.objects) all.push_back(std::move(o));
    if (!page.truncated) return all;
    if (page.next_token.empty() || page.next_token == token)
      return Status::IOError(fmt::format("S3 ListObjectsV2 {}: truncated listing without a new continuation "
                                         "token.", op.display));
    token = page.next_token;
  }
}

Status S3Client::DeleteObject(const S3Uri& object) {
  S3Op op = MakeOp("DeleteObject", "s3:DeleteObject", "DELETE", object);
  CM_RETURN_IF_ERROR(RequireKey(op));
  auto out = Execute(config_, *credentials_, *transport_, op);
  if (!out.ok()) return out.status();
  if (IsFailure(op, out->response)) return ErrorFor(config_, op, *out);
  return Status::OK();
}

Result<ObjectInfo> S3Client::CopyObject(const S3Uri& from, const S3Uri& to) {
  S3Op op = MakeOp("CopyObject", "s3:GetObject on the source and s3:PutObject", "PUT", to);
  CM_RETURN_IF_ERROR(RequireKey(op));
  op.display = from.ToString() + " -> " + to.ToString();
  op.headers = {{"x-amz-copy-source", "/" + UriEncode(from.bucket, true) + "/" + UriEncode(from.key, false)}};
  op.error_in_200 = true;
  auto out = Execute(config_, *credentials_, *transport_, op);
  if (!out.ok()) return out.status();
  if (IsFailure(op, out->response)) return ErrorFor(config_, op, *out);
  ObjectInfo info;
  if (!s3xml::ParseResultEtag(out->response.body, "CopyObjectResult", &info.etag, &info.last_modified))
    return Status::IOError(fmt::format("S3 CopyObject {}: unexpected response.", op.display));
  info.version_id = out->response.Header("x-amz-version-id");
  if (auto head = HeadObject(to); head.ok() && head->etag == info.etag) info = head.value();
  return info;
}

Result<std::string> S3Client::PresignGet(const S3Uri& object, int64_t expires_seconds) {
  S3Op op = MakeOp("PresignGet", "s3:GetObject", "GET", object);
  CM_RETURN_IF_ERROR(RequireKey(op));
  if (expires_seconds < 1 || expires_seconds > 604800)
    return Status::InvalidArgument(fmt::format("S3 presigned URL for {}: the expiry must be 1 to 604800 seconds "
                                               "(7 days), not {}.", op.display, expires_seconds));
  auto creds = credentials_->Get();
  if (!creds.ok()) return Prefixed(op, creds.status());
  Target target = Resolve(config_, op);
  SigningInput in;
  in.method = "GET";
  in.host = target.host;
  in.canonical_uri = target.canonical_uri;
  in.payload_sha256 = std::string(kUnsignedPayload);
  in.region = config_.region;
  in.now = std::time(nullptr);
  return PresignUrl(in, creds.value(), target.scheme_host, expires_seconds);
}

}  // namespace cloudmerge
