// AWS Signature Version 4 for S3: the canonical request, the string to sign,
// the derived signing key, and the two ways of carrying the result (an
// Authorization header, or a presigned URL's query string). Hashing is
// OpenSSL's; everything else is string assembly that must match AWS's byte
// for byte, so each rule below follows the S3 "Signature Calculations" page.
#include "cloudmerge/aws/sigv4.h"
#include "cloudmerge/base/ascii.h"
#include "cloudmerge/aws/endpoints.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <ctime>
#include <map>

#include <fmt/format.h>

namespace cloudmerge {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
// S3 rejects presigned URLs valid for longer than seven days.
constexpr int64_t kMaxPresignSeconds = 604800;

struct Stamp {
  std::string date_time;  // 20130524T000000Z
  std::string date;       // 20130524
};

Stamp StampOf(std::time_t t) {
  if (t == 0) t = std::time(nullptr);  // the field's default: "now"
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  Stamp s;
  s.date_time = buf;
  s.date = s.date_time.substr(0, 8);
  return s;
}

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

// SigV4 canonical header value: trimmed, inner runs of spaces collapsed to one.
std::string CanonicalValue(std::string_view v) {
  std::string out;
  bool pending_space = false;
  for (char c : v) {
    if (IsSpace(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out += c;
  }
  return out;
}

bool HasHeader(const HttpHeaders& headers, std::string_view lower_name) {
  return std::any_of(headers.begin(), headers.end(), [&](const auto& h) { return AsciiLower(h.first) == lower_name; });
}

// Lower-cased name -> value; repeated headers are joined with ',' as AWS does.
// The authorization header is never signed (it carries the signature).
using CanonicalHeaders = std::map<std::string, std::string>;

void AddCanonical(CanonicalHeaders& out, const HttpHeaders& headers) {
  for (const auto& [name, value] : headers) {
    std::string key = AsciiLower(name);
    if (key == "authorization") continue;
    auto [it, inserted] = out.emplace(key, CanonicalValue(value));
    if (!inserted) it->second += "," + CanonicalValue(value);
  }
}

std::string SignedHeaderList(const CanonicalHeaders& headers) {
  std::string out;
  for (const auto& [name, value] : headers) {
    if (!out.empty()) out += ';';
    out += name;
  }
  return out;
}

std::string CanonicalRequest(const SigningInput& in, const std::string& query, const CanonicalHeaders& headers,
                             const std::string& payload) {
  std::string req = fmt::format("{}\n{}\n{}\n", in.method, in.canonical_uri.empty() ? "/" : in.canonical_uri, query);
  for (const auto& [name, value] : headers) req += fmt::format("{}:{}\n", name, value);
  req += fmt::format("\n{}\n{}", SignedHeaderList(headers), payload);
  return req;
}

std::string Scope(const Stamp& stamp, const SigningInput& in) {
  return fmt::format("{}/{}/{}/aws4_request", stamp.date, in.region, in.service);
}

// Hex signature of `canonical_request` (steps 2-4 of SigV4).
std::string Signature(const std::string& canonical_request, const Stamp& stamp, const SigningInput& in,
                      const AwsCredentials& creds) {
  std::string to_sign =
      fmt::format("{}\n{}\n{}\n{}", kAlgorithm, stamp.date_time, Scope(stamp, in), Sha256Hex(canonical_request));
  std::string key = HmacSha256("AWS4" + creds.secret_access_key, stamp.date);
  key = HmacSha256(key, in.region);
  key = HmacSha256(key, in.service);
  key = HmacSha256(key, "aws4_request");
  return HexEncode(HmacSha256(key, to_sign));
}

}  // namespace

std::string HexEncode(std::string_view raw) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(raw.size() * 2);
  for (unsigned char c : raw) {
    out += kHex[c >> 4];
    out += kHex[c & 0xF];
  }
  return out;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return HexEncode(std::string_view(reinterpret_cast<const char*>(md), len));
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), md, &len);
  return std::string(reinterpret_cast<const char*>(md), len);
}

std::string CanonicalQueryString(const std::vector<std::pair<std::string, std::string>>& query) {
  // Sorted after encoding: the raw and encoded orders differ (e.g. '~' sorts
  // after 'é' raw but before its "%C3%A9").
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(query.size());
  for (const auto& [name, value] : query) encoded.emplace_back(UriEncode(name, true), UriEncode(value, true));
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [name, value] : encoded) {
    if (!out.empty()) out += '&';
    out += name + "=" + value;  // a bare "?uploads" is "uploads="
  }
  return out;
}

HttpHeaders SignRequest(const SigningInput& in, const AwsCredentials& creds) {
  Stamp stamp = StampOf(in.now);
  // An empty payload hash is taken to mean an empty body (GET, HEAD, DELETE).
  std::string payload = in.payload_sha256.empty() ? Sha256Hex("") : in.payload_sha256;
  HttpHeaders generated = {{"host", in.host}, {"x-amz-date", stamp.date_time}, {"x-amz-content-sha256", payload}};
  if (!creds.session_token.empty()) generated.emplace_back("x-amz-security-token", creds.session_token);

  // A header the caller already sends is signed with the caller's value and
  // not returned again, so the request never carries it twice.
  HttpHeaders out;
  for (auto& h : generated) {
    if (!HasHeader(in.headers, h.first)) out.push_back(std::move(h));
  }
  CanonicalHeaders canonical;
  AddCanonical(canonical, in.headers);
  AddCanonical(canonical, out);

  std::string request = CanonicalRequest(in, CanonicalQueryString(in.query), canonical, payload);
  std::string signature = Signature(request, stamp, in, creds);
  out.emplace_back("authorization",
                   fmt::format("{} Credential={}/{}, SignedHeaders={}, Signature={}", kAlgorithm,
                               creds.access_key_id, Scope(stamp, in), SignedHeaderList(canonical), signature));
  return out;
}

std::string PresignUrl(const SigningInput& in, const AwsCredentials& creds, std::string_view scheme_and_host,
                       int64_t expires_seconds) {
  Stamp stamp = StampOf(in.now);
  // Presigned URLs are fetched by clients that never send the body's hash.
  std::string payload = in.payload_sha256.empty() ? std::string(kUnsignedPayload) : in.payload_sha256;
  expires_seconds = std::clamp<int64_t>(expires_seconds, 1, kMaxPresignSeconds);
  std::string base(scheme_and_host);
  while (!base.empty() && base.back() == '/') base.pop_back();

  CanonicalHeaders canonical;
  AddCanonical(canonical, in.headers);
  if (!canonical.count("host")) canonical["host"] = in.host.empty() ? ParseEndpointUrl(base).host : in.host;

  auto query = in.query;
  query.emplace_back("X-Amz-Algorithm", std::string(kAlgorithm));
  query.emplace_back("X-Amz-Credential", creds.access_key_id + "/" + Scope(stamp, in));
  query.emplace_back("X-Amz-Date", stamp.date_time);
  query.emplace_back("X-Amz-Expires", std::to_string(expires_seconds));
  query.emplace_back("X-Amz-SignedHeaders", SignedHeaderList(canonical));
  if (!creds.session_token.empty()) query.emplace_back("X-Amz-Security-Token", creds.session_token);
  std::string query_string = CanonicalQueryString(query);

  std::string signature = Signature(CanonicalRequest(in, query_string, canonical, payload), stamp, in, creds);
  return fmt::format("{}{}?{}&X-Amz-Signature={}", base, in.canonical_uri.empty() ? "/" : in.canonical_uri,
                     query_string, signature);
}

}  // namespace cloudmerge
