// The dashboard: job states from the stores, the pages, and the HTTP server.
// See dashboard.h.
#include "cloudmerge/pipeline/dashboard.h"
#include "cloudmerge/json_fields.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <atomic>
#include <condition_variable>
#include <ctime>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cloudmerge/pipeline/report_html.h"

namespace cloudmerge {
namespace {

using nlohmann::json;

bool IsLoopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// "2026-11-24T23:25:26.123Z" -> seconds since the epoch (-1 if unparsable).
double ParseIso8601(const std::string& s) {
  std::tm tm{};
  int ms = 0;
  if (std::sscanf(s.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                  &tm.tm_sec, &ms) < 6)
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<double>(timegm(&tm)) + ms / 1000.0;
}

// The job a key in the output store belongs to ("a/b/_state/r/done.json" -> "a/b").
std::string JobOfStateKey(const std::string& key) {
  size_t at = key.find("/_state/");
  return at == std::string::npos ? "" : key.substr(0, at);
}

// The run's newest claim (claim-<n> with the highest n), or null.
json LatestClaim(JobStore* out, const std::string& prefix, const std::set<std::string>& out_keys) {
  int highest = 0;
  for (auto it = out_keys.lower_bound(prefix + "claim-"); it != out_keys.end() && it->rfind(prefix + "claim-", 0) == 0;
       ++it)
    highest = std::max(highest, std::atoi(it->c_str() + prefix.size() + 6));
  if (highest == 0) return json();
  auto text = out->Get(fmt::format("{}claim-{}", prefix, highest));
  json claim = text.ok() ? json::parse(*text, nullptr, false) : json();
  return claim.is_object() ? claim : json::object({{"expires_ms", INT64_MAX}});  // unreadable: assume alive
}

JobView ViewOf(JobStore* in, JobStore* out, const std::string& job, const JobNaming& naming,
               const std::set<std::string>& out_keys) {
  JobView v;
  v.job = job;
  v.has_report = out_keys.count(job + "/report.html") > 0;
  auto found = FindJobInputs(in, job, naming);
  if (!found.ok()) {
    v.state = "failed";
    v.detail = found.status().message();
    return v;
  }
  if (!found->has_value()) {
    bool has_x = false, has_y = false;
    auto listed = in->List(job + "/");
    if (listed.ok())
      for (const auto& o : *listed) {
        has_x |= JobForKey(o.key, naming) && o.key.find("/" + naming.x_name) != std::string::npos;
        has_y |= JobForKey(o.key, naming) && o.key.find("/" + naming.y_name) != std::string::npos;
      }
    v.state = "waiting";
    v.detail = fmt::format("waiting for {}", !has_x && !has_y ? naming.x_name + " and " + naming.y_name
                                             : !has_x          ? naming.x_name
                                                               : naming.y_name);
    return v;
  }
  std::string prefix = fmt::format("{}/_state/{}/", job, (*found)->RunId());
  if (out_keys.count(prefix + "done.json")) {
    v.state = "done";
    auto text = out->Get(prefix + "done.json");
    json d = text.ok() ? json::parse(*text, nullptr, false) : json();
    if (d.is_object()) {
      v.rows = JsonNumber(JsonMember(d, "rows"), "output", -1.0);
      v.seconds = JsonNumber(d, "seconds", -1.0);
      v.finished = JsonString(d, "finished");
      v.detail = JsonString(d, "result");
    }
  } else if (out_keys.count(prefix + "failed.json")) {
    v.state = "failed";
    auto text = out->Get(prefix + "failed.json");
    json f = text.ok() ? json::parse(*text, nullptr, false) : json();
    if (f.is_object()) {
      v.detail = JsonString(f, "error");
      v.finished = JsonString(f, "time");
    }
  } else if (auto claim = LatestClaim(out, prefix, out_keys); claim.is_object()) {
    if (JsonInt(claim, "expires_ms", 0) < NowMillis()) {  // its worker died: the run will be taken over
      v.state = "queued";
      v.detail = fmt::format("the claim of {} expired: waiting for another worker", JsonString(claim, "worker", "?"));
      return v;
    }
    v.state = "running";
    auto started = out->Get(prefix + "received");
    double t0 = started.ok() ? ParseIso8601(*started) : -1;
    if (t0 > 0) v.elapsed_s = std::max(0.0, NowMillis() / 1000.0 - t0);
    v.detail = "merging on " + JsonString(claim, "worker", "?");
  } else {
    v.state = "queued";
    v.detail = "inputs complete, waiting for a worker";
  }
  return v;
}

// Percent-encodes all but unreserved characters (and '/' when keep_slash).
std::string Encode(const std::string& s, bool keep_slash) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/'))
      out += static_cast<char>(c);
    else out += fmt::format("%{:02X}", c);
  }
  return out;
}
std::string EncodePath(const std::string& job) { return Encode(job, true); }

