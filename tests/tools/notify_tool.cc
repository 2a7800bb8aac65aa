// notify_tool: sends one notification through one channel, so that the
// end-to-end tests (tests/e2e/test_notifications.py) can drive the C++
// notifier against real servers.
//
//   notify_tool smtp URL FROM TO SUBJECT TEXT
//   notify_tool sns  TOPIC_ARN REGION ENDPOINT SUBJECT TEXT   (REGION, ENDPOINT may be "")
//   notify_tool dir  DIR FROM TO SUBJECT TEXT
//
// TO is a comma-separated list. Secrets and extras come from the environment,
// never the command line: NOTIFY_SMTP_USER, NOTIFY_SMTP_PASSWORD,
// NOTIFY_SMTP_REQUIRE_TLS=1, NOTIFY_SMTP_INSECURE=1 (no certificate check, for
// a self-signed test server), NOTIFY_TIMEOUT_MS, NOTIFY_EXTRA_RECIPIENTS
// (comma-separated), NOTIFY_JOB, NOTIFY_KIND, NOTIFY_HTML (default: the text in
// a <pre>); AWS credentials by the standard chain (AWS_ACCESS_KEY_ID, ...).
// Prints the channel on success; the Status message on stderr and its exit
// code on failure. Single-threaded.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cloudmerge/aws/credentials.h"
#include "cloudmerge/aws/http.h"
#include "cloudmerge/pipeline/notify/notifier.h"

namespace {

using namespace cloudmerge;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t comma = s.find(',', pos);
    if (comma == std::string::npos) comma = s.size();
    if (comma > pos) out.push_back(s.substr(pos, comma - pos));
    pos = comma + 1;
  }
  return out;
}

std::string HtmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '&') out += "&amp;";
    else if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else out += c;
  }
  return out;
}

Notification MakeNotification(const std::string& subject, const std::string& text) {
  Notification n;
  n.kind = Env("NOTIFY_KIND").empty() ? "succeeded" : Env("NOTIFY_KIND");
  n.job = Env("NOTIFY_JOB").empty() ? "notify-tool" : Env("NOTIFY_JOB");
  n.subject = subject;
  n.text = text;
  n.html = Env("NOTIFY_HTML").empty() ? "<pre>" + HtmlEscape(text) + "</pre>" : Env("NOTIFY_HTML");
  n.extra_recipients = SplitComma(Env("NOTIFY_EXTRA_RECIPIENTS"));
  return n;
}

int Usage() {
  std::fputs(
      "usage: notify_tool smtp URL FROM TO SUBJECT TEXT\n"
      "       notify_tool sns TOPIC_ARN REGION ENDPOINT SUBJECT TEXT\n"
      "       notify_tool dir DIR FROM TO SUBJECT TEXT\n",
      stderr);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 7) return Usage();
  std::vector<std::string> a(argv + 1, argv + argc);
  std::unique_ptr<Notifier> notifier;
  if (a[0] == "smtp") {
    SmtpOptions o;
    o.url = a[1];
    o.from = a[2];
    o.to = SplitComma(a[3]);
    o.username = Env("NOTIFY_SMTP_USER");
    o.password = Env("NOTIFY_SMTP_PASSWORD");
    o.require_tls = Env("NOTIFY_SMTP_REQUIRE_TLS") == "1";
    o.verify_tls = Env("NOTIFY_SMTP_INSECURE") != "1";
    if (!Env("NOTIFY_TIMEOUT_MS").empty()) o.timeout_ms = std::atol(Env("NOTIFY_TIMEOUT_MS").c_str());
    notifier = NewSmtpNotifier(std::move(o));
  } else if (a[0] == "sns") {
    auto transport = NewCurlTransport();
    auto credentials = NewDefaultCredentialsChain(AwsEnvironment::FromProcess(), transport);
    notifier = NewSnsNotifier({a[1], a[2], a[3]}, std::move(credentials), std::move(transport));
  } else if (a[0] == "dir") {
    notifier = NewDirectoryNotifier(a[1], a[2], SplitComma(a[3]));
  } else {
    return Usage();
  }
  Status st = notifier->Send(MakeNotification(a[4], a[5]));
  if (!st.ok()) {
    std::fprintf(stderr, "notify_tool: %s\n", st.message().c_str());
    return st.ExitCode();
  }
  std::printf("sent via %s\n", notifier->Describe().c_str());
  return 0;
}
