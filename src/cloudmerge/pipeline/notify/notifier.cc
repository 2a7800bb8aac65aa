// What every notification channel shares: the message format (FormatEmail:
// RFC 5322 headers, RFC 2047 encoded subjects, a multipart/alternative body
// whose text and HTML parts are base64), recipient lists, and the two
// channels that need no network: the directory (.eml files) and the fan-out.
// SMTP is in notifier_smtp.cc, SNS in notifier_sns.cc.
//
// Threading: FormatEmail is a pure function (its random numbers come from a
// thread_local generator); the directory and fan-out notifiers hold only
// configuration fixed at construction, so Send may run on many threads at once.
#include "cloudmerge/base/random_seed.h"
#include "cloudmerge/pipeline/notify/notifier.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <random>
#include <set>

#include <fmt/format.h>

#include "cloudmerge/pipeline/notify/notifier_internal.h"
#include "cloudmerge/report/report_html.h"  // HtmlEscape

namespace cloudmerge {

namespace notifier_internal {

namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::string BareAddress(std::string_view address) {
  size_t open = address.rfind('<');
  size_t close = address.rfind('>');
  if (open != std::string_view::npos && close != std::string_view::npos && close > open) {
    return std::string(Trim(address.substr(open + 1, close - open - 1)));
  }
  return std::string(Trim(address));
}

bool IsUsableAddress(std::string_view bare) {
  if (bare.empty() || bare.size() > 254) return false;
  size_t at = bare.rfind('@');
  if (at == 0 || at == std::string_view::npos || at + 1 == bare.size()) return false;
  for (unsigned char c : bare) {
    if (c <= 0x20 || c == 0x7f) return false;
    if (std::strchr("<>,;()\"\\", c) != nullptr) return false;
  }
  return true;
}

Recipients CollectRecipients(const std::vector<std::string>& to, const std::vector<std::string>& extra) {
  Recipients out;
  std::set<std::string> seen;
  auto add = [&](const std::string& given) {
    std::string bare = BareAddress(given);
    if (!IsUsableAddress(bare)) {
      if (!Trim(given).empty()) out.rejected.push_back(given);
      return;
    }
    if (seen.insert(Lower(bare)).second) out.valid.push_back(std::move(bare));
  };
  for (const auto& a : to) add(a);
  for (const auto& a : extra) add(a);
  return out;
}

Status RejectedRecipientsStatus(const Recipients& recipients, const std::string& channel) {
  if (recipients.rejected.empty()) return Status::OK();
  std::vector<std::string> quoted;
  for (const auto& r : recipients.rejected) quoted.push_back("\"" + r + "\"");
  return Status::InvalidInput(fmt::format(
      "the notification went out ({}) to {}, but not to {}: not a usable e-mail address. Fix the "
      "recipient list (the job's notify list in job.json, or the notifier's configuration).",
      channel, recipients.valid.empty() ? std::string("no one") : JoinComma(recipients.valid), JoinComma(quoted)));
}

Status WithCode(Status::Code code, std::string message) {
  switch (code) {
    case Status::Code::kOk: return Status::OK();
    case Status::Code::kInvalidInput: return Status::InvalidInput(std::move(message));
    case Status::Code::kInvalidArgument: return Status::InvalidArgument(std::move(message));
    case Status::Code::kNoSpace: return Status::NoSpace(std::move(message));
    case Status::Code::kInternal: return Status::Internal(std::move(message));
    case Status::Code::kNotFound: return Status::NotFound(std::move(message));
    case Status::Code::kCorruption: return Status::Corruption(std::move(message));
    default: return Status::IOError(std::move(message));
  }
}

std::string JoinComma(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) {
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

}  // namespace notifier_internal

namespace {

using namespace notifier_internal;
namespace fs = std::filesystem;

// RFC 5322 recommends header lines of at most 78 characters.
constexpr size_t kHeaderLineLimit = 78;
// Bytes of UTF-8 per encoded-word: 39 bytes -> 52 base64 characters, 64 with
// "=?UTF-8?B?" and "?=", so even the first word fits after "Subject: ".
constexpr size_t kEncodedWordBytes = 39;

std::mt19937_64& Rng() {
  thread_local std::mt19937_64 rng{RandomSeed()};
  return rng;
}

std::string RandomHex(int bytes) {
  std::string out;
  for (int i = 0; i < bytes; i += 8) out += fmt::format("{:016x}", Rng()());
  return out.substr(0, static_cast<size_t>(bytes) * 2);
}

long long NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// --- Encodings -------------------------------------------------------------

std::string Base64(std::string_view in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = (uint32_t(uint8_t(in[i])) << 16) | (uint32_t(uint8_t(in[i + 1])) << 8) | uint8_t(in[i + 2]);
    for (int shift : {18, 12, 6, 0}) out += kAlphabet[(v >> shift) & 63];
  }
  if (size_t rest = in.size() - i; rest > 0) {
    uint32_t v = uint32_t(uint8_t(in[i])) << 16;
    if (rest == 2) v |= uint32_t(uint8_t(in[i + 1])) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// A base64 body: lines of 76 characters (RFC 2045's limit), each ending CRLF.
std::string Base64Body(std::string_view in) {
  std::string encoded = Base64(in);
  std::string out;
  for (size_t i = 0; i < encoded.size(); i += 76) {
    out.append(encoded, i, 76);
    out += "\r\n";
  }
  return out;
}

// Text parts are encoded in canonical form (RFC 2045 6.8): line breaks as CRLF.
std::string ToCrlf(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 32);
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\r') {
      out += "\r\n";
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
    } else if (c == '\n') {
      out += "\r\n";
    } else {
      out += c;
    }
  }
  return out;
}

// --- Headers ----------------------------------------------------------------

// Header text on one line: a CR or LF in a subject or job name would end the
// header and start another (header injection), so they become spaces.
std::string OneLine(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c == '\r' || c == '\n' || c == '\t') c = ' ';
  }
  size_t b = out.find_first_not_of(' ');
  size_t e = out.find_last_not_of(' ');
  return b == std::string::npos ? std::string() : out.substr(b, e - b + 1);
}