std::string Decode(const std::string& s, bool plus_is_space) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += plus_is_space && s[i] == '+' ? ' ' : s[i];
    }
  }
  return out;
}

// ---- a minimal HTTP/1.1 server: GET/HEAD, one request per connection --------

struct WebRequest {
  std::string method, path;  // path percent-decoded
  std::map<std::string, std::string> query, headers;  // header names lower-cased
};

struct WebResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

const char* Reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
  }
  return "Error";
}

// Parses the head of a request (up to the blank line); false when malformed.
bool ParseRequest(const std::string& head, WebRequest* r) {
  size_t eol = head.find("\r\n");
  std::string line = head.substr(0, eol);
  size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
  if (sp1 == std::string::npos || sp2 == sp1) return false;
  r->method = line.substr(0, sp1);
  std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (target.empty() || target[0] != '/') return false;
  size_t q = target.find('?');
  r->path = Decode(target.substr(0, q), false);
  if (q != std::string::npos) {
    std::string qs = target.substr(q + 1);
    for (size_t pos = 0; pos <= qs.size();) {
      size_t amp = qs.find('&', pos);
      if (amp == std::string::npos) amp = qs.size();
      std::string kv = qs.substr(pos, amp - pos);
      size_t eq = kv.find('=');
      if (!kv.empty()) r->query[Decode(kv.substr(0, eq), true)] = eq == std::string::npos ? "" : Decode(kv.substr(eq + 1), true);
      pos = amp + 1;
    }
  }
  for (size_t pos = eol + 2; pos < head.size();) {
    size_t end = head.find("\r\n", pos);
    if (end == std::string::npos) end = head.size();
    std::string h = head.substr(pos, end - pos);
    size_t colon = h.find(':');
    if (colon != std::string::npos) {
      std::string name = h.substr(0, colon), value = h.substr(colon + 1);
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
      value.erase(0, value.find_first_not_of(" \t"));
      r->headers[name] = value;
    }
    pos = end + 2;
  }
  return true;
}

void SendAll(int fd, const std::string& data) {
  for (size_t sent = 0; sent < data.size();) {
    ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return;  // the client went away: nothing to tell it
    sent += static_cast<size_t>(n);
  }
}

// Reads one request from `fd` (5 s timeout), answers it, closes the socket.
void ServeConnection(int fd, const std::function<WebResponse(const WebRequest&)>& handle) {
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  std::string head;
  char buf[4096];
  WebResponse res;
  WebRequest req;
  bool complete = false;
  while (head.size() <= 16384) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    head.append(buf, static_cast<size_t>(n));
    if (head.find("\r\n\r\n") != std::string::npos) {
      complete = true;
      break;
    }
  }
  if (!complete && head.empty()) {
    close(fd);  // an idle connection (a browser's preconnect) closed or timed out
    return;
  }
  size_t head_end = head.find("\r\n\r\n");
  if (!complete || head_end > 16384) res = {head.size() > 16384 ? 431 : 400, "text/plain", "bad request\n", {}};
  else if (!ParseRequest(head.substr(0, head_end), &req)) res = {400, "text/plain", "bad request\n", {}};
  else if (req.method != "GET" && req.method != "HEAD") res = {405, "text/plain", "read-only: GET only\n", {{"Allow", "GET, HEAD"}}};
  else res = handle(req);
  std::string out = fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n"
                                "X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n",
                                res.status, Reason(res.status), res.content_type, res.body.size());
  for (const auto& [k, v] : res.headers) out += k + ": " + v + "\r\n";
  out += "\r\n";
  if (req.method != "HEAD") out += res.body;
  SendAll(fd, out);
  shutdown(fd, SHUT_WR);
  close(fd);
}

