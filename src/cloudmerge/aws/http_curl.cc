// The libcurl HttpTransport (and HttpResponse::Header).
//
// Owns: a pool of CURL easy handles, so that consecutive requests from any
// thread reuse the handle's open connections (keep-alive, TLS sessions).
// Signing is not done here: the S3 client and the credential providers sign
// their requests themselves (sigv4.h), so curl's own AWS signing is never used.
//
// Threading: Send may be called from many threads at once. A handle is taken
// from the mutex-protected free list for one request and given back after it;
// no handle is ever used by two threads at the same time.
#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cloudmerge/aws/http.h"
#include "cloudmerge/base/ascii.h"

namespace cloudmerge {

std::string HttpResponse::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return "";
}

namespace {

// Handles kept idle at most; more than this were only needed for a burst.
constexpr size_t kMaxIdleHandles = 32;

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// The URL as it may be printed: a query string can hold a presigned
// signature or a security token, so it is cut off.
std::string UrlForMessages(const std::string& url) { return url.substr(0, url.find('?')); }

// Everything one transfer's callbacks need; lives on Send's stack.
struct Transfer {
  const HttpRequest* request;
  HttpResponse response;
  size_t upload_pos = 0;
  Status sink_status;  // set when on_body refused bytes
};

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * n);
  if (line.substr(0, 5) == "HTTP/") {
    // A new status line (e.g. after "100 Continue"): earlier headers belonged
    // to an interim response.
    t->response.headers.clear();
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    t->response.headers.emplace_back(AsciiLower(TrimBlanks(line.substr(0, colon))), TrimBlanks(line.substr(colon + 1)));
  }
  return size * n;
}

size_t OnBody(char* data, size_t size, size_t n, void* user, CURL* handle) {
  auto* t = static_cast<Transfer*>(user);
  size_t bytes = size * n;
  long code = 0;
  curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &code);
  bool success = code >= 200 && code < 300;
  if (success && t->request->on_body) {
    Status st = t->request->on_body(std::string_view(data, bytes));
    if (!st.ok()) {
      t->sink_status = std::move(st);
      return 0;  // makes curl abort the transfer with CURLE_WRITE_ERROR
    }
    return bytes;
  }
  t->response.body.append(data, bytes);
  return bytes;
}

// curl's write callback has no handle argument; the handle rides along.
struct WriteContext {
  Transfer* transfer;
  CURL* handle;
};

size_t OnWrite(char* data, size_t size, size_t n, void* user) {
  auto* ctx = static_cast<WriteContext*>(user);
  return OnBody(data, size, n, ctx->transfer, ctx->handle);
}

size_t OnRead(char* buffer, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view body = t->request->body;
  size_t len = std::min(size * n, body.size() - t->upload_pos);
  std::copy_n(body.data() + t->upload_pos, len, buffer);
  t->upload_pos += len;
  return len;
}

// Lets curl resend the body (e.g. after a redirect or an auth retry on a
// reused connection that turned out to be closed).
int OnSeek(void* user, curl_off_t offset, int origin) {
  auto* t = static_cast<Transfer*>(user);
  if (origin != SEEK_SET || offset < 0 || static_cast<size_t>(offset) > t->request->body.size()) {
    return CURL_SEEKFUNC_FAIL;
  }
  t->upload_pos = static_cast<size_t>(offset);
  return CURL_SEEKFUNC_OK;
}

class CurlHeaderList {
 public:
  ~CurlHeaderList() { curl_slist_free_all(list_); }
  void Add(const std::string& line) { list_ = curl_slist_append(list_, line.c_str()); }
  curl_slist* get() const { return list_; }

 private:
  curl_slist* list_ = nullptr;
};

bool HasHeader(const HttpHeaders& headers, std::string_view lower_name) {
  return std::any_of(headers.begin(), headers.end(), [&](const auto& h) { return AsciiLower(h.first) == lower_name; });
}

class CurlTransport final : public HttpTransport {
 public:
  explicit CurlTransport(HttpTransportOptions options) : options_(options) { GlobalInitOnce(); }

  ~CurlTransport() override {
    for (CURL* h : idle_) curl_easy_cleanup(h);
  }

  Result<HttpResponse> Send(const HttpRequest& request) override {
    CURL* handle = Acquire();
    if (handle == nullptr) return Status::Internal("cannot create a curl handle (out of memory?)");
    Result<HttpResponse> result = Perform(handle, request);
    Release(handle);
    return result;
  }

