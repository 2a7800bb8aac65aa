// The storage-independent part of Env (env.h): the atomic output every Env
// gets from its primitives (a temporary renamed into place), the names of
// those temporaries and the removal of a dead run's leftovers, and
// AtomicOutput. The POSIX Env is in env_posix.cc, the SIGBUS guard of mapped
// inputs in mapped_input_guard.cc, the fatal-signal cleanup in
// fatal_signal_cleanup.cc, compression of outputs in compressed_output.cc.
#include "cloudmerge/io/env.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <string_view>

#include <fmt/format.h>

#include "cloudmerge/base/random_seed.h"
#include "cloudmerge/io/compressed_output.h"
#include "cloudmerge/io/fatal_signal_cleanup.h"

namespace cloudmerge {

namespace {

// A temporary next to OUT (same file system, so the rename is atomic), renamed
// into place on Commit and removed otherwise, also on a fatal signal.
class TempThenRename final : public AtomicFile {
 public:
  TempThenRename(Env* env, std::string path, std::string temp, int cleanup_slot, std::unique_ptr<WritableFile> file)
      : env_(env), path_(std::move(path)), temp_(std::move(temp)), cleanup_slot_(cleanup_slot),
        file_(std::move(file)) {}
  ~TempThenRename() override {
    if (committed_ || temp_.empty()) return;
    file_.reset();
    (void)env_->RemoveFile(temp_);
    DisarmFileCleanup(cleanup_slot_);
  }
  Status Append(std::string_view data) override { return file_->Append(data); }
  Status Commit() override {
    CM_RETURN_IF_ERROR(file_->Close());
    if (!temp_.empty()) {
      CM_RETURN_IF_ERROR(env_->RenameFile(temp_, path_));
      DisarmFileCleanup(cleanup_slot_);
    }
    committed_ = true;
    return Status::OK();
  }
  bool atomic() const override { return !temp_.empty(); }

 private:
  Env* env_;
  std::string path_;
  std::string temp_;  // empty: written directly (standard output, devices)
  int cleanup_slot_;  // fatal_signal_cleanup.h: removes temp_ on SIGINT/SIGTERM/...
  std::unique_ptr<WritableFile> file_;
  bool committed_ = false;
};

}  // namespace

namespace {

constexpr std::string_view kTempInfix = ".cloudmerge-tmp-";


// A run killed with SIGKILL leaves its temporary behind. The next run writing
// into the same directory removes such leftovers (DIR/.cloudmerge-tmp-<pid>-<hex>,
// or OUT.cloudmerge-tmp-<pid>-<hex> as earlier versions named them) when they
// are regular files of this user, their process is gone from this machine and
// they have not been written to for ten minutes (so that a live writer on
// another machine sharing the directory is safe).
void RemoveStaleTemporaries(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path out(path);
  fs::path dir = out.has_parent_path() ? out.parent_path() : fs::path(".");
  const std::string old_prefix = out.filename().string() + std::string(kTempInfix);
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    size_t skip = name.compare(0, kTempInfix.size(), kTempInfix) == 0     ? kTempInfix.size()
                  : name.compare(0, old_prefix.size(), old_prefix) == 0 ? old_prefix.size()
                                                                         : 0;
    if (skip == 0) continue;
    char* end = nullptr;
    long pid = std::strtol(name.c_str() + skip, &end, 10);
    if (pid <= 0 || *end != '-' || pid == getpid() || kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    struct stat st {};
    if (::lstat(entry.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) continue;
    if (time(nullptr) - st.st_mtime < 600) continue;
    fs::remove(entry.path(), ec);
  }
}

}  // namespace

std::string AtomicTemporaryPath(const std::string& path) {
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  std::string name = fmt::format("{}{}-{:08x}", kTempInfix, getpid(), static_cast<uint32_t>(RandomSeed()));
  return dir.empty() ? name : (dir / name).string();
}

Status ForEachPiece(InputStream* in, size_t piece_bytes, const std::function<Status(std::string_view)>& sink) {
  std::string piece;
  for (;;) {
    piece.clear();
    CM_RETURN_IF_ERROR(in->Read(piece_bytes, &piece));
    if (piece.empty()) return Status::OK();
    CM_RETURN_IF_ERROR(sink(piece));
  }
}

Result<OutputTarget> Env::ResolveOutput(const std::string& path) {
  return OutputTarget{path, path == "-" || IsSpecialFile(path), path == "-" ? STDOUT_FILENO : -1};
}

Result<std::unique_ptr<AtomicFile>> Env::NewAtomicFile(const std::string& requested) {
  // Everything below works on the target: a link's target is replaced (the
  // temporary beside it, on its file system), never the link.
  auto target = ResolveOutput(requested);
  if (!target.ok()) return target.status();
  const std::string& path = target->path;
  std::string temp;
  if (!target->direct) {
    RemoveStaleTemporaries(path);
    temp = AtomicTemporaryPath(path);
  }
  // Armed before the file exists, so that no signal can leave it behind.
  int cleanup_slot = temp.empty() ? -1 : ArmFileCleanup(temp);
  auto file = NewWritableFile(temp.empty() ? path : temp);
  if (!file.ok()) {
    DisarmFileCleanup(cleanup_slot);
    if (temp.empty()) return file.status();
    return Status(file.status().code() == Status::Code::kNoSpace
                      ? file.status()
                      : Status::IOError(fmt::format(
                            "cannot create output {} (cloudmerge first writes {} next to it, then renames it): {}",
                            path, temp, file.status().message())));
  }
  return std::unique_ptr<AtomicFile>(new TempThenRename(this, path, temp, cleanup_slot, std::move(file.value())));
}

namespace {

// The destination, compressed when its name says so (never standard output).
Result<std::unique_ptr<AtomicFile>> OpenDestination(Env* env, const std::string& path, bool compress, int level) {
  auto file = env->NewAtomicFile(path);
  if (!file.ok()) return file.status();
  Compression c = path == "-" || !compress ? Compression::kNone : CompressionForPath(path);
  return NewCompressedAtomicFile(std::move(file.value()), c, level);
}

}  // namespace

Result<std::unique_ptr<AtomicOutput>> AtomicOutput::Open(Env* env, const std::string& path, bool compress_by_name,
                                                          int level) {
  auto file = OpenDestination(env, path, compress_by_name, level);
  if (!file.ok()) return file.status();
  return std::unique_ptr<AtomicOutput>(new AtomicOutput(env, path, compress_by_name, level, std::move(file.value())));
}

Status AtomicOutput::Restart() {
  if (!file_->atomic()) return Status::Internal("standard output cannot be rewound");
  file_.reset();  // discards, and with it the encoder's state: the new file starts a fresh stream
  auto file = OpenDestination(env_, path_, compress_, level_);
  if (!file.ok()) return file.status();
  file_ = std::move(file.value());
  return Status::OK();
}

}  // namespace cloudmerge
