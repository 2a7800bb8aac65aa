// The read-only dashboard of `cloudmerge serve --http HOST:PORT`: a minimal
// HTTP/1.1 server (GET/HEAD, one request per connection, sockets only: no
// library, so the Lambda package keeps AL2023's runtime) on its own thread
// beside the serve loop.
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
// Thread safety: the stores must be thread-safe (they are); Start/Stop from
// one thread. Each connection is served on a short-lived thread (at most 16).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cloudmerge/pipeline/job.h"
#include "cloudmerge/pipeline/job_store.h"
#include "cloudmerge/pipeline/json_log.h"
#include "cloudmerge/status.h"

namespace cloudmerge {

struct DashboardOptions {
  std::string host = "127.0.0.1";
  int port = 0;       // 0: any free port (see Dashboard::port)
  std::string token;  // empty: none (loopback only)
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
