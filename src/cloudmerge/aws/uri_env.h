// UriEnv: the Env the command line uses. Paths may be
//   s3://bucket/key   objects, through an S3Client made on first use (so that a
//                     local run needs no credentials, no region, no network);
//   file:///abs/path  local files;
//   anything else     local paths, "-" for standard input/output.
// Inputs whose name ends in .gz or .zst are decompressed as they are read
// (unless UriEnvOptions::decode_inputs is false).
//
// S3 inputs are read with parallel ranged GETs pinned to the ETag seen by
// HeadObject (an object replaced mid-read fails clearly instead of mixing two
// versions); S3 outputs are multipart uploads completed only on Commit and
// aborted otherwise, so no partial object ever appears.
//
// Thread safety: as Env. The S3 client is created once, under a lock.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "cloudmerge/aws/s3_client.h"
#include "cloudmerge/io/env.h"

namespace cloudmerge {

struct UriEnvOptions {
  // Makes the S3 client the first time an s3:// path is used.
  std::function<Result<std::shared_ptr<S3Client>>()> make_s3_client;
  uint64_t range_bytes = 8ull << 20;                 // one ranged GET
  uint64_t max_decompressed_bytes = 64ull << 30;     // gzip-bomb guard
  bool decode_inputs = true;  // false: .gz/.zst inputs read as stored (`cloudmerge cp` copies bytes)
};

std::unique_ptr<Env> NewUriEnv(Env* local, UriEnvOptions options);

}  // namespace cloudmerge
