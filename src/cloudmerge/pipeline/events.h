// S3 event notifications as they reach the pipeline: directly (S3 -> Lambda),
// wrapped in an SQS message body (S3 -> SQS -> serve, or SQS -> Lambda), or
// wrapped in an SNS notification (S3 -> SNS -> SQS/Lambda). ParseS3Events
// unwraps all of these into the object-created records the pipeline acts on.
// Object keys in S3 events are URL-encoded ('+' for space): decoded here.
//
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cloudmerge/base/status.h"

namespace cloudmerge {

struct S3ObjectEvent {
  std::string event_name;  // "ObjectCreated:Put", ...
  std::string bucket;
  std::string key;         // decoded
  uint64_t size = 0;
  std::string etag;
  std::string sequencer;
};

// Events larger than this are refused (SQS bodies are at most 256 KiB; a
// Lambda event at most 6 MB): a clear error, not an allocation storm.
inline constexpr size_t kMaxEventBytes = 6u << 20;

struct ParsedEvents {
  std::vector<S3ObjectEvent> created;  // ObjectCreated:* records
  size_t ignored = 0;                  // test events, deletions, other services' records
};

// Accepts: an S3 notification ({"Records":[{"eventSource":"aws:s3",...}]}),
// an s3:TestEvent, an SQS-triggered Lambda event (Records[].body holding any
// of these), an SNS notification ({"Type":"Notification","Message":"..."}) or
// an SNS-triggered Lambda event (Records[].Sns.Message).
Result<ParsedEvents> ParseS3Events(std::string_view json);

// "a%2Fb+c" -> "a/b c" (S3 event key encoding).
std::string DecodeEventKey(std::string_view key);

}  // namespace cloudmerge
