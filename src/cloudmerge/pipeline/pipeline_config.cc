// The settings table (one entry per setting: its scope, help and parser) and
// the builder reading it from CLI11 or from the environment.
#include "cloudmerge/pipeline/pipeline_config.h"

#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cloudmerge/aws/s3_client.h"
#include "cloudmerge/base/memory_info.h"
#include "cloudmerge/pipeline/engines/engine_kind.h"

namespace cloudmerge {
namespace {

using Kind = PipelineSetting::Kind;
constexpr unsigned kServe = kServeFlag | kLambdaVariable;  // most settings: a serve flag and a Lambda variable
constexpr unsigned kCluster = kServe | kMergeFlag;         // the cluster engines' settings, merge's too
constexpr const char* kClusterGroup = kClusterSettingsGroup;

Result<int64_t> Integer(const std::string& text, int64_t lo, int64_t hi) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty())
    return Status::InvalidArgument(fmt::format("\"{}\" is not a whole number", text));
  if (v < lo || v > hi) return Status::InvalidArgument(fmt::format("{} is not in the range {} to {}", v, lo, hi));
  return v;
}

Result<double> Number(const std::string& text, double lo, double hi) {
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || errno != 0 || !std::isfinite(v))
    return Status::InvalidArgument(fmt::format("\"{}\" is not a number", text));
  if (v < lo || v > hi) return Status::InvalidArgument(fmt::format("{} is not in the range {} to {}", text, lo, hi));
  return v;
}

// Setters for the common shapes, so each table entry is one line.
template <class T>
auto Text(T PipelineConfig::*field) {
  return [field](const std::string& v, PipelineConfig* c) {
    c->*field = v;
    return Status::OK();
  };
}
auto Item(std::vector<std::string> PipelineConfig::*field) {
  return [field](const std::string& v, PipelineConfig* c) {
    (c->*field).push_back(v);
    return Status::OK();
  };
}
// A whole number in [lo, hi], times `scale`, into the field chosen by `at`.
template <class At>
auto Whole(int64_t lo, int64_t hi, int64_t scale, At at) {
  return [=](const std::string& v, PipelineConfig* c) -> Status {
    auto n = Integer(v, lo, hi);
    if (!n.ok()) return n.status();
    *at(c) = static_cast<std::remove_reference_t<decltype(*at(c))>>(*n * scale);
    return Status::OK();
  };
}
template <class At>
auto Real(double lo, double hi, At at) {
  return [=](const std::string& v, PipelineConfig* c) -> Status {
    auto n = Number(v, lo, hi);
    if (!n.ok()) return n.status();
    *at(c) = *n;
    return Status::OK();
  };
}

Status S3Location(const std::string& v, std::string* field) {
  auto u = S3Uri::Parse(v);
  if (!u.ok()) return Status::InvalidArgument("must be an s3://bucket/prefix/ URI: " + u.status().message());
  *field = v;
  return Status::OK();
}

// A typo in --memory-limit or --temp-dir would otherwise surface only when a
// job is big enough to spill, as a failure retried until the dead-letter queue.
Status MemoryLimit(const std::string& v, PipelineConfig* c) {
  auto bytes = ParseByteSize(v);
  if (!bytes.ok()) return bytes.status();
  if (*bytes == 0)
    return Status::InvalidArgument(fmt::format("invalid size \"{}\": it must be more than 0 bytes, such as 2GiB (or "
                                               "leave the setting out for the default)",
                                               v));
  c->options.memory_limit = *bytes;
  return Status::OK();
}

Status TempDir(const std::string& v, PipelineConfig* c) {
  std::error_code ec;
  if (!std::filesystem::is_directory(v, ec) || access(v.c_str(), W_OK | X_OK) != 0)
    return Status::InvalidArgument(fmt::format("{}: not a directory this user can write to; create it, or give "
                                               "another one (the default is $TMPDIR, else /tmp)",
                                               v));
  c->options.temp_dir = v;
  return Status::OK();
}

Status AutoEngine(const std::string& v, PipelineConfig* c) {
  auto kind = ParseEngineKind(v);
  if (!kind.ok() || !IsClusterEngine(*kind))
    return Status::InvalidArgument(fmt::format("\"{}\" is not a cluster engine: give spark, emr-serverless or emr", v));
  c->options.auto_engine = *kind;
  return Status::OK();
}

