#include "cloudmerge/io/env.h"

#include "cloudmerge/io/compression.h"
#include "cloudmerge/base/random_seed.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <cstdint>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <random>
#include <string_view>
#include <vector>

#include <fmt/format.h>

namespace cloudmerge {
namespace {

std::string ErrnoText(int err) { return std::strerror(err); }

std::string DisplayName(const std::string& path) {
  return path == "-" ? std::string("standard input") : path;
}

Status IoFailure(const std::string& what, const std::string& path, int err) {
  std::string hint;
  switch (err) {
    case ENOENT: hint = "Check the path; relative paths are resolved from the current directory."; break;
    case EACCES:
    case EPERM: hint = "Check the file's permissions, or run as a user who may read/write it."; break;
    case EISDIR: hint = "Give a file, not a directory."; break;
    case ELOOP: hint = "Check where the symbolic links in the path lead: they form a loop."; break;
    case ENOSPC:
    case EDQUOT:
      // No flag is named: the same words serve -o, --report and cp's destination.
      return Status::NoSpace(fmt::format(
          "{} {}: no space left on device. {}Free some space, or write to another disk.", what, path,
          path == "standard output" ? "The output is incomplete. " : "Nothing was written to the destination. "));
    default: hint = "Check that the file system is available and retry.";
  }
  return Status::IOError(fmt::format("{} {}: {}. {}", what, path, ErrnoText(err), hint));
}

// --- Mapped inputs that survive truncation ------------------------------------
// Another program may truncate a file while it is mapped here; touching a page
// beyond its new end raises SIGBUS, which would kill the process (and leave the
// output's temporary behind). The handler finds the mapping the address belongs
// to, maps zero pages over the rest of it, so that the reader carries on seeing
// NULs, and marks it truncated; MappedInput::Intact() then reports an IOError
// that RunMerge prefers to whatever the zeros made the scan say. The table is
// fixed-size and lock-free because the handler may run on any thread at any
// time: it only reads atomics and calls mmap (a plain system call).
struct MapSlot {
  std::atomic<uintptr_t> begin{0};
  std::atomic<size_t> size{0};
  std::atomic<bool> truncated{false};
};
constexpr int kMapSlots = 256;  // more inputs mapped at once go unguarded (a SIGBUS as before)
MapSlot g_maps[kMapSlots];
uintptr_t g_page_size = 4096;
struct sigaction g_previous_sigbus;

void OnSigbus(int sig, siginfo_t* info, void* ctx) {
  uintptr_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
  for (MapSlot& slot : g_maps) {
    uintptr_t begin = slot.begin.load();
    size_t size = slot.size.load();
    if (begin == 0 || addr < begin || addr >= begin + size) continue;
    uintptr_t from = addr & ~(g_page_size - 1);
    void* p = mmap(reinterpret_cast<void*>(from), begin + size - from, PROT_READ,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (p == MAP_FAILED) break;
    slot.truncated.store(true);
    return;  // the faulting read is retried and now sees zeros
  }
  // Not one of our mappings: restore the previous disposition; the access faults again under it.
  sigaction(SIGBUS, &g_previous_sigbus, nullptr);
}

// Claims a slot for [begin, begin + size); -1 when all are taken.
int GuardMapping(const void* begin, size_t size) {
  static const bool installed = [] {
    g_page_size = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    struct sigaction sa {};
    sa.sa_sigaction = OnSigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGBUS, &sa, &g_previous_sigbus) == 0;
  }();
  if (!installed) return -1;
  for (int i = 0; i < kMapSlots; ++i) {
    uintptr_t expected = 0;
    if (g_maps[i].begin.compare_exchange_strong(expected, reinterpret_cast<uintptr_t>(begin))) {
      g_maps[i].truncated.store(false);
      g_maps[i].size.store(size);
      return i;
    }
  }
  return -1;
}

void UnguardMapping(int slot) {
  if (slot < 0) return;
  g_maps[slot].size.store(0);
  g_maps[slot].begin.store(0);
}

class MappedInput final : public InputData {
 public:
  MappedInput(const char* data, size_t size, std::string path)
      : data_(data), size_(size), path_(std::move(path)), slot_(GuardMapping(data, size)) {}
  ~MappedInput() override {
    UnguardMapping(slot_);
    if (size_) munmap(const_cast<char*>(data_), size_);
  }
  std::string_view bytes() const override { return {data_, size_}; }
  void Release(size_t begin, size_t end) override {
    static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    size_t b = (begin + page - 1) / page * page;
    size_t e = std::min(end, size_) / page * page;
    if (e > b) madvise(const_cast<char*>(data_) + b, e - b, MADV_DONTNEED);
  }
  Status Intact() const override {
    if (slot_ < 0 || !g_maps[slot_].truncated.load()) return Status::OK();
    return Status::IOError(fmt::format(
        "{} was truncated (made shorter) by another program while cloudmerge was reading it, so the result "
        "would be wrong; nothing was written. Wait until whatever writes {} has finished (or copy it first), "
        "then run again.",
        path_, path_));
  }

