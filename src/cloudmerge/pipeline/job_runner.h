// JobRunner: runs one job with the exactly-once rules, whatever delivered it
// (a local poll, an SQS message, a Lambda event).
//
// For a job whose inputs are all there, the run (named by its inputs'
// identities, see job.h) goes:
//   1. done?      `<job>/_state/<run>/done.json` or `failed.json` exists in the
//                 output store -> kAlreadyDone (a duplicate or redelivered event),
//                 once the run's end notification is complete (step 6); if
//                 not, the notification is finished first, under a claim;
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
//                 per channel: each channel's marker
//                 `notified-succeeded-<channel>` (Notifier::Channels: smtp,
//                 sns, directory) is created right after that channel took
//                 the message, and `notified-succeeded` when all have one; the
//                 claim is released. A channel that failed makes Run return a
//                 transient error (the delivery comes back) and is retried,
//                 alone, by whoever sees the run next (step 1), backing off
//                 in-process from 1 s to 5 min. A worker killed between a
//                 channel's send and its marker repeats that one message on
//                 that one channel: delivery is at least once per channel.
//                 A run whose `notified-<kind>` exists (as earlier versions
//                 wrote after all channels) is notified on every channel.
// Cluster engines (job.json "engine": spark | emr-serverless | emr, or auto
// handing off, see PipelineOptions): step 4 submits spark/merge_job.py
// (spark_engine.h) and records `cluster-submitted.json` (engine and job run
// or step id) once the cluster accepted it; a worker that stops waiting (its
// deadline, a transient error) releases the claim, and the next delivery
// resumes the wait for that submission instead of submitting again. The job
// writes its row counts to `<run state>/spark-stats.json`, read for the
// report (rows "not measured" when absent). A cluster run that ends
// FAILED/CANCELLED/INTERRUPTED, or a SUCCESS without the result object, is
// final: failed.json and one failure notification.
// Inputs that are not regular files (a symbolic link, a FIFO in a local job
// folder: confined_env.h) and a job.json naming a reserved output are bad input.
// No exception escapes Run: one (which would abort the worker and, after the
// lease, the next one) fails the run as an internal error, once; all JSON the
// runner writes replaces invalid UTF-8 (safe_text.h), and a failure's message
// is capped (kMaxErrorBytes).
// Incomplete jobs: a folder holding one input and not the other (or a file
// whose name is a near miss of an input's, NearMissInputName in job.h) gets
// one "incomplete" notice saying what is there, what is missing and the names
// expected. A near miss is reported when first seen; a missing input once
// `incomplete_wait_ms` has passed since a worker first saw the folder so
// (`<job>/_state/incomplete-<id>/first-seen`, <id> naming the folder's
// files). The notice is sent under a claim with the markers of step 6, so it
// goes out once whatever the number of events and workers. Until it is due,
// Run returns kIncomplete: `serve --local` looks again at each scan, `serve
// --queue-url` keeps the message and lets it come back when the notice is
// due; Lambda has no timer: the job is looked at again on its folder's next
// event (serve.h, docs/reliability.md).
// Identical re-uploads: an ended run seen again whose inputs carry upload
// stamps (StoredObject::modified) the run has not seen (`upload-<stamp>`
// markers) gets one short "reupload" notice pointing at the existing result
// (or failure); a duplicate event of an upload already seen gets nothing.
// Bad input (the scientist's to fix) ends the run: `failed.json`, a failure
// notification once per channel as in step 6 (with the error and where the
// logs are), `report.html`
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
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "cloudmerge/io/env.h"
#include "cloudmerge/engine/merge.h"
#include "cloudmerge/pipeline/engines/command_engine.h"
#include "cloudmerge/pipeline/engines/engine.h"
#include "cloudmerge/pipeline/job.h"
#include "cloudmerge/pipeline/store/job_store.h"
#include "cloudmerge/pipeline/json_log.h"
#include "cloudmerge/pipeline/notify/notifier.h"
#include "cloudmerge/report/report_html.h"
#include "cloudmerge/pipeline/engines/spark_engine.h"
#include "cloudmerge/base/setting_names.h"
#include "cloudmerge/base/status.h"

