// The pipeline's settings table (pipeline_config.h): the same values given as
// `serve` flags and as the Lambda runtime's variables give the same
// configuration; a bad value names the flag or the variable it came from; the
// deprecated spellings still work; every variable the Lambda runtime read
// before the table keeps working.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <algorithm>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cloudmerge/pipeline/pipeline_config.h"

namespace cloudmerge {
namespace {

using Env = std::map<std::string, std::string>;

GetenvFunction Lookup(const Env& env) {
  return [&env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
}

// Parses `args` as `serve` flags (scope kServeFlag) or `merge` flags; `env` is what serve may read besides.
Result<PipelineConfig> FromArgs(std::vector<std::string> args, unsigned scope = kServeFlag, const Env& env = {}) {
  CLI::App app;
  PipelineConfigBuilder builder;
  builder.AddFlags(&app, scope);
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    return Status::InvalidArgument(std::string("CLI11: ") + e.what());
  }
  return builder.FromFlags(Lookup(env));
}

// Everything the table sets, in one comparable document.
nlohmann::json Describe(const PipelineConfig& c) {
  const PipelineOptions& o = c.options;
  return {{"input", c.input},
          {"output", c.output},
          {"input_prefix", c.input_prefix},
          {"sns", c.sns_topic_arn},
          {"smtp", c.smtp_url},
          {"from", c.mail_from},
          {"to", c.mail_to},
          {"smtp_user", c.smtp_user},
          {"smtp_password", c.smtp_password},
          {"tls", c.smtp_require_tls},
          {"deadline_margin_ms", c.deadline_margin_ms},
          {"x", o.naming.x_name},
          {"y", o.naming.y_name},
          {"lease_ms", o.lease_ms},
          {"threads", o.threads},
          {"memory_limit", o.memory_limit},
          {"temp_dir", o.temp_dir},
          {"link_expiry_s", o.link_expiry_s},
          {"incomplete_wait_ms", o.incomplete_wait_ms},
          {"commands", o.commands.commands.size()},
          {"pass_env", o.commands.pass_env},
          {"command_timeout_s", o.commands.timeout_s},
          {"master", o.spark.master},
          {"conf", o.spark.conf},
          {"application_id", o.spark.application_id},
          {"role", o.spark.execution_role_arn},
          {"cluster_id", o.spark.cluster_id},
          {"artifacts", o.spark.artifacts},
          {"region", o.spark.region},
          {"endpoint", o.spark.endpoint},
          {"poll_seconds", o.spark.poll_seconds},
          {"timeout_minutes", o.spark.timeout_minutes},
          {"auto_engine", EngineKindName(o.auto_engine)},
          {"native_time_budget_s", o.native_time_budget_s},
          {"native_bytes_per_second", o.native_bytes_per_second},
          {"auto_margin_s", o.auto_margin_s},
          {"cluster_bytes_per_cpu_second", o.cluster_bytes_per_cpu_second},
          {"cluster_cpus", o.cluster_cpus},
          {"cluster_startup_s", o.cluster_startup_s}};
}

TEST(PipelineConfig, NamesDeriveFromOneName) {
  for (const auto& s : PipelineSettings()) {
    std::string name = s.name;
    EXPECT_EQ(SettingFlag(s), "--" + name);
    std::string var = SettingVariable(s);
    EXPECT_EQ(var.rfind("CLOUDMERGE_", 0), 0u) << var;
    for (char& ch : name) ch = ch == '-' ? '_' : static_cast<char>(std::toupper(ch));
    EXPECT_EQ(var, "CLOUDMERGE_" + name);
  }
  const auto& all = PipelineSettings();
  auto it = std::find_if(all.begin(), all.end(), [](const auto& s) { return std::string(s.name) == "emr-cluster-id"; });
  ASSERT_NE(it, all.end());
  EXPECT_EQ(SettingVariable(*it), "CLOUDMERGE_EMR_CLUSTER_ID");
}

// Every setting both `serve` and the Lambda runtime take, given the same value
// each way, ends in the same configuration (and not in the defaults).
TEST(PipelineConfig, FlagsAndEnvironmentGiveTheSameConfig) {
  std::string tmp = std::filesystem::temp_directory_path().string();
  std::map<std::string, std::string> values = {
      {"output", "s3://results/lab/"},
      {"x-name", "a.tsv"},
      {"y-name", "b.tsv"},
      {"sns-topic-arn", "arn:aws:sns:eu-west-1:123456789012:cm"},
      {"smtp-url", "smtp://127.0.0.1:2525"},
      {"mail-from", "pipeline@lab.org"},
      {"smtp-require-tls", "1"},
      {"link-expiry-seconds", "3600"},
      {"lease-seconds", "120"},
      {"incomplete-wait-seconds", "60"},
      {"memory-limit", "2GiB"},
      {"temp-dir", tmp},
      {"command-timeout-seconds", "42"},
      {"emr-application-id", "00app"},
      {"emr-execution-role-arn", "arn:aws:iam::123456789012:role/emr"},
      {"emr-cluster-id", "j-ABC"},
      {"spark-artifacts", "s3://code/cm/"},
      {"emr-region", "eu-west-1"},
      {"emr-endpoint-url", "http://127.0.0.1:5000"},
      {"emr-poll-seconds", "0.5"},
      {"emr-timeout-minutes", "30"},
      {"auto-engine", "emr"},
      {"native-time-budget-seconds", "300"},
      {"native-bytes-per-second", "1e6"},
      {"cluster-bytes-per-cpu-second", "2e7"},
      {"cluster-cpus", "8"},
      {"cluster-startup-seconds", "45"},
  };
  std::vector<std::string> args;
  Env env;
  std::set<std::string> covered;
  for (const auto& s : PipelineSettings()) {
    if (!(s.scope & kServeFlag) || !(s.scope & kLambdaVariable)) continue;
    covered.insert(s.name);
    if (s.kind == PipelineSetting::Kind::kList) continue;  // below
    auto v = values.find(s.name);
    ASSERT_NE(v, values.end()) << "no test value for the shared setting " << s.name;
    if (s.kind == PipelineSetting::Kind::kSwitch) {
      args.push_back(SettingFlag(s));
    } else {
      args.insert(args.end(), {SettingFlag(s), v->second});
    }
    env[SettingVariable(s)] = v->second;
  }
  // Lists: a flag per item, one comma-separated variable.
  args.insert(args.end(), {"--mail-to", "a@lab.org", "--mail-to", "b@lab.org", "--command-env", "HOME", "--command-env",
                           "LAB_TOKEN"});
  env["CLOUDMERGE_MAIL_TO"] = "a@lab.org,b@lab.org";
  env["CLOUDMERGE_COMMAND_ENV"] = "HOME,LAB_TOKEN";
  EXPECT_TRUE(covered.count("mail-to") && covered.count("command-env"));

  auto from_flags = FromArgs(args);
  ASSERT_TRUE(from_flags.ok()) << from_flags.status().message();
  auto from_env = PipelineConfigBuilder::FromEnvironment(Lookup(env));
  ASSERT_TRUE(from_env.ok()) << from_env.status().message();
  nlohmann::json a = Describe(*from_flags), b = Describe(*from_env);
  EXPECT_EQ(a.dump(1), b.dump(1));
  // And the values arrived (not the defaults on both sides).
  EXPECT_EQ(a["cluster_id"], "j-ABC");
  EXPECT_EQ(a["lease_ms"], 120000);
  EXPECT_EQ(a["memory_limit"], uint64_t{2} << 30);
  EXPECT_EQ(a["auto_engine"], "emr");
  EXPECT_EQ(a["to"], nlohmann::json::array({"a@lab.org", "b@lab.org"}));
  EXPECT_EQ(a["tls"], true);
  EXPECT_NE(Describe(PipelineConfig{}).dump(), a.dump());
}

TEST(PipelineConfig, BadValueNamesTheFlag) {
  struct Case {
    std::vector<std::string> args;
    std::string flag;
  };
  for (const Case& c : std::vector<Case>{{{"--lease-seconds", "0"}, "--lease-seconds: 0 is not in the range"},
                                         {{"--lease-seconds", "ten"}, "--lease-seconds: \"ten\" is not a whole number"},
                                         {{"--memory-limit", "0"}, "--memory-limit: "},
                                         {{"--temp-dir", "/no/such/dir"}, "--temp-dir: /no/such/dir"},
                                         {{"--output", "results/"}, "--output: must be an s3://"},
                                         {{"--auto-engine", "native"}, "--auto-engine: \"native\" is not a cluster"},
                                         {{"--emr-poll-seconds", "0"}, "--emr-poll-seconds: 0 is not in the range"},
                                         {{"--allow-command", "v2"}, "--allow-command: "},
                                         // A deprecated spelling is reported under the canonical name.
                                         {{"--command-timeout", "0"}, "--command-timeout-seconds: 0 is not in the range"}}) {
    auto r = FromArgs(c.args);
    ASSERT_FALSE(r.ok()) << c.args[0];
    EXPECT_EQ(r.status().ExitCode(), 2);
    EXPECT_EQ(r.status().message().rfind(c.flag, 0), 0u) << r.status().message();
  }
}

TEST(PipelineConfig, BadValueNamesTheVariable) {
  Env env = {{"CLOUDMERGE_OUTPUT", "s3://results/"}, {"CLOUDMERGE_LEASE_SECONDS", "soon"}};
  auto r = PipelineConfigBuilder::FromEnvironment(Lookup(env));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "CLOUDMERGE_LEASE_SECONDS: \"soon\" is not a whole number");
  // Before the table, atof() read "soon" as 0 and the lease became 0 ms.
  env = {{"CLOUDMERGE_OUTPUT", "s3://results/"}, {"CLOUDMERGE_EMR_POLL_SECONDS", "-1"}};
  r = PipelineConfigBuilder::FromEnvironment(Lookup(env));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind("CLOUDMERGE_EMR_POLL_SECONDS: -1 is not in the range", 0), 0u);
  // A deprecated variable is named as it was given.
  env = {{"CLOUDMERGE_OUTPUT", "s3://results/"}, {"CLOUDMERGE_NATIVE_TIME_BUDGET_S", "x"}};
  r = PipelineConfigBuilder::FromEnvironment(Lookup(env));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind("CLOUDMERGE_NATIVE_TIME_BUDGET_S: ", 0), 0u);
  r = PipelineConfigBuilder::FromEnvironment(Lookup({}));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("CLOUDMERGE_OUTPUT is not set"), std::string::npos);
}

