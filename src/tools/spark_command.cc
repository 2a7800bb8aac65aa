// The cluster path of `cloudmerge merge` (see spark_command.h): flags, then
// cloudmerge::RunSparkEngine (pipeline/engines/spark_engine.h), which the pipeline's
// job runner also uses, so both submit the same way.
#include "tools/spark_command.h"

#include <fmt/format.h>

#include "cloudmerge/pipeline/engines/spark_engine.h"

namespace cloudmerge_cli {

void AddSparkOptions(CLI::App* merge, SparkFlags* f) {
  const char* group = "Cluster engines (--engine spark|emr|emr-serverless; see docs/spark.md)";
  merge->add_option("--engine", f->engine,
                    "native (default): this process; spark: spark-submit spark/merge_job.py locally or to "
                    "--master; emr: a step on --cluster-id; emr-serverless: a job run on --application-id")
      ->check(CLI::IsMember({"native", "spark", "emr", "emr-serverless"}).description(""))
      ->type_name("native|spark|emr|emr-serverless")
      ->group(group);
  merge->add_option("--master", f->master, "Spark master for --engine spark (default: local[*])")->group(group);
  // One value per occurrence: a vector option would otherwise swallow X and Y after it.
  merge->add_option("--spark-conf", f->conf, "Extra spark-submit --conf key=value (repeatable)")
      ->allow_extra_args(false)
      ->group(group);
  merge->add_flag("--spark-parts", f->parts, "Write OUT as a directory of part files (+ _SUCCESS), not one file")
      ->group(group);
  merge->add_option("--application-id", f->application_id, "EMR Serverless application ID")->group(group);
  merge->add_option("--execution-role-arn", f->execution_role_arn, "EMR Serverless job runtime role ARN")
      ->group(group);
  merge->add_option("--cluster-id", f->cluster_id, "EMR cluster ID (j-...)")->group(group);
  merge->add_option("--spark-artifacts", f->artifacts, "s3://bucket/prefix/ where the job script is uploaded")
      ->group(group);
  merge->add_option("--region", f->region, "AWS region for EMR calls (default: as the AWS CLI finds it)")
      ->group(group);
  merge->add_option("--aws-endpoint-url", f->aws_endpoint,
                    "EMR / EMR Serverless endpoint (default: AWS_ENDPOINT_URL_EMR[_SERVERLESS], AWS_ENDPOINT_URL, "
                    "else AWS)")
      ->group(group);
  merge->add_option("--poll-seconds", f->poll_seconds, "Seconds between status polls (default: 10)")
      ->check(CLI::Range(0.05, 3600.0))
      ->group(group);
  merge->add_option("--timeout-minutes", f->timeout_minutes, "Stop waiting after this long (default: no limit)")
      ->group(group);
}

int RunSparkMerge(const SparkFlags& f, const cloudmerge::MergeOptions& o, const S3Flags& s3) {
  cloudmerge::SparkEngineOptions eo;
  eo.master = f.master;
  eo.conf = f.conf;
  eo.parts = f.parts;
  eo.application_id = f.application_id;
  eo.execution_role_arn = f.execution_role_arn;
  eo.cluster_id = f.cluster_id;
  eo.artifacts = f.artifacts;
  eo.region = f.region;
  eo.endpoint = f.aws_endpoint;
  eo.s3_endpoint = s3.endpoint_url;  // local Spark's s3a (empty: the job reads AWS_ENDPOINT_URL*)
  eo.poll_seconds = f.poll_seconds;
  eo.timeout_minutes = f.timeout_minutes;
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
