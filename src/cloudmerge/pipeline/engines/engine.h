// Engine: what runs one job's merge for the pipeline (the job runner picks
// one by EngineKind and does not know which it got). Three kinds:
//   native   this process (engine/merge.h), sharing the worker's memory
//            limit and cores between its concurrent runs;
//   command  a program the operator registered (command_engine.h);
//   cluster  spark/merge_job.py on a local Spark, EMR Serverless or EMR
//            (spark_engine.h), resumable across deliveries through a marker
//            in the run's state folder.
// The runner owns claims, reports and notifications; an engine owns reading
// the inputs, writing the result atomically at out_uri, and the part of
// report.json that only it knows (EngineResult::report).
//
// Threading: Run may be called from several threads at once for different
// jobs (serve --workers); an engine keeps no per-run state.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cloudmerge/base/status.h"
#include "cloudmerge/engine/merge.h"
#include "cloudmerge/io/env.h"
#include "cloudmerge/pipeline/engines/command_engine.h"
#include "cloudmerge/pipeline/engines/engine_kind.h"
#include "cloudmerge/pipeline/engines/spark_engine.h"
#include "cloudmerge/pipeline/job.h"
#include "cloudmerge/pipeline/json_log.h"
#include "cloudmerge/pipeline/store/job_store.h"

namespace cloudmerge {

// One run of a job, as the runner hands it over.
struct EngineJob {
  std::string job, run;               // for logs, and the cluster's idempotency token
  std::string x_uri, y_uri, out_uri;  // inputs and result, as Env / S3 URIs
  JobSpec spec;
  // The output store, the result's key and the run's state folder in it
  // (`<job>/_state/<run>/`): a cluster engine records its submission there.
  JobStore* output = nullptr;
  std::string out_key, state_prefix;
  int64_t deadline_ms = 0;  // NowMillis() time the worker must be done by (0: none)
};

struct EngineResult {
  MergeStats stats;
  // Merged into report.json: the native engine's "engine_stats", a cluster
  // run's "cluster" (and "rows_measured": false when it wrote no statistics).
  nlohmann::json report = nlohmann::json::object();
  // A failure that retrying would not change (a cluster run that ended FAILED).
  bool final = false;
  // The worker must stop waiting but the run goes on (a cluster run at the
  // worker's deadline): the next delivery resumes it; the claim is released.
  bool resumable = false;
  // Stopped by the worker's stop flag (SIGTERM) before finishing: not a
  // failure of the job; the claim is released for the next worker.
  bool stopped = false;
};

class Engine {
 public:
  virtual ~Engine() = default;
  virtual EngineKind kind() const = 0;
  // Whether the settings this engine needs are there ("auto" hands off only
  // to a configured engine; serve runs natively otherwise).
  virtual bool Configured() const { return true; }
  // Runs the merge; a non-ok Status is transient unless IsPermanent or result->final.
  virtual Status Run(const EngineJob& job, EngineResult* result) = 0;
};

// The native engine's share of the worker: threads (0: the cores divided
// between concurrent_runs), its memory limit (0: the default) divided the
// same way, where it spills ("": the default).
struct NativeEngineOptions {
  unsigned threads = 0;
  unsigned concurrent_runs = 1;
  uint64_t memory_limit = 0;
  std::string temp_dir;
};

std::unique_ptr<Engine> NewNativeEngine(Env* env, NativeEngineOptions options);
// `stop`: the worker's SIGTERM flag (may be null). A command's temp_dir
// defaults to `temp_dir` (the native engine's).
std::unique_ptr<Engine> NewCommandEngine(Env* env, CommandEngineOptions options, std::atomic<bool>* stop);
// kind: spark, emr-serverless or emr. `worker_id` goes into the submission marker.
std::unique_ptr<Engine> NewClusterEngine(EngineKind kind, SparkEngineOptions options, JsonLog* log,
                                         std::string worker_id);

}  // namespace cloudmerge