TEST(PipelineConfig, LambdaDefaults) {
  auto r = PipelineConfigBuilder::FromEnvironment(Lookup({{"CLOUDMERGE_OUTPUT", "s3://results/"}}));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->options.lease_ms, 900 * 1000);  // Lambda's longest run
  EXPECT_EQ(r->deadline_margin_ms, 10000);
  EXPECT_EQ(r->options.memory_limit, 0u);  // the engine's default: a share of the function's memory
  auto s = FromArgs({});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->options.lease_ms, 300 * 1000);
}

// The old spellings keep working: merge's --cluster-id, --master, --region,
// --application-id, --aws-endpoint-url ..., serve's --command-timeout and
// --native-time-budget, the Lambda's *_S variables.
TEST(PipelineConfig, DeprecatedSpellingsStillWork) {
  auto old = FromArgs({"--master", "local[2]", "--application-id", "00app", "--execution-role-arn", "arn:r",
                       "--cluster-id", "j-1", "--region", "us-east-2", "--aws-endpoint-url", "http://e",
                       "--poll-seconds", "1", "--timeout-minutes", "5"},
                      kMergeFlag);
  ASSERT_TRUE(old.ok()) << old.status().message();
  auto canonical = FromArgs({"--spark-master", "local[2]", "--emr-application-id", "00app", "--emr-execution-role-arn",
                             "arn:r", "--emr-cluster-id", "j-1", "--emr-region", "us-east-2", "--emr-endpoint-url",
                             "http://e", "--emr-poll-seconds", "1", "--emr-timeout-minutes", "5"},
                            kMergeFlag);
  ASSERT_TRUE(canonical.ok()) << canonical.status().message();
  EXPECT_EQ(Describe(*old).dump(), Describe(*canonical).dump());
  EXPECT_EQ(old->options.spark.cluster_id, "j-1");
  EXPECT_EQ(old->options.spark.endpoint, "http://e");

  auto serve_old = FromArgs({"--command-timeout", "9", "--native-time-budget", "12", "-t", "3"});
  ASSERT_TRUE(serve_old.ok()) << serve_old.status().message();
  EXPECT_EQ(serve_old->options.commands.timeout_s, 9);
  EXPECT_EQ(serve_old->options.native_time_budget_s, 12);
  EXPECT_EQ(serve_old->options.threads, 3u);

  auto env = PipelineConfigBuilder::FromEnvironment(Lookup({{"CLOUDMERGE_OUTPUT", "s3://r/"},
                                                            {"CLOUDMERGE_NATIVE_TIME_BUDGET_S", "33"},
                                                            {"CLOUDMERGE_AUTO_MARGIN_S", "7"}}));
  ASSERT_TRUE(env.ok());
  EXPECT_EQ(env->options.native_time_budget_s, 33);
  EXPECT_EQ(env->options.auto_margin_s, 7);
  // merge does not take serve's settings.
  EXPECT_FALSE(FromArgs({"--lease-seconds", "5"}, kMergeFlag).ok());
}

