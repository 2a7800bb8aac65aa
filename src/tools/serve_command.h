// `cloudmerge serve` and the Lambda entry point: flags, and the wiring of
// stores, notifier, log and runner they share.
#pragma once

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
  unsigned threads = 0;
  std::string x_name = "x_list.txt", y_name = "y_list.txt";
};

CLI::App* AddServeCommand(CLI::App* app, ServeFlags* f, S3Flags* s3);
int RunServe(const ServeFlags& f, const S3Flags& s3);

}  // namespace cloudmerge_cli
