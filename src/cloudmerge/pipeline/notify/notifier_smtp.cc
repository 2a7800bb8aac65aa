// The SMTP channel: one libcurl easy handle per message (notifications are
// rare, so there is no pool), STARTTLS when offered or required, AUTH when a
// user is configured, and errors that name the server and what to check,
// never the password.
//
// Threading: the notifier holds only its options, fixed at construction;
// every Send builds its own curl handle and message, so Send may run on many
// threads at once. curl_global_init is done once, under std::call_once.
#include <curl/curl.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include <fmt/format.h>

#include "cloudmerge/pipeline/notify/notifier.h"
#include "cloudmerge/pipeline/notify/notifier_internal.h"

namespace cloudmerge {
namespace {

using namespace notifier_internal;

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// "smtp://user:secret@host:25/x" -> "smtp://host:25/x": for Describe() and
// messages, so that credentials put in the URL never reach a log.
std::string RedactUrl(const std::string& url) {
  size_t scheme = url.find("://");
  size_t start = scheme == std::string::npos ? 0 : scheme + 3;
  size_t end = url.find('/', start);
  size_t at = url.rfind('@', end == std::string::npos ? url.size() : end);
  if (at == std::string::npos || at < start) return url;
  return url.substr(0, start) + url.substr(at + 1);
}

bool HasSmtpScheme(const std::string& url) { return url.rfind("smtp://", 0) == 0 || url.rfind("smtps://", 0) == 0; }

// A curl message can quote what the server said; a server that echoes the
// AUTH exchange must still not put the password in our Status.
std::string Scrub(std::string text, const std::string& secret) {
  if (secret.size() < 3) return text;  // too short to hide without mangling ordinary words
  for (size_t p = text.find(secret); p != std::string::npos; p = text.find(secret, p)) text.replace(p, secret.size(), "***");
  return text;
}

// What to check, from the server's last reply code when it says more than
// curl's error does, else from the curl error.
std::string Hint(CURLcode code, long reply, const SmtpOptions& o) {
  if (code != CURLE_LOGIN_DENIED && reply == 530) {
    return "The server wants authentication (or TLS) before it takes mail: configure the SMTP user and password, "
           "and use smtps:// or require TLS if the server insists on it.";
  }
  if (reply == 550 || reply == 551 || reply == 553 || reply == 554) {
    return "The server refused the sender or a recipient. Check the From address (the server may only accept its "
           "own domains) and the recipient addresses (the server may not relay to them).";
  }
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
      return "Check the host name in the SMTP URL.";
    case CURLE_COULDNT_CONNECT:
      return "Check that the SMTP server is running and the host and port in the URL are right (25, 587 for "
             "smtp://, 465 for smtps://), and that no firewall blocks the port.";
    case CURLE_OPERATION_TIMEDOUT:
      return fmt::format("The server did not answer within {} ms. Check that the URL points at an SMTP server and "
                         "that smtps:// (TLS from the start) and smtp:// (STARTTLS) are not mixed up.",
                         o.timeout_ms);
    case CURLE_LOGIN_DENIED:
      return fmt::format("The server refused the user name \"{}\" or its password. Check the SMTP user and password "
                         "given to the notifier (environment or secrets file).",
                         o.username);
    case CURLE_USE_SSL_FAILED:
      return "The server does not offer STARTTLS and TLS is required. Use smtps:// if the server speaks TLS on "
             "connect, or a server that offers STARTTLS.";
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CONNECT_ERROR:
      return "The TLS handshake or the server's certificate check failed. Check the host name in the URL matches "
             "the certificate and that the CA bundle knows its issuer.";
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_WEIRD_SERVER_REPLY:
      return "The server refused the message or closed the connection. Check the sender and recipient addresses "
             "(the server may not relay for them) and the server's log.";
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
      return "The URL must look like smtp://host:port or smtps://host:port.";
    default:
      return "Check the SMTP URL, the server's log and the network between here and the server.";
  }
}

// Feeds the message to curl's upload.
struct Upload {
  std::string_view rest;
};

size_t ReadMessage(char* buffer, size_t size, size_t nitems, void* userdata) {
  auto* up = static_cast<Upload*>(userdata);
  size_t n = std::min(size * nitems, up->rest.size());
  std::memcpy(buffer, up->rest.data(), n);
  up->rest.remove_prefix(n);
  return n;
}

// The last error line the server sent (e.g. "550 5.7.1 Relaying denied"):
// curl's error only has the code, and the QUIT that follows an error gets a
// "221" that must not replace it. Only server-to-client lines are looked at,
// so the AUTH exchange we send is never captured.
int KeepServerError(CURL*, curl_infotype type, char* data, size_t size, void* userdata) {
  if (type != CURLINFO_HEADER_IN || size == 0 || (data[0] != '4' && data[0] != '5')) return 0;
  std::string line(data, size);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  *static_cast<std::string*>(userdata) = line.substr(0, 300);
  return 0;
}

struct CurlHandle {
  CURL* h = curl_easy_init();
  curl_slist* rcpt = nullptr;
  ~CurlHandle() {
    curl_slist_free_all(rcpt);
    if (h) curl_easy_cleanup(h);
  }
};

class SmtpNotifier final : public Notifier {
 public:
  explicit SmtpNotifier(SmtpOptions o) : o_(std::move(o)) { GlobalInitOnce(); }

