// The cluster engines: runs spark/merge_job.py (the Spark port of the merge)
// with a local spark-submit ("spark"), as an EMR Serverless job run
// ("emr-serverless": StartJobRun + GetJobRun) or as an Amazon EMR step
// ("emr": AddJobFlowSteps + DescribeStep), and turns their outcomes into a
// Status: kInvalidInput for the job's bad input (the scientist's to fix),
// kInvalidArgument for a bad configuration, kIOError for the rest (a failed,
// cancelled or interrupted cluster run, API and transport errors, a timeout).
// Used by `cloudmerge merge --engine ...` (tools/spark_command.cc) and by the
// pipeline's job runner (job.json "engine"), so both submit the same way.
//
// Threading: RunSparkEngine blocks the calling thread while the job runs or
// is polled; it keeps no global state, so calls for different jobs may run at
// once. It may set PYSPARK_PYTHON in the process environment (once, before
// spawning spark-submit) when it is unset.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cloudmerge/aws/http.h"
#include "cloudmerge/aws/s3_client.h"
#include "cloudmerge/base/status.h"
#include "cloudmerge/pipeline/engines/engine_kind.h"

namespace cloudmerge {

// How and where the cluster engines run; shared by every job of a worker.
struct SparkEngineOptions {
  std::string master = "local[*]";  // spark: the --master
  std::vector<std::string> conf;    // extra spark-submit --conf key=value
  bool parts = false;               // OUT is a directory of part files (+ _SUCCESS), not one file
  bool echo_log = true;             // spark: copy spark-submit's output to our stderr as it comes
  // spark: the S3 endpoint for s3:// / s3a:// paths (merge/serve --endpoint-url), passed to the job
  // as --s3-endpoint-url. "": the job takes it from AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS.
  // Credentials are never passed: spark-submit inherits the environment (AWS_ACCESS_KEY_ID, ...).
  std::string s3_endpoint;
  // EMR Serverless / EMR.
  std::string application_id, execution_role_arn;  // emr-serverless
  std::string cluster_id;                          // emr
  std::string artifacts;                           // s3://bucket/prefix/ the job script is uploaded to
  std::string region, endpoint;  // "": as the AWS CLI finds them (AWS_ENDPOINT_URL_EMR[_SERVERLESS], ...)
  double poll_seconds = 10;
  double timeout_minutes = 0;  // 0: wait as long as it takes
  // Uploads the job script; required by emr and emr-serverless.
  std::function<Result<std::shared_ptr<S3Client>>()> make_s3_client;
  // Tests: the transport of the EMR calls (default: curl).
  std::shared_ptr<HttpTransport> transport;
};

// One merge on a cluster engine. Paths are local paths or s3:// (s3a://,
// s3n://) URIs; for EMR and EMR Serverless they are passed as s3:// (EMRFS),
// for a local Spark as given (the job reads s3:// through s3a://).
struct SparkJob {
  EngineKind engine = EngineKind::kSpark;  // spark, emr or emr-serverless
  std::string x, y, out;
  std::string x_key = "1", y_key = "1";
  bool ordered = true;
  bool allow_numeric_header = false;
  // Where the job writes its statistics (rows per side and written, as JSON;
  // a local path or an S3 URI). "": none.
  std::string stats_uri;
  // Idempotency token for StartJobRun (the pipeline gives the run's id; ""
  // makes one from the time and pid).
  std::string client_token;
  // A submission to resume (emr: the step id; emr-serverless: the job run
  // id) instead of submitting again, e.g. by the pipeline after a worker
  // stopped polling. "": submit.
  std::string resume_id;
  // Called once the cluster accepted the job (with its id), before polling.
  std::function<void(const std::string& id)> on_submitted;
  // Polling stops here with kDeadline (the job keeps running; resume it with
  // resume_id). 0: no deadline beyond timeout_minutes.
  int64_t poll_deadline_ms = 0;  // in NowMillis() time
};

struct SparkOutcome {
  std::string id;     // job run id / step id ("" for a local Spark)
  std::string state;  // the terminal (or last seen) state
  bool deadline_reached = false;  // polling stopped at poll_deadline_ms, the job still running
  // The run is over for this submission: a terminal state, spark-submit's
  // exit, or the wait gave up (timeout_minutes). A failure then is final:
  // submitting or polling again would not change it.
  bool final = false;
};

// spark: when a path is s3://, s3a:// or s3n://, Hadoop's S3A jars (hadoop-aws
// and aws-java-sdk-bundle matching pyspark's Hadoop 3.3.4) are put on the
// classpath from local files: $CLOUDMERGE_SPARK_JARS (comma-separated), else
// .tools/jars/ beside or above the binary (scripts/install-deps.sh fetches
// them). Nothing is downloaded at run time. A --spark-conf that sets spark.jars,
// spark.jars.packages or spark.driver.extraClassPath replaces this.
//
// Runs `job` and waits for it. On success the output exists at job.out as
// the job writes it (one file, or part files with options.parts).
Status RunSparkEngine(const SparkEngineOptions& options, const SparkJob& job, SparkOutcome* outcome);

// The job script: $CLOUDMERGE_SPARK_JOB, else spark/merge_job.py beside or
// above the running binary.
Result<std::string> FindSparkJobScript();

// s3a://b/k and s3n://b/k -> s3://b/k; anything else unchanged. EMR's
// filesystem (EMRFS) serves s3://, and EMR Serverless needs it for the entry point.
std::string ToEmrUri(const std::string& uri);

}  // namespace cloudmerge