bool Truthy(const std::string& v) { return v == "1" || v == "true" || v == "yes" || v == "on"; }

std::vector<PipelineSetting> MakeSettings() {
  auto o = [](auto member) { return [member](PipelineConfig* c) { return &(c->options.*member); }; };
  auto spark = [](auto member) { return [member](PipelineConfig* c) { return &(c->options.spark.*member); }; };
  auto spark_text = [](std::string SparkEngineOptions::*member) {
    return [member](const std::string& v, PipelineConfig* c) {
      c->options.spark.*member = v;
      return Status::OK();
    };
  };
  return {
      // Where jobs come from and results go.
      {"input", Kind::kValue, kServeFlag, "", "Queue mode: the input location, s3://bucket/prefix/", {}, {},
       [](const std::string& v, PipelineConfig* c) { return S3Location(v, &c->input); }},
      {"output", Kind::kValue, kServe, "",
       "The output location, s3://bucket/prefix/ (not inside the input); required by the Lambda runtime", {}, {},
       [](const std::string& v, PipelineConfig* c) { return S3Location(v, &c->output); }},
      {"input-prefix", Kind::kValue, kLambdaVariable, "", "Only keys under this prefix are jobs (default: all)", {},
       {}, [](const std::string& v, PipelineConfig* c) {
         c->input_prefix = v.empty() || v.back() == '/' ? v : v + "/";
         return Status::OK();
       }},
      {"x-name", Kind::kValue, kServe, "", "Name of a job's x input (default x_list.txt)", {}, {},
       [](const std::string& v, PipelineConfig* c) {
         c->options.naming.x_name = v;
         return Status::OK();
       }},
      {"y-name", Kind::kValue, kServe, "", "Name of a job's y input (default y_list.txt)", {}, {},
       [](const std::string& v, PipelineConfig* c) {
         c->options.naming.y_name = v;
         return Status::OK();
       }},
      // Notifications.
      {"sns-topic-arn", Kind::kValue, kServe, "", "Publish notifications to this SNS topic", {}, {},
       Text(&PipelineConfig::sns_topic_arn)},
      {"smtp-url", Kind::kValue, kServe, "", "Send notifications by SMTP, e.g. smtp://mail.example.org:587", {}, {},
       Text(&PipelineConfig::smtp_url)},
      {"mail-from", Kind::kValue, kServe, "", "Sender address of notification emails", {}, {},
       Text(&PipelineConfig::mail_from)},
      {"mail-to", Kind::kList, kServe, "",
       "Recipient of every notification (repeatable; job.json may add more)", {}, {},
       Item(&PipelineConfig::mail_to)},
      {"smtp-user", Kind::kValue, kServeVariable | kLambdaVariable, "", "SMTP AUTH user (a variable only)", {}, {},
       Text(&PipelineConfig::smtp_user)},
      {"smtp-password", Kind::kValue, kServeVariable | kLambdaVariable, "", "SMTP AUTH password (a variable only)",
       {}, {}, Text(&PipelineConfig::smtp_password)},
      {"smtp-secrets-file", Kind::kValue, kServeFlag, "", "File with user=... and password=... for SMTP AUTH", {}, {},
       Text(&PipelineConfig::smtp_secrets_file)},
      {"smtp-require-tls", Kind::kSwitch, kServe, "", "Refuse to send unless the SMTP server offers STARTTLS", {}, {},
       [](const std::string& v, PipelineConfig* c) {
         c->smtp_require_tls = Truthy(v);
         return Status::OK();
       }},
      {"link-expiry-seconds", Kind::kValue, kServe, "",
       "Validity of the presigned links in success emails (default 604800 = 7 days, S3's maximum)", {}, {},
       Whole(1, 604800, 1, o(&PipelineOptions::link_expiry_s))},
      // The runs.
      {"lease-seconds", Kind::kValue, kServe, "",
       "A claimed job not renewed for this long is taken over (default 300; Lambda: 900)", {}, {},
       Whole(1, 86400, 1000, o(&PipelineOptions::lease_ms))},
      {"incomplete-wait-seconds", Kind::kValue, kServe, "",
       "A job folder with one input but not the other gets one email saying what is missing after this long "
       "(default 900 = 15 minutes); a file with a near-miss name (y_list.tsv) is reported at once",
       {}, {}, Whole(0, 7 * 24 * 3600, 1000, o(&PipelineOptions::incomplete_wait_ms))},
      {"threads", Kind::kValue, kServeFlag, "",
       "Engine threads per job (default: the CPUs shared out between --workers)", {"-t"}, {},
       Whole(1, 256, 1, o(&PipelineOptions::threads))},
      {"memory-limit", Kind::kValue, kServe, "",
       "Memory a merge may use, such as 2GiB or 800MB (default: 60% of the memory available — physical, cgroup or "
       "Lambda limit); bigger jobs are partitioned to --temp-dir and joined piece by piece",
       {}, {}, MemoryLimit},
      {"temp-dir", Kind::kValue, kServe, "",
       "Where a merge bigger than --memory-limit spills (default: $TMPDIR, else /tmp); needs free space for about "
       "both inputs' size",
       {}, {}, TempDir},
      {"deadline-margin-ms", Kind::kValue, kLambdaVariable, "",
       "A run is ended this long before the function's timeout, with a clear error (default 10000)", {}, {},
       [](const std::string& v, PipelineConfig* c) -> Status {
         auto n = Integer(v, 0, 15 * 60 * 1000);
         if (!n.ok()) return n.status();
         c->deadline_margin_ms = *n;
         return Status::OK();
       }},
      // The command engine.
      {"allow-command", Kind::kList, kServeFlag, "",
       "Turn on the command engine with this command, NAME=ARGV (ARGV: words, or a JSON list; {x}, {y}, {out} are "
       "the inputs and the result). Repeatable; a job.json names one: \"command\": \"NAME\"",
       {}, {}, [](const std::string& v, PipelineConfig* c) { return AddCommand(v, &c->options.commands); }},
      {"commands", Kind::kValue, kLambdaVariable, "",
       "The command engine's commands as a JSON object {\"NAME\": [argv...]} (deploy/template.yaml, AllowedCommands)",
       {}, {}, [](const std::string& v, PipelineConfig* c) { return AddCommandsJson(v, &c->options.commands); }},
      {"command-env", Kind::kList, kServe, "",
       "A variable of this worker's environment passed on to commands (repeatable; by default they get only PATH, "
       "HOME, TMPDIR and LANG: no credentials)",
       {}, {}, [](const std::string& v, PipelineConfig* c) {
         c->options.commands.pass_env.push_back(v);
         return Status::OK();
       }},
      {"command-timeout-seconds", Kind::kValue, kServe, "",
       "Seconds a command may run before its process group is killed and the job fails (default 300)",
       {"--command-timeout"}, {}, [](const std::string& v, PipelineConfig* c) -> Status {
         auto n = Number(v, 1, 86400);
         if (!n.ok()) return n.status();
         c->options.commands.timeout_s = *n;
         return Status::OK();
       }},
      // The cluster engines.
      {"spark-master", Kind::kValue, kServeFlag | kMergeFlag, kClusterGroup,
       "Spark master for engine \"spark\" (default: local[*])", {"--master"}, {}, spark_text(&SparkEngineOptions::master)},
      {"spark-conf", Kind::kList, kServeFlag | kMergeFlag, kClusterGroup,
       "Extra spark-submit --conf key=value (repeatable)", {}, {}, [](const std::string& v, PipelineConfig* c) {
         c->options.spark.conf.push_back(v);
         return Status::OK();
       }},
      {"emr-application-id", Kind::kValue, kCluster, kClusterGroup, "EMR Serverless application ID",
       {"--application-id"}, {}, spark_text(&SparkEngineOptions::application_id)},
      {"emr-execution-role-arn", Kind::kValue, kCluster, kClusterGroup, "EMR Serverless job runtime role ARN",
       {"--execution-role-arn"}, {}, spark_text(&SparkEngineOptions::execution_role_arn)},
      {"emr-cluster-id", Kind::kValue, kCluster, kClusterGroup, "EMR cluster ID (j-...) for engine \"emr\"",
       {"--cluster-id"}, {}, spark_text(&SparkEngineOptions::cluster_id)},
      {"spark-artifacts", Kind::kValue, kCluster, kClusterGroup,
       "s3://bucket/prefix/ where the job script is uploaded", {}, {}, spark_text(&SparkEngineOptions::artifacts)},
      {"emr-region", Kind::kValue, kCluster, kClusterGroup,
       "AWS region of the EMR calls (default: as the AWS CLI finds it)", {"--region"}, {},
       spark_text(&SparkEngineOptions::region)},
      {"emr-endpoint-url", Kind::kValue, kCluster, kClusterGroup,
       "EMR / EMR Serverless endpoint (default: AWS_ENDPOINT_URL_EMR[_SERVERLESS], AWS_ENDPOINT_URL, else AWS)",
       {"--aws-endpoint-url"}, {}, spark_text(&SparkEngineOptions::endpoint)},
      {"emr-poll-seconds", Kind::kValue, kCluster, kClusterGroup, "Seconds between status polls (default: 10)",
       {"--poll-seconds"}, {}, Real(0.05, 3600, spark(&SparkEngineOptions::poll_seconds))},
      {"emr-timeout-minutes", Kind::kValue, kCluster, kClusterGroup,
       "Give up waiting for a cluster run after this long: the job fails (default: no limit)", {"--timeout-minutes"},
       {}, Real(0, 1e9, spark(&SparkEngineOptions::timeout_minutes))},
      {"auto-engine", Kind::kValue, kServe, kClusterGroup,
       "Where \"auto\" sends a job that does not fit the native time budget: spark, emr-serverless or emr (default: "
       "emr-serverless)",
       {}, {}, AutoEngine},
      {"native-time-budget-seconds", Kind::kValue, kServe, kClusterGroup,
       "\"auto\": seconds a native run may take (default: 900); longer estimates go to --auto-engine",
       {"--native-time-budget"}, {"CLOUDMERGE_NATIVE_TIME_BUDGET_S"},
       Real(0, 1e9, o(&PipelineOptions::native_time_budget_s))},
      {"native-bytes-per-second", Kind::kValue, kServe | kServeVariable, kClusterGroup,
       "\"auto\": the native engine's input bytes per second (default: 50e6, from docs/benchmarks.md)", {}, {},
       [](const std::string& v, PipelineConfig* c) -> Status {
         auto n = Number(v, 0, 1e15);
         if (!n.ok()) return n.status();
         if (*n > 0) c->options.native_bytes_per_second = *n;  // 0: the built-in constant
         return Status::OK();
       }},
      {"cluster-bytes-per-cpu-second", Kind::kValue, kServe | kServeVariable, kClusterGroup,
       "\"auto\": the cluster path's input bytes per CPU-second (default: 40e6, from docs/spark.md)", {}, {},
       Real(1, 1e15, o(&PipelineOptions::cluster_bytes_per_cpu_second))},
      {"cluster-cpus", Kind::kValue, kServe | kServeVariable, kClusterGroup,
       "\"auto\": vCPUs the cluster engine gives a job (default: 32)", {}, {},
       Real(1, 1e9, o(&PipelineOptions::cluster_cpus))},
      {"cluster-startup-seconds", Kind::kValue, kServe | kServeVariable, kClusterGroup,
       "\"auto\": seconds before a cluster run starts reading (default: 120)", {}, {},
       Real(0, 1e9, o(&PipelineOptions::cluster_startup_s))},
      {"auto-margin-seconds", Kind::kValue, kLambdaVariable, kClusterGroup,
       "\"auto\" under a deadline: seconds kept in hand besides the native estimate (default 60)", {},
       {"CLOUDMERGE_AUTO_MARGIN_S"}, Real(0, 1e9, o(&PipelineOptions::auto_margin_s))},
  };
}