  Status Send(const Notification& n) override {
    CM_RETURN_IF_ERROR(CheckOptions());
    Recipients recipients = CollectRecipients(o_.to, n.extra_recipients);
    if (recipients.valid.empty()) {
      return Status::InvalidArgument(fmt::format(
          "cannot send the notification through {}: no usable recipient (given: {}). Configure at least one "
          "e-mail address.",
          RedactUrl(o_.url), recipients.rejected.empty() ? std::string("none") : JoinComma(recipients.rejected)));
    }
    std::string message = FormatEmail(n, o_.from, recipients.valid);
    CM_RETURN_IF_ERROR(Transfer(message, recipients.valid));
    return RejectedRecipientsStatus(recipients, RedactUrl(o_.url));
  }

  std::string Describe() const override {
    return fmt::format("{} to {}", RedactUrl(o_.url), o_.to.empty() ? std::string("(job recipients only)")
                                                                     : JoinComma(o_.to));
  }
  std::string Name() const override { return "smtp"; }

 private:
  Status CheckOptions() const {
    if (!HasSmtpScheme(o_.url)) {
      return Status::InvalidArgument(fmt::format(
          "the SMTP URL \"{}\" must start with smtp:// (STARTTLS when offered) or smtps:// (TLS on connect).",
          RedactUrl(o_.url)));
    }
    if (!IsUsableAddress(BareAddress(o_.from))) {
      return Status::InvalidArgument(fmt::format(
          "the notification sender \"{}\" is not an e-mail address. Give one like \"cloudmerge <noreply@lab.org>\".",
          o_.from));
    }
    return Status::OK();
  }

  Status Transfer(const std::string& message, const std::vector<std::string>& to) const {
    CurlHandle c;
    if (!c.h) return Status::Internal("cannot create a libcurl handle (out of memory?)");
    for (const auto& r : to) c.rcpt = curl_slist_append(c.rcpt, ("<" + r + ">").c_str());
    std::string mail_from = "<" + BareAddress(o_.from) + ">";
    Upload upload{message};
    char errbuf[CURL_ERROR_SIZE] = {0};

    curl_easy_setopt(c.h, CURLOPT_URL, o_.url.c_str());
    curl_easy_setopt(c.h, CURLOPT_MAIL_FROM, mail_from.c_str());
    curl_easy_setopt(c.h, CURLOPT_MAIL_RCPT, c.rcpt);
    curl_easy_setopt(c.h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c.h, CURLOPT_READFUNCTION, ReadMessage);
    curl_easy_setopt(c.h, CURLOPT_READDATA, &upload);
    curl_easy_setopt(c.h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(message.size()));
    curl_easy_setopt(c.h, CURLOPT_USE_SSL, o_.require_tls ? static_cast<long>(CURLUSESSL_ALL)
                                                          : static_cast<long>(CURLUSESSL_TRY));
    curl_easy_setopt(c.h, CURLOPT_SSL_VERIFYPEER, o_.verify_tls ? 1L : 0L);
    curl_easy_setopt(c.h, CURLOPT_SSL_VERIFYHOST, o_.verify_tls ? 2L : 0L);
    if (!o_.username.empty()) {
      curl_easy_setopt(c.h, CURLOPT_USERNAME, o_.username.c_str());
      curl_easy_setopt(c.h, CURLOPT_PASSWORD, o_.password.c_str());
    }
    long timeout = o_.timeout_ms > 0 ? o_.timeout_ms : 30000;
    curl_easy_setopt(c.h, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(c.h, CURLOPT_CONNECTTIMEOUT_MS, std::min(timeout, 10000L));
    // Timeouts with signals are not thread-safe; curl then resolves names in a thread.
    curl_easy_setopt(c.h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c.h, CURLOPT_ERRORBUFFER, errbuf);
    std::string server_said;
    curl_easy_setopt(c.h, CURLOPT_DEBUGFUNCTION, KeepServerError);
    curl_easy_setopt(c.h, CURLOPT_DEBUGDATA, &server_said);
    curl_easy_setopt(c.h, CURLOPT_VERBOSE, 1L);  // needed for the debug function; nothing is printed

    CURLcode rc = curl_easy_perform(c.h);
    if (rc == CURLE_OK) return Status::OK();
    long reply = 0;
    curl_easy_getinfo(c.h, CURLINFO_RESPONSE_CODE, &reply);
    return Failure(rc, errbuf, reply, server_said);
  }

  Status Failure(CURLcode rc, const char* errbuf, long reply, const std::string& server_said) const {
    std::string detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    while (!detail.empty() && (detail.back() == '\n' || detail.back() == '\r' || detail.back() == '.')) {
      detail.pop_back();
    }
    std::string said;
    if (!server_said.empty()) {
      said = fmt::format(" (the server said: \"{}\")", server_said);
    } else if (reply >= 400) {
      said = fmt::format(" (server reply {})", reply);
    }
    std::string message = fmt::format(
        "cannot send the notification e-mail through {}{}: {}{}. {}", RedactUrl(o_.url),
        o_.username.empty() ? std::string() : fmt::format(" as user \"{}\"", o_.username), detail, said,
        Hint(rc, reply, o_));
    message = Scrub(std::move(message), o_.password);
    if (rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL) return Status::InvalidArgument(message);
    return Status::IOError(message);
  }

  const SmtpOptions o_;
};

}  // namespace

std::unique_ptr<Notifier> NewSmtpNotifier(SmtpOptions options) {
  return std::make_unique<SmtpNotifier>(std::move(options));
}

}  // namespace cloudmerge