bool NeedsEncodedWords(std::string_view s) {
  // "=?" could be read as the start of an encoded-word; very long text would
  // exceed the 998-character line limit unless folded into words.
  if (s.size() > 900 || s.find("=?") != std::string_view::npos) return true;
  return std::any_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u >= 0x7f;
  });
}

// RFC 2047 encoded-words, split on UTF-8 character boundaries (a character
// split across two words is garbled by many readers) and folded one per line.
std::string EncodedWords(std::string_view s) {
  std::string out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t end = std::min(s.size(), pos + kEncodedWordBytes);
    // Back up over continuation bytes (10xxxxxx) so the word ends on a character boundary.
    while (end < s.size() && end > pos + 1 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
    if (!out.empty()) out += "\r\n ";
    out += "=?UTF-8?B?" + Base64(s.substr(pos, end - pos)) + "?=";
    pos = end;
  }
  return out;
}

std::string HeaderText(std::string_view raw) {
  std::string s = OneLine(raw);
  return NeedsEncodedWords(s) ? EncodedWords(s) : s;
}

// "Display Name <a@b>" with the display name encoded when it is not plain
// ASCII and quoted when it holds characters special in addresses.
std::string FromHeader(const std::string& from) {
  std::string line = OneLine(from);
  std::string bare = BareAddress(line);
  size_t open = line.rfind('<');
  if (open == std::string::npos) return bare;
  std::string display = OneLine(line.substr(0, open));
  if (display.size() >= 2 && display.front() == '"' && display.back() == '"') {
    display = display.substr(1, display.size() - 2);
  }
  if (display.empty()) return "<" + bare + ">";
  if (NeedsEncodedWords(display)) return EncodedWords(display) + " <" + bare + ">";
  bool special = display.find_first_of("()<>[]:;@\\,.\"") != std::string::npos;
  if (!special) return display + " <" + bare + ">";
  std::string quoted;
  for (char c : display) {
    if (c == '"' || c == '\\') quoted += '\\';
    quoted += c;
  }
  return "\"" + quoted + "\" <" + bare + ">";
}

