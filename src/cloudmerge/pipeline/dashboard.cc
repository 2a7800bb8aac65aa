// The dashboard's HTTP server (libmicrohttpd) with its limits, token and Host
// checks; the pages it serves are built in dashboard_pages.cc. See dashboard.h.
#include "cloudmerge/pipeline/dashboard.h"
#include "cloudmerge/base/ascii.h"
#include "cloudmerge/base/json_fields.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cloudmerge/report/report_html.h"

namespace cloudmerge {
namespace {

using nlohmann::json;

bool IsLoopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// ---- the request as the pages see it, and their answer ---------------------

struct WebRequest {
  std::string method, path;  // path percent-decoded (by libmicrohttpd)
  std::map<std::string, std::string> query, headers;  // header names lower-cased
  size_t head_bytes = 0;  // the size of the header fields (431 above kMaxHeadBytes)
};

struct WebResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

std::string Query(const WebRequest& req) {
  auto it = req.query.find("token");
  return it == req.query.end() ? "" : "?token=" + UriEncode(it->second, true);
}

bool TokenMatches(const std::string& given, const std::string& want) {
  return given.size() == want.size() && CRYPTO_memcmp(given.data(), want.data(), want.size()) == 0;
}

constexpr const char* kCsp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

// ---- the server's limits (see dashboard.h) ----------------------------------
constexpr size_t kMaxHeadBytes = 16384;      // header fields beyond this: 431
constexpr unsigned kIdleTimeoutS = 5;        // libmicrohttpd's timeout: restarts with each byte
constexpr unsigned kConnectionLimit = 128;   // connections at once (each has a thread while open)
constexpr unsigned kPerClientLimit = 32;     // connections at once from one address
constexpr size_t kPendingPerClient = 8;      // unfinished request heads from one address...
constexpr size_t kPendingTotal = 64;         // ...and from all: beyond, the oldest is dropped

// Host header values a loopback dashboard answers to (lower case): a page of
// another site that has its name resolve to 127.0.0.1 (DNS rebinding) sends its
// own name and is refused. Empty (no check) off loopback: a token guards those.
std::vector<std::string> AllowedHosts(const std::string& host, int port) {
  if (!IsLoopback(host)) return {};
  std::vector<std::string> names = {host.find(':') != std::string::npos ? "[" + host + "]" : host, "localhost",
                                    "127.0.0.1", "[::1]"};
  std::vector<std::string> allowed;
  for (auto name : names) {
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    allowed.push_back(fmt::format("{}:{}", name, port));
    if (port == 80) allowed.push_back(name);  // a browser leaves out the default port
  }
  return allowed;
}

// Client address as text (the unit of the per-client limits).
std::string AddressText(const sockaddr* a) {
  char text[INET6_ADDRSTRLEN] = "?";
  if (a && a->sa_family == AF_INET) inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(a)->sin_addr, text, sizeof(text));
  if (a && a->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(a)->sin6_addr, text, sizeof(text));
  return text;
}

// Holds request heads to an absolute deadline. libmicrohttpd's own timeout
// restarts with every byte, so a client sending one byte a second would keep
// its connection (and thread) forever; here each connection must deliver its
// whole head within `deadline` of connecting, or its socket is shut down (and
// libmicrohttpd, seeing the end of the stream, closes it). Unfinished heads are
// also capped per client address and in all: a new connection pushes out the
// oldest unfinished one, so half-sent requests can never lock anyone out (on a
// loopback dashboard every local client has the same address).
// Thread safety: all members may be called from any thread (one mutex).
class HeadGuard {
 public:
  explicit HeadGuard(double deadline_s)
      : deadline_(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(deadline_s))) {}
  ~HeadGuard() { Stop(); }

