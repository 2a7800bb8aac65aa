// The read-only dashboard of `cloudmerge serve --http HOST:PORT`: GET/HEAD,
// one request per connection, served by libmicrohttpd (Debian's
// libmicrohttpd-dev) on its own threads beside the serve loop.
//   /                          the jobs: waiting for inputs, queued, running
//                              (elapsed), done, failed; links to their reports
//   /jobs/<job>/report.html    the job's report, read from the output store
//   /jobs/<job>/report.json
//   /metrics                   Prometheus text format: jobs by state, rows
//                              written, failures, last run seconds
//   /healthz                   "ok" (no token needed)
// Job states are read on each request from the stores (the input listing and
// the output's _state markers), so the page is right whichever worker ran the
// job. Loopback by default; binding elsewhere needs a token, then required on
// every page as "Authorization: Bearer TOKEN" or "?token=TOKEN".
//
// Limits (so that no client can hold the dashboard down): a request's head must
// arrive whole within header_timeout_s of connecting (an absolute deadline; 5 s
// of silence also ends a connection); at most 8 unfinished heads per client
// address and 64 in all, a new connection pushing out the oldest unfinished
// one; 32 connections per address, 128 in all; header fields up to 16 KiB
// (431 beyond). On a loopback address the Host header must name the dashboard
// (HOST:PORT, localhost:PORT, 127.0.0.1:PORT or [::1]:PORT), or the answer is
// 421: a web page whose name resolves to 127.0.0.1 (DNS rebinding) reads nothing.
//
// Thread safety: the stores must be thread-safe (they are); Start/Stop from
// one thread. Each connection is served on its own thread (libmicrohttpd's
// thread-per-connection mode), so a slow store listing delays only its page.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cloudmerge/pipeline/job.h"
#include "cloudmerge/pipeline/store/job_store.h"
#include "cloudmerge/pipeline/json_log.h"
#include "cloudmerge/base/status.h"

namespace cloudmerge {

struct DashboardOptions {
  std::string host = "127.0.0.1";
  int port = 0;       // 0: any free port (see Dashboard::port)
  std::string token;  // empty: none (loopback only)
  double header_timeout_s = 10;  // absolute deadline for a request's head (--http-header-timeout)
};

// "HOST:PORT" (or "[::1]:PORT", or ":PORT" for loopback) with the token;
// refuses a non-loopback host without a token.
Result<DashboardOptions> ParseHttpAddress(const std::string& spec, const std::string& token);

// One job as the dashboard shows it (the run of its current inputs).
struct JobView {
  std::string job;
  std::string state;   // "waiting", "queued", "running", "done", "failed"
  std::string detail;  // what it waits for, the error, the result
  double elapsed_s = -1;  // running: since the run started (-1: unknown)
  double seconds = -1;    // done: the run's time
  double rows = -1;       // done: result rows
  std::string finished;   // done/failed: ISO 8601
  bool has_report = false;
};

struct DashboardSnapshot {
  std::vector<JobView> jobs;
  double failed_runs = 0;  // failed.json markers of every run, current or not
};

Result<DashboardSnapshot> CollectJobs(JobStore* input, JobStore* output, const JobNaming& naming);
// `link_query`: appended to every link ("?token=..." when the request used one).
std::string RenderDashboardHtml(const DashboardSnapshot& s, const std::string& link_query);
std::string RenderMetrics(const DashboardSnapshot& s);

class Dashboard {
 public:
  Dashboard(JobStore* input, JobStore* output, JobNaming naming, JsonLog* log, DashboardOptions options);
  ~Dashboard();
  // Binds (an error names the address and what to do), then serves on a thread.
  Status Start();
  void Stop();
  int port() const { return port_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace cloudmerge