// "To: a@b, c@d": folded before an address that would pass 78 characters.
std::string ToHeader(const std::vector<std::string>& to) {
  if (to.empty()) return "To: undisclosed-recipients:;";
  std::string out = "To: ";
  size_t line_len = out.size();
  for (size_t i = 0; i < to.size(); ++i) {
    std::string piece = OneLine(to[i]) + (i + 1 < to.size() ? "," : "");
    if (i > 0) {
      if (line_len + 1 + piece.size() > kHeaderLineLimit) {
        out += "\r\n ";
        line_len = 1;
      } else {
        out += ' ';
        ++line_len;
      }
    }
    out += piece;
    line_len += piece.size();
  }
  return out;
}

// RFC 5322 date, in English whatever the locale (strftime's %a/%b follow it).
std::string RfcDate(std::time_t t) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{}, {:02} {} {:04} {:02}:{:02}:{:02} +0000", kDays[tm.tm_wday], tm.tm_mday, kMonths[tm.tm_mon],
                     tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

// The sender's domain, so the Message-ID is unique to it; a fixed name
// when the From address has no plain domain.
std::string MessageIdDomain(const std::string& from) {
  std::string bare = BareAddress(from);
  size_t at = bare.rfind('@');
  std::string domain = at == std::string::npos ? "" : bare.substr(at + 1);
  bool plain = !domain.empty() && std::all_of(domain.begin(), domain.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '.' || c == '-';
  });
  return plain ? domain : "cloudmerge.localdomain";
}

std::string HtmlPage(const Notification& n) {
  return fmt::format(
      "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n</head>\n<body>\n{}\n"
      "</body>\n</html>\n",
      HtmlEscape(OneLine(n.subject)), n.html);
}

std::string Part(const std::string& boundary, std::string_view content_type, std::string_view body) {
  return fmt::format("--{}\r\nContent-Type: {}; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
                     boundary, content_type, Base64Body(ToCrlf(body)));
}

}  // namespace

std::string FormatEmail(const Notification& n, const std::string& from, const std::vector<std::string>& to) {
  // "=_" cannot occur in base64 text, so the boundary never collides with a part.
  std::string boundary = "=_cloudmerge_" + RandomHex(16);
  std::string m;
  m += "Date: " + RfcDate(std::time(nullptr)) + "\r\n";
  m += "From: " + FromHeader(from) + "\r\n";
  m += ToHeader(to) + "\r\n";
  m += "Subject: " + HeaderText(n.subject) + "\r\n";
  m += fmt::format("Message-ID: <{}.{}@{}>\r\n", NowMs(), RandomHex(8), MessageIdDomain(from));
  m += "MIME-Version: 1.0\r\n";
  // RFC 3834: tells mail servers and people's auto-responders not to reply.
  m += "Auto-Submitted: auto-generated\r\n";
  if (!n.job.empty()) m += "X-Cloudmerge-Job: " + HeaderText(n.job) + "\r\n";
  if (!n.kind.empty()) m += "X-Cloudmerge-Kind: " + HeaderText(n.kind) + "\r\n";
  m += "Content-Type: multipart/alternative;\r\n boundary=\"" + boundary + "\"\r\n";
  m += "\r\nThis is a multi-part message in MIME format.\r\n\r\n";
  m += Part(boundary, "text/plain", n.text);
  m += Part(boundary, "text/html", HtmlPage(n));
  m += "--" + boundary + "--\r\n";
  return m;
}

