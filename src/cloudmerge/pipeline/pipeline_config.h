// The pipeline's configuration: one table of settings, read from the command
// line by `serve` (and, for the cluster settings, `merge`) and from the
// environment by the Lambda runtime, so both build the same PipelineConfig.
//
// Each setting has one name from which its flag and its variable derive:
// "emr-cluster-id" is --emr-cluster-id and CLOUDMERGE_EMR_CLUSTER_ID. Older
// spellings (--cluster-id, CLOUDMERGE_NATIVE_TIME_BUDGET_S, ...) are accepted
// as hidden, deprecated aliases. A bad value is reported with the flag or the
// variable it came from ("--lease-seconds: ..." / "CLOUDMERGE_LEASE_SECONDS: ...").
// Settings a source does not take (the Lambda runtime has no --once, `serve`
// no CLOUDMERGE_OUTPUT) are scoped in the table (docs/pipeline.md lists them).
//
// Threading: the table is immutable; a builder is used by one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "cloudmerge/base/status.h"
#include "cloudmerge/pipeline/job_runner.h"

namespace CLI {
class App;
}

namespace cloudmerge {

// What the table's settings fill in. Store locations and notification
// channels are wired by pipeline_wiring.h; `options` goes to the JobRunner.
struct PipelineConfig {
  // serve --queue-url: the input and output locations (s3://bucket/prefix/).
  // Lambda: the output (required); the input bucket comes with each event.
  std::string input, output;
  std::string input_prefix;  // Lambda: only keys under it are jobs ("" : all)
  // Notifications (pipeline_wiring.h builds the channels).
  std::string sns_topic_arn, smtp_url, mail_from = "cloudmerge@localhost";
  std::vector<std::string> mail_to;
  std::string smtp_user, smtp_password, smtp_secrets_file;
  bool smtp_require_tls = false;
  // Lambda: a run is ended this long before the function's deadline.
  int64_t deadline_margin_ms = 10000;
  // The job runner's options (lease, engine limits, engines, ...).
  PipelineOptions options;
};

// Who reads a setting: `serve`'s flags, `merge`'s flags (the cluster engine
// settings), the Lambda runtime's variables, and variables `serve` reads when
// the flag is not given (secrets, which never go on a command line).
enum SettingScope : unsigned {
  kServeFlag = 1,
  kMergeFlag = 2,
  kLambdaVariable = 4,
  kServeVariable = 8,
};

// The help section of the cluster engines' settings (serve and merge).
inline constexpr const char* kClusterSettingsGroup = "Cluster engines (spark, emr-serverless, emr; docs/spark.md)";

struct PipelineSetting {
  enum class Kind { kValue, kList, kSwitch };  // one value; repeatable (a variable: comma-separated); on/off
  const char* name;   // "emr-cluster-id"
  Kind kind;
  unsigned scope;     // SettingScope bits
  const char* group;  // the help section ("" : the command's own options)
  const char* help;
  std::vector<std::string> old_flags;      // deprecated spellings: "--cluster-id", "-t"
  std::vector<std::string> old_variables;  // deprecated variables
  // Parses one value into `c` (a list: called per item); the message says
  // what is wrong, the caller prefixes the flag or variable.
  std::function<Status(const std::string& value, PipelineConfig* c)> apply;
};

const std::vector<PipelineSetting>& PipelineSettings();
std::string SettingFlag(const PipelineSetting& s);      // "--emr-cluster-id"
std::string SettingVariable(const PipelineSetting& s);  // "CLOUDMERGE_EMR_CLUSTER_ID"

using GetenvFunction = std::function<const char*(const char*)>;

// Builds a PipelineConfig from flags (after CLI11 parsed them) or from the environment.
class PipelineConfigBuilder {
 public:
  // Adds the settings whose scope has `flag_scope` (kServeFlag or
  // kMergeFlag) to `cmd`; the deprecated spellings are hidden.
  void AddFlags(CLI::App* cmd, unsigned flag_scope);
  // The configuration from the flags given on the command line (then, for
  // kServeVariable settings not given, the variable). Call after parsing.
  Result<PipelineConfig> FromFlags(const GetenvFunction& getenv) const;
  // The Lambda runtime's configuration: the kLambdaVariable settings from
  // their variables; CLOUDMERGE_OUTPUT is required; the lease defaults to
  // 900 s (Lambda's longest run).
  static Result<PipelineConfig> FromEnvironment(const GetenvFunction& getenv);

 private:
  unsigned scope_ = 0;
  std::map<std::string, std::vector<std::string>> given_;  // setting name -> values as given
};

}  // namespace cloudmerge
