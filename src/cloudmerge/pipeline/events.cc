// Unwrapping S3 event notifications (direct, SQS-wrapped, SNS-wrapped) with
// nlohmann::json; every parse error becomes a Status, never an exception.
#include "cloudmerge/pipeline/events.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace cloudmerge {
namespace {

using nlohmann::json;

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string StringField(const json& j, const char* name) {
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// The member `name` of j, or null when j is not an object or lacks it. Not
// json::value(), which throws on a non-object: an event can say "s3": 5.
const json& Member(const json& j, const char* name) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(name);
  return it != j.end() ? *it : kNull;
}

Status Collect(const json& doc, int depth, ParsedEvents* out);

// A string holding JSON (an SQS body, an SNS Message): parsed and collected.
Status CollectNested(const std::string& text, int depth, ParsedEvents* out) {
  json inner = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (inner.is_discarded()) {
    ++out->ignored;  // not JSON: not an S3 notification
    return Status::OK();
  }
  return Collect(inner, depth + 1, out);
}

Status CollectRecord(const json& r, int depth, ParsedEvents* out) {
  if (!r.is_object()) {
    ++out->ignored;
    return Status::OK();
  }
  std::string source = StringField(r, "eventSource");
  if (source.empty()) source = StringField(r, "EventSource");
  if (source == "aws:s3") {
    std::string name = StringField(r, "eventName");
    const json& s3 = Member(r, "s3");
    const json& obj = Member(s3, "object");
    if (name.rfind("ObjectCreated:", 0) != 0 || !obj.is_object()) {
      ++out->ignored;
      return Status::OK();
    }
    S3ObjectEvent e;
    e.event_name = name;
    e.bucket = StringField(Member(s3, "bucket"), "name");
    e.key = DecodeEventKey(StringField(obj, "key"));
    if (obj.contains("size") && obj["size"].is_number_unsigned()) e.size = obj["size"].get<uint64_t>();
    e.etag = StringField(obj, "eTag");
    e.sequencer = StringField(obj, "sequencer");
    if (e.bucket.empty() || e.key.empty())
      return Status::InvalidInput("an S3 event record has no bucket name or object key");
    out->created.push_back(std::move(e));
    return Status::OK();
  }
  if (source == "aws:sqs") return CollectNested(StringField(r, "body"), depth, out);
  if (source == "aws:sns") return CollectNested(StringField(Member(r, "Sns"), "Message"), depth, out);
  ++out->ignored;
  return Status::OK();
}

Status Collect(const json& doc, int depth, ParsedEvents* out) {
  if (depth > 4) return Status::InvalidInput("event nested more than 4 levels deep");
  if (!doc.is_object()) {
    ++out->ignored;
    return Status::OK();
  }
  if (StringField(doc, "Event") == "s3:TestEvent") {
    ++out->ignored;
    return Status::OK();
  }
  if (StringField(doc, "Type") == "Notification" && doc.contains("Message"))
    return CollectNested(StringField(doc, "Message"), depth, out);
  auto records = doc.find("Records");
  if (records == doc.end() || !records->is_array()) {
    ++out->ignored;
    return Status::OK();
  }
  for (const auto& r : *records) CM_RETURN_IF_ERROR(CollectRecord(r, depth, out));
  return Status::OK();
}

}  // namespace

std::string DecodeEventKey(std::string_view key) {
  std::string out;
  out.reserve(key.size());
  for (size_t i = 0; i < key.size(); ++i) {
    char c = key[i];
    if (c == '+') {
      out += ' ';
    } else if (c == '%' && i + 2 < key.size() && HexValue(key[i + 1]) >= 0 && HexValue(key[i + 2]) >= 0) {
      out += static_cast<char>(HexValue(key[i + 1]) * 16 + HexValue(key[i + 2]));
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

Result<ParsedEvents> ParseS3Events(std::string_view text) {
  if (text.size() > kMaxEventBytes)
    return Status::InvalidInput(fmt::format("event of {} bytes refused: larger than the {} bytes an S3 notification "
                                            "can be; it is not an S3 event notification",
                                            text.size(), kMaxEventBytes));
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Status::InvalidInput("the event is not valid JSON");
  ParsedEvents out;
  CM_RETURN_IF_ERROR(Collect(doc, 0, &out));
  return out;
}

}  // namespace cloudmerge
