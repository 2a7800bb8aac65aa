// Env: every access the engine makes to storage goes through this interface, so
// tests can swap in a fault-injecting Env (full disk, failing rename) and later
// issues can add S3 behind the same seam (LevelDB's Env pattern).
//
// InputData   the bytes of one input, memory-mapped when it is a regular file,
//             read into memory for pipes and standard input ("-") by callers
//             that want it whole (the engine streams those: OpenStream).
// InputStream the bytes of one input read in order, piece by piece, never
//             whole: S3 objects (parallel ranged GETs, in order), .gz/.zst
//             files (decoded as they are read), standard input, FIFOs and
//             devices. Opened again to read again, except those read once.
// RandomAccessInput any byte range of an input that stays the same while it
//             is read: a plain local file, an S3 object pinned to the ETag it
//             had when opened (ranged GETs with If-Match). What a cluster task
//             reads its split of a file through (split_tasks.h).
// WritableFile an append-only output; Append batches are large (MiBs).
// AtomicFile  a destination that appears only when complete: locally a
//             temporary next to OUT (next to its target when OUT is a
//             symbolic link) renamed into place on Commit() (removed
//             otherwise, also when the process is interrupted by SIGINT/SIGTERM/
//             SIGHUP); on S3 a multipart upload completed on Commit() and
//             aborted otherwise.
// AtomicOutput the engine's handle on its output: an AtomicFile that can also
//             be rewound (discarded and begun again), compressed by the
//             destination's name (.gz gzip, .zst zstd; see compression.h).
//
// Implementations: env_posix.cc (local files), aws/uri_env.h (S3 and local by
// URI), pipeline/store/confined_env.h (reads that stay below a folder),
// tests/unit/faulty_env.h (injected faults).
//
// Thread safety: an Env may be shared by threads. An InputData may be read by
// many threads at once; Release() must not race with reads of the same range.
// An InputStream is read by one thread at a time.
// A WritableFile/AtomicOutput is used by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "cloudmerge/base/status.h"

namespace cloudmerge {

class InputData {
 public:
  virtual ~InputData() = default;
  virtual std::string_view bytes() const = 0;
  // Hint that [begin, end) will not be read again: lets a mapped file give its
  // pages back so that streaming over a large input keeps resident memory low.
  virtual void Release(size_t begin, size_t end) {}
  // Hint that [begin, end) will be read soon: a mapped file starts reading it
  // in the background, so that many small reads far apart (line ends sought at
  // chunk boundaries) wait for the disk together, not one after another, and
  // each reads only its pages, not a readahead window.
  virtual void WillNeed(size_t begin, size_t end) {}
  // OK while the bytes are the ones the input had when opened. A mapped file
  // truncated by another process while being read would raise SIGBUS on the
  // vanished pages; they read as zeros instead and this says so (an IOError
  // naming the file): check it before trusting a result or an input error.
  virtual Status Intact() const { return Status::OK(); }
};

class InputStream {
 public:
  virtual ~InputStream() = default;
  // Appends the next bytes, at most max_bytes of them, to *out. Appends nothing
  // only at the end of the input. Errors name the input and what to do.
  virtual Status Read(size_t max_bytes, std::string* out) = 0;
  // The input's size in bytes after decoding when known (a plain S3 object);
  // for compressed inputs an estimate from the stored size; 0 when unknown
  // (standard input, a FIFO). For progress totals and memory planning, never
  // for correctness.
  virtual uint64_t size_hint() const = 0;
  // False for an input that can be read only once (standard input, a FIFO, a
  // device): opening it again does not start it over. A reader that needs a
  // second pass keeps a copy (see table_scan.h).
  virtual bool reopenable() const { return true; }
};

class RandomAccessInput {
 public:
  virtual ~RandomAccessInput() = default;
  virtual uint64_t size() const = 0;
  // What identifies these bytes in their store: an S3 object's ETag; a local
  // file's inode, size and modification time (a rewrite of the same size
  // within one tick of the file system's clock goes unseen). Another process
  // opens the same bytes by passing it to Env::OpenRandomAccess, or is told
  // they changed.
  virtual std::string version() const { return ""; }
  // Appends bytes [offset, offset + n) to *out. An input that no longer has
  // them (shorter, or changed) is an IOError that says so and what to do.
  virtual Status ReadAt(uint64_t offset, size_t n, std::string* out) = 0;
};

// Passes the rest of `in` to sink, in order, in pieces of at most piece_bytes.
Status ForEachPiece(InputStream* in, size_t piece_bytes, const std::function<Status(std::string_view)>& sink);

class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status Append(std::string_view data) = 0;
  virtual Status Close() = 0;
};

