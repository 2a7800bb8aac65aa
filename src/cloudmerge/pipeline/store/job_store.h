// JobStore: where the pipeline finds job inputs and keeps results and job
// state: a local directory (`serve --local DIR`: DIR/input, DIR/output) or an
// S3 bucket (with an optional prefix). Keys are relative, '/'-separated.
//
// The exactly-once rules rest on CreateIfAbsent: it creates a small object only
// if none exists at that key, atomically (link(2) of a complete temporary
// locally; a conditional PUT, If-None-Match: *, on S3), so two workers racing
// for the same marker get one winner. Put is atomic too: the local store
// writes through Env's atomic output (io/env.h), S3 objects appear whole.
//
// Keys are checked before use: no "..", no absolute paths, no control
// characters, so no job can escape its prefix or the local directory. The
// local store reads through OpenBeneath (confined_env.h): no symbolic link
// below its root is followed, only regular files are read.
// Thread safety: implementations may be shared by threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cloudmerge/base/status.h"
#include "cloudmerge/io/env.h"

namespace cloudmerge {

struct StoredObject {
  std::string key;   // relative to the store's root
  uint64_t size = 0;
  std::string etag;  // S3 ETag; locally "<mtime_ns>-<size>-<inode>"
  // Empty for a regular file (every S3 object); locally what else it is ("a
  // symbolic link", "a FIFO (named pipe)", ...): listed so that a job holding
  // one fails saying so, never read (confined_env.h).
  std::string kind;
  // When it was uploaded, as an opaque stamp (S3's Last-Modified from Head;
  // locally the mtime in ns; may be empty from List): tells an identical
  // re-upload (same ETag, new stamp) from a duplicate event (same stamp).
  std::string modified;
};

class JobStore {
 public:
  virtual ~JobStore() = default;
  // The path or URI the engine reads or writes for `key` (a local path or s3://).
  virtual std::string Uri(const std::string& key) const = 0;
  // "local directory /data/output" or "s3://bucket/prefix/": for messages.
  virtual std::string Describe() const = 0;
  virtual Result<std::vector<StoredObject>> List(const std::string& prefix) = 0;
  virtual Result<std::optional<StoredObject>> Head(const std::string& key) = 0;
  virtual Result<std::string> Get(const std::string& key) = 0;
  // At most the first `max_bytes` bytes (previews of large inputs and results).
  virtual Result<std::string> GetHead(const std::string& key, size_t max_bytes) = 0;
  virtual Status Put(const std::string& key, const std::string& body, const std::string& content_type) = 0;
  // Creates `key` with `body` unless it exists; true when this call created it.
  virtual Result<bool> CreateIfAbsent(const std::string& key, const std::string& body) = 0;
  virtual Status Delete(const std::string& key) = 0;
  // Removes what a dead writer left under `prefix`: temporaries of results
  // being written locally, incomplete multipart uploads on S3. Only called by
  // the worker that took over an expired claim: nobody else writes there.
  virtual Status AbortAbandonedWrites(const std::string& prefix) = 0;
};

// Rejects keys that could escape the store: "..", "." or empty segments,
// a leading '/', backslashes, control characters, more than 1024 bytes.
Status CheckKey(const std::string& key);

// DIR's objects are its files. Objects are written through `env` (null: the
// POSIX Env) with Env's atomic output: a temporary beside the key
// (.cloudmerge-tmp-<pid>-<hex>, never listed) renamed over it, so a failed or
// interrupted write leaves no half object; markers are a complete temporary
// link(2)ed to their key. Reads stay confined (OpenBeneath); listing and
// folders use the file system directly (Env has neither).
std::unique_ptr<JobStore> NewLocalJobStore(std::string dir, Env* env = nullptr);
// NewS3JobStore: s3_job_store.h.

}  // namespace cloudmerge