// Every variable LambdaApp::Init read with getenv before the table
// (deploy/template.yaml sets them) is still read.
TEST(PipelineConfig, EveryLambdaVariableOfBeforeIsRead) {
  std::set<std::string> read;
  for (const auto& s : PipelineSettings()) {
    if (!(s.scope & kLambdaVariable)) continue;
    read.insert(SettingVariable(s));
    read.insert(s.old_variables.begin(), s.old_variables.end());
  }
  for (const char* v :
       {"CLOUDMERGE_OUTPUT", "CLOUDMERGE_INPUT_PREFIX", "CLOUDMERGE_SNS_TOPIC_ARN", "CLOUDMERGE_SMTP_URL",
        "CLOUDMERGE_MAIL_FROM", "CLOUDMERGE_MAIL_TO", "CLOUDMERGE_SMTP_USER", "CLOUDMERGE_SMTP_PASSWORD",
        "CLOUDMERGE_LEASE_SECONDS", "CLOUDMERGE_COMMANDS", "CLOUDMERGE_COMMAND_ENV",
        "CLOUDMERGE_COMMAND_TIMEOUT_SECONDS", "CLOUDMERGE_DEADLINE_MARGIN_MS", "CLOUDMERGE_EMR_APPLICATION_ID",
        "CLOUDMERGE_EMR_EXECUTION_ROLE_ARN", "CLOUDMERGE_EMR_CLUSTER_ID", "CLOUDMERGE_SPARK_ARTIFACTS",
        "CLOUDMERGE_EMR_REGION", "CLOUDMERGE_EMR_POLL_SECONDS", "CLOUDMERGE_AUTO_ENGINE",
        "CLOUDMERGE_NATIVE_BYTES_PER_SECOND", "CLOUDMERGE_NATIVE_TIME_BUDGET_S", "CLOUDMERGE_AUTO_MARGIN_S",
        "CLOUDMERGE_INCOMPLETE_WAIT_SECONDS"})
    EXPECT_TRUE(read.count(v)) << v;
}

