// Internal to s3_client.cc: the S3 XML documents it sends and reads (error
// bodies, ListObjectsV2, ListMultipartUploads, multipart and copy results),
// parsed with pugixml. Kept apart so that s3_client.cc stays about requests,
// retries and messages. Pure functions; thread-safe.
//
// pugixml does not throw on malformed input (load_buffer reports it in the
// result); a body that does not parse yields an empty/absent result, and the
// caller turns that into a Status.
#pragma once

#include <pugixml.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cloudmerge/aws/s3_client.h"

namespace cloudmerge::s3xml {

inline bool Load(pugi::xml_document* doc, std::string_view body) {
  if (body.empty()) return false;
  return static_cast<bool>(doc->load_buffer(body.data(), body.size(), pugi::parse_default, pugi::encoding_utf8));
}

inline std::string Text(const pugi::xml_node& parent, const char* child) {
  return parent.child(child).text().as_string();
}

inline uint64_t Number(const pugi::xml_node& parent, const char* child) {
  return std::strtoull(parent.child(child).text().as_string("0"), nullptr, 10);
}

inline std::string StripQuotes(std::string etag) {
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') return etag.substr(1, etag.size() - 2);
  return etag;
}

// Percent-decoding for keys listed with encoding-type=url.
inline std::string UrlDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      char hex[3] = {s[i + 1], s[i + 2], 0};
      char* end = nullptr;
      long v = std::strtol(hex, &end, 16);
      if (end == hex + 2) {
        out.push_back(static_cast<char>(v));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i] == '+' ? ' ' : s[i]);
  }
  return out;
}

// <Error><Code>..</Code><Message>..</Message><Region>..</Region>...</Error>
struct ErrorDoc {
  bool present = false;  // an <Error> root was found
  std::string code;
  std::string message;
  std::string region;    // AuthorizationHeaderMalformed: the region S3 expected
  std::string endpoint;  // PermanentRedirect: the endpoint to use
};

inline ErrorDoc ParseError(std::string_view body) {
  ErrorDoc e;
  pugi::xml_document doc;
  if (!Load(&doc, body)) return e;
  pugi::xml_node root = doc.child("Error");
  if (!root) return e;
  e.present = true;
  e.code = Text(root, "Code");
  e.message = Text(root, "Message");
  e.region = Text(root, "Region");
  e.endpoint = Text(root, "Endpoint");
  return e;
}

inline std::string ParseUploadId(std::string_view body) {
  pugi::xml_document doc;
  if (!Load(&doc, body)) return "";
  return Text(doc.child("InitiateMultipartUploadResult"), "UploadId");
}

struct ListPage {
  std::vector<ListedObject> objects;
  bool truncated = false;
  std::string next_token;
  bool parsed = false;
};

inline ListPage ParseListObjectsV2(std::string_view body) {
  ListPage page;
  pugi::xml_document doc;
  if (!Load(&doc, body)) return page;
  pugi::xml_node root = doc.child("ListBucketResult");
  if (!root) return page;
  page.parsed = true;
  // Keys are only percent-encoded when the server says so: a server that
  // ignored encoding-type=url sends raw keys, which must not be decoded.
  bool url_encoded = Text(root, "EncodingType") == "url";
  for (pugi::xml_node c : root.children("Contents")) {
    ListedObject o;
    o.key = url_encoded ? UrlDecode(Text(c, "Key")) : Text(c, "Key");
    o.size = Number(c, "Size");
    o.etag = StripQuotes(Text(c, "ETag"));
    page.objects.push_back(std::move(o));
  }
  page.truncated = Text(root, "IsTruncated") == "true";
  page.next_token = Text(root, "NextContinuationToken");
  return page;
}

struct UploadsPage {
  std::vector<std::pair<std::string, std::string>> uploads;  // key, upload id
  bool truncated = false;
  std::string next_key_marker;
  std::string next_upload_id_marker;
  bool parsed = false;
};

inline UploadsPage ParseListMultipartUploads(std::string_view body) {
  UploadsPage page;
  pugi::xml_document doc;
  if (!Load(&doc, body)) return page;
  pugi::xml_node root = doc.child("ListMultipartUploadsResult");
  if (!root) return page;
  page.parsed = true;
  bool url_encoded = Text(root, "EncodingType") == "url";
  for (pugi::xml_node u : root.children("Upload")) {
    std::string key = Text(u, "Key");
    page.uploads.emplace_back(url_encoded ? UrlDecode(key) : key, Text(u, "UploadId"));
  }
  page.truncated = Text(root, "IsTruncated") == "true";
  page.next_key_marker = Text(root, "NextKeyMarker");
  page.next_upload_id_marker = Text(root, "NextUploadIdMarker");
  return page;
}

// CompleteMultipartUploadResult / CopyObjectResult: the new object's ETag.
// Returns false when the document is not a result (e.g. a 200 with <Error>).
inline bool ParseResultEtag(std::string_view body, const char* root_name, std::string* etag,
                            std::string* last_modified) {
  pugi::xml_document doc;
  if (!Load(&doc, body)) return false;
  pugi::xml_node root = doc.child(root_name);
  if (!root) return false;
  *etag = StripQuotes(Text(root, "ETag"));
  if (last_modified) *last_modified = Text(root, "LastModified");
  return true;
}

inline std::string CompleteBody(const std::vector<CompletedPart>& parts) {
  pugi::xml_document doc;
  pugi::xml_node root = doc.append_child("CompleteMultipartUpload");
  root.append_attribute("xmlns") = "http://s3.amazonaws.com/doc/2006-03-01/";
  for (const CompletedPart& p : parts) {
    pugi::xml_node part = root.append_child("Part");
    part.append_child("PartNumber").text().set(p.part_number);
    part.append_child("ETag").text().set(("\"" + StripQuotes(p.etag) + "\"").c_str());
  }
  struct Writer : pugi::xml_writer {
    std::string out;
    void write(const void* data, size_t size) override { out.append(static_cast<const char*>(data), size); }
  } writer;
  doc.save(writer, "", pugi::format_raw | pugi::format_no_declaration);
  return writer.out;
}

}  // namespace cloudmerge::s3xml