namespace cloudmerge {

// The native engine's throughput assumed by "auto", in input bytes per
// second: docs/benchmarks.md measures ~140 MB/s in memory on 2 cores from a
// local disk; a third of that leaves room for S3 transfers and spilling.
// Override with serve --native-bytes-per-second or, under Lambda,
// CLOUDMERGE_NATIVE_BYTES_PER_SECOND.
inline constexpr double kDefaultNativeBytesPerSecond = 50e6;
// A .gz / .zst input counts this many times its size in the estimate.
inline constexpr double kCompressedInputFactor = 4;
// The cluster path's throughput assumed by "auto", in input bytes per CPU-second:
// docs/spark.md ("Scaling model") measures ~2.6M input rows (~48 MB) per
// CPU-second on a 2-worker standalone cluster, the slower of the two Spark
// set-ups; 40 MB leaves room for S3 reads.
inline constexpr double kDefaultClusterBytesPerCpuSecond = 40e6;

// kWaiting: an input is missing and there is nothing (more) to tell its owner;
// kIncomplete: an input is missing and the notice saying so is due later
// (PipelineOptions::incomplete_wait_ms): the caller looks at the job again.
enum class JobOutcome { kSucceeded, kFailed, kWaiting, kAlreadyDone, kBusy, kIncomplete };
// The longest error message a failure records (failed.json, email, report.html, log).
inline constexpr size_t kMaxErrorBytes = 4096;

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
  // How the operator sets what a failure's error names (pipeline/setting_names.h):
  // the failure recorded, logged and emailed says where to change it.
  SettingNames setting_names;
  std::string worker_id;             // for claims and logs (default: host:pid)
  // Prices of the report's AWS cost estimate; nullopt: CostPrices::FromEnvironment.
  std::optional<CostPrices> prices;
  // The link a success email gives for a stored object's URI (report.html, the
  // result), valid for link_expiry_s: a presigned GET for s3:// URIs (set by
  // the caller that has the S3 client). Local paths are linked as file://
  // URLs; unset or failing, the URI itself.
  std::function<Result<std::string>(const std::string& uri, int64_t expires_s)> share_link;
  int64_t link_expiry_s = 7 * 24 * 3600;  // S3's maximum for SigV4 presigned URLs
  // When the credentials that sign those links expire (Unix seconds; 0:
  // never; -1: temporary, end unknown, as Lambda's role given as variables
  // with a session token), asked only when a link is presigned: a presigned URL stops
  // working with its credentials, so the email states the earlier time.
  std::function<int64_t()> signing_credentials_expiry;
  // A job folder holding one input but not the other gets one notice after
  // this long (a file with a near-miss name, at once); see "Incomplete jobs".
  int64_t incomplete_wait_ms = 15 * 60 * 1000;
  // How many runs this process may have going at once (serve --workers): the
  // native engine's memory limit (and, unless `threads` is set, the cores)
  // are shared out evenly between them.
  unsigned concurrent_runs = 1;
  // Where the run logs go, in words, for failure emails ("" : detected, see
  // LogLocation in job_runner.cc; serve sets it when it sends its log to CloudWatch).
  std::string log_location;
  // The first wait before a notification channel that failed is tried again
  // by this process; it doubles on each failure, up to 5 minutes.
  int64_t notify_retry_ms = 1000;
  // Set by SIGTERM: a run in progress finishes (a command-engine run is
  // ended, and its job released for the next worker, not failed); no new run starts.
  std::atomic<bool>* stop = nullptr;
  // The command engine (job.json "engine": "command"): off unless the
  // operator registered commands (command_engine.h).
  CommandEngineOptions commands;
  // A run whose workers died this many times (its claims expired unreleased:
  // killed, out of memory, crashed) is failed instead of taken over again, so
  // that an input that kills its worker cannot keep every worker busy dying.
  int max_attempts = 10;

