// The notifier offline: FormatEmail's message parsed back (headers unfolded,
// parts split on the boundary, base64 decoded and compared with the inputs,
// RFC 2047 subjects decoded), the directory channel in a temporary directory,
// the SNS request as a scripted HttpTransport sees it (shape, signature scope,
// retries, error messages), the fan-out, and the SMTP channel's argument and
// connection errors. Real servers are in tests/e2e/test_notifications.py.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cloudmerge/aws/credentials.h"
#include "cloudmerge/pipeline/notify/notifier.h"
#include "temp_dir.h"

namespace cloudmerge {
namespace {

namespace fs = std::filesystem;

constexpr const char* kSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
constexpr const char* kTopic = "arn:aws:sns:eu-west-1:123456789012:job-events";

// --- A small MIME reader, independent of the code under test ------------------

std::string Base64Decode(const std::string& in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = value(c);
    if (v < 0) continue;  // line breaks, padding
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return out;
}

std::vector<std::string> SplitCrlf(const std::string& s) {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t e = s.find("\r\n", pos);
    if (e == std::string::npos) {
      if (pos < s.size()) lines.push_back(s.substr(pos));
      break;
    }
    lines.push_back(s.substr(pos, e - pos));
    pos = e + 2;
  }
  return lines;
}

struct Entity {
  std::vector<std::pair<std::string, std::string>> headers;  // unfolded
  std::string body;
  std::string Header(const std::string& name) const {
    for (const auto& [n, v] : headers) {
      if (strcasecmp(n.c_str(), name.c_str()) == 0) return v;
    }
    return "";
  }
  int Count(const std::string& name) const {
    int c = 0;
    for (const auto& h : headers) c += strcasecmp(h.first.c_str(), name.c_str()) == 0;
    return c;
  }
};

Entity ParseEntity(const std::string& text) {
  Entity e;
  size_t end = text.find("\r\n\r\n");
  std::string head = text.substr(0, end);
  e.body = end == std::string::npos ? "" : text.substr(end + 4);
  for (const auto& line : SplitCrlf(head)) {
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
      e.headers.back().second += line;  // unfold: the CRLF goes, the white space stays
      continue;
    }
    size_t colon = line.find(':');
    std::string value = line.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.erase(0, 1);
    e.headers.emplace_back(line.substr(0, colon), value);
  }
  return e;
}

// Decodes RFC 2047 B-encoded UTF-8 words; white space between words is dropped.
std::string DecodeWords(const std::string& v) {
  std::string out;
  size_t pos = 0;
  while (true) {
    size_t b = v.find("=?UTF-8?B?", pos);
    if (b == std::string::npos) break;
    size_t e = v.find("?=", b + 10);
    out += Base64Decode(v.substr(b + 10, e - b - 10));
    pos = e + 2;
  }
  return out;
}

std::string Boundary(const std::string& content_type) {
  size_t p = content_type.find("boundary=\"");
  EXPECT_NE(p, std::string::npos) << content_type;
  p += 10;
  return content_type.substr(p, content_type.find('"', p) - p);
}

std::vector<Entity> Parts(const Entity& message) {
  std::string boundary = Boundary(message.Header("Content-Type"));
  std::vector<Entity> parts;
  std::string delim = "--" + boundary + "\r\n";
  size_t pos = message.body.find(delim);
  while (pos != std::string::npos) {
    size_t start = pos + delim.size();
    size_t next = message.body.find("--" + boundary, start);
    parts.push_back(ParseEntity(message.body.substr(start, next - start)));
    pos = message.body.find(delim, next);
  }
  EXPECT_NE(message.body.find("--" + boundary + "--\r\n"), std::string::npos) << "no closing boundary";
  return parts;
}

std::string Crlf(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') out += '\r';
    out += c;
  }
  return out;
}

