// `cloudmerge merge --engine spark|emr|emr-serverless`: the cluster path.
// Owns launching spark/merge_job.py (the Spark port of the merge) with a local
// spark-submit, as an Amazon EMR step (AddJobFlowSteps + DescribeStep), or as
// an EMR Serverless job run (StartJobRun + GetJobRun), and turning their
// failures into cloudmerge's error messages and exit codes.
//
// The work is cloudmerge::RunSparkEngine (pipeline/engines/spark_engine.h), shared
// with the pipeline; this file owns the flags.
//
// Threading: RunSparkMerge runs on the calling thread (it blocks while the job
// runs or is polled); it keeps no global state.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cloudmerge/engine/merge.h"
#include "tools/s3_flags.h"

namespace cloudmerge_cli {

struct SparkFlags {
  std::string engine = "native";  // native | spark | emr | emr-serverless
  std::string master = "local[*]";
  std::vector<std::string> conf;  // extra --conf key=value for spark-submit
  bool parts = false;             // write OUT as a directory of part files instead of one file
  // EMR / EMR Serverless
  std::string application_id, execution_role_arn, cluster_id, artifacts, region, aws_endpoint;
  double poll_seconds = 10;
  double timeout_minutes = 0;  // 0: wait as long as it takes
};

void AddSparkOptions(CLI::App* merge, SparkFlags* f);

// Runs the merge described by `o` on the chosen engine; returns the exit code.
int RunSparkMerge(const SparkFlags& f, const cloudmerge::MergeOptions& o, const S3Flags& s3);

}  // namespace cloudmerge_cli
