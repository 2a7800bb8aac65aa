// The spill directory's life: creation (published atomically with its lock
// held), reclaiming dead runs' directories, removal. The protocol is in
// docs/spill-format.md; in short:
//
//  * A run creates PARENT/.cloudmerge-spill-<pid>-<rand> (a "staging" name),
//    creates .lock in it and takes flock(LOCK_EX) on it, then renames the
//    directory to PARENT/cloudmerge-spill-<pid>-<rand>. So a directory under
//    the final name has a lock that was held from the moment it appeared: a
//    reclaimer can never take the lock of a live run in the instant between
//    its creation and its locking.
//  * A reclaimer opens each sibling's .lock and tries flock(LOCK_EX|LOCK_NB).
//    Acquired: its run is dead (flock locks die with their process, also on
//    SIGKILL), and the directory is removed, .lock last, with the lock held.
//    A final-named directory without .lock is what an interrupted removal
//    leaves, so it is dead too. Staging directories are left alone for a
//    minute (their run may be between mkdir and rename).
//  * The owner removes the directory when done (destructor) or on a fatal
//    signal (RegisterCleanupDirectory, env.h).
#include "cloudmerge/spill_directory.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include <fmt/format.h>

#include "cloudmerge/env.h"
#include "cloudmerge/random_seed.h"

namespace cloudmerge {
namespace {

constexpr std::string_view kPrefix = "cloudmerge-spill-";
constexpr std::string_view kStagingPrefix = ".cloudmerge-spill-";
constexpr const char* kLockName = ".lock";
constexpr time_t kStagingGraceSeconds = 60;

bool StartsWith(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

// Removes `dir`'s contents recursively, adding the sizes of the files removed
// to *bytes; at the top level `keep_last` (the lock) is removed after
// everything else, then the directory itself. Errors are ignored: what cannot
// be removed stays for a later run (or the user) to remove.
void RemoveTree(const std::string& dir, const char* keep_last, uint64_t* bytes) {
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string_view name = e->d_name;
      if (name == "." || name == ".." || (keep_last != nullptr && name == keep_last)) continue;
      std::string child = dir + "/" + e->d_name;
      struct stat st {};
      if (lstat(child.c_str(), &st) != 0) continue;
      if (S_ISDIR(st.st_mode)) {
        RemoveTree(child, nullptr, bytes);
      } else if (unlink(child.c_str()) == 0 && S_ISREG(st.st_mode)) {
        *bytes += static_cast<uint64_t>(st.st_size);
      }
    }
    closedir(d);
  }
  if (keep_last != nullptr) {
    std::string last = dir + "/" + keep_last;
    struct stat st {};
    if (lstat(last.c_str(), &st) == 0 && unlink(last.c_str()) == 0) *bytes += static_cast<uint64_t>(st.st_size);
  }
  rmdir(dir.c_str());
}

// Removes the directories of dead runs under `parent`; returns the bytes freed.
uint64_t ReclaimDead(const std::string& parent) {
  uint64_t bytes = 0;
  DIR* d = opendir(parent.c_str());
  if (d == nullptr) return 0;
  const time_t now = time(nullptr);
  while (dirent* e = readdir(d)) {
    std::string_view name = e->d_name;
    const bool staging = StartsWith(name, kStagingPrefix);
    if (!staging && !StartsWith(name, kPrefix)) continue;
    std::string dir = parent + "/" + e->d_name;
    struct stat st {};
    if (lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;  // never follow a symlink
    if (staging && now - st.st_mtime < kStagingGraceSeconds) continue;
    int fd = open((dir + "/" + kLockName).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno != ENOENT) continue;  // not ours to judge (another user's, unreadable)
    if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0) {
      close(fd);  // held: a live run
      continue;
    }
    RemoveTree(dir, kLockName, &bytes);
    if (fd >= 0) close(fd);
  }
  closedir(d);
  return bytes;
}

Status ParentError(const std::string& parent, const std::string& what) {
  return Status::IOError(fmt::format(
      "cannot use the temporary directory {}: {}. Pass --temp-dir with an existing directory you may write to, on a "
      "disk with room for about as much as the inputs, compressed (without --temp-dir cloudmerge uses $TMPDIR, "
      "else /tmp).",
      parent, what));
}

}  // namespace