// serve reads the secrets and the throughput from the environment when no flag gives them.
TEST(PipelineConfig, ServeReadsSecretsFromTheEnvironment) {
  Env env = {{"CLOUDMERGE_SMTP_USER", "u"}, {"CLOUDMERGE_SMTP_PASSWORD", "p"},
             {"CLOUDMERGE_NATIVE_BYTES_PER_SECOND", "123"}, {"CLOUDMERGE_LEASE_SECONDS", "7"}};
  auto r = FromArgs({}, kServeFlag, env);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->smtp_user, "u");
  EXPECT_EQ(r->smtp_password, "p");
  EXPECT_EQ(r->options.native_bytes_per_second, 123);
  EXPECT_EQ(r->options.lease_ms, 300 * 1000) << "serve takes its settings from flags, not the Lambda's variables";
  r = FromArgs({"--native-bytes-per-second", "5"}, kServeFlag, env);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->options.native_bytes_per_second, 5) << "the flag wins";
  EXPECT_FALSE(FromArgs({"--smtp-password", "p"}).ok()) << "a secret never goes on a command line";
}

// EngineKind: one Parse/Name pair; every kind round-trips, an unknown name lists the known ones.
TEST(EngineKind, ParseAndNameRoundTrip) {
  std::set<std::string> names;
  for (EngineKind k : {EngineKind::kNative, EngineKind::kCommand, EngineKind::kSpark, EngineKind::kEmrServerless,
                       EngineKind::kEmr, EngineKind::kAuto}) {
    auto parsed = ParseEngineKind(EngineKindName(k));
    ASSERT_TRUE(parsed.ok()) << EngineKindName(k);
    EXPECT_EQ(*parsed, k);
    names.insert(EngineKindName(k));
  }
  EXPECT_EQ(names.size(), 6u);
  EXPECT_EQ(names, (std::set<std::string>{"native", "command", "spark", "emr-serverless", "emr", "auto"}));
  auto bad = ParseEngineKind("Spark");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "unknown engine \"Spark\": use one of " + EngineKindNames());
  EXPECT_TRUE(IsClusterEngine(EngineKind::kEmr) && IsClusterEngine(EngineKind::kSpark) &&
              IsClusterEngine(EngineKind::kEmrServerless));
  EXPECT_FALSE(IsClusterEngine(EngineKind::kNative) || IsClusterEngine(EngineKind::kCommand) ||
               IsClusterEngine(EngineKind::kAuto));
}

