// The cluster path of `cloudmerge merge` (see spark_command.h): flags, then
// cloudmerge::RunSparkEngine (pipeline/engines/spark_engine.h), which the pipeline's
// job runner also uses, so both submit the same way.
#include "tools/spark_command.h"

#include <algorithm>
#include <cstdlib>

#include <fmt/format.h>

#include "cloudmerge/pipeline/engines/spark_engine.h"

namespace cloudmerge_cli {

void AddSparkOptions(CLI::App* merge, SparkFlags* f) {
  const char* group = cloudmerge::kClusterSettingsGroup;
  using cloudmerge::EngineKind;
  // merge runs natively or on a cluster engine (command and auto are the pipeline's).
  const EngineKind kinds[] = {EngineKind::kNative, EngineKind::kSpark, EngineKind::kEmr, EngineKind::kEmrServerless};
  std::string names;
  for (EngineKind k : kinds) names += (names.empty() ? "" : "|") + std::string(cloudmerge::EngineKindName(k));
  CLI::Validator known(
      [kinds](std::string& v) -> std::string {
        auto k = cloudmerge::ParseEngineKind(v);
        if (k.ok() && std::find(std::begin(kinds), std::end(kinds), *k) != std::end(kinds)) return "";
        return "\"" + v + "\" is not an engine of merge";
      },
      "");
  merge->add_option_function<std::string>(
           "--engine", [f](const std::string& v) { f->engine = *cloudmerge::ParseEngineKind(v); },
           "native (default): this process; spark: spark-submit spark/merge_job.py locally or to --spark-master; "
           "emr: a step on --emr-cluster-id; emr-serverless: a job run on --emr-application-id")
      ->check(known)
      ->type_name(names)
      ->group(group);
  merge->add_flag("--spark-parts", f->parts, "Write OUT as a directory of part files (+ _SUCCESS), not one file")
      ->group(group);
  // --spark-master, --spark-conf and the EMR settings, named as `serve` names them (pipeline_config.h).
  f->settings.AddFlags(merge, cloudmerge::kMergeFlag);
}

int RunSparkMerge(const SparkFlags& f, const cloudmerge::MergeOptions& o, const S3Flags& s3) {
  auto config = f.settings.FromFlags(std::getenv);
  if (!config.ok()) {
    fmt::print(stderr, "Error [cloudmerge merge]: {}\n", config.status().message());
    return config.status().ExitCode();
  }
  cloudmerge::SparkEngineOptions eo = config->options.spark;
  eo.parts = f.parts;
  eo.s3_endpoint = s3.endpoint_url;  // local Spark's s3a (empty: the job reads AWS_ENDPOINT_URL*)
  eo.make_s3_client = [&s3]() { return MakeS3Client(s3); };
  cloudmerge::SparkJob job;
  job.engine = f.engine;
  job.x = o.x_path;
  job.y = o.y_path;
  job.out = o.out_path;
  job.x_key = o.x_key;
  job.y_key = o.y_key;
  job.ordered = !o.any_order;
  job.allow_numeric_header = o.allow_numeric_header;
  cloudmerge::SparkOutcome outcome;
  cloudmerge::Status st = cloudmerge::RunSparkEngine(eo, job, &outcome);
  if (st.ok()) return 0;
  fmt::print(stderr, "Error [cloudmerge merge]: {}\n", st.message());
  return st.ExitCode();
}

}  // namespace cloudmerge_cli