// Applies `values` (as given by one source, named `where`) of setting `s`.
Status Apply(const PipelineSetting& s, const std::vector<std::string>& values, const std::string& where,
             PipelineConfig* c) {
  for (const auto& v : values) {
    Status st = s.apply(v, c);
    if (!st.ok()) return Status::InvalidArgument(where + ": " + st.message());
  }
  return Status::OK();
}

// A variable's values: a list splits at commas (empty items dropped); a value is taken whole.
std::vector<std::string> VariableValues(const PipelineSetting& s, const std::string& text) {
  if (s.kind != Kind::kList) return {text};
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

// The variable of `s` that is set (its own name first, then the deprecated
// ones), as (name, value); an empty value counts as unset, as before.
std::optional<std::pair<std::string, std::string>> FindVariable(const PipelineSetting& s, const GetenvFunction& getenv) {
  std::vector<std::string> names{SettingVariable(s)};
  names.insert(names.end(), s.old_variables.begin(), s.old_variables.end());
  for (const auto& name : names)
    if (const char* v = getenv(name.c_str()); v && *v) return std::make_pair(name, std::string(v));
  return std::nullopt;
}

}  // namespace

const std::vector<PipelineSetting>& PipelineSettings() {
  static const std::vector<PipelineSetting> settings = MakeSettings();
  return settings;
}

