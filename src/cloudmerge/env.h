// Env: every access the engine makes to storage goes through this interface, so
// tests can swap in a fault-injecting Env (full disk, failing rename) and later
// issues can add S3 behind the same seam (LevelDB's Env pattern).
//
// InputData   the bytes of one input, memory-mapped when it is a regular file,
//             read into memory for pipes and standard input ("-").
// WritableFile an append-only output; Append batches are large (MiBs).
// AtomicOutput writes OUT through a temporary next to it and renames it into
//             place only on Commit(); otherwise the temporary is removed, also
//             when the process is interrupted by SIGINT/SIGTERM/SIGHUP.
//
// Thread safety: an Env may be shared by threads. An InputData may be read by
// many threads at once; Release() must not race with reads of the same range.
// A WritableFile/AtomicOutput is used by one thread at a time.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "cloudmerge/status.h"

namespace cloudmerge {

class InputData {
 public:
  virtual ~InputData() = default;
  virtual std::string_view bytes() const = 0;
  // Hint that [begin, end) will not be read again: lets a mapped file give its
  // pages back so that streaming over a large input keeps resident memory low.
  virtual void Release(size_t begin, size_t end) {}
};

class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status Append(std::string_view data) = 0;
  virtual Status Close() = 0;
};

class Env {
 public:
  virtual ~Env() = default;
  static Env* Default();

  // "-" means standard input.
  virtual Result<std::unique_ptr<InputData>> ReadFile(const std::string& path) = 0;
  // "-" means standard output.
  virtual Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) = 0;
  virtual Status RenameFile(const std::string& from, const std::string& to) = 0;
  virtual Status RemoveFile(const std::string& path) = 0;
  // True when path names an existing file that is not a regular file (a
  // device such as /dev/null, a FIFO): such a destination is written directly,
  // never replaced by a rename.
  virtual bool IsSpecialFile(const std::string& path) { return false; }
};

// Writes `path` atomically: callers Append, then Commit. Destroying an
// uncommitted AtomicOutput removes the temporary; no half-written OUT is ever
// visible. Standard output ("-") and special files (/dev/null, FIFOs) are
// written directly: they cannot be renamed into place.
class AtomicOutput {
 public:
  static Result<std::unique_ptr<AtomicOutput>> Open(Env* env, const std::string& path);
  ~AtomicOutput();
  Status Append(std::string_view data);
  // Discards everything appended so far. REQUIRES: can_restart().
  Status Restart();
  bool can_restart() const { return !temp_path_.empty(); }
  Status Commit();
  const std::string& path() const { return path_; }

 private:
  AtomicOutput(Env* env, std::string path, std::string temp, std::unique_ptr<WritableFile> file);
  Env* env_;
  std::string path_;
  std::string temp_path_;  // empty for standard output
  std::unique_ptr<WritableFile> file_;
  bool committed_ = false;
};

}  // namespace cloudmerge