std::string Query(const WebRequest& req) {
  auto it = req.query.find("token");
  return it == req.query.end() ? "" : "?token=" + Encode(it->second, false);
}

bool TokenMatches(const std::string& given, const std::string& want) {
  return given.size() == want.size() && CRYPTO_memcmp(given.data(), want.data(), want.size()) == 0;
}

constexpr const char* kCsp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

}  // namespace

Result<DashboardOptions> ParseHttpAddress(const std::string& spec, const std::string& token) {
  DashboardOptions o;
  size_t colon = spec.rfind(':');
  if (colon == std::string::npos)
    return Status::InvalidArgument(fmt::format("--http {}: expected HOST:PORT, e.g. 127.0.0.1:8080", spec));
  std::string host = spec.substr(0, colon), port = spec.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "127.0.0.1";
  char* end = nullptr;
  long p = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || p < 0 || p > 65535)
    return Status::InvalidArgument(fmt::format("--http {}: the port must be a number from 0 to 65535", spec));
  if (!IsLoopback(host) && token.empty())
    return Status::InvalidArgument(fmt::format(
        "--http {}: {} is not a loopback address, and the dashboard shows job names and errors. Give a token "
        "(--http-token or CLOUDMERGE_HTTP_TOKEN; then required as a bearer token or ?token=), or bind to 127.0.0.1.",
        spec, host));
  o.host = host;
  o.port = static_cast<int>(p);
  o.token = token;
  return o;
}

Result<DashboardSnapshot> CollectJobs(JobStore* in, JobStore* out, const JobNaming& naming) {
  auto inputs = in->List("");
  if (!inputs.ok()) return inputs.status();
  auto outputs = out->List("");
  if (!outputs.ok()) return outputs.status();
  std::set<std::string> jobs, out_keys;
  for (const auto& o : *inputs)
    if (auto job = JobForKey(o.key, naming)) jobs.insert(*job);
  DashboardSnapshot s;
  for (const auto& o : *outputs) {
    out_keys.insert(o.key);
    if (o.key.size() > 12 && o.key.compare(o.key.size() - 12, 12, "/failed.json") == 0 && !JobOfStateKey(o.key).empty())
      ++s.failed_runs;
  }
  for (const auto& job : jobs) s.jobs.push_back(ViewOf(in, out, job, naming, out_keys));
  return s;
}

std::string RenderDashboardHtml(const DashboardSnapshot& s, const std::string& q) {
  std::map<std::string, int> counts;
  for (const auto& j : s.jobs) ++counts[j.state];
  std::string h =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"5\">"
      "<title>cloudmerge jobs</title><style>"
      "body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:75em;padding:0 1em;color:#1d2330}"
      "table{border-collapse:collapse;width:100%}td,th{padding:.35em .7em;text-align:left;border-bottom:1px solid #e3e5ea;"
      "vertical-align:top}.badge{display:inline-block;padding:.1em .6em;border-radius:.8em;color:#fff;font-weight:600}"
      ".done{background:#2e7d32}.failed{background:#c62828}.running{background:#1565c0}.queued{background:#6a1b9a}"
      ".waiting{background:#8d8f94}.muted{color:#667}td.n{text-align:right;white-space:nowrap}code{font-size:.92em}"
      ".detail{max-width:40em;white-space:pre-wrap;word-break:break-word}"
      "</style></head><body>\n<h1>cloudmerge jobs</h1>\n<p class=\"muted\">";
  for (const char* st : {"waiting", "queued", "running", "done", "failed"})
    h += fmt::format("<span class=\"badge {0}\">{0}: {1}</span> ", st, counts[st]);
  h += "&middot; <a href=\"/metrics" + HtmlEscape(q) + "\">metrics</a> &middot; refreshes every 5 s</p>\n";
  if (s.jobs.empty()) h += "<p>No jobs yet: drop x_list.txt and y_list.txt into a folder of the input location.</p>\n";
  h += "<table><thead><tr><th>job</th><th>state</th><th>details</th><th>rows</th><th>time</th><th>report</th></tr>"
       "</thead><tbody>\n";
  for (const auto& j : s.jobs) {
    std::string time = j.state == "running" && j.elapsed_s >= 0 ? fmt::format("{:.0f} s so far", j.elapsed_s)
                       : j.seconds >= 0                         ? fmt::format("{:.2f} s", j.seconds)
                                                                : "";
    std::string links;
    if (j.has_report) {
      std::string base = "/jobs/" + EncodePath(j.job) + "/report.";
      links = "<a href=\"" + HtmlEscape(base + "html" + q) + "\">report.html</a>";
      if (j.state == "done") links += " <a href=\"" + HtmlEscape(base + "json" + q) + "\">report.json</a>";
    }
    h += "<tr class=\"job\"><td><code>" + HtmlEscape(j.job) + "</code></td><td><span class=\"badge " + j.state + "\">" +
         j.state + "</span></td><td class=\"detail\">" + HtmlEscape(j.detail) + "</td><td class=\"n\">" +
         (j.rows >= 0 ? fmt::format("{:.0f}", j.rows) : "") + "</td><td class=\"n\">" + time + "</td><td>" + links +
         "</td></tr>\n";
  }
  return h + "</tbody></table>\n</body></html>\n";
}