std::string SettingFlag(const PipelineSetting& s) { return std::string("--") + s.name; }

std::string SettingVariable(const PipelineSetting& s) {
  std::string v = "CLOUDMERGE_";
  for (const char* p = s.name; *p; ++p) v += *p == '-' ? '_' : static_cast<char>(std::toupper(*p));
  return v;
}

void PipelineConfigBuilder::AddFlags(CLI::App* cmd, unsigned flag_scope) {
  scope_ = flag_scope;
  for (const auto& s : PipelineSettings()) {
    if (!(s.scope & flag_scope)) continue;
    std::vector<std::string>* values = &given_[s.name];
    // The canonical spelling in the help; the deprecated ones hidden (group ""), same values.
    std::vector<std::pair<std::string, std::string>> names{{SettingFlag(s), s.group}};
    for (const auto& old : s.old_flags) names.emplace_back(old, "");
    for (const auto& [flag, group] : names) {
      CLI::Option* opt = nullptr;
      if (s.kind == Kind::kSwitch) {
        opt = cmd->add_flag_callback(flag, [values] { values->push_back("1"); }, s.help);
      } else if (s.kind == Kind::kList) {
        // One value per occurrence: a vector option would otherwise swallow positional arguments after it.
        opt = cmd->add_option_function<std::vector<std::string>>(
                     flag, [values](const std::vector<std::string>& v) { values->insert(values->end(), v.begin(), v.end()); },
                     s.help)
                  ->allow_extra_args(false);
      } else {
        opt = cmd->add_option_function<std::string>(flag, [values](const std::string& v) { values->push_back(v); },
                                                    s.help);
      }
      opt->group(group);
    }
  }
}

