// Jobs: what the pipeline runs, and how it is named.
//
// A job is a folder (prefix) in the input store holding the two inputs, by
// default `x_list.txt` and `y_list.txt` (the script's names; also with .gz or
// .zst), and optionally a `job.json`:
//   {"key": "ID", "x_key": "...", "y_key": "...", "output": "merged.tsv",
//    "any_order": false, "recipients": ["a@example.org"],
//    "engine": "native" | "command" | "spark" | "emr-serverless" | "emr" | "auto",
//    "command": "analysis_v2",
//    "pandas_version": "1.5" | "2.2" | "3.0" | "3.1" (native engine; docs/pandas-versions.md)}
// "command" names a program the operator registered (command_engine.h); a
// job never supplies a program or its arguments.
// "spark", "emr-serverless" and "emr" run spark/merge_job.py on the worker's
// configured Spark master / EMR Serverless application / EMR cluster
// (spark_engine.h); "auto" runs natively when the inputs fit the native time
// budget, else on the configured cluster engine (job_runner.h).
// The job's name is the folder's path ("exp42" for "exp42/x_list.txt";
// "2026/nov/run1" for nested folders). A job runs when both inputs exist.
// Results go to the output store under the same name: `<job>/merged.tsv`,
// `<job>/report.json`, `<job>/report.html`, and the job's state under
// `<job>/_state/<run>/`. "output" may not name what the pipeline writes
// itself (IsReservedOutputName): the report would replace the result.
// Whatever job.json holds is quoted in messages only in part (safe_text.h).
//
// A run is identified by its inputs' identities (keys and ETags, and
// job.json's): re-uploading a changed input makes a new run; the same event
// delivered twice finds the run done.
//
// Pure values and functions; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cloudmerge/engine/key_types.h"
#include "cloudmerge/pipeline/engines/engine_kind.h"
#include "cloudmerge/pipeline/store/job_store.h"
#include "cloudmerge/base/status.h"

namespace cloudmerge {

struct JobNaming {
  std::string x_name = "x_list.txt";
  std::string y_name = "y_list.txt";
  std::string spec_name = "job.json";
};

struct JobSpec {
  std::string x_key = "1", y_key = "1";  // key column of each side (position or name)
  std::string output = "merged.tsv";
  bool any_order = false;
  std::vector<std::string> recipients;
  EngineKind engine = EngineKind::kNative;
  std::string command;  // the registered command's name, for engine "command"
  PandasRules pandas;   // "pandas_version": whose read_csv the native engine reproduces
};

// Names the pipeline writes in a job's output folder, refused as "output":
// report.* (report.json, report.html), _state*, done.json, failed.json, and
// hidden names (".*": temporaries are ".cloudmerge-tmp-").
bool IsReservedOutputName(const std::string& name);

// Parses job.json; errors say which field is wrong and what is expected.
Result<JobSpec> ParseJobSpec(const std::string& json, const std::string& where);

// The job an input key belongs to ("exp42/x_list.txt" -> "exp42"), or nullopt
// when the key is not a job input (not one of the names, or at the top level).
std::optional<std::string> JobForKey(const std::string& key, const JobNaming& naming);

// A file name that looks like one of the inputs' but is not accepted
// ("y_list.tsv", "Y_list.txt", "y_list.txt.txt", "y-list.txt" for
// y_list.txt): the name it was probably meant to be, else nullopt. Same stem
// when compared without case, with '-' and ' ' read as '_', and without
// everything from the first '.'.
std::optional<std::string> NearMissInputName(const std::string& base, const JobNaming& naming);

// JobForKey, or the job a near-miss input (above) was uploaded to: the keys
// that make the pipeline look at a job (and tell its owner what is missing).
std::optional<std::string> JobForUpload(const std::string& key, const JobNaming& naming);

struct JobInputs {
  StoredObject x, y;
  std::optional<StoredObject> spec;
  // Hex digest of the identities above: names the run.
  std::string RunId() const;
};

// Finds the job's inputs (each name, or with .gz / .zst); nullopt while one is missing.
Result<std::optional<JobInputs>> FindJobInputs(JobStore* store, const std::string& job, const JobNaming& naming);

}  // namespace cloudmerge
