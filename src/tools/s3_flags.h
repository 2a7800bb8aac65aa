// Command-line flags shared by the subcommands that touch S3 (merge, cp,
// serve), and the S3 client they configure.
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "cloudmerge/aws/s3_client.h"

namespace cloudmerge_cli {

struct S3Flags {
  std::string endpoint_url;
  bool path_style = false;
  double part_size_mib = 0;
  double range_size_mib = 0;
  unsigned parallel = 0;
  int max_attempts = 0;
};

void AddS3Options(CLI::App* cmd, S3Flags* f);

// The S3 client for these flags, with the standard credential chain and a
// curl transport. Made on first use only: local runs need no AWS set-up.
cloudmerge::Result<std::shared_ptr<cloudmerge::S3Client>> MakeS3Client(const S3Flags& f);

}  // namespace cloudmerge_cli