 private:
  CURL* Acquire() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!idle_.empty()) {
        CURL* h = idle_.back();
        idle_.pop_back();
        return h;
      }
    }
    return curl_easy_init();
  }

  void Release(CURL* handle) {
    // Reset clears the options but keeps the live connections and caches,
    // which is the point of pooling.
    curl_easy_reset(handle);
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < kMaxIdleHandles) {
      idle_.push_back(handle);
      return;
    }
    curl_easy_cleanup(handle);
  }

  void SetCommonOptions(CURL* h, const HttpRequest& request) const {
    curl_easy_setopt(h, CURLOPT_URL, request.url.c_str());
    // Threads + timeouts: without this, curl uses SIGALRM for DNS timeouts.
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    // S3 keys may contain "/../" or "//": they must go on the wire untouched,
    // exactly as they were signed.
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, options_.connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, request.timeout_ms > 0 ? request.timeout_ms : options_.request_timeout_ms);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, options_.low_speed_timeout_s);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, options_.verify_tls ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, options_.verify_tls ? 2L : 0L);
  }

  // Method and body. PUT streams the body through a read callback with an
  // exact Content-Length (S3 rejects chunked uploads without a length).
  static void SetMethodAndBody(CURL* h, const HttpRequest& request, Transfer* t) {
    const std::string& m = request.method;
    if (m == "HEAD") {
      curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (m == "PUT") {
      curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(h, CURLOPT_READFUNCTION, OnRead);
      curl_easy_setopt(h, CURLOPT_READDATA, t);
      curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, OnSeek);
      curl_easy_setopt(h, CURLOPT_SEEKDATA, t);
      curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
    } else if (m == "POST" || !request.body.empty()) {
      // POSTFIELDS does not copy: the body outlives the transfer (http.h).
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, request.body.data() ? request.body.data() : "");
      if (m != "POST") curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m.c_str());
    } else if (m != "GET") {
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m.c_str());
    }
  }

  static void BuildHeaders(const HttpRequest& request, CurlHeaderList* list) {
    for (const auto& [name, value] : request.headers) {
      // "Name;" is curl's way to send a header with an empty value.
      list->Add(value.empty() ? name + ";" : name + ": " + value);
    }
    // No "Expect: 100-continue" round trip before a body, and no default
    // form Content-Type on POST: only what the caller (and signer) chose.
    list->Add("Expect:");
    if (!HasHeader(request.headers, "content-type")) list->Add("Content-Type:");
  }

  Result<HttpResponse> Perform(CURL* h, const HttpRequest& request) const {
    Transfer t;
    t.request = &request;
    WriteContext wctx{&t, h};
    CurlHeaderList headers;
    BuildHeaders(request, &headers);
    char errbuf[CURL_ERROR_SIZE] = {0};

    SetCommonOptions(h, request);
    SetMethodAndBody(h, request, &t);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, OnWrite);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &wctx);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);

    CURLcode rc = curl_easy_perform(h);
    if (!t.sink_status.ok()) return t.sink_status;
    if (rc != CURLE_OK) return TransportError(request, rc, errbuf);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &t.response.status);
    return std::move(t.response);
  }

  static Status TransportError(const HttpRequest& request, CURLcode rc, const char* errbuf) {
    std::string detail = errbuf[0] ? std::string(errbuf) : std::string(curl_easy_strerror(rc));
    while (!detail.empty() && (detail.back() == '\n' || detail.back() == '\r')) detail.pop_back();
    // curl's own text may repeat the URL; make sure its query string does not survive.
    size_t q = request.url.find('?');
    if (q != std::string::npos && q + 1 < request.url.size()) {
      std::string query = request.url.substr(q + 1);
      for (size_t at; (at = detail.find(query)) != std::string::npos;) detail.erase(at, query.size());
    }
    return Status::IOError(fmt::format("HTTP {} {} failed: {} (curl error {})", request.method,
                                       UrlForMessages(request.url), detail, static_cast<int>(rc)));
  }

  HttpTransportOptions options_;
  std::mutex mu_;
  std::vector<CURL*> idle_;
};

}  // namespace

std::shared_ptr<HttpTransport> NewCurlTransport(const HttpTransportOptions& options) {
  return std::make_shared<CurlTransport>(options);
}

}  // namespace cloudmerge