Notification Sample() {
  Notification n;
  n.kind = "succeeded";
  n.job = "study-42";
  n.subject = "cloudmerge: result ready for job study-42";
  n.text = "The merge is done.\n\n  rows: 1200\n" + std::string(300, 'x') + "\n";
  n.html = "<p>The merge is <b>done</b>.</p>";
  return n;
}

// --- FormatEmail ---------------------------------------------------------------

TEST(FormatEmail, HeadersAndBothPartsDecodeToTheInputs) {
  Notification n = Sample();
  std::string m = FormatEmail(n, "cloudmerge <noreply@lab.example.org>", {"ana@lab.example.org", "bo@uni.example"});
  Entity e = ParseEntity(m);

  EXPECT_EQ(e.Count("Date"), 1);
  EXPECT_TRUE(e.Header("Date").find("+0000") != std::string::npos) << e.Header("Date");
  EXPECT_EQ(e.Header("From"), "cloudmerge <noreply@lab.example.org>");
  EXPECT_EQ(e.Header("To"), "ana@lab.example.org, bo@uni.example");
  EXPECT_EQ(e.Header("Subject"), n.subject);
  EXPECT_EQ(e.Header("MIME-Version"), "1.0");
  std::string id = e.Header("Message-ID");
  EXPECT_EQ(id.front(), '<');
  EXPECT_NE(id.find("@lab.example.org>"), std::string::npos) << id;
  EXPECT_EQ(e.Header("X-Cloudmerge-Job"), "study-42");
  EXPECT_EQ(e.Header("X-Cloudmerge-Kind"), "succeeded");
  EXPECT_EQ(e.Header("Content-Type").rfind("multipart/alternative;", 0), 0u) << e.Header("Content-Type");

  auto parts = Parts(e);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0].Header("Content-Type"), "text/plain; charset=utf-8");
  EXPECT_EQ(parts[0].Header("Content-Transfer-Encoding"), "base64");
  EXPECT_EQ(Base64Decode(parts[0].body), Crlf(n.text));
  EXPECT_EQ(parts[1].Header("Content-Type"), "text/html; charset=utf-8");
  std::string html = Base64Decode(parts[1].body);
  EXPECT_NE(html.find(Crlf(n.html)), std::string::npos) << html;
  EXPECT_NE(html.find("<html>"), std::string::npos);
  EXPECT_NE(html.find("<meta charset=\"utf-8\">"), std::string::npos);
  EXPECT_NE(html.find("<title>cloudmerge: result ready for job study-42</title>"), std::string::npos);
}

TEST(FormatEmail, EveryLineIsShortAndEndsWithCrlf) {
  Notification n = Sample();
  n.text = std::string(5000, 'a') + "\n" + std::string(3000, 'b');
  std::string m = FormatEmail(n, "noreply@x.org", {"a@x.org"});
  for (size_t i = 0; i < m.size(); ++i) {
    if (m[i] == '\n') {
      ASSERT_TRUE(i > 0 && m[i - 1] == '\r') << "bare LF at " << i;
    }
    if (m[i] == '\r') {
      ASSERT_TRUE(i + 1 < m.size() && m[i + 1] == '\n') << "bare CR at " << i;
    }
  }
  for (const auto& line : SplitCrlf(m)) EXPECT_LE(line.size(), 78u) << line;
  auto parts = Parts(ParseEntity(m));
  for (const auto& p : parts) {
    for (const auto& line : SplitCrlf(p.body)) EXPECT_LE(line.size(), 76u);
  }
}