  // The cluster engines (job.json "engine": "spark", "emr-serverless", "emr",
  // or "auto" handing off): the Spark master, EMR Serverless application and
  // role, EMR cluster, where the job script is uploaded (spark_engine.h).
  SparkEngineOptions spark;
  // "auto": the native engine runs a job whose estimated time, input bytes
  // (compressed inputs counted kCompressedInputFactor times) divided by
  // native_bytes_per_second, fits the budget: native_time_budget_s, and under
  // a deadline (Lambda) no more than the time left less auto_margin_s.
  // Otherwise the job goes to auto_engine. The decision is logged
  // ("engine.auto") with these numbers.
  EngineKind auto_engine = EngineKind::kEmrServerless;
  double native_bytes_per_second = kDefaultNativeBytesPerSecond;
  double native_time_budget_s = 15 * 60;
  double auto_margin_s = 60;
  // The cluster's estimate: cluster_startup_s + input bytes / (cluster_cpus x
  // cluster_bytes_per_cpu_second). Without a deadline, a job over the budget
  // stays native when the cluster would not finish sooner (a small cluster, a
  // slow start); under a deadline (Lambda) it goes to the cluster anyway, as
  // the native run could not finish in the invocation.
  double cluster_bytes_per_cpu_second = kDefaultClusterBytesPerCpuSecond;
  double cluster_cpus = 32;
  double cluster_startup_s = 120;
  // The time this worker must be done by (NowMillis() time; 0: none). Lambda
  // sets it per invocation: "auto" budgets against it, and the wait for a
  // cluster run stops shortly before it (the run keeps going; the event's
  // next delivery resumes the wait, see job_runner.h).
  int64_t deadline_ms = 0;
};

struct RunRecord;
enum class ClaimResult { kBusy, kClaimed, kTakenOver, kGaveUp };

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
  // Run, less the exception guard; `r` is filled as the run goes, for the guard.
  Result<JobOutcome> RunGuarded(const std::string& job, RunRecord& r);
  // An exception escaped RunGuarded: the run fails once (when this worker holds its claim).
  Result<JobOutcome> Crashed(RunRecord& r, const std::string& what);
  Result<JobOutcome> Fail(RunRecord& r, const Status& why);
  // Creates the next claim of the run (kClaimed, or kTakenOver when an
  // expired one was there) and keeps its lease alive, or kBusy.
  Result<ClaimResult> Claim(RunRecord& r);
  void ReleaseClaim(RunRecord& r);
  // A run whose end marker exists: kAlreadyDone once its notification is complete (finishing it if need be).
  Result<JobOutcome> Ended(RunRecord& r, const std::string& end_marker);
  // "auto": native or o_.auto_engine, logged with the numbers.
  EngineKind ChooseEngine(const RunRecord& r);
  // The end notification on every channel not marked yet (step 6); returns the channels it failed on.
  // `marker` names the markers (default: kind).
  std::vector<std::string> NotifyOnce(const RunRecord& r, const std::string& kind, const nlohmann::json& details,
                                      const std::string& marker = "");
  // The transient error of a run whose notification failed on `unsent`.
  Status NotificationPending(const RunRecord& r, const std::string& kind, const std::vector<std::string>& unsent);
  // How long this process still waits before retrying the failed channels of `key` (state prefix + kind).
  int64_t RetryWaitMs(const std::string& key);
  // The job.json of r's inputs into r.spec, best effort (for its extra recipients).
  void LoadSpecForRecipients(RunRecord& r);
  // On every channel, unmarked (the "received" notice: best effort).
  void Notify(const RunRecord& r, const std::string& kind, const nlohmann::json& details);
  Status SendOn(const RunRecord& r, const NotifierChannel& channel, const Notification& n);
  Notification Message(const RunRecord& r, const std::string& kind, const nlohmann::json& details);
  nlohmann::json Report(const RunRecord& r, const MergeStats& s, double seconds, const std::string& out_key);
  std::string Link(const std::string& uri);
  // "7 days", or the earlier credentials' expiry ("3 hours (until ..., when ...)").
  std::string LinkValidity(const std::string& uri);
  // A job folder without both inputs: one notice, when due (see "Incomplete jobs").
  Result<JobOutcome> Incomplete(const std::string& job);
  // An ended run seen again with inputs uploaded anew (a later Last-Modified):
  // one short notice per upload pointing at what the run left.
  Result<JobOutcome> Reuploaded(RunRecord& r, const std::string& kind, const std::string& upload_marker);
  std::string LogLocation(const std::string& job) const;
  void IncompleteMessage(const RunRecord& r, const nlohmann::json& details, Notification* n);

  JobStore* in_;
  JobStore* out_;
  Env* env_;
  Notifier* notifier_;
  JsonLog* log_;
  PipelineOptions o_;
  // One engine per kind but kAuto, made from o_ (engines/engine.h).
  std::map<EngineKind, std::unique_ptr<Engine>> engines_;
  std::mutex retry_mu_;
  // state prefix + kind -> (time of the next retry, last wait), both in ms.
  std::map<std::string, std::pair<int64_t, int64_t>> retry_;
};

}  // namespace cloudmerge
