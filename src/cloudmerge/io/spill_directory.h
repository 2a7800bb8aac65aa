// SpillDirectory: the private temporary directory of one out-of-core run,
// PARENT/cloudmerge-<uid>/cloudmerge-spill-<pid>-<random>/, and the files
// cloudmerge writes in it.
//
// PARENT (--temp-dir, $TMPDIR or /tmp) is usually shared with other users, so
// nothing in it is trusted. cloudmerge works only inside its per-user
// directory PARENT/cloudmerge-<uid>/, which it creates with mode 0700 and,
// before every use, checks is a real directory (not a symlink) owned by this
// user and closed to others; anything else is a clear error, never "fixed".
// Inside it, each run's directory holds a marker file written at creation and
// a lock; the private directory itself is removed again when a run leaves it
// empty. Only directories with the marker, owned by this user, are ever
// emptied, and only of the files cloudmerge names itself (`.lock`, the
// marker, `*.spill`, regular files owned by this user); removal works on
// directory descriptors (openat/unlinkat, O_NOFOLLOW|O_DIRECTORY), so a
// directory swapped for a symlink is never followed. Nothing outside
// PARENT/cloudmerge-<uid>/ is ever removed.
//
// The run's directory is removed when the object is destroyed, and when the
// process dies from SIGINT/SIGTERM/SIGHUP/SIGPIPE (through the fatal-signal
// hook of env.h). A run killed with SIGKILL (or by the OOM killer, or a power
// cut) cannot clean up: every run holds an exclusive flock on its .lock while
// it lives, and Create first reclaims the directories in cloudmerge-<uid>/
// whose lock nobody holds (runs that died), reporting how many bytes that
// freed. docs/spill-format.md has the protocol.
//
// Thread safety: NewPath may be called from many threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "cloudmerge/base/status.h"

namespace cloudmerge {

// The temporary directory when --temp-dir is not given: $TMPDIR, else /tmp.
std::string DefaultTempParent();

// PARENT/cloudmerge-<euid>, created 0700 when missing, checked (a directory, not
// a symlink, owned by this user, no access for group or others) and opened;
// *path (optional) receives its path. The descriptor belongs to the caller.
// Errors name the directory and what to do.
Result<int> OpenPrivateTempRoot(const std::string& parent, std::string* path);

// An unnamed file for scratch data in PARENT/cloudmerge-<euid>/ (O_TMPFILE, or
// created and unlinked at once), open for reading and writing: it disappears
// with its last descriptor, whatever kills the process. `what` names the use
// in error messages.
Result<int> OpenAnonymousTempFile(const std::string& parent, const std::string& what);

class SpillDirectory {
 public:
  // Creates the run's directory under `parent` (which must exist and be
  // writable: a clear error naming it otherwise). *reclaimed_bytes (optional)
  // receives the bytes removed from dead runs' directories.
  static Result<std::unique_ptr<SpillDirectory>> Create(const std::string& parent, uint64_t* reclaimed_bytes);
  ~SpillDirectory();  // removes the directory and the files cloudmerge wrote in it

  const std::string& path() const { return path_; }
  // A fresh file path inside the directory: <path>/<stem>-<n>.spill. While a
  // fatal signal's cleanup runs, the calling thread waits for the process to
  // end instead (fatal_signal_cleanup.h): no new file escapes the cleanup.
  std::string NewPath(std::string_view stem);
  // Free bytes on the directory's file system (statvfs), for messages and planning.
  uint64_t FreeBytes() const;

 private:
  SpillDirectory() = default;
  std::string path_;
  std::string name_;  // its name in the private root
  std::string root_path_;
  int root_fd_ = -1;  // PARENT/cloudmerge-<uid>
  int dir_fd_ = -1;
  int lock_fd_ = -1;
  int slot_ = -1;  // in the fatal-signal cleanup table
  std::atomic<uint64_t> counter_{0};
};

}  // namespace cloudmerge
