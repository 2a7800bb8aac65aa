// S3ObjectWriter: writes one S3 object as a stream, atomically. Appended bytes
// are cut into parts of config.part_size, uploaded in parallel (at most
// config.parallel_requests in flight, so memory stays bounded at about
// (parallel_requests + 1) * part_size) while the caller keeps appending.
// Commit() uploads the last part and completes the upload; an object smaller
// than one part is sent with a single PutObject. Abort() — or destroying an
// uncommitted writer — aborts the multipart upload: no partial object ever
// appears at the key, and no upload is left orphaned.
//
// Thread safety: one thread calls Append/Commit/Abort; uploads run on the
// writer's own threads.
#pragma once

#include <memory>
#include <string_view>

#include "cloudmerge/aws/s3_client.h"
#include "cloudmerge/base/status.h"

namespace cloudmerge {

class S3ObjectWriter {
 public:
  static std::unique_ptr<S3ObjectWriter> Open(std::shared_ptr<S3Client> client, S3Uri object);
  virtual ~S3ObjectWriter() = default;
  virtual Status Append(std::string_view data) = 0;
  virtual Result<ObjectInfo> Commit() = 0;
  virtual Status Abort() = 0;
  virtual uint64_t bytes_appended() const = 0;
};

}  // namespace cloudmerge