namespace {

// --- Directory channel --------------------------------------------------------

// Job and kind as they may appear in a file name: letters, digits, '.', '_'
// and '-' (no '/', no leading dot), at most 80 characters.
std::string FileNamePart(const std::string& s, const char* fallback) {
  std::string out;
  for (unsigned char c : s) {
    if (out.size() >= 80) break;
    out += (std::isalnum(c) || c == '-' || c == '_' || c == '.') ? static_cast<char>(c) : '_';
  }
  while (!out.empty() && out.front() == '.') out.erase(0, 1);
  return out.empty() ? fallback : out;
}

Status FileError(const std::string& what, const std::string& path, int err) {
  if (err == ENOSPC || err == EDQUOT) {
    return Status::NoSpace(fmt::format("cannot {} {}: no space left on device. Free some space in the "
                                       "notification directory.", what, path));
  }
  return Status::IOError(fmt::format("cannot {} {}: {}. Check that the notification directory exists (or can "
                                     "be created) and that this user may write to it.",
                                     what, path, std::strerror(err)));
}

Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return FileError("write the notification file", path, errno);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  if (::fsync(fd) != 0) return FileError("write the notification file", path, errno);
  return Status::OK();
}

// Writes a complete temporary file next to the destination.
Status WriteTemp(const std::string& temp, std::string_view data) {
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return FileError("create the notification file", temp, errno);
  Status st = WriteAll(fd, data, temp);
  if (::close(fd) != 0 && st.ok()) st = FileError("write the notification file", temp, errno);
  if (!st.ok()) ::unlink(temp.c_str());
  return st;
}

// Gives the finished temporary its name, `<stem><tail>`, without replacing an
// existing file: two notifications for the same job and kind in the same
// millisecond (or two jobs whose names sanitise alike) get `<stem>-1<tail>`,
// `<stem>-2<tail>`, ... so the name still ends in `-<kind>.eml`, which is
// what a reader watching for one kind matches on. link() fails on an existing name where rename() would
// overwrite; on file systems without hard links, rename() to a name that was
// free a moment ago is the fallback.
Result<std::string> PublishNoReplace(const std::string& temp, const fs::path& dir, const std::string& stem,
                                     const std::string& tail) {
  for (int i = 0; i < 1000; ++i) {
    std::string path = (dir / (i == 0 ? stem + tail : fmt::format("{}-{}{}", stem, i, tail))).string();
    if (::link(temp.c_str(), path.c_str()) == 0) {
      ::unlink(temp.c_str());
      return path;
    }
    if (errno == EEXIST) continue;
    if (errno == EPERM || errno == ENOTSUP || errno == ENOSYS || errno == EMLINK) {
      if (::access(path.c_str(), F_OK) == 0) continue;
      if (::rename(temp.c_str(), path.c_str()) == 0) return path;
    }
    int err = errno;
    ::unlink(temp.c_str());
    return FileError("move the notification file into place at", path, err);
  }
  ::unlink(temp.c_str());
  return Status::IOError(fmt::format("cannot name the notification file {}/{}{}: 1000 files by that name exist "
                                     "already. Clear out the notification directory.", dir.string(), stem, tail));
}

class DirectoryNotifier final : public Notifier {
 public:
  DirectoryNotifier(std::string dir, std::string from, std::vector<std::string> to)
      : dir_(std::move(dir)), from_(std::move(from)), to_(std::move(to)) {
    RemoveDeadWritersTemporaries();
  }

