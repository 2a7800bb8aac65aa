// SpillDirectory: the private temporary directory of one out-of-core run,
// DIR/cloudmerge-spill-<pid>-<random>/, and everything in it.
//
// It is removed, with its contents, when the object is destroyed, and also when
// the process dies from SIGINT/SIGTERM/SIGHUP (the same fatal-signal hook that
// removes an uncommitted output's temporary, see env.cc). A run killed with
// SIGKILL (or by the OOM killer, or a power cut) cannot clean up: every run
// holds an exclusive flock on DIR/cloudmerge-spill-*/.lock while it lives, and
// Create first removes sibling spill directories whose lock nobody holds
// (runs that died), reporting how many bytes that reclaimed.
//
// Thread safety: NewPath may be called from many threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "cloudmerge/status.h"

namespace cloudmerge {

// The temporary directory when --temp-dir is not given: $TMPDIR, else /tmp.
std::string DefaultTempParent();

class SpillDirectory {
 public:
  // Creates the run's directory under `parent` (which must exist and be
  // writable: a clear error naming it otherwise). *reclaimed_bytes (optional)
  // receives the bytes removed from dead runs' directories.
  static Result<std::unique_ptr<SpillDirectory>> Create(const std::string& parent, uint64_t* reclaimed_bytes);
  ~SpillDirectory();  // removes the directory and its contents

  const std::string& path() const { return path_; }
  // A fresh file path inside the directory: <path>/<stem>-<n>.spill
  std::string NewPath(std::string_view stem);
  // Free bytes on the directory's file system (statvfs), for messages and planning.
  uint64_t FreeBytes() const;

 private:
  SpillDirectory() = default;
  std::string path_;
  int lock_fd_ = -1;
  std::atomic<uint64_t> counter_{0};
};

}  // namespace cloudmerge