// Written through, visible at its destination only after Commit(). Destroying
// an uncommitted AtomicFile discards everything written.
class AtomicFile {
 public:
  virtual ~AtomicFile() = default;
  virtual Status Append(std::string_view data) = 0;
  virtual Status Commit() = 0;
  // False for destinations written directly (standard output, devices, FIFOs),
  // which cannot be discarded.
  virtual bool atomic() const { return true; }
};

// The file a destination name leads to.
struct OutputTarget {
  std::string path;     // what is written (renamed over) or opened; "-": standard output
  bool direct = false;  // written in place, no temporary, no rename: "-", devices, FIFOs, descriptors
  int fd = -1;          // >= 0: the target is this open descriptor (path is then /dev/fd/N)
};

class Env {
 public:
  virtual ~Env() = default;
  static Env* Default();

  // "-" means standard input.
  virtual Result<std::unique_ptr<InputData>> ReadFile(const std::string& path) = 0;
  // The input as a stream when this Env reads it in order rather than mapping
  // it (S3 objects, compressed files; locally "-" for standard input, FIFOs
  // and devices, whose streams are not reopenable()); nullptr when ReadFile
  // is the way (local regular files are mapped, which is cheaper and gives
  // random access).
  virtual Result<std::unique_ptr<InputStream>> OpenStream(const std::string& path) {
    return std::unique_ptr<InputStream>();
  }
  // The input for reads at any offset; nullptr when it cannot be read so
  // (standard input, FIFOs, devices, compressed files: only in order). A
  // non-empty `version` must match RandomAccessInput::version() (the input
  // as another process opened it), else the input changed: an IOError.
  virtual Result<std::unique_ptr<RandomAccessInput>> OpenRandomAccess(const std::string& path,
                                                                      const std::string& version = "") {
    return std::unique_ptr<RandomAccessInput>();
  }
  // "-" means standard output; /dev/fd/N the open descriptor N (written at its offset, never truncated).
  virtual Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) = 0;
  virtual Status RenameFile(const std::string& from, const std::string& to) = 0;
  virtual Status RemoveFile(const std::string& path) = 0;
  // True when path names an existing file that is not a regular file (a
  // device such as /dev/null, a FIFO): such a destination is written directly,
  // never replaced by a rename.
  virtual bool IsSpecialFile(const std::string& path) { return false; }
  // Where writing `path` lands (see OutputTarget). The default: `path` itself,
  // direct for "-" and special files. Locally, symbolic links of the last
  // component are followed (a link is never replaced, its target is), a
  // descriptor (/dev/stdout, /dev/fd/N, a link to /proc/self/fd/N) is written
  // as that descriptor, and a directory is an InvalidArgument naming it.
  virtual Result<OutputTarget> ResolveOutput(const std::string& path);
  // The destination `path`, written atomically. The default writes a temporary
  // next to ResolveOutput's target through NewWritableFile and renames it over
  // the target with RenameFile, so an Env that overrides those primitives
  // (tests injecting faults) gets the same guarantees; an Env for object
  // stores overrides this instead.
  virtual Result<std::unique_ptr<AtomicFile>> NewAtomicFile(const std::string& path);
};

// The temporary an atomic write of `path` uses: DIR/.cloudmerge-tmp-<pid>-<hex>,
// in path's directory (the same file system, so the rename is atomic) but not
// named after it, whose own name may already be as long as the file system
// allows. A later atomic write into DIR removes such leftovers of dead processes.
std::string AtomicTemporaryPath(const std::string& path);

// The engine's output: Append, then Commit. Destroying an uncommitted
// AtomicOutput discards what was written; no half-written OUT is ever visible.
// Standard output ("-") and special files (/dev/null, FIFOs) are written
// directly and cannot be rewound. A destination named *.gz / *.zst (local or
// S3) receives the appended bytes gzip- / zstd-compressed; standard output is
// never compressed.
class AtomicOutput {
 public:
  // compress_by_name false: the bytes go as they are whatever the name (`cloudmerge cp`).
  // level: the gzip / zstd level of a compressed destination (< 0: the output level, compression.h).
  static Result<std::unique_ptr<AtomicOutput>> Open(Env* env, const std::string& path, bool compress_by_name = true,
                                                    int level = -1);
  Status Append(std::string_view data) { return file_->Append(data); }
  // Discards everything appended so far. REQUIRES: can_restart().
  Status Restart();
  bool can_restart() const { return file_->atomic(); }
  Status Commit() { return file_->Commit(); }
  const std::string& path() const { return path_; }

 private:
  AtomicOutput(Env* env, std::string path, bool compress, int level, std::unique_ptr<AtomicFile> file)
      : env_(env), path_(std::move(path)), compress_(compress), level_(level), file_(std::move(file)) {}
  Env* env_;
  std::string path_;
  bool compress_;
  int level_;
  std::unique_ptr<AtomicFile> file_;
};

// The fatal-signal handler that removes every uncommitted output's temporary,
// and the hooks other modules add to it: fatal_signal_cleanup.h.

}  // namespace cloudmerge
