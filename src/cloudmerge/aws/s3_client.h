// S3Client: the S3 operations cloudmerge needs, signed with our SigV4 over an
// HttpTransport, with the one retry policy (aws/retry_policy.h: bounded
// attempts, exponential backoff with full jitter) on 5xx, SlowDown/Throttling, RequestTimeout and transport errors.
//
// Errors are Status values whose message says what was asked, what S3 said,
// and what to do: 403 names the action and the credential used (key id's last
// 4 and its source, never the secret), 404 says whether the bucket or the key
// is missing, 301/400 with a region mismatch names the bucket's region.
//
// Thread safety: all methods may be called from many threads at once.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cloudmerge/aws/credentials.h"
#include "cloudmerge/aws/http.h"
#include "cloudmerge/aws/retry_policy.h"
#include "cloudmerge/base/status.h"

namespace cloudmerge {

// "s3://bucket/key" (also "s3a://" and "s3n://"). The key may be empty
// (a bucket or a prefix "s3://bucket/prefix/").
struct S3Uri {
  std::string bucket;
  std::string key;
  static bool IsS3(std::string_view path);
  static Result<S3Uri> Parse(std::string_view uri);
  std::string ToString() const { return "s3://" + bucket + "/" + key; }
};

struct S3Config {
  std::string region = "us-east-1";
  std::string endpoint_url;  // e.g. "http://127.0.0.1:5000"; empty: AWS's regional endpoint (https)
  bool path_style = false;   // forced on when endpoint_url is set and the bucket is not DNS-compatible
  // Per request: 6 attempts, full-jitter backoff from 0.1 s up to 20 s (a
  // throttled prefix recovers in seconds). A ranged GET that made progress
  // before it broke starts a fresh budget.
  RetryPolicy retry{6, 100, 20000};
  uint64_t part_size = 16ull << 20;  // multipart part size (>= 5 MiB on AWS; tests may lower it)
  unsigned parallel_requests = 4;    // ranged GETs / part uploads in flight per object
  // Bytes per ranged GET of an input (0: the reader's default, 8 MiB). A
  // streamed input holds up to parallel_requests + 1 ranges.
  uint64_t range_size = 0;
  // Resolves region, endpoint (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, profile
  // endpoint_url) and addressing style from the environment and profile.
  static S3Config FromEnvironment(const AwsEnvironment& env);
};

struct ObjectInfo {
  uint64_t size = 0;
  std::string etag;  // with its quotes stripped
  // The object's full-object checksum when S3 has one (uploaded with
  // x-amz-checksum-*; asked for with x-amz-checksum-mode: ENABLED on HEAD):
  // algorithm "sha256", "sha1" or "crc32" and its base64 value. Empty otherwise,
  // also for multipart (composite) checksums, which are not of the bytes.
  std::string checksum_algorithm;
  std::string checksum;
  std::string version_id;
  std::string last_modified;
};

struct ListedObject {
  std::string key;
  uint64_t size = 0;
  std::string etag;
};

struct CompletedPart {
  int part_number = 0;
  std::string etag;
};

class S3Client {
 public:
  S3Client(S3Config config, std::shared_ptr<CredentialsProvider> credentials,
           std::shared_ptr<HttpTransport> transport);

  const S3Config& config() const { return config_; }

  Result<ObjectInfo> HeadObject(const S3Uri& object);

  // Streams bytes [offset, offset + length) of the object to `sink`, in order.
  // A transfer that breaks mid-stream is resumed from the last byte received
  // (bounded retries). With a non-empty `if_match`, the object must still have
  // that ETag (a changed object fails with a clear "changed while being read").
  Status GetObjectRange(const S3Uri& object, uint64_t offset, uint64_t length, const std::string& if_match,
                        const std::function<Status(std::string_view)>& sink);
  // Whole object into memory (for small objects: job.json, markers).
  Result<std::string> GetObject(const S3Uri& object);

  Result<ObjectInfo> PutObject(const S3Uri& object, std::string_view body,
                               const std::string& content_type = "application/octet-stream");
  // Creates `object` only if no object has that key yet (If-None-Match: *);
  // returns false when it already existed (412). For atomic markers.
  Result<bool> PutObjectIfAbsent(const S3Uri& object, std::string_view body);

  Result<std::string> CreateMultipartUpload(const S3Uri& object,
                                            const std::string& content_type = "application/octet-stream");
  Result<std::string> UploadPart(const S3Uri& object, const std::string& upload_id, int part_number,
                                 std::string_view body);  // returns the part's ETag
  Result<ObjectInfo> CompleteMultipartUpload(const S3Uri& object, const std::string& upload_id,
                                             const std::vector<CompletedPart>& parts);
  Status AbortMultipartUpload(const S3Uri& object, const std::string& upload_id);
  // Uploads in progress under `prefix` (to check that none is left orphaned).
  Result<std::vector<std::pair<std::string, std::string>>> ListMultipartUploads(const std::string& bucket,
                                                                                const std::string& prefix);

  // All objects under `prefix`, following continuation tokens.
  Result<std::vector<ListedObject>> ListObjects(const std::string& bucket, const std::string& prefix,
                                                int page_size = 1000);
  Status DeleteObject(const S3Uri& object);
  Result<ObjectInfo> CopyObject(const S3Uri& from, const S3Uri& to);

  // A presigned GET URL for sharing a result (e.g. in a notification email).
  Result<std::string> PresignGet(const S3Uri& object, int64_t expires_seconds);

 private:
  S3Config config_;
  std::shared_ptr<CredentialsProvider> credentials_;
  std::shared_ptr<HttpTransport> transport_;
};

}  // namespace cloudmerge
