// JobRunner: runs one job with the exactly-once rules, whatever delivered it
// (a local poll, an SQS message, a Lambda event).
//
// For a job whose inputs are all there, the run (named by its inputs'
// identities, see job.h) goes:
//   1. done?      `<job>/_state/<run>/done.json` or `failed.json` exists in the
//                 output store -> kAlreadyDone (a duplicate or redelivered event);
//   2. claim      create `<job>/_state/<run>/claim-<n>` with a lease; a live
//                 claim held by another worker -> kBusy (the event comes back
//                 later); an expired one (its worker died) is taken over by
//                 creating claim-<n+1>; creation is atomic (JobStore::
//                 CreateIfAbsent), so two workers never both win;
//   3. received   "inputs received" notification, once per run (marker);
//   4. run        the engine writes `<job>/<output>` atomically (temporary +
//                 rename, or a multipart upload completed only on success);
//   5. report     `<job>/report.json` and `<job>/report.html` (report_html.h);
//                 report.json's "engine_stats" is the native engine's own
//                 report (merge_report.h: matched and hottest keys, memory,
//                 spilling, phases), the rest the pipeline's view of the run;
//   6. done       `done.json` created; then the success notification, once
//                 (marker `notified-succeeded` created after it is sent).
// Bad input (the scientist's to fix) ends the run: `failed.json`, a failure
// notification once (with the error and where the logs are), `report.html`
// showing the error (best effort), kFailed. Anything transient (storage or network down)
// releases the claim and returns the error: the caller retries (the SQS
// message becomes visible again; after N receives it goes to the DLQ).
//
// Thread safety: Run may be called from several threads for different jobs;
// the stores, env, notifier and log must be thread-safe (they are).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "cloudmerge/env.h"
#include "cloudmerge/merge.h"
#include "cloudmerge/pipeline/job.h"
#include "cloudmerge/pipeline/job_store.h"
#include "cloudmerge/pipeline/json_log.h"
#include "cloudmerge/pipeline/notifier.h"
#include "cloudmerge/pipeline/report_html.h"
#include "cloudmerge/status.h"

namespace cloudmerge {

enum class JobOutcome { kSucceeded, kFailed, kWaiting, kAlreadyDone, kBusy };
const char* JobOutcomeName(JobOutcome o);

struct PipelineOptions {
  JobNaming naming;
  int64_t lease_ms = 5 * 60 * 1000;  // a claim not renewed for this long may be taken over
  int preview_rows = 10;             // rows of each input and of the result in the report
  unsigned threads = 0;              // engine threads (0: all cores)
  // The native engine's memory limit (0: DefaultMemoryLimit(), which under
  // Lambda is a share of the function's memory) and where it spills ("":
  // DefaultTempParent(), i.e. $TMPDIR else /tmp, which is Lambda's /tmp).
  uint64_t memory_limit = 0;
  std::string temp_dir;
  std::string worker_id;             // for claims and logs (default: host:pid)
  // Prices of the report's AWS cost estimate; nullopt: CostPrices::FromEnvironment.
  std::optional<CostPrices> prices;
  // The link a success email gives for a stored object's URI (report.html, the
  // result), valid for link_expiry_s: a presigned GET for s3:// URIs (set by
  // the caller that has the S3 client). Local paths are linked as file://
  // URLs; unset or failing, the URI itself.
  std::function<Result<std::string>(const std::string& uri, int64_t expires_s)> share_link;
  int64_t link_expiry_s = 7 * 24 * 3600;  // S3's maximum for SigV4 presigned URLs
  // Set by SIGTERM: a run in progress finishes; no new run starts.
  std::atomic<bool>* stop = nullptr;
};

struct RunRecord;

class JobRunner {
 public:
  JobRunner(JobStore* input, JobStore* output, Env* env, Notifier* notifier, JsonLog* log, PipelineOptions options);

  // Runs `job` unless its current run is done or held by another worker.
  // A non-ok Status is transient: retry later.
  Result<JobOutcome> Run(const std::string& job);

  // Refuses an output location that would re-trigger the pipeline: the output
  // store inside the input store's prefix (or the same place).
  static Status CheckNoSelfTrigger(const JobStore& input, const JobStore& output);

  const PipelineOptions& options() const { return o_; }

 private:
  JobOutcome Fail(const RunRecord& r, const Status& why);
  void NotifyOnce(const RunRecord& r, const std::string& kind, const nlohmann::json& details);
  bool Notify(const RunRecord& r, const std::string& kind, const nlohmann::json& details);
  nlohmann::json Report(const RunRecord& r, const MergeStats& s, double seconds, const std::string& out_key);
  std::string Link(const std::string& uri);
  std::string LogLocation(const std::string& job) const;

  JobStore* in_;
  JobStore* out_;
  Env* env_;
  Notifier* notifier_;
  JsonLog* log_;
  PipelineOptions o_;
};

}  // namespace cloudmerge