 private:
  const char* data_;
  size_t size_;
  std::string path_;
  int slot_;
};

class BufferInput final : public InputData {
 public:
  explicit BufferInput(std::string data) : data_(std::move(data)) {}
  std::string_view bytes() const override { return data_; }

 private:
  std::string data_;
};

Result<std::unique_ptr<InputData>> ReadAll(int fd, const std::string& path) {
  std::string data;
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoFailure("cannot read", DisplayName(path), errno);
    }
    if (n == 0) break;
    data.append(buf.data(), static_cast<size_t>(n));
  }
  return std::unique_ptr<InputData>(new BufferInput(std::move(data)));
}

// Standard input, a FIFO or a device, read in order as the bytes come: never
// whole (a `cat huge |` or /dev/zero would otherwise fill memory), and once
// (not reopenable: Table keeps a copy when it needs a second pass).
class FdStream final : public InputStream {
 public:
  FdStream(int fd, std::string path, bool owns) : fd_(fd), path_(std::move(path)), owns_(owns) {}
  ~FdStream() override {
    if (owns_) ::close(fd_);
  }
  // Fills the piece asked for (a pipe hands out 64 KiB per read) or stops at the end.
  Status Read(size_t max_bytes, std::string* out) override {
    const size_t old = out->size();
    const size_t want = std::min<size_t>(max_bytes, size_t{8} << 20);
    out->resize(old + want);
    size_t got = 0;
    while (got < want) {
      ssize_t n = ::read(fd_, out->data() + old + got, want - got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int err = errno;
        out->resize(old);
        return IoFailure("cannot read", DisplayName(path_), err);
      }
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    out->resize(old + got);
    return Status::OK();
  }
  uint64_t size_hint() const override { return 0; }
  bool reopenable() const override { return false; }

 private:
  int fd_;
  std::string path_;
  bool owns_;
};

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(int fd, std::string path, bool owns) : fd_(fd), path_(std::move(path)), owns_(owns) {}
  ~PosixWritableFile() override {
    if (owns_ && fd_ >= 0) ::close(fd_);
  }
  Status Append(std::string_view data) override {
    while (!data.empty()) {
      ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return IoFailure("cannot write", path_ == "-" ? "standard output" : path_, errno);
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return Status::OK();
  }
  Status Close() override {
    if (!owns_ || fd_ < 0) return Status::OK();
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return IoFailure("cannot finish writing", path_, errno);
    return Status::OK();
  }

 private:
  int fd_;
  std::string path_;
  bool owns_;
};

// N when `path` is spelled /dev/fd/N, else -1.
int DescriptorPath(const std::string& path) {
  constexpr std::string_view kPrefix = "/dev/fd/";
  std::string_view digits = std::string_view(path).substr(std::min(path.size(), kPrefix.size()));
  if (path.compare(0, kPrefix.size(), kPrefix) != 0 || digits.empty() || digits.size() > 9 ||
      digits.find_first_not_of("0123456789") != std::string_view::npos)
    return -1;
  return std::stoi(std::string(digits));
}

// N when `path` names this process's descriptor N: /dev/fd/N, or an entry of
// /proc/self/fd however it is reached (/proc/<pid>/fd, /proc/thread-self/fd).
int DescriptorOf(const std::string& path) {
  if (int n = DescriptorPath(path); n >= 0) return n;
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return -1;
  std::string name = path.substr(slash + 1);
  if (name.empty() || name.size() > 9 || name.find_first_not_of("0123456789") != std::string::npos) return -1;
  char real[PATH_MAX];
  if (::realpath(slash == 0 ? "/" : path.substr(0, slash).c_str(), real) == nullptr) return -1;
  std::string_view dir(real);
  std::string proc = fmt::format("/proc/{}/", getpid());
  if (dir.substr(0, proc.size()) != proc || dir.size() < 3 || dir.substr(dir.size() - 3) != "/fd") return -1;
  return std::stoi(name);
}

// `-o dir/`: said before any work, as a usage error, rather than as a failed rename at the end.
Status DirectoryGiven(const std::string& path, const std::string& target) {
  std::string dir = path;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return Status::InvalidArgument(fmt::format(
      "output {} is a directory{}: name a file to write, such as {}/merged.tsv", path,
      target == path ? "" : fmt::format(" (a link to {})", target), dir));
}

class PosixEnv final : public Env {
 public:
  Result<std::unique_ptr<InputData>> ReadFile(const std::string& path) override {
    if (path == "-") return ReadAll(STDIN_FILENO, path);
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return IoFailure("cannot open input", path, errno);
    struct stat st {};
    if (fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      return IoFailure("cannot stat input", path, err);
    }
    if (S_ISDIR(st.st_mode)) {
      ::close(fd);
      return IoFailure("cannot read input", path, EISDIR);
    }
    if (!S_ISREG(st.st_mode)) {  // pipe, FIFO, character device: read it
      auto r = ReadAll(fd, path);
      ::close(fd);
      return r;
    }
    if (st.st_size == 0) {
      ::close(fd);
      return std::unique_ptr<InputData>(new BufferInput(std::string()));
    }
    void* p = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) return IoFailure("cannot map input", path, errno);
    madvise(p, static_cast<size_t>(st.st_size), MADV_SEQUENTIAL);
    return std::unique_ptr<InputData>(new MappedInput(static_cast<const char*>(p), static_cast<size_t>(st.st_size), path));
  }

