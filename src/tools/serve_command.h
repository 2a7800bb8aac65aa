// `cloudmerge serve` and the Lambda entry point: flags, and the wiring of
// stores, notifier, log and runner they share.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "tools/s3_flags.h"

namespace cloudmerge_cli {

struct ServeFlags {
  std::string local_dir;
  std::string queue_url;
  std::string input, output;  // s3://bucket/prefix/
  std::string sns_topic_arn;
  std::string smtp_url, mail_from = "cloudmerge@localhost", smtp_secrets_file;
  std::vector<std::string> mail_to;
  bool smtp_require_tls = false;
  bool once = false;
  int poll_ms = 1000;
  int lease_s = 300;
  int visibility_s = 300;
  int wait_s = 20;
  int max_messages = 0;
  int idle_exit_s = 0;
  std::string cloudwatch_log_group, cloudwatch_log_stream;
  unsigned threads = 0;
  // The native engine's --memory-limit (a size such as 2GiB; empty: the
  // default share of the machine's memory) and --temp-dir (empty: $TMPDIR, else /tmp).
  std::string memory_limit, temp_dir;
  std::string x_name = "x_list.txt", y_name = "y_list.txt";
  // The command engine: off unless commands are registered (NAME=ARGV), the
  // worker variables passed on to them, their time limit (command_engine.h).
  std::vector<std::string> allow_commands, command_env;
  double command_timeout_s = 300;
  // The dashboard (empty: none) and its token (else CLOUDMERGE_HTTP_TOKEN).
  std::string http, http_token;
  double http_header_timeout_s = 10;  // the dashboard's absolute deadline for a request's head
  int64_t link_expiry_s = 7 * 24 * 3600;
  // Jobs run at once (0: DefaultWorkers, from cores and memory), and how long
  // a job folder may miss an input before its owner is told.
  unsigned workers = 0;
  int64_t incomplete_wait_s = 15 * 60;
  // Cluster engines for job.json "engine": spark | emr-serverless | emr | auto
  // (docs/spark.md): the Spark master, EMR Serverless application and role,
  // EMR cluster, where the job script is uploaded, and "auto"'s choice.
  std::string spark_master = "local[*]";
  std::vector<std::string> spark_conf;
  std::string emr_application_id, emr_execution_role_arn, emr_cluster_id, spark_artifacts, emr_region, emr_endpoint;
  double emr_poll_seconds = 10, emr_timeout_minutes = 0;
  std::string auto_engine = "emr-serverless";
  double native_time_budget_s = 15 * 60;
  double native_bytes_per_second = 0;  // 0: CLOUDMERGE_NATIVE_BYTES_PER_SECOND, else the built-in constant
  // Cost estimate overrides (negative: CostPrices::FromEnvironment's value).
  double lambda_memory_mb = -1, price_lambda_gb_s = -1, price_lambda_million = -1, price_s3_get = -1,
         price_s3_put = -1, price_transfer_gb = -1;
};

CLI::App* AddServeCommand(CLI::App* app, ServeFlags* f, S3Flags* s3);
int RunServe(const ServeFlags& f, const S3Flags& s3);

}  // namespace cloudmerge_cli
