// openat walks with O_NOFOLLOW, and the Env that reads input files through them.
#include "cloudmerge/pipeline/store/confined_env.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "cloudmerge/report/safe_text.h"

namespace cloudmerge {
namespace {

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) close(fd);
  }
  int release() {
    int f = fd;
    fd = -1;
    return f;
  }
};

const char* KindOf(mode_t mode) {
  if (S_ISLNK(mode)) return "a symbolic link";
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  return "not a regular file";
}

Status Refused(const std::string& rel, const char* kind) {
  return Status::InvalidInput(fmt::format(
      "{} is {}: a job's files must be regular files inside the input folder (links are not followed, so that a "
      "job can only read what was put in its folder). Copy the file itself into the job's folder.",
      Quote(rel), kind));
}

}  // namespace

Result<int> OpenBeneath(const std::string& root, const std::string& rel) {
  Fd dir(open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.fd < 0) return Status::IOError(fmt::format("cannot open the folder {}: {}", root, std::strerror(errno)));
  size_t pos = 0;
  for (;;) {
    size_t slash = rel.find('/', pos);
    std::string name = rel.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
    std::string so_far = rel.substr(0, slash);
    if (name.empty() || name == "." || name == "..")
      return Status::InvalidInput(fmt::format("{} is not a plain path inside the input folder", Quote(rel)));
    struct stat st {};
    if (fstatat(dir.fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT || errno == ENOTDIR)
        return Status::NotFound(fmt::format("{}/{}: no such file", root, Quote(rel)));
      return Status::IOError(fmt::format("cannot read {}/{}: {}", root, Quote(rel), std::strerror(errno)));
    }
    bool last = slash == std::string::npos;
    if (!last) {
      if (!S_ISDIR(st.st_mode)) return Refused(so_far, KindOf(st.st_mode));
      Fd next(openat(dir.fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (next.fd < 0) return Refused(so_far, errno == ELOOP || errno == ENOTDIR ? "a symbolic link" : "unreadable");
      std::swap(dir.fd, next.fd);
      pos = slash + 1;
      continue;
    }
    if (!S_ISREG(st.st_mode)) return Refused(rel, KindOf(st.st_mode));
    // O_NONBLOCK: if a FIFO was swapped in since the check, opening it does not block.
    Fd file(openat(dir.fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
    if (file.fd < 0) {
      if (errno == ELOOP) return Refused(rel, "a symbolic link");
      return Status::IOError(fmt::format("cannot open {}/{}: {}", root, Quote(rel), std::strerror(errno)));
    }
    struct stat now {};
    if (fstat(file.fd, &now) != 0 || !S_ISREG(now.st_mode)) return Refused(rel, KindOf(now.st_mode));
    int flags = fcntl(file.fd, F_GETFL);
    if (flags >= 0) fcntl(file.fd, F_SETFL, flags & ~O_NONBLOCK);
    return file.release();
  }
}

namespace {

class ConfinedEnv final : public Env {
 public:
  ConfinedEnv(Env* base, std::string root) : base_(base), root_(std::move(root)) {}

  Result<std::unique_ptr<InputData>> ReadFile(const std::string& path) override {
    if (!Under(path)) return base_->ReadFile(path);
    auto fd = OpenBeneath(root_, path.substr(root_.size() + 1));
    if (!fd.ok()) return fd.status();
    Fd owned(*fd);
    // The magic link names the open file itself, not a path: no swap can redirect it.
    std::string proc = fmt::format("/proc/self/fd/{}", owned.fd);
    auto data = base_->ReadFile(proc);
    if (data.ok()) return data;
    std::string message = data.status().message();
    for (size_t p; (p = message.find(proc)) != std::string::npos;) message.replace(p, proc.size(), path);
    switch (data.status().code()) {  // the same kind of error, naming the input as the job knows it
      case Status::Code::kInvalidInput: return Status::InvalidInput(message);
      case Status::Code::kNoSpace: return Status::NoSpace(message);
      case Status::Code::kNotFound: return Status::NotFound(message);
      default: return Status::IOError(message);
    }
  }
  // A job's file is always a regular file (ReadFile maps it); checking it here
  // too means a link to a device or a FIFO swapped in after the listing is
  // refused rather than streamed from wherever it points.
  Result<std::unique_ptr<InputStream>> OpenStream(const std::string& path) override {
    if (!Under(path)) return base_->OpenStream(path);
    auto fd = OpenBeneath(root_, path.substr(root_.size() + 1));
    if (!fd.ok()) return fd.status();
    close(*fd);
    return std::unique_ptr<InputStream>();
  }
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    return base_->NewWritableFile(path);
  }
  Status RenameFile(const std::string& from, const std::string& to) override { return base_->RenameFile(from, to); }
  Status RemoveFile(const std::string& path) override { return base_->RemoveFile(path); }
  bool IsSpecialFile(const std::string& path) override { return base_->IsSpecialFile(path); }
  Result<OutputTarget> ResolveOutput(const std::string& path) override { return base_->ResolveOutput(path); }
  Result<std::unique_ptr<AtomicFile>> NewAtomicFile(const std::string& path) override {
    return base_->NewAtomicFile(path);
  }

 private:
  bool Under(const std::string& path) const {
    return path.size() > root_.size() + 1 && path.compare(0, root_.size() + 1, root_ + "/") == 0;
  }

  Env* base_;
  std::string root_;
};

}  // namespace

std::unique_ptr<Env> NewConfinedEnv(Env* base, std::string root) {
  std::string normal = std::filesystem::absolute(root).lexically_normal().string();
  while (normal.size() > 1 && normal.back() == '/') normal.pop_back();
  return std::make_unique<ConfinedEnv>(base, normal);
}

}  // namespace cloudmerge