TEST(FormatEmail, NonAsciiSubjectIsEncodedWordsThatDecodeBack) {
  Notification n = Sample();
  n.subject = "Résultat prêt — étude «Zürich» 北京 " + std::string(60, 'z') + " ✓";
  std::string m = FormatEmail(n, "noreply@x.org", {"a@x.org"});
  Entity e = ParseEntity(m);
  std::string subject = e.Header("Subject");
  EXPECT_EQ(subject.rfind("=?UTF-8?B?", 0), 0u) << subject;
  for (unsigned char c : subject) EXPECT_LT(c, 0x80);
  EXPECT_EQ(DecodeWords(subject), n.subject);
  // Each word decodes to valid UTF-8 on its own: no character is split across words.
  size_t pos = 0;
  while ((pos = subject.find("=?UTF-8?B?", pos)) != std::string::npos) {
    size_t end = subject.find("?=", pos + 10);
    std::string word = Base64Decode(subject.substr(pos + 10, end - pos - 10));
    EXPECT_NE(static_cast<unsigned char>(word[0]) & 0xC0, 0x80u) << "word starts inside a character";
    EXPECT_LE(end + 2 - pos, 75u);
    pos = end;
  }
  // The whole message is ASCII.
  for (unsigned char c : m) ASSERT_LT(c, 0x80);
}

TEST(FormatEmail, LineBreaksInHeaderFieldsCannotInjectHeaders) {
  Notification n = Sample();
  n.subject = "done\r\nBcc: victim@evil.example";
  n.job = "j\nX-Evil: 1";
  std::string m = FormatEmail(n, "noreply@x.org\r\nCc: a@b.c", {"a@x.org\r\nBcc: z@evil.example"});
  Entity e = ParseEntity(m);
  EXPECT_EQ(e.Count("Bcc"), 0);
  EXPECT_EQ(e.Count("X-Evil"), 0);
  EXPECT_EQ(e.Count("Cc"), 0);
  EXPECT_EQ(e.Header("Subject"), "done  Bcc: victim@evil.example");
}

TEST(FormatEmail, BoundariesDifferAndNoRecipientsIsStillValid) {
  Notification n = Sample();
  Entity a = ParseEntity(FormatEmail(n, "noreply@x.org", {}));
  Entity b = ParseEntity(FormatEmail(n, "noreply@x.org", {}));
  EXPECT_NE(Boundary(a.Header("Content-Type")), Boundary(b.Header("Content-Type")));
  EXPECT_NE(a.Header("Message-ID"), b.Header("Message-ID"));
  EXPECT_EQ(a.Header("To"), "undisclosed-recipients:;");
}

TEST(FormatEmail, DisplayNamesAreQuotedOrEncoded) {
  Notification n = Sample();
  EXPECT_EQ(ParseEntity(FormatEmail(n, "Lab, Genomics <g@x.org>", {})).Header("From"), "\"Lab, Genomics\" <g@x.org>");
  std::string from = ParseEntity(FormatEmail(n, "Laboratoire Génomique <g@x.org>", {})).Header("From");
  EXPECT_EQ(DecodeWords(from), "Laboratoire Génomique");
  EXPECT_NE(from.find(" <g@x.org>"), std::string::npos) << from;
}

// --- Directory channel ---------------------------------------------------------

std::vector<fs::path> Files(const fs::path& dir) {
  std::vector<fs::path> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(DirectoryNotifier, WritesOneEmlPerSendIntoACreatedDirectory) {
  TempDir tmp;
  fs::path outbox = tmp.path() / "deep" / "outbox";
  auto notifier = NewDirectoryNotifier(outbox.string(), "noreply@lab.org", {"ana@lab.org"});
  EXPECT_EQ(notifier->Describe(), "directory " + outbox.string());

  Notification n = Sample();
  n.extra_recipients = {"bo@lab.org", "ANA@lab.org", "Cy <cy@lab.org>"};
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(notifier->Send(n).ok());
  n.kind = "failed";
  ASSERT_TRUE(notifier->Send(n).ok());

  auto files = Files(outbox);
  ASSERT_EQ(files.size(), 4u);  // same millisecond, same job and kind: still one file each
  for (const auto& f : files) {
    std::string name = f.filename().string();
    EXPECT_EQ(f.extension(), ".eml") << name;
    EXPECT_NE(name.front(), '.') << "temporary left behind: " << name;
    EXPECT_NE(name.find("-study-42-"), std::string::npos) << name;
    // The kind stays last also on a name taken twice in a millisecond: readers match "*-<kind>.eml".
    EXPECT_TRUE(name.ends_with("-succeeded.eml") || name.ends_with("-failed.eml")) << name;
    Entity e = ParseEntity(ReadAll(f));
    EXPECT_EQ(e.Header("To"), "ana@lab.org, bo@lab.org, cy@lab.org");
    EXPECT_EQ(Base64Decode(Parts(e)[0].body), Crlf(n.text));
  }
  int failed = 0;
  for (const auto& f : files) failed += f.filename().string().find("-failed") != std::string::npos;
  EXPECT_EQ(failed, 1);
}

TEST(DirectoryNotifier, ConcurrentSendsEachGetTheirOwnFile) {
  TempDir tmp;
  auto notifier = NewDirectoryNotifier(tmp.path().string(), "noreply@lab.org", {"ana@lab.org"});
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5; ++i) failures += !notifier->Send(Sample()).ok();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  auto files = Files(tmp.path());
  EXPECT_EQ(files.size(), 40u);
  for (const auto& f : files) EXPECT_EQ(f.extension(), ".eml") << f;
}