  void Start() { sweeper_ = std::thread([this] { Sweep(); }); }
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (sweeper_.joinable()) sweeper_.join();
  }

  // A connection was accepted. Its socket is dup'ed: a shutdown from here can
  // then never reach a different connection that reused a closed descriptor.
  void Opened(MHD_Connection* c, int fd, const std::string& client) {
    std::lock_guard<std::mutex> lock(mu_);
    size_t from_client = 0, total = 0;
    auto oldest = conns_.end(), oldest_of_client = conns_.end();
    for (auto it = conns_.begin(); it != conns_.end(); ++it) {
      if (it->second.head_done || it->second.cut) continue;
      ++total;
      if (oldest == conns_.end() || it->second.start < oldest->second.start) oldest = it;
      if (it->second.client != client) continue;
      ++from_client;
      if (oldest_of_client == conns_.end() || it->second.start < oldest_of_client->second.start) oldest_of_client = it;
    }
    if (from_client >= kPendingPerClient) Cut(&oldest_of_client->second);
    else if (total >= kPendingTotal) Cut(&oldest->second);
    Conn& conn = conns_[c];  // head_done stays as it is
    conn.fd = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
    conn.client = client;
    conn.start = Clock::now();
  }
  // The whole head arrived (the request handler runs): no deadline any more.
  void HeadDone(MHD_Connection* c) {
    std::lock_guard<std::mutex> lock(mu_);
    conns_[c].head_done = true;  // (creates the entry if the handler ever ran before Opened)
  }
  void Closed(MHD_Connection* c) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = conns_.find(c);
    if (it == conns_.end()) return;
    if (it->second.fd >= 0) close(it->second.fd);
    conns_.erase(it);
  }

 private:
  using Clock = std::chrono::steady_clock;
  struct Conn {
    int fd = -1;
    std::string client;
    Clock::time_point start;
    bool head_done = false, cut = false;
  };
  void Cut(Conn* conn) {
    if (conn->fd >= 0) shutdown(conn->fd, SHUT_RDWR);
    conn->cut = true;
  }
  void Sweep() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      wake_.wait_for(lock, std::chrono::milliseconds(100));
      auto now = Clock::now();
      for (auto& [c, conn] : conns_)
        if (!conn.head_done && !conn.cut && now - conn.start >= deadline_) Cut(&conn);
    }
  }

  const Clock::duration deadline_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::map<MHD_Connection*, Conn> conns_;
  bool stopping_ = false;
  std::thread sweeper_;
};

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

struct Dashboard::Impl {
  JobStore* in = nullptr;
  JobStore* out = nullptr;
  JobNaming naming;
  JsonLog* log = nullptr;
  DashboardOptions o;
  std::vector<std::string> allowed_hosts;  // empty: any Host
  std::unique_ptr<HeadGuard> guard;
  MHD_Daemon* daemon = nullptr;

  bool Authorized(const WebRequest& req) const {
    if (o.token.empty() || req.path == "/healthz") return true;
    auto auth = req.headers.find("authorization");
    if (auth != req.headers.end() && auth->second.rfind("Bearer ", 0) == 0 && TokenMatches(auth->second.substr(7), o.token))
      return true;
    auto q = req.query.find("token");
    return q != req.query.end() && TokenMatches(q->second, o.token);
  }

  // A Host header naming another site (DNS rebinding). No Host at all passes:
  // browsers always send one, so its absence is a script or tool on this host.
  bool HostRefused(const WebRequest& req) const {
    auto host = req.headers.find("host");
    if (allowed_hosts.empty() || host == req.headers.end()) return false;
    std::string h = host->second;
    std::transform(h.begin(), h.end(), h.begin(), [](unsigned char c) { return std::tolower(c); });
    return std::find(allowed_hosts.begin(), allowed_hosts.end(), h) == allowed_hosts.end();
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
    if (req.head_bytes > kMaxHeadBytes) return {431, "text/plain", "request header fields too large\n", {}};
    if (req.method != "GET" && req.method != "HEAD")
      return {405, "text/plain", "read-only: GET only\n", {{"Allow", "GET, HEAD"}}};
    if (HostRefused(req))
      return {421, "text/plain",
              fmt::format("this dashboard answers to {} only (the Host header names another site)\n",
                          allowed_hosts.front()),
              {}};
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

  // libmicrohttpd's callbacks (on the connection's thread).
  static void OnConnection(void* cls, MHD_Connection* c, void** /*socket_context*/, MHD_ConnectionNotificationCode code) {
    auto* self = static_cast<Impl*>(cls);
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) return self->guard->Closed(c);
    const MHD_ConnectionInfo* fd = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    const MHD_ConnectionInfo* addr = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    self->guard->Opened(c, fd ? fd->connect_fd : -1, AddressText(addr ? addr->client_addr : nullptr));
  }