Result<PipelineConfig> PipelineConfigBuilder::FromFlags(const GetenvFunction& getenv) const {
  PipelineConfig c;
  for (const auto& s : PipelineSettings()) {
    auto given = given_.find(s.name);
    if ((s.scope & scope_) && given != given_.end() && !given->second.empty()) {
      // A value given twice: the last one (a list: all of them).
      std::vector<std::string> values =
          s.kind == Kind::kList ? given->second : std::vector<std::string>{given->second.back()};
      CM_RETURN_IF_ERROR(Apply(s, values, SettingFlag(s), &c));
    } else if ((scope_ & kServeFlag) && (s.scope & kServeVariable)) {
      if (auto var = FindVariable(s, getenv)) CM_RETURN_IF_ERROR(Apply(s, VariableValues(s, var->second), var->first, &c));
    }
  }
  return c;
}

Result<PipelineConfig> PipelineConfigBuilder::FromEnvironment(const GetenvFunction& getenv) {
  PipelineConfig c;
  c.options.lease_ms = 900 * 1000;  // Lambda's longest run
  for (const auto& s : PipelineSettings()) {
    if (!(s.scope & kLambdaVariable)) continue;
    if (auto var = FindVariable(s, getenv)) CM_RETURN_IF_ERROR(Apply(s, VariableValues(s, var->second), var->first, &c));
  }
  if (c.output.empty())
    return Status::InvalidArgument("CLOUDMERGE_OUTPUT is not set: give the function the results location, "
                                   "s3://bucket/prefix/");
  return c;
}

}  // namespace cloudmerge