// docs/configuration.md lists every setting under its flag and variable (and the deprecated spellings).
TEST(PipelineConfig, DocumentedInConfigurationMd) {
  std::ifstream in(std::string(CLOUDMERGE_SOURCE_DIR) + "/docs/configuration.md");
  ASSERT_TRUE(in) << "docs/configuration.md";
  std::stringstream doc;
  doc << in.rdbuf();
  for (const auto& s : PipelineSettings()) {
    std::vector<std::string> names = s.old_flags;
    names.insert(names.end(), s.old_variables.begin(), s.old_variables.end());
    if (s.scope & (kServeFlag | kMergeFlag)) names.push_back(SettingFlag(s));
    if (s.scope & (kLambdaVariable | kServeVariable)) names.push_back(SettingVariable(s));
    for (const auto& n : names) EXPECT_NE(doc.str().find("`" + n + "`"), std::string::npos) << n;
  }
  // And the table's variable column names no variable the Lambda runtime does not read
  // (test_deploy_template.py checks the template's variables against that column).
  std::set<std::string> read;
  for (const auto& s : PipelineSettings()) {
    if (!(s.scope & kLambdaVariable)) continue;
    read.insert(SettingVariable(s));
    read.insert(s.old_variables.begin(), s.old_variables.end());
  }
  doc.clear();
  doc.seekg(0);
  std::regex var("`(CLOUDMERGE_[A-Z0-9_]+)`");
  int rows = 0;
  for (std::string line; std::getline(doc, line);) {
    if (line.rfind("| `", 0) != 0) continue;
    ++rows;
    std::vector<std::string> cells;  // name, flag, variable, help, deprecated spellings
    size_t at = 0;
    for (size_t next; (next = line.find(" | ", at)) != std::string::npos; at = next + 3)
      cells.push_back(line.substr(at, next - at));
    cells.push_back(line.substr(at));
    ASSERT_EQ(cells.size(), 5u) << line;
    if (cells[2].find("(serve)") != std::string::npos) continue;
    std::string lambda = cells[2] + cells[4];
    for (std::sregex_iterator m(lambda.begin(), lambda.end(), var), end; m != end; ++m)
      EXPECT_TRUE(read.count((*m)[1])) << (*m)[1] << " is documented as a Lambda variable but not read";
  }
  EXPECT_EQ(rows, static_cast<int>(PipelineSettings().size()));
}

}  // namespace
}  // namespace cloudmerge