TEST(DirectoryNotifier, JobNamesCannotLeaveTheDirectory) {
  TempDir tmp;
  auto notifier = NewDirectoryNotifier((tmp.path() / "out").string(), "noreply@lab.org", {});
  Notification n = Sample();
  n.job = "../../etc/passwd";
  n.kind = "re/ceived";
  ASSERT_TRUE(notifier->Send(n).ok());
  auto files = Files(tmp.path() / "out");
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(Files(tmp.path()).size(), 1u);  // only "out"
  std::string name = files[0].filename().string();
  EXPECT_EQ(name.find('/'), std::string::npos);
  EXPECT_NE(name.find("-_.._etc_passwd-re_ceived.eml"), std::string::npos) << name;  // no leading dot
}

TEST(DirectoryNotifier, BadExtraRecipientIsReportedButTheMessageIsWritten) {
  TempDir tmp;
  auto notifier = NewDirectoryNotifier(tmp.path().string(), "noreply@lab.org", {"ana@lab.org"});
  Notification n = Sample();
  n.extra_recipients = {"not an address", "bo@lab.org"};
  Status st = notifier->Send(n);
  EXPECT_EQ(st.code(), Status::Code::kInvalidInput);
  EXPECT_NE(st.message().find("\"not an address\""), std::string::npos) << st.message();
  auto files = Files(tmp.path());
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(ParseEntity(ReadAll(files[0])).Header("To"), "ana@lab.org, bo@lab.org");
}

TEST(DirectoryNotifier, UnwritableDirectoryIsAClearError) {
  TempDir tmp;
  fs::path file = tmp.path() / "a-file";
  std::ofstream(file) << "x";
  auto notifier = NewDirectoryNotifier((file / "outbox").string(), "noreply@lab.org", {});
  Status st = notifier->Send(Sample());
  EXPECT_EQ(st.code(), Status::Code::kIOError);
  EXPECT_NE(st.message().find((file / "outbox").string()), std::string::npos) << st.message();
}

// --- SNS -------------------------------------------------------------------

struct SeenRequest {
  std::string method, url, body;
  HttpHeaders headers;
  std::string Header(const std::string& name) const {
    for (const auto& [n, v] : headers) {
      if (strcasecmp(n.c_str(), name.c_str()) == 0) return v;
    }
    return "";
  }
};

// Answers with the scripted responses in order (a Status is a transport
// error); the last one repeats.
class ScriptedTransport final : public HttpTransport {
 public:
  std::deque<Result<HttpResponse>> script;
  std::vector<SeenRequest> seen;

  Result<HttpResponse> Send(const HttpRequest& request) override {
    std::lock_guard<std::mutex> lock(mu_);
    seen.push_back({request.method, request.url, std::string(request.body), request.headers});
    Result<HttpResponse> r = script.front();
    if (script.size() > 1) script.pop_front();
    return r;
  }

