// `cloudmerge serve`: its flags, and the wiring of stores, notifier, log and runner.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cloudmerge/pipeline/pipeline_config.h"
#include "tools/s3_flags.h"

namespace cloudmerge_cli {

// serve's own flags (the loop, the dashboard, the cost estimate); the
// pipeline settings it shares with the Lambda runtime are `settings`.
struct ServeFlags {
  cloudmerge::PipelineConfigBuilder settings;
  std::string local_dir;
  std::string queue_url;
  bool once = false;
  int poll_ms = 1000;
  int visibility_s = 300;
  int wait_s = 20;
  int max_messages = 0;
  int idle_exit_s = 0;
  std::string cloudwatch_log_group, cloudwatch_log_stream;
  // The dashboard (empty: none) and its token (else CLOUDMERGE_HTTP_TOKEN).
  std::string http, http_token;
  double http_header_timeout_s = 10;  // the dashboard's absolute deadline for a request's head
  // Jobs run at once (0: DefaultWorkers, from cores and memory).
  unsigned workers = 0;
  // Cost estimate overrides (negative: CostPrices::FromEnvironment's value).
  double lambda_memory_mb = -1, price_lambda_gb_s = -1, price_lambda_million = -1, price_s3_get = -1,
         price_s3_put = -1, price_transfer_gb = -1;
};

CLI::App* AddServeCommand(CLI::App* app, ServeFlags* f, S3Flags* s3);
int RunServe(const ServeFlags& f, const S3Flags& s3);

}  // namespace cloudmerge_cli