std::string RenderMetrics(const DashboardSnapshot& s) {
  std::map<std::string, int> counts;
  double rows = 0, last_seconds = -1;
  std::string last_finished;
  for (const auto& j : s.jobs) {
    ++counts[j.state];
    if (j.state != "done") continue;
    rows += std::max(0.0, j.rows);
    if (j.finished >= last_finished) last_finished = j.finished, last_seconds = j.seconds;
  }
  std::string m = "# HELP cloudmerge_jobs Jobs by the state of the run of their current inputs.\n"
                  "# TYPE cloudmerge_jobs gauge\n";
  for (const char* st : {"waiting", "queued", "running", "done", "failed"})
    m += fmt::format("cloudmerge_jobs{{state=\"{}\"}} {}\n", st, counts[st]);
  m += "# HELP cloudmerge_rows_written Result rows of the jobs that are done.\n# TYPE cloudmerge_rows_written gauge\n";
  m += fmt::format("cloudmerge_rows_written {:.0f}\n", rows);
  m += "# HELP cloudmerge_failures Failed runs recorded in the output (every run, current or not).\n"
       "# TYPE cloudmerge_failures gauge\n";
  m += fmt::format("cloudmerge_failures {:.0f}\n", s.failed_runs);
  if (last_seconds >= 0) {
    m += "# HELP cloudmerge_last_run_seconds Duration of the most recently finished run.\n"
         "# TYPE cloudmerge_last_run_seconds gauge\n";
    m += fmt::format("cloudmerge_last_run_seconds {}\n", last_seconds);
  }
  return m;
}

struct Dashboard::Impl {
  JobStore* in = nullptr;
  JobStore* out = nullptr;
  JobNaming naming;
  JsonLog* log = nullptr;
  DashboardOptions o;
  int listen_fd = -1;
  std::atomic<bool> stop{false};
  std::thread thread;
  std::mutex mu;  // guards active
  std::condition_variable idle;
  int active = 0;  // connections being served

  bool Authorized(const WebRequest& req) const {
    if (o.token.empty() || req.path == "/healthz") return true;
    auto auth = req.headers.find("authorization");
    if (auth != req.headers.end() && auth->second.rfind("Bearer ", 0) == 0 && TokenMatches(auth->second.substr(7), o.token))
      return true;
    auto q = req.query.find("token");
    return q != req.query.end() && TokenMatches(q->second, o.token);
  }

  // The snapshot, or a 503 saying which store could not be read.
  bool Snapshot(WebResponse* res, DashboardSnapshot* s) {
    auto snap = CollectJobs(in, out, naming);
    if (!snap.ok()) {
      *res = {503, "text/plain; charset=utf-8", "cannot read the job stores: " + snap.status().message() + "\n", {}};
      log->Warn("dashboard.store_failed", "", snap.status().message());
      return false;
    }
    *s = std::move(*snap);
    return true;
  }

  WebResponse Report(const std::string& key) {
    auto body = out->Get(key);  // Get checks the key: no "..", no escape from the store
    if (!body.ok()) {
      auto code = body.status().code();
      int status = code == Status::Code::kNotFound ? 404 : code == Status::Code::kInvalidInput ? 400 : 503;
      return {status, "text/plain; charset=utf-8", body.status().message() + "\n", {}};
    }
    bool html = key.size() > 5 && key.compare(key.size() - 5, 5, ".html") == 0;
    if (!html) return {200, "application/json", *body, {}};
    return {200, "text/html; charset=utf-8", *body, {{"Content-Security-Policy", kCsp}}};
  }