  // Standard input, FIFOs and devices stream; regular files are mapped (ReadFile).
  Result<std::unique_ptr<InputStream>> OpenStream(const std::string& path) override {
    if (path == "-") return std::unique_ptr<InputStream>(new FdStream(STDIN_FILENO, path, false));
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))
      return std::unique_ptr<InputStream>();  // ReadFile opens it (and words any error)
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return IoFailure("cannot open input", path, errno);
    return std::unique_ptr<InputStream>(new FdStream(fd, path, true));
  }

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    if (path == "-") return std::unique_ptr<WritableFile>(new PosixWritableFile(STDOUT_FILENO, path, false));
    if (int n = DescriptorPath(path); n >= 0) {
      // The descriptor itself (dup'ed: closing ours leaves the caller's open), so
      // that `>> file` appends and a pipe stays the pipe; reopening the path
      // would truncate a redirected file and start writing at its beginning.
      int fd = ::fcntl(n, F_DUPFD_CLOEXEC, 3);
      if (fd < 0) return IoFailure("cannot write to", path, errno);
      return std::unique_ptr<WritableFile>(new PosixWritableFile(fd, path, true));
    }
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);  // O_TRUNC is ignored by devices
    if (fd < 0) return IoFailure("cannot create output", path, errno);
    return std::unique_ptr<WritableFile>(new PosixWritableFile(fd, path, true));
  }

  Status RenameFile(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return IoFailure("cannot move the result into place at", to, errno);
    return Status::OK();
  }

  bool IsSpecialFile(const std::string& path) override {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode);
  }

  // Follows the last component's links by hand, one at a time (at most 40, as
  // the kernel does), so that every hop can be checked for being a descriptor:
  // /dev/stdout -> /proc/self/fd/1 -> (the redirected file) must stay the
  // descriptor, not become a temporary renamed over the shell's file or over
  // the /dev/stdout link itself.
  Result<OutputTarget> ResolveOutput(const std::string& path) override {
    if (path == "-") return OutputTarget{"-", true, STDOUT_FILENO};
    if (path.empty()) return Status::InvalidArgument("the output's name is empty: name a file to write, such as merged.tsv");
    if (path.back() == '/') return DirectoryGiven(path, path);
    std::string cur = path;
    for (int hops = 0;; ++hops) {
      if (int fd = DescriptorOf(cur); fd >= 0) return OutputTarget{fmt::format("/dev/fd/{}", fd), true, fd};
      struct stat st {};
      if (::lstat(cur.c_str(), &st) != 0) {
        if (errno == ENOENT) return OutputTarget{cur, false, -1};  // created by the rename (or fails to be, clearly)
        return IoFailure("cannot create output", path, errno);
      }
      if (S_ISDIR(st.st_mode)) return DirectoryGiven(path, cur);
      if (!S_ISLNK(st.st_mode)) return OutputTarget{cur, !S_ISREG(st.st_mode), -1};
      if (hops == 40) return IoFailure("cannot create output", path, ELOOP);
      std::string target(static_cast<size_t>(st.st_size > 0 ? st.st_size : 4096) + 1, '\0');
      ssize_t n = ::readlink(cur.c_str(), target.data(), target.size());
      if (n < 0) return IoFailure("cannot create output", path, errno);
      target.resize(static_cast<size_t>(n));
      // A relative target is relative to the link's own directory.
      size_t slash = cur.rfind('/');
      if (!target.empty() && target[0] != '/' && slash != std::string::npos) target = cur.substr(0, slash + 1) + target;
      cur = std::move(target);
    }
  }

  Status RemoveFile(const std::string& path) override {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return IoFailure("cannot remove", path, errno);
    return Status::OK();
  }
};

