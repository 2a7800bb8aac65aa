// The SNS channel: the Publish action of the SNS Query API, a form-encoded
// POST signed with SigV4 (service "sns"), sent through the shared
// HttpTransport, retried with backoff on throttling, 5xx and network errors.
// The topic's e-mail subscriptions turn it into mail, so only the text body
// travels; SNS wants a short plain-ASCII subject, so ours is cut down to one.
//
// Threading: the notifier holds its options and shared pointers to a
// thread-safe credentials provider and transport; every Send keeps its state
// on the stack, so Send may run on many threads at once.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "cloudmerge/random_seed.h"
#include "cloudmerge/aws/sigv4.h"
#include "cloudmerge/pipeline/notifier.h"
#include "cloudmerge/pipeline/notifier_internal.h"

namespace cloudmerge {
namespace {

using namespace notifier_internal;

// One try and three retries.
constexpr int kMaxAttempts = 4;
constexpr int64_t kBaseBackoffMs = 200;
// A Publish is small: a stalled attempt is better retried than waited for
// (the transport's default is sized for multi-gigabyte transfers).
constexpr long kRequestTimeoutMs = 30000;
// SNS limits: a message of 256 KiB, a subject of 100 ASCII characters.
constexpr size_t kMaxMessageBytes = 256 * 1024 - 1024;  // room for the truncation note
constexpr size_t kMaxSubjectChars = 100;

// --- Request -------------------------------------------------------------

// arn:PARTITION:sns:REGION:ACCOUNT:TOPIC, split; empty when it is not one.
std::vector<std::string> SplitArn(const std::string& arn) {
  std::vector<std::string> parts;
  size_t pos = 0;
  for (int i = 0; i < 5; ++i) {
    size_t colon = arn.find(':', pos);
    if (colon == std::string::npos) return {};
    parts.push_back(arn.substr(pos, colon - pos));
    pos = colon + 1;
  }
  parts.push_back(arn.substr(pos));
  if (parts[0] != "arn" || parts[2] != "sns" || parts[3].empty() || parts[5].empty()) return {};
  return parts;
}

std::string AwsDomain(const std::string& region) {
  return region.rfind("cn-", 0) == 0 ? "amazonaws.com.cn" : "amazonaws.com";
}

// Where the POST goes and what is signed.
struct Endpoint {
  std::string url;   // what the transport is given
  std::string host;  // Host header, with ":port" when there is one
  std::string path;  // the canonical URI, at least "/"
};

Endpoint ResolveEndpoint(const std::string& endpoint_url, const std::string& region) {
  std::string url = endpoint_url.empty() ? fmt::format("https://sns.{}.{}/", region, AwsDomain(region)) : endpoint_url;
  size_t scheme_end = url.find("://");
  std::string scheme = scheme_end == std::string::npos ? "https" : url.substr(0, scheme_end);
  std::string rest = scheme_end == std::string::npos ? url : url.substr(scheme_end + 3);
  size_t slash = rest.find('/');
  Endpoint e;
  e.host = rest.substr(0, slash);
  e.path = slash == std::string::npos ? "/" : rest.substr(slash);
  e.url = scheme + "://" + e.host + e.path;
  return e;
}

// SNS subjects: printable ASCII, no line breaks, at most 100 characters,
// starting with a letter, digit or punctuation. Each non-ASCII character (a
// whole UTF-8 sequence) becomes one '?'; runs of white space become one space.
std::string SnsSubject(const std::string& subject) {
  std::string out;
  for (size_t i = 0; i < subject.size(); ++i) {
    auto c = static_cast<unsigned char>(subject[i]);
    if (c >= 0x80) {
      if ((c & 0xC0) != 0x80) out += '?';  // lead byte: one '?' per character, continuation bytes dropped
      continue;
    }
    if (c < 0x20 || c == 0x7f || c == ' ') {
      if (!out.empty() && out.back() != ' ') out += ' ';
      continue;
    }
    out += static_cast<char>(c);
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (out.size() > kMaxSubjectChars) out = out.substr(0, kMaxSubjectChars - 3) + "...";
  return out.empty() ? "cloudmerge notification" : out;
}

std::string SnsMessage(const Notification& n) {
  std::string text = n.text.empty() ? n.subject : n.text;
  if (text.size() <= kMaxMessageBytes) return text.empty() ? "(no text)" : text;
  size_t cut = kMaxMessageBytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // not inside a character
  return text.substr(0, cut) + "\n\n[... cut: the message was longer than SNS allows (256 KiB)]\n";
}

std::string PublishBody(const std::string& topic_arn, const Notification& n) {
  auto enc = [](const std::string& s) { return UriEncode(s, true); };
  return fmt::format("Action=Publish&Version=2010-03-31&TopicArn={}&Subject={}&Message={}", enc(topic_arn),
                     enc(SnsSubject(n.subject)), enc(SnsMessage(n)));
}

// --- Response --------------------------------------------------------------

std::string XmlUnescape(std::string s) {
  static const std::pair<const char*, const char*> kEntities[] = {
      {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&apos;", "'"}, {"&amp;", "&"}};
  for (const auto& [entity, text] : kEntities) {
    for (size_t p = s.find(entity); p != std::string::npos; p = s.find(entity, p + 1)) {
      s.replace(p, std::strlen(entity), text);
    }
  }
  return s;
}

// The text of the first <tag>...</tag> in `xml`, or "". The Query API's
// documents are flat enough that this is all the parsing needed.
std::string XmlText(const std::string& xml, const std::string& tag) {
  std::string open = "<" + tag + ">", close = "</" + tag + ">";
  size_t b = xml.find(open);
  if (b == std::string::npos) return "";
  b += open.size();
  size_t e = xml.find(close, b);
  if (e == std::string::npos) return "";
  std::string text = xml.substr(b, e - b);
  // moto (and some proxies) wrap the text in CDATA, which is not escaped.
  if (text.rfind("<![CDATA[", 0) == 0 && text.size() >= 12 && text.compare(text.size() - 3, 3, "]]>") == 0) {
    return text.substr(9, text.size() - 12);
  }
  return XmlUnescape(std::move(text));
}

bool Retryable(long status, const std::string& code) {
  if (status == 429 || status >= 500) return true;
  return code.find("Throttl") != std::string::npos || code == "RequestTimeout" || code == "ServiceUnavailable" ||
         code == "InternalError" || code == "InternalFailure";
}

// Exponential backoff with full jitter, so that many workers throttled
// together do not retry together.
void Backoff(int failures) {
  thread_local std::mt19937_64 rng{RandomSeed()};
  int64_t cap = kBaseBackoffMs << std::min(failures - 1, 4);
  std::uniform_int_distribution<int64_t> dist(cap / 4, cap);
  std::this_thread::sleep_for(std::chrono::milliseconds(dist(rng)));
}

class SnsNotifier final : public Notifier {
 public:
  SnsNotifier(SnsOptions o, std::shared_ptr<CredentialsProvider> credentials, std::shared_ptr<HttpTransport> transport)
      : o_(std::move(o)), credentials_(std::move(credentials)), transport_(std::move(transport)) {}

  Status Send(const Notification& n) override {
    std::vector<std::string> arn = SplitArn(o_.topic_arn);
    if (arn.empty()) {
      return Status::InvalidArgument(fmt::format(
          "\"{}\" is not an SNS topic ARN. It looks like arn:aws:sns:eu-west-1:123456789012:my-topic (the AWS "
          "console shows it on the topic's page).",
          o_.topic_arn));
    }
    // The topic lives in the region its ARN names: that is the default.
    std::string region = o_.region.empty() ? arn[3] : o_.region;
    Endpoint endpoint = ResolveEndpoint(o_.endpoint_url, region);
    std::string body = PublishBody(o_.topic_arn, n);
    return PublishWithRetries(endpoint, region, body);
  }

  std::string Describe() const override { return "sns " + o_.topic_arn; }
  std::string Name() const override { return "sns"; }

 private:
  Status PublishWithRetries(const Endpoint& endpoint, const std::string& region, const std::string& body) {
    Status last;
    for (int attempt = 1; attempt <= kMaxAttempts; ++attempt) {
      if (attempt > 1) Backoff(attempt - 1);
      auto creds = credentials_->Get();
      if (!creds.ok()) {
        return WithCode(creds.status().code(), fmt::format("cannot publish the notification to SNS topic {}: {}",
                                                           o_.topic_arn, creds.status().message()));
      }
      auto response = transport_->Send(SignedRequest(endpoint, region, body, creds.value()));
      if (!response.ok()) {
        last = Status::IOError(fmt::format(
            "cannot publish the notification to SNS topic {} at {}: {} (after {} attempts). Check the network and "
            "the SNS endpoint.",
            o_.topic_arn, endpoint.url, response.status().message(), attempt));
        continue;
      }
      const HttpResponse& r = response.value();
      std::string code = XmlText(r.body, "Code");
      if (r.status == 200) return CheckPublished(r);
      last = ErrorFor(r, code, region, creds.value(), attempt);
      if (!Retryable(r.status, code)) return last;
    }
    return last;
  }

  HttpRequest SignedRequest(const Endpoint& endpoint, const std::string& region, const std::string& body,
                            const AwsCredentials& creds) const {
    SigningInput in;
    in.method = "POST";
    in.host = endpoint.host;
    in.canonical_uri = endpoint.path;
    in.headers = {{"content-type", "application/x-www-form-urlencoded; charset=utf-8"}};
    in.payload_sha256 = Sha256Hex(body);
    in.region = region;
    in.service = "sns";
    in.now = std::time(nullptr);

    HttpRequest req;
    req.method = "POST";
    req.url = endpoint.url;
    req.headers = in.headers;
    for (auto& h : SignRequest(in, creds)) req.headers.push_back(std::move(h));
    req.body = body;
    req.timeout_ms = kRequestTimeoutMs;
    return req;
  }

  Status CheckPublished(const HttpResponse& r) const {
    if (!XmlText(r.body, "MessageId").empty()) return Status::OK();
    return Status::IOError(fmt::format(
        "SNS answered the Publish to {} with HTTP 200 but no MessageId, so the notification may not have gone out. "
        "Check that the SNS endpoint is really SNS. The answer began: {}",
        o_.topic_arn, r.body.substr(0, 200)));
  }

  Status ErrorFor(const HttpResponse& r, const std::string& code, const std::string& region,
                  const AwsCredentials& creds, int attempts) const {
    std::string said = XmlText(r.body, "Message");
    std::string what = fmt::format("SNS refused to publish the notification to topic {} (HTTP {}{}{}{})",
                                   o_.topic_arn, r.status, code.empty() ? "" : ", ", code,
                                   said.empty() ? "" : ": " + said);
    std::string hint;
    if (code == "NotFound" || r.status == 404) {
      hint = fmt::format("Check the topic ARN, and that the topic exists in region {} (the notifier's region must "
                         "be the topic's).", region);
    } else if (code == "AuthorizationError" || code == "AccessDenied" || code == "AccessDeniedException") {
      hint = fmt::format("The credentials ({}) are not allowed sns:Publish on this topic: add it to the IAM policy "
                         "of that user or role, or to the topic's access policy.", creds.Describe());
    } else if (code == "InvalidClientTokenId" || code == "SignatureDoesNotMatch" || code == "IncompleteSignature" ||
               code == "ExpiredToken" || code == "UnrecognizedClientException") {
      hint = fmt::format("AWS did not accept the credentials ({}): check the access key, its secret and, for "
                         "temporary credentials, that they have not expired.", creds.Describe());
    } else if (Retryable(r.status, code)) {
      hint = fmt::format("Gave up after {} attempts; SNS may be throttling or unavailable. Try again later.", attempts);
    } else {
      hint = "Check the notifier's SNS settings.";
    }
    return Status::IOError(what + ". " + hint);
  }

  const SnsOptions o_;
  const std::shared_ptr<CredentialsProvider> credentials_;
  const std::shared_ptr<HttpTransport> transport_;
};

}  // namespace

std::unique_ptr<Notifier> NewSnsNotifier(SnsOptions options, std::shared_ptr<CredentialsProvider> credentials,
                                         std::shared_ptr<HttpTransport> transport) {
  return std::make_unique<SnsNotifier>(std::move(options), std::move(credentials), std::move(transport));
}

}  // namespace cloudmerge