  WebResponse Handle(const WebRequest& req) {
    if (!Authorized(req))
      return {401, "text/plain", "a token is required: send \"Authorization: Bearer TOKEN\" or add ?token=TOKEN\n",
              {{"WWW-Authenticate", "Bearer"}}};
    WebResponse res;
    DashboardSnapshot s;
    if (req.path == "/healthz") return {200, "text/plain", "ok\n", {}};
    if (req.path == "/") {
      if (!Snapshot(&res, &s)) return res;
      return {200, "text/html; charset=utf-8", RenderDashboardHtml(s, Query(req)), {{"Content-Security-Policy", kCsp}}};
    }
    if (req.path == "/metrics") {
      if (!Snapshot(&res, &s)) return res;
      return {200, "text/plain; version=0.0.4; charset=utf-8", RenderMetrics(s), {}};
    }
    for (const char* name : {"/report.html", "/report.json"}) {
      size_t n = std::char_traits<char>::length(name);
      if (req.path.rfind("/jobs/", 0) == 0 && req.path.size() > 6 + n &&
          req.path.compare(req.path.size() - n, n, name) == 0)
        return Report(req.path.substr(6));
    }
    return {404, "text/plain", "not found: the dashboard serves /, /metrics, /healthz and /jobs/<job>/report.html\n", {}};
  }

  // Accepts until stopped; each connection on its own short-lived thread
  // (a browser may hold an idle connection open), at most 16 at once.
  void Loop() {
    while (!stop.load()) {
      pollfd p{listen_fd, POLLIN, 0};
      if (poll(&p, 1, 200) <= 0) continue;
      int fd = accept(listen_fd, nullptr, nullptr);
      if (fd < 0) continue;
      std::unique_lock<std::mutex> lock(mu);
      if (active >= 16) {
        lock.unlock();
        SendAll(fd, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        close(fd);
        continue;
      }
      ++active;
      lock.unlock();
      std::thread([this, fd] {
        ServeConnection(fd, [this](const WebRequest& r) { return Handle(r); });
        std::lock_guard<std::mutex> done(mu);
        if (--active == 0) idle.notify_all();
      }).detach();
    }
  }
};

Dashboard::Dashboard(JobStore* input, JobStore* output, JobNaming naming, JsonLog* log, DashboardOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->in = input;
  impl_->out = output;
  impl_->naming = std::move(naming);
  impl_->log = log;
  impl_->o = std::move(options);
}

Dashboard::~Dashboard() { Stop(); }

Status Dashboard::Start() {
  const auto& o = impl_->o;
  auto fail = [&](const std::string& why) {
    return Status::IOError(fmt::format("--http: cannot listen on {}:{}: {}. Choose another port or address, or stop "
                                       "what is using it.", o.host, o.port, why));
  };
  addrinfo hints{}, *res = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  int rc = getaddrinfo(o.host.c_str(), std::to_string(o.port).c_str(), &hints, &res);
  if (rc != 0) return fail(gai_strerror(rc));
  int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
  int one = 1;
  if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  bool ok = fd >= 0 && bind(fd, res->ai_addr, res->ai_addrlen) == 0 && listen(fd, 64) == 0;
  freeaddrinfo(res);
  if (!ok) {
    std::string why = std::strerror(errno);
    if (fd >= 0) close(fd);
    return fail(why);
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  impl_->listen_fd = fd;
  impl_->thread = std::thread([this] { impl_->Loop(); });
  impl_->log->Info("dashboard.started", "", fmt::format("dashboard on http://{}:{}/", o.host, port_),
                   {{"port", port_}, {"token_required", !o.token.empty()}});
  return Status::OK();
}

void Dashboard::Stop() {
  if (!impl_->thread.joinable()) return;
  impl_->stop.store(true);
  impl_->thread.join();
  close(impl_->listen_fd);
  // Connections time out within 5 s: wait for them, they use the stores.
  std::unique_lock<std::mutex> lock(impl_->mu);
  impl_->idle.wait(lock, [&] { return impl_->active == 0; });
}

}  // namespace cloudmerge