 private:
  std::mutex mu_;
};

HttpResponse Response(long status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse Published() {
  return Response(200,
                  "<PublishResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><PublishResult><MessageId>"
                  "94f20ce6-13c5-43a0-9a9e-ca52d816e90b</MessageId></PublishResult><ResponseMetadata><RequestId>"
                  "f187a3c1</RequestId></ResponseMetadata></PublishResponse>");
}

HttpResponse SnsError(long status, const std::string& code, const std::string& message) {
  return Response(status, "<ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><Error><Type>Sender"
                          "</Type><Code>" + code + "</Code><Message>" + message +
                          "</Message></Error><RequestId>9d1b</RequestId></ErrorResponse>");
}

std::shared_ptr<CredentialsProvider> TestCredentials() {
  AwsCredentials c;
  c.access_key_id = "AKIDEXAMPLE";
  c.secret_access_key = kSecret;
  c.source = "test";
  return NewStaticCredentials(c);
}

// Form field `name` of an x-www-form-urlencoded body, decoded.
std::string FormField(const std::string& body, const std::string& name) {
  std::string key = name + "=";
  size_t pos = 0;
  while (pos < body.size()) {
    size_t amp = body.find('&', pos);
    std::string pair = body.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
    if (pair.rfind(key, 0) == 0) {
      std::string raw = pair.substr(key.size()), out;
      for (size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] == '%' && i + 2 < raw.size()) {
          out += static_cast<char>(std::stoi(raw.substr(i + 1, 2), nullptr, 16));
          i += 2;
        } else {
          out += raw[i] == '+' ? ' ' : raw[i];
        }
      }
      return out;
    }
    if (amp == std::string::npos) break;
    pos = amp + 1;
  }
  return "<missing>";
}

TEST(SnsNotifier, PublishRequestIsSignedForSns) {
  auto transport = std::make_shared<ScriptedTransport>();
  transport->script.push_back(Published());
  auto notifier = NewSnsNotifier({kTopic, "", ""}, TestCredentials(), transport);
  EXPECT_EQ(notifier->Describe(), std::string("sns ") + kTopic);

  Notification n = Sample();
  n.text = "rows: 10 & more = fine\nsecond line ✓\n";
  Status st = notifier->Send(n);
  ASSERT_TRUE(st.ok()) << st.message();
  ASSERT_EQ(transport->seen.size(), 1u);
  const SeenRequest& r = transport->seen[0];
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.url, "https://sns.eu-west-1.amazonaws.com/");  // the region comes from the ARN
  EXPECT_EQ(r.body.rfind("Action=Publish&Version=2010-03-31&", 0), 0u) << r.body;
  EXPECT_EQ(FormField(r.body, "Action"), "Publish");
  EXPECT_EQ(FormField(r.body, "TopicArn"), kTopic);
  EXPECT_EQ(FormField(r.body, "Subject"), n.subject);
  EXPECT_EQ(FormField(r.body, "Message"), n.text);
  EXPECT_EQ(r.Header("content-type"), "application/x-www-form-urlencoded; charset=utf-8");
  EXPECT_EQ(r.Header("host"), "sns.eu-west-1.amazonaws.com");
  std::string auth = r.Header("authorization");
  EXPECT_EQ(auth.rfind("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/", 0), 0u) << auth;
  EXPECT_NE(auth.find("/eu-west-1/sns/aws4_request"), std::string::npos) << auth;
  EXPECT_NE(auth.find("content-type"), std::string::npos) << "content-type is signed: " << auth;
  EXPECT_EQ(auth.find(kSecret), std::string::npos);
}