std::string DefaultTempParent() {
  const char* tmpdir = std::getenv("TMPDIR");
  return tmpdir != nullptr && *tmpdir != '\0' ? std::string(tmpdir) : std::string("/tmp");
}

Result<std::unique_ptr<SpillDirectory>> SpillDirectory::Create(const std::string& parent_in,
                                                               uint64_t* reclaimed_bytes) {
  if (reclaimed_bytes != nullptr) *reclaimed_bytes = 0;
  std::string parent = parent_in.empty() ? DefaultTempParent() : parent_in;
  while (parent.size() > 1 && parent.back() == '/') parent.pop_back();

  struct stat st {};
  if (stat(parent.c_str(), &st) != 0)
    return ParentError(parent, errno == ENOENT ? std::string("it does not exist") : std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) return ParentError(parent, "it is not a directory");
  if (access(parent.c_str(), W_OK | X_OK) != 0)
    return ParentError(parent, fmt::format("this user may not create files in it ({})", std::strerror(errno)));

  uint64_t reclaimed = ReclaimDead(parent);
  if (reclaimed_bytes != nullptr) *reclaimed_bytes = reclaimed;

  for (int attempt = 0; attempt < 8; ++attempt) {
    const std::string suffix = fmt::format("{}-{:016x}", getpid(), RandomSeed());
    const std::string staging = fmt::format("{}/{}{}", parent, kStagingPrefix, suffix);
    const std::string final_path = fmt::format("{}/{}{}", parent, kPrefix, suffix);
    if (mkdir(staging.c_str(), 0700) != 0) {
      int err = errno;
      if (err == EEXIST) continue;
      if (err == ENOSPC || err == EDQUOT)
        return Status::NoSpace(fmt::format(
            "cannot create a spill directory in {}: no space left on device. Free space there or pass --temp-dir on "
            "a larger disk (needs about as much space as the inputs, compressed).",
            parent));
      return ParentError(parent, fmt::format("cannot create {} in it ({})", staging, std::strerror(err)));
    }
    // Armed before the directory has its final name, so that no signal can leave it behind.
    RegisterCleanupDirectory(final_path);
    auto fail = [&](int fd, const std::string& what, int err) -> Status {
      if (fd >= 0) close(fd);
      uint64_t ignored = 0;
      RemoveTree(staging, nullptr, &ignored);
      UnregisterCleanupDirectory(final_path);
      if (err == ENOSPC || err == EDQUOT)
        return Status::NoSpace(fmt::format("cannot {} in {}: no space left on device. Free space there or pass "
                                           "--temp-dir on a larger disk.",
                                           what, parent));
      return ParentError(parent, fmt::format("cannot {} ({})", what, std::strerror(err)));
    };
    int fd = open((staging + "/" + kLockName).c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return fail(-1, "create the spill directory's lock file", errno);
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) return fail(fd, "lock the spill directory's lock file", errno);
    if (rename(staging.c_str(), final_path.c_str()) != 0) return fail(fd, "name the spill directory", errno);
    std::unique_ptr<SpillDirectory> dir(new SpillDirectory());
    dir->path_ = final_path;
    dir->lock_fd_ = fd;
    return dir;
  }
  return Status::Internal(fmt::format("cannot pick an unused spill directory name in {} in 8 attempts", parent));
}

SpillDirectory::~SpillDirectory() {
  uint64_t ignored = 0;
  RemoveTree(path_, kLockName, &ignored);
  UnregisterCleanupDirectory(path_);
  if (lock_fd_ >= 0) close(lock_fd_);
}

std::string SpillDirectory::NewPath(std::string_view stem) {
  return fmt::format("{}/{}-{}.spill", path_, stem, counter_.fetch_add(1, std::memory_order_relaxed));
}

uint64_t SpillDirectory::FreeBytes() const {
  struct statvfs vfs {};
  if (statvfs(path_.c_str(), &vfs) != 0) return 0;
  return static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
}

}  // namespace cloudmerge