// --- Removing the temporary when the process is interrupted -------------------
// The handler may only use async-signal-safe calls, so the path sits in a
// fixed buffer published with an atomic flag.
char g_cleanup_path[4096];
std::atomic<bool> g_cleanup_armed{false};

// Hooks of other modules (AddFatalSignalHook), called in the order added.
constexpr int kMaxHooks = 8;
std::atomic<FatalSignalHook> g_hooks[kMaxHooks];

void OnFatalSignal(int sig) {
  // errno is restored before the signal is raised again: under ThreadSanitizer
  // (which delivers it only when this handler returns) and in any code the
  // handler interrupted, a changed errno would be seen as the interrupted call's.
  const int saved_errno = errno;
  if (g_cleanup_armed.load()) ::unlink(g_cleanup_path);
  for (auto& hook : g_hooks)
    if (FatalSignalHook h = hook.load()) h();
  signal(sig, SIG_DFL);
  errno = saved_errno;
  raise(sig);
}

void InstallFatalSignalHandlers() {
  static bool installed = [] {
    // Only where the signal would kill the process anyway: a program that
    // handles a signal itself (`serve` finishes its current job on SIGTERM)
    // keeps its handler, and its output is committed or discarded normally.
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) {
      struct sigaction old {};
      if (sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) signal(sig, OnFatalSignal);
    }
    return true;
  }();
  (void)installed;
}

void ArmCleanup(const std::string& path) {
  if (path.size() >= sizeof(g_cleanup_path)) return;
  std::memcpy(g_cleanup_path, path.c_str(), path.size() + 1);
  g_cleanup_armed.store(true);
  InstallFatalSignalHandlers();
}

void DisarmCleanup() { g_cleanup_armed.store(false); }

}  // namespace

bool AddFatalSignalHook(FatalSignalHook hook) {
  InstallFatalSignalHandlers();
  for (auto& slot : g_hooks) {
    FatalSignalHook expected = nullptr;
    if (slot.compare_exchange_strong(expected, hook) || expected == hook) return true;
  }
  return false;
}

Env* Env::Default() {
  static PosixEnv env;
  return &env;
}