TEST(SnsNotifier, ExplicitEndpointAndRegion) {
  auto transport = std::make_shared<ScriptedTransport>();
  transport->script.push_back(Published());
  auto notifier =
      NewSnsNotifier({kTopic, "us-east-2", "http://127.0.0.1:5000"}, TestCredentials(), transport);
  ASSERT_TRUE(notifier->Send(Sample()).ok());
  EXPECT_EQ(transport->seen[0].url, "http://127.0.0.1:5000/");
  EXPECT_EQ(transport->seen[0].Header("host"), "127.0.0.1:5000");
  EXPECT_NE(transport->seen[0].Header("authorization").find("/us-east-2/sns/aws4_request"), std::string::npos);
}

TEST(SnsNotifier, SubjectIsMadeShortAsciiAndOneLine) {
  auto transport = std::make_shared<ScriptedTransport>();
  transport->script.push_back(Published());
  auto notifier = NewSnsNotifier({kTopic, "", ""}, TestCredentials(), transport);
  Notification n = Sample();
  n.subject = "  Résultat\r\n prêt\t✓ " + std::string(200, 'x');
  ASSERT_TRUE(notifier->Send(n).ok());
  std::string subject = FormField(transport->seen[0].body, "Subject");
  EXPECT_LE(subject.size(), 100u);
  EXPECT_EQ(subject.rfind("R?sultat pr?t ? xxx", 0), 0u) << subject;
  EXPECT_EQ(subject.substr(subject.size() - 3), "...");
  for (unsigned char c : subject) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << subject;
}

TEST(SnsNotifier, RetriesOn503ThenSucceeds) {
  auto transport = std::make_shared<ScriptedTransport>();
  transport->script = {SnsError(503, "ServiceUnavailable", "try later"), Result<HttpResponse>(
                           Status::IOError("connection reset")), Published()};
  auto notifier = NewSnsNotifier({kTopic, "", ""}, TestCredentials(), transport);
  Status st = notifier->Send(Sample());
  EXPECT_TRUE(st.ok()) << st.message();
  ASSERT_EQ(transport->seen.size(), 3u);
  EXPECT_EQ(transport->seen[0].body, transport->seen[2].body);
}

