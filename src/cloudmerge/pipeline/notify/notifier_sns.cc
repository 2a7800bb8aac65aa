// The SNS channel: the Publish action through aws/sns_client.h (signing,
// retries with backoff on throttling, 5xx and network errors live there).
// The topic's e-mail subscriptions turn it into mail, so only the text body
// travels; SNS wants a short plain-ASCII subject, so ours is cut down to one.
//
// Threading: the notifier holds its options and shared pointers to a
// thread-safe credentials provider and transport; every Send keeps its state
// on the stack, so Send may run on many threads at once.
#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "cloudmerge/aws/endpoints.h"
#include "cloudmerge/aws/sns_client.h"
#include "cloudmerge/pipeline/notify/notifier.h"
#include "cloudmerge/pipeline/notify/notifier_internal.h"

namespace cloudmerge {
namespace {

using namespace notifier_internal;

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

// No endpoint configured: the public one of the topic's region.
AwsEndpoint SnsEndpoint(const std::string& endpoint_url, const std::string& region) {
  return ParseEndpointUrl(endpoint_url.empty() ? fmt::format("https://sns.{}.{}", region, AwsDomain(region))
                                               : endpoint_url);
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
    SnsClient sns(SnsEndpoint(o_.endpoint_url, region), region, credentials_, transport_);
    auto answer = sns.Publish(o_.topic_arn, SnsSubject(n.subject), SnsMessage(n));
    if (!answer.ok()) {
      if (answer.status().code() != Status::Code::kIOError)  // the credentials' own error
        return WithCode(answer.status().code(), fmt::format("cannot publish the notification to SNS topic {}: {}",
                                                            o_.topic_arn, answer.status().message()));
      return Status::IOError(fmt::format("cannot publish the notification to SNS topic {}: {}. Check the network "
                                         "and the SNS endpoint.", o_.topic_arn, answer.status().message()));
    }
    const HttpResponse& r = answer->response;
    if (answer->ok()) return CheckPublished(r);
    return ErrorFor(r, XmlText(r.body, "Code"), region, answer->credentials, answer->attempts);
  }

  std::string Describe() const override { return "sns " + o_.topic_arn; }
  std::string Name() const override { return "sns"; }

 private:
  Status CheckPublished(const HttpResponse& r) const {
    if (!XmlText(r.body, "MessageId").empty()) return Status::OK();
    return Status::IOError(fmt::format(
        "SNS answered the Publish to {} with HTTP 200 but no MessageId, so the notification may not have gone out. "
        "Check that the SNS endpoint is really SNS. The answer began: {}",
        o_.topic_arn, r.body.substr(0, 200)));
  }

  Status ErrorFor(const HttpResponse& r, const std::string& code, const std::string& region,
                  const std::string& creds, int attempts) const {
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
                         "of that user or role, or to the topic's access policy.", creds);
    } else if (code == "InvalidClientTokenId" || code == "SignatureDoesNotMatch" || code == "IncompleteSignature" ||
               code == "ExpiredToken" || code == "UnrecognizedClientException") {
      hint = fmt::format("AWS did not accept the credentials ({}): check the access key, its secret and, for "
                         "temporary credentials, that they have not expired.", creds);
    } else if (IsRetryableAnswer(r.status, code)) {
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
