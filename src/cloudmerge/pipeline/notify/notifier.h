// Notifier: tells the scientist what happened to a job — inputs received,
// result ready, or failed — by email. Channels:
//   SMTP       direct, through libcurl (smtp:// or smtps://; STARTTLS when the
//              server offers it, required with require_tls; AUTH with a user
//              and password taken from the environment or a secrets file,
//              never from the command line);
//   SNS        Publish to a topic (its email subscriptions deliver it in AWS);
//   directory  each message written as an RFC 5322 .eml file (the local,
//              no-cloud mode, and a record for tests);
//   fan-out    several of the above; every channel is tried, the first error
//              is returned. Channels() lists them, so that a caller can send
//              on each and record each delivery on its own (job_runner.h:
//              one marker per job, kind and channel).
// Every message has a plain-text and a simple HTML body (multipart/alternative).
//
// Delivery is at least once per channel, never exactly once: SMTP and SNS
// Publish have no idempotency key, so a sender that dies (or loses the
// answer) after the server accepted a message cannot tell, and sending again
// may deliver it twice. What the pipeline promises on top (one marker per
// channel, so only the channel being sent at a crash can repeat) is in
// job_runner.h, step 6.
//
// Thread safety: Send may be called from several threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cloudmerge/aws/credentials.h"
#include "cloudmerge/aws/http.h"
#include "cloudmerge/base/status.h"

namespace cloudmerge {

struct Notification {
  std::string kind;  // "received", "succeeded", "failed"
  std::string job;
  std::string subject;
  std::string text;  // plain-text body
  std::string html;  // HTML body (a fragment; wrapped in a page by the channel)
  std::vector<std::string> extra_recipients;  // from job.json, in addition to the channel's own
};

class Notifier;

// One channel of a notifier, under the name its delivery markers use.
struct NotifierChannel {
  std::string name;  // "smtp", "sns", "directory"; unique within one notifier
  Notifier* notifier;
};

class Notifier {
 public:
  virtual ~Notifier() = default;
  // OK: the message went out. InvalidInput: it went out, but some recipients
  // were set aside (not usable addresses; the message says which): sending
  // again would repeat it to the others. Any other error: it did not go out
  // (as far as the channel can tell: see "at least once" above).
  virtual Status Send(const Notification& n) = 0;
  // "smtp://127.0.0.1:2525 to a@b.c", "sns arn:aws:sns:...", "directory /x/outbox": for logs.
  virtual std::string Describe() const = 0;
  // A short name for the kind of channel: "smtp", "sns", "directory",
  // "fanout". Letters, digits and '-' only: it is part of marker keys, so it
  // must stay the same from one release (and one worker) to the next.
  virtual std::string Name() const = 0;
  // The channels a message goes out on, each to be sent and recorded on its
  // own: the fan-out's members, flattened, named by Name() with "-2", "-3"
  // appended to repeats in configuration order; a single channel is itself.
  virtual std::vector<NotifierChannel> Channels() { return {{Name(), this}}; }
};

struct SmtpOptions {
  std::string url;                   // smtp://host:port or smtps://host:port
  std::string from;                  // envelope and header From
  std::vector<std::string> to;       // default recipients
  std::string username, password;    // empty: no AUTH
  bool require_tls = false;          // fail instead of sending in clear when STARTTLS is not offered
  bool verify_tls = true;
  long timeout_ms = 30000;
};

struct SnsOptions {
  std::string topic_arn;
  std::string region;
  std::string endpoint_url;  // empty: https://sns.<region>.amazonaws.com; callers resolve it (aws/endpoints.h)
};

std::unique_ptr<Notifier> NewSmtpNotifier(SmtpOptions options);
std::unique_ptr<Notifier> NewSnsNotifier(SnsOptions options, std::shared_ptr<CredentialsProvider> credentials,
                                         std::shared_ptr<HttpTransport> transport);
std::unique_ptr<Notifier> NewDirectoryNotifier(std::string dir, std::string from, std::vector<std::string> to);
std::unique_ptr<Notifier> NewFanoutNotifier(std::vector<std::unique_ptr<Notifier>> channels);

// The RFC 5322 message (headers + multipart/alternative body) for `n`, as
// SMTP sends it and the directory channel stores it. `message_id_domain` for
// the Message-ID header.
std::string FormatEmail(const Notification& n, const std::string& from, const std::vector<std::string>& to);

}  // namespace cloudmerge
