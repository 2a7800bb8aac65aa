// The POSIX Env (env.h): local files mapped (guarded against truncation,
// mapped_input_guard.h) or streamed (standard input, FIFOs, devices), outputs
// written with write(2), resolved through symbolic links and descriptors.
#include "cloudmerge/io/env.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "cloudmerge/io/mapped_input_guard.h"
#include "cloudmerge/io/posix_io.h"

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

Status ChangedSinceOpened(const std::string& path) {
  return Status::IOError(fmt::format("{} changed while the merge was reading it (it is not the file the merge "
                                     "planned with). Run again once nothing writes it.", path));
}

class PosixRandomAccessInput final : public RandomAccessInput {
 public:
  PosixRandomAccessInput(int fd, std::string path, const struct stat& st)
      : fd_(fd), path_(std::move(path)), size_(static_cast<uint64_t>(st.st_size)),
        version_(fmt::format("{}-{}-{}.{:09}", st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec)) {}
  ~PosixRandomAccessInput() override { ::close(fd_); }
  uint64_t size() const override { return size_; }
  std::string version() const override { return version_; }
  Status ReadAt(uint64_t offset, size_t n, std::string* out) override {
    int err = PreadFully(fd_, offset, n, out);
    if (err > 0) return IoFailure("cannot read", path_, err);
    if (err < 0) return ChangedSinceOpened(path_);  // shorter than it was
    return Status::OK();
  }

 private:
  int fd_;
  std::string path_;
  uint64_t size_;
  std::string version_;
};

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
  void WillNeed(size_t begin, size_t end) override {
    static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    size_t b = begin / page * page;
    size_t e = std::min(end, size_);
    if (e > b) madvise(const_cast<char*>(data_) + b, e - b, MADV_WILLNEED);
  }
  Status Intact() const override {
    if (!MappingTruncated(slot_)) return Status::OK();
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

  // A regular file only (the others read in order); read with pread(2).
  Result<std::unique_ptr<RandomAccessInput>> OpenRandomAccess(const std::string& path,
                                                              const std::string& version) override {
    if (path == "-") return std::unique_ptr<RandomAccessInput>();
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return IoFailure("cannot open input", path, errno);
    struct stat st {};
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      return std::unique_ptr<RandomAccessInput>();  // ReadFile/OpenStream read it (and word any error)
    }
    auto input = std::make_unique<PosixRandomAccessInput>(fd, path, st);
    if (!version.empty() && input->version() != version) return ChangedSinceOpened(path);
    return std::unique_ptr<RandomAccessInput>(std::move(input));
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

}  // namespace

Env* Env::Default() {
  static PosixEnv env;
  return &env;
}

}  // namespace cloudmerge
