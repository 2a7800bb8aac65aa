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
#include "cloudmerge/pipeline/pipeline_config.h"
#include "tools/s3_flags.h"

namespace cloudmerge_cli {

struct SparkFlags {
  cloudmerge::EngineKind engine = cloudmerge::EngineKind::kNative;  // native or a cluster engine
  bool parts = false;  // write OUT as a directory of part files instead of one file
  // --spark-master, --spark-conf and the EMR settings (the pipeline's settings table).
  cloudmerge::PipelineConfigBuilder settings;
};

void AddSparkOptions(CLI::App* merge, SparkFlags* f);

// Runs the merge described by `o` on the chosen engine; returns the exit code.
int RunSparkMerge(const SparkFlags& f, const cloudmerge::MergeOptions& o, const S3Flags& s3);

}  // namespace cloudmerge_cli