TEST(SnsNotifier, ThrottlingIsRetriedAndGivenUpAfterFourAttempts) {
  auto transport = std::make_shared<ScriptedTransport>();
  transport->script = {SnsError(400, "Throttling", "Rate exceeded")};
  auto notifier = NewSnsNotifier({kTopic, "", ""}, TestCredentials(), transport);
  Status st = notifier->Send(Sample());
  EXPECT_EQ(st.code(), Status::Code::kIOError);
  EXPECT_EQ(transport->seen.size(), 4u);
  EXPECT_NE(st.message().find("Throttling: Rate exceeded"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("4 attempts"), std::string::npos) << st.message();
}

TEST(SnsNotifier, NotFoundIsNotRetriedAndSaysWhatToCheck) {
  auto transport = std::make_shared<ScriptedTransport>();
  transport->script = {SnsError(404, "NotFound", "Topic does not exist")};
  auto notifier = NewSnsNotifier({kTopic, "", ""}, TestCredentials(), transport);
  Status st = notifier->Send(Sample());
  EXPECT_EQ(transport->seen.size(), 1u);
  EXPECT_NE(st.message().find(kTopic), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("NotFound: Topic does not exist"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("region eu-west-1"), std::string::npos) << st.message();
}

TEST(SnsNotifier, CdataAndEntitiesInErrorsAreDecoded) {
  auto transport = std::make_shared<ScriptedTransport>();
  transport->script = {SnsError(400, "InvalidParameter", "<![CDATA[Invalid parameter: <Subject> & more]]>")};
  auto notifier = NewSnsNotifier({kTopic, "", ""}, TestCredentials(), transport);
  Status st = notifier->Send(Sample());
  EXPECT_NE(st.message().find("InvalidParameter: Invalid parameter: <Subject> & more)"), std::string::npos)
      << st.message();
  transport->script = {SnsError(400, "InvalidParameter", "a &lt;b&gt; &amp;amp;")};
  st = notifier->Send(Sample());
  EXPECT_NE(st.message().find("InvalidParameter: a <b> &amp;)"), std::string::npos) << st.message();
}

TEST(SnsNotifier, AccessDeniedNamesTheCredentialsButNotTheSecret) {
  auto transport = std::make_shared<ScriptedTransport>();
  transport->script = {SnsError(403, "AuthorizationError", "User is not authorized to perform: SNS:Publish")};
  auto notifier = NewSnsNotifier({kTopic, "", ""}, TestCredentials(), transport);
  Status st = notifier->Send(Sample());
  EXPECT_EQ(transport->seen.size(), 1u);
  EXPECT_NE(st.message().find("sns:Publish"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("MPLE"), std::string::npos) << "names the key's last 4: " << st.message();
  EXPECT_EQ(st.message().find(kSecret), std::string::npos);
}

TEST(SnsNotifier, BadArnIsAnArgumentErrorWithoutARequest) {
  auto transport = std::make_shared<ScriptedTransport>();
  transport->script = {Published()};
  auto notifier = NewSnsNotifier({"job-events", "eu-west-1", ""}, TestCredentials(), transport);
  Status st = notifier->Send(Sample());
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(transport->seen.empty());
}

TEST(SnsNotifier, OkWithoutMessageIdIsAnError) {
  auto transport = std::make_shared<ScriptedTransport>();
  transport->script = {Response(200, "<html>captive portal</html>")};
  auto notifier = NewSnsNotifier({kTopic, "", ""}, TestCredentials(), transport);
  EXPECT_EQ(notifier->Send(Sample()).code(), Status::Code::kIOError);
}

// --- Fan-out -----------------------------------------------------------------

class FakeChannel final : public Notifier {
 public:
  FakeChannel(std::string name, Status result, std::vector<std::string>* log)
      : name_(std::move(name)), result_(std::move(result)), log_(log) {}
  Status Send(const Notification& n) override {
    log_->push_back(name_ + ":" + n.job);
    return result_;
  }
  std::string Describe() const override { return name_; }
  std::string Name() const override { return name_; }

 private:
  std::string name_;
  Status result_;
  std::vector<std::string>* log_;
};

TEST(FanoutNotifier, TriesEveryChannelAndReturnsTheFirstError) {
  std::vector<std::string> log;
  std::vector<std::unique_ptr<Notifier>> channels;
  channels.push_back(std::make_unique<FakeChannel>("smtp", Status::IOError("smtp down"), &log));
  channels.push_back(std::make_unique<FakeChannel>("sns", Status::OK(), &log));
  channels.push_back(std::make_unique<FakeChannel>("dir", Status::NoSpace("disk full"), &log));
  auto fan = NewFanoutNotifier(std::move(channels));
  EXPECT_EQ(fan->Describe(), "fan-out to smtp; sns; dir");
  Status st = fan->Send(Sample());
  EXPECT_EQ(log, (std::vector<std::string>{"smtp:study-42", "sns:study-42", "dir:study-42"}));
  EXPECT_EQ(st.code(), Status::Code::kIOError);
  EXPECT_EQ(st.message().rfind("smtp down", 0), 0u) << st.message();
  EXPECT_NE(st.message().find("dir: disk full"), std::string::npos) << st.message();
}

TEST(FanoutNotifier, AllOkIsOk) {
  std::vector<std::string> log;
  std::vector<std::unique_ptr<Notifier>> channels;
  channels.push_back(std::make_unique<FakeChannel>("a", Status::OK(), &log));
  channels.push_back(std::make_unique<FakeChannel>("b", Status::OK(), &log));
  EXPECT_TRUE(NewFanoutNotifier(std::move(channels))->Send(Sample()).ok());
  EXPECT_EQ(log.size(), 2u);
  EXPECT_TRUE(NewFanoutNotifier({})->Send(Sample()).ok());
}

// The channels JobRunner marks one by one: flattened, repeats numbered in
// configuration order (the names are part of marker keys: stable).
TEST(FanoutNotifier, ChannelsAreNamedUniquelyAndStably) {
  std::vector<std::string> log;
  std::vector<std::unique_ptr<Notifier>> inner;
  inner.push_back(std::make_unique<FakeChannel>("sns", Status::OK(), &log));
  inner.push_back(std::make_unique<FakeChannel>("smtp", Status::OK(), &log));
  std::vector<std::unique_ptr<Notifier>> channels;
  channels.push_back(std::make_unique<FakeChannel>("smtp", Status::OK(), &log));
  channels.push_back(NewFanoutNotifier(std::move(inner)));
  channels.push_back(std::make_unique<FakeChannel>("directory", Status::OK(), &log));
  auto fan = NewFanoutNotifier(std::move(channels));
  std::vector<std::string> names;
  for (const auto& c : fan->Channels()) {
    names.push_back(c.name);
    EXPECT_EQ(c.notifier->Channels().size(), 1u);
    EXPECT_TRUE(c.notifier->Send(Sample()).ok());
  }
  EXPECT_EQ(names, (std::vector<std::string>{"smtp", "sns", "smtp-2", "directory"}));
  EXPECT_EQ(log.size(), 4u);  // each a member, not the fan-out
  EXPECT_EQ(fan->Name(), "fanout");
  EXPECT_TRUE(NewFanoutNotifier({})->Channels().empty());
  // A single channel is its own only channel.
  auto dir = NewDirectoryNotifier("/nonexistent-outbox", "a@b.c", {"d@e.f"});
  ASSERT_EQ(dir->Channels().size(), 1u);
  EXPECT_EQ(dir->Channels()[0].name, "directory");
  EXPECT_EQ(dir->Channels()[0].notifier, dir.get());
}

// --- SMTP without a server -------------------------------------------------------

int ClosedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);  // nothing listens there now
  return ntohs(addr.sin_port);
}

TEST(SmtpNotifier, ConnectionRefusedNamesTheServerNotThePassword) {
  SmtpOptions o;
  o.url = "smtp://127.0.0.1:" + std::to_string(ClosedPort());
  o.from = "noreply@lab.org";
  o.to = {"ana@lab.org"};
  o.username = "mailer";
  o.password = "hunter2-very-secret";
  o.timeout_ms = 5000;
  auto notifier = NewSmtpNotifier(o);
  EXPECT_EQ(notifier->Describe(), o.url + " to ana@lab.org");
  Status st = notifier->Send(Sample());
  EXPECT_EQ(st.code(), Status::Code::kIOError);
  EXPECT_NE(st.message().find(o.url), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("running"), std::string::npos) << st.message();
  EXPECT_EQ(st.message().find(o.password), std::string::npos) << st.message();
}

TEST(SmtpNotifier, CredentialsInTheUrlAreNotShown) {
  SmtpOptions o;
  o.url = "smtp://mailer:topsecret@127.0.0.1:" + std::to_string(ClosedPort());
  o.from = "noreply@lab.org";
  o.to = {"ana@lab.org"};
  auto notifier = NewSmtpNotifier(o);
  EXPECT_EQ(notifier->Describe().find("topsecret"), std::string::npos) << notifier->Describe();
  EXPECT_EQ(notifier->Send(Sample()).message().find("topsecret"), std::string::npos);
}

TEST(SmtpNotifier, ArgumentErrors) {
  SmtpOptions o;
  o.url = "http://127.0.0.1:25";
  o.from = "noreply@lab.org";
  o.to = {"ana@lab.org"};
  EXPECT_EQ(NewSmtpNotifier(o)->Send(Sample()).code(), Status::Code::kInvalidArgument);
  o.url = "smtp://127.0.0.1:25";
  o.from = "not an address";
  EXPECT_EQ(NewSmtpNotifier(o)->Send(Sample()).code(), Status::Code::kInvalidArgument);
  o.from = "noreply@lab.org";
  o.to = {"bad address"};
  Status st = NewSmtpNotifier(o)->Send(Sample());
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(st.message().find("bad address"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace cloudmerge