  Status Send(const Notification& n) override {
    Recipients recipients = CollectRecipients(to_, n.extra_recipients);
    std::string message = FormatEmail(n, from_, recipients.valid);
    std::error_code ec;
    fs::create_directories(dir_, ec);
    if (ec) return FileError("create the notification directory", dir_, ec.value());
    std::string stem = fmt::format("{}-{}", NowMs(), FileNamePart(n.job, "job"));
    std::string kind = "-" + FileNamePart(n.kind, "notice");
    // A dot file while incomplete, so that nothing watching for *.eml reads it half-written.
    std::string temp = (fs::path(dir_) / fmt::format(".{}{}.tmp-{}-{}", stem, kind, ::getpid(), RandomHex(4))).string();
    CM_RETURN_IF_ERROR(WriteTemp(temp, message));
    auto path = PublishNoReplace(temp, dir_, stem, kind + ".eml");
    if (!path.ok()) return path.status();
    return RejectedRecipientsStatus(recipients, Describe());
  }

  std::string Describe() const override { return "directory " + dir_; }
  std::string Name() const override { return "directory"; }

 private:
  // A worker killed inside Send leaves its ".<name>.tmp-<pid>-<hex>" behind: the
  // message itself is sent again by whoever resumes the job, so the leftover is
  // removed once its process is gone.
  void RemoveDeadWritersTemporaries() {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir_, ec)) {
      std::string name = entry.path().filename().string();
      size_t at = name.rfind(".tmp-");
      if (name.empty() || name[0] != '.' || at == std::string::npos) continue;
      long pid = std::strtol(name.c_str() + at + 5, nullptr, 10);
      if (pid <= 0 || pid == ::getpid() || ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
      fs::remove(entry.path(), ec);
    }
  }

  const std::string dir_;
  const std::string from_;
  const std::vector<std::string> to_;
};

// --- Fan-out --------------------------------------------------------------

class FanoutNotifier final : public Notifier {
 public:
  explicit FanoutNotifier(std::vector<std::unique_ptr<Notifier>> channels) : channels_(std::move(channels)) {
    // Names fixed here, in configuration order, so that they are the same in
    // every worker started with the same configuration.
    std::map<std::string, int> seen;
    for (const auto& c : channels_) {
      for (NotifierChannel member : c->Channels()) {
        int n = ++seen[member.name];
        if (n > 1) member.name += fmt::format("-{}", n);
        flat_.push_back(std::move(member));
      }
    }
  }

  // Every channel is tried even after one fails: a broken SMTP server must not
  // keep the SNS copy (or the .eml record) from going out.
  Status Send(const Notification& n) override {
    Status first;
    std::vector<std::string> later;
    for (const auto& channel : channels_) {
      Status st = channel->Send(n);
      if (st.ok()) continue;
      if (first.ok()) {
        first = st;
      } else {
        later.push_back(channel->Describe() + ": " + st.message());
      }
    }
    if (first.ok() || later.empty()) return first;
    std::string message = first.message();
    for (const auto& l : later) message += fmt::format(" Also failed: {}", l);
    return WithCode(first.code(), std::move(message));
  }

  std::string Describe() const override {
    std::vector<std::string> parts;
    for (const auto& c : channels_) parts.push_back(c->Describe());
    std::string out = "fan-out to";
    for (size_t i = 0; i < parts.size(); ++i) out += (i == 0 ? " " : "; ") + parts[i];
    return parts.empty() ? "fan-out to no channels" : out;
  }

  std::string Name() const override { return "fanout"; }
  std::vector<NotifierChannel> Channels() override { return flat_; }

 private:
  std::vector<std::unique_ptr<Notifier>> channels_;
  std::vector<NotifierChannel> flat_;  // channels_' channels, uniquely named
};

}  // namespace

std::unique_ptr<Notifier> NewDirectoryNotifier(std::string dir, std::string from, std::vector<std::string> to) {
  return std::make_unique<DirectoryNotifier>(std::move(dir), std::move(from), std::move(to));
}

std::unique_ptr<Notifier> NewFanoutNotifier(std::vector<std::unique_ptr<Notifier>> channels) {
  return std::make_unique<FanoutNotifier>(std::move(channels));
}

}  // namespace cloudmerge
