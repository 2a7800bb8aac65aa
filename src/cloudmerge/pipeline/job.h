// Jobs: what the pipeline runs, and how it is named.
//
// A job is a folder (prefix) in the input store holding the two inputs, by
// default `x_list.txt` and `y_list.txt` (the script's names; also with .gz or
// .zst), and optionally a `job.json`:
//   {"key": "ID", "x_key": "...", "y_key": "...", "output": "merged.tsv",
//    "any_order": false, "recipients": ["a@example.org"],
//    "engine": "native" | "command" | "spark" | "emr-serverless" | "emr" | "auto",
//    "command": ["python3", "analysis_v2.py", "{x}", "{y}", "{out}"],
//    "pandas_version": "1.5" | "2.2" | "3.0" | "3.1" (native engine; docs/pandas-versions.md)}
// "spark", "emr-serverless" and "emr" run spark/merge_job.py on the worker's
// configured Spark master / EMR Serverless application / EMR cluster
// (spark_engine.h); "auto" runs natively when the inputs fit the native time
// budget, else on the configured cluster engine (job_runner.h).
// The job's name is the folder's path ("exp42" for "exp42/x_list.txt";
// "2026/nov/run1" for nested folders). A job runs when both inputs exist.
// Results go to the output store under the same name: `<job>/merged.tsv`,
// `<job>/report.json`, and the job's state under `<job>/_state/<run>/`.
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

#include "cloudmerge/key_types.h"
#include "cloudmerge/pipeline/job_store.h"
#include "cloudmerge/status.h"

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
  std::string engine = "native";  // native | command | spark | emr-serverless | emr | auto
  std::vector<std::string> command;
  PandasRules pandas;  // "pandas_version": whose read_csv the native engine reproduces
};

// Parses job.json; errors say which field is wrong and what is expected.
Result<JobSpec> ParseJobSpec(const std::string& json, const std::string& where);

// The job an input key belongs to ("exp42/x_list.txt" -> "exp42"), or nullopt
// when the key is not a job input (not one of the names, or at the top level).
std::optional<std::string> JobForKey(const std::string& key, const JobNaming& naming);

struct JobInputs {
  StoredObject x, y;
  std::optional<StoredObject> spec;
  // Hex digest of the identities above: names the run.
  std::string RunId() const;
};

// Finds the job's inputs (each name, or with .gz / .zst); nullopt while one is missing.
Result<std::optional<JobInputs>> FindJobInputs(JobStore* store, const std::string& job, const JobNaming& naming);

}  // namespace cloudmerge