namespace {

// A temporary next to OUT (same file system, so the rename is atomic), renamed
// into place on Commit and removed otherwise, also on a fatal signal.
class TempThenRename final : public AtomicFile {
 public:
  TempThenRename(Env* env, std::string path, std::string temp, std::unique_ptr<WritableFile> file)
      : env_(env), path_(std::move(path)), temp_(std::move(temp)), file_(std::move(file)) {}
  ~TempThenRename() override {
    if (committed_ || temp_.empty()) return;
    file_.reset();
    (void)env_->RemoveFile(temp_);
    DisarmCleanup();
  }
  Status Append(std::string_view data) override { return file_->Append(data); }
  Status Commit() override {
    CM_RETURN_IF_ERROR(file_->Close());
    if (!temp_.empty()) {
      CM_RETURN_IF_ERROR(env_->RenameFile(temp_, path_));
      DisarmCleanup();
    }
    committed_ = true;
    return Status::OK();
  }
  bool atomic() const override { return !temp_.empty(); }

 private:
  Env* env_;
  std::string path_;
  std::string temp_;  // empty: written directly (standard output, devices)
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
  if (!temp.empty()) ArmCleanup(temp);
  auto file = NewWritableFile(temp.empty() ? path : temp);
  if (!file.ok()) {
    DisarmCleanup();
    if (temp.empty()) return file.status();
    return Status(file.status().code() == Status::Code::kNoSpace
                      ? file.status()
                      : Status::IOError(fmt::format(
                            "cannot create output {} (cloudmerge first writes {} next to it, then renames it): {}",
                            path, temp, file.status().message())));
  }
  return std::unique_ptr<AtomicFile>(new TempThenRename(this, path, temp, std::move(file.value())));
}

namespace {

// An AtomicFile whose bytes are compressed on their way to `base`. Compressed
// output is collected into ~1 MiB appends: the base may be an S3 multipart
// upload or a file, both happier with large writes. Everything up to Commit
// is discarded with `base` when the object is destroyed uncommitted.
class CompressingAtomicFile final : public AtomicFile {
 public:
  CompressingAtomicFile(std::unique_ptr<AtomicFile> base, std::unique_ptr<Encoder> encoder)
      : base_(std::move(base)), encoder_(std::move(encoder)) {}
  Status Append(std::string_view data) override {
    CM_RETURN_IF_ERROR(encoder_->Feed(data, &pending_));
    if (pending_.size() < kFlushBytes) return Status::OK();
    Status st = base_->Append(pending_);
    pending_.clear();
    return st;
  }
  Status Commit() override {
    CM_RETURN_IF_ERROR(encoder_->Finish(&pending_));
    CM_RETURN_IF_ERROR(base_->Append(pending_));
    pending_.clear();
    return base_->Commit();
  }
  bool atomic() const override { return base_->atomic(); }

 private:
  static constexpr size_t kFlushBytes = 1 << 20;
  std::unique_ptr<AtomicFile> base_;
  std::unique_ptr<Encoder> encoder_;
  std::string pending_;
};

// The destination, compressed when its name says so (never standard output).
Result<std::unique_ptr<AtomicFile>> OpenDestination(Env* env, const std::string& path, bool compress) {
  auto file = env->NewAtomicFile(path);
  if (!file.ok()) return file.status();
  Compression c = path == "-" || !compress ? Compression::kNone : CompressionForPath(path);
  if (c == Compression::kNone) return file;
  return std::unique_ptr<AtomicFile>(new CompressingAtomicFile(std::move(file.value()), NewEncoder(c)));
}

}  // namespace

Result<std::unique_ptr<AtomicOutput>> AtomicOutput::Open(Env* env, const std::string& path, bool compress_by_name) {
  auto file = OpenDestination(env, path, compress_by_name);
  if (!file.ok()) return file.status();
  return std::unique_ptr<AtomicOutput>(new AtomicOutput(env, path, compress_by_name, std::move(file.value())));
}

Status AtomicOutput::Restart() {
  if (!file_->atomic()) return Status::Internal("standard output cannot be rewound");
  file_.reset();  // discards, and with it the encoder's state: the new file starts a fresh stream
  auto file = OpenDestination(env_, path_, compress_);
  if (!file.ok()) return file.status();
  file_ = std::move(file.value());
  return Status::OK();
}

}  // namespace cloudmerge