  static MHD_Result OnHeader(void* cls, MHD_ValueKind kind, const char* key, const char* value) {
    auto* req = static_cast<WebRequest*>(cls);
    std::string name = key ? key : "", text = value ? value : "";
    req->head_bytes += name.size() + text.size() + 4;  // "name: value\r\n"
    if (kind == MHD_GET_ARGUMENT_KIND) {
      req->query[name] = text;
    } else {
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char ch) { return std::tolower(ch); });
      req->headers[name] = text;
    }
    return MHD_YES;
  }

  // Called once the head is complete; answers at once (one request per
  // connection: every answer says "Connection: close").
  static MHD_Result OnRequest(void* cls, MHD_Connection* c, const char* url, const char* method,
                              const char* /*version*/, const char* /*upload_data*/, size_t* upload_data_size,
                              void** request_state) {
    auto* self = static_cast<Impl*>(cls);
    if (*request_state) {  // a body after the head (answered already: 405): discard it
      *upload_data_size = 0;
      return MHD_YES;
    }
    *request_state = self;
    self->guard->HeadDone(c);
    WebRequest req;
    req.method = method;
    req.path = url;
    MHD_get_connection_values(c, MHD_HEADER_KIND, &OnHeader, &req);
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, &OnHeader, &req);
    WebResponse res = self->Handle(req);
    MHD_Response* r = MHD_create_response_from_buffer(res.body.size(), res.body.data(), MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;  // out of memory: libmicrohttpd closes the connection
    MHD_add_response_header(r, "Content-Type", res.content_type.c_str());
    MHD_add_response_header(r, "Connection", "close");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    for (const auto& [k, v] : res.headers) MHD_add_response_header(r, k.c_str(), v.c_str());
    MHD_Result queued = MHD_queue_response(c, static_cast<unsigned>(res.status), r);
    MHD_destroy_response(r);
    return queued;
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
  // The socket is bound here (not by libmicrohttpd) for an error that names the address.
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
  impl_->allowed_hosts = AllowedHosts(o.host, port_);
  impl_->guard = std::make_unique<HeadGuard>(o.header_timeout_s);
  impl_->guard->Start();
  // A thread per connection: a page that waits on a slow store listing holds up
  // only its own request, never /healthz. MHD_USE_ITC: a finished connection's
  // thread wakes the accepting thread, which then releases its place in the
  // limits at once (without it a pushed-out connection kept counting against
  // its address until the next accept, and that accept could be refused).
  impl_->daemon = MHD_start_daemon(
      MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC, 0, nullptr, nullptr,
      &Impl::OnRequest, impl_.get(),
      MHD_OPTION_LISTEN_SOCKET, fd,
      MHD_OPTION_CONNECTION_TIMEOUT, kIdleTimeoutS,
      MHD_OPTION_CONNECTION_LIMIT, kConnectionLimit,
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, kPerClientLimit,
      MHD_OPTION_NOTIFY_CONNECTION, &Impl::OnConnection, impl_.get(),
      MHD_OPTION_END);
  if (!impl_->daemon) {  // fd not closed: libmicrohttpd may have closed it already (serve exits on this error)
    impl_->guard.reset();
    return fail("libmicrohttpd could not start (out of threads or memory?)");
  }
  impl_->log->Info("dashboard.started", "", fmt::format("dashboard on http://{}:{}/", o.host, port_),
                   {{"port", port_}, {"token_required", !o.token.empty()}});
  return Status::OK();
}

void Dashboard::Stop() {
  if (!impl_->daemon) return;
  // Closes the listening socket and every connection, and waits for their
  // threads: a request being answered finishes first (it uses the stores).
  MHD_stop_daemon(impl_->daemon);
  impl_->daemon = nullptr;
  impl_->guard.reset();
}

}  // namespace cloudmerge
