// The spill directory's life: the per-user private root, creation (published
// atomically with its marker and lock in place), reclaiming dead runs'
// directories, removal. The protocol is in docs/spill-format.md; in short:
//
//  * Everything happens in ROOT = PARENT/cloudmerge-<euid>, mode 0700, checked
//    before each use (a directory, not a symlink, ours, closed to others), and
//    through descriptors: ROOT is opened once, every directory in it with
//    openat(O_DIRECTORY|O_NOFOLLOW), every file removed with unlinkat. A name
//    swapped for a symlink in between is never followed.
//  * A run creates ROOT/.cloudmerge-spill-<pid>-<rand> (a "staging" name),
//    writes the marker file in it, creates .lock and takes flock(LOCK_EX) on
//    it, then renames the directory to ROOT/cloudmerge-spill-<pid>-<rand>. So
//    a directory under the final name has a lock that was held from the moment
//    it appeared: a reclaimer can never take the lock of a live run in the
//    instant between its creation and its locking.
//  * A reclaimer looks only at directories of ROOT with a spill name, owned by
//    this user and holding the marker (owned by this user too). It opens .lock
//    and tries flock(LOCK_EX|LOCK_NB). Acquired: its run is dead (flock locks
//    die with their process, also on SIGKILL). No .lock: an interrupted
//    removal, dead too. A dead directory loses the files cloudmerge names
//    itself (*.spill, .lock, the marker: regular files owned by this user),
//    then the directory itself if that left it empty; anything else stays.
//    A staging directory is locked too (flock on the directory itself, taken
//    right after its mkdir); one whose lock is free is left alone for a minute
//    (its run may be between mkdir and flock) unless the process its name
//    carries is gone. A spill-named directory without the marker is only
//    rmdir'ed, which succeeds only when it is empty.
//  * The owner removes the directory when done (destructor) or on a fatal
//    signal (a hook of env.h's handler, with the same descriptor-based,
//    async-signal-safe code).
#include "cloudmerge/io/spill_directory.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include <fmt/format.h>

#include "cloudmerge/io/env.h"
#include "cloudmerge/io/fatal_signal_cleanup.h"
#include "cloudmerge/base/random_seed.h"

namespace cloudmerge {
namespace {

constexpr std::string_view kPrefix = "cloudmerge-spill-";
constexpr std::string_view kStagingPrefix = ".cloudmerge-spill-";
constexpr const char* kLockName = ".lock";
// Written at creation: a directory without it was not made by cloudmerge and is never emptied.
constexpr const char* kMarkerName = ".cloudmerge-spill-dir";
constexpr std::string_view kMarkerText =
    "This directory holds the temporary files of one out-of-core cloudmerge run; cloudmerge removes it.\n";
constexpr std::string_view kSpillSuffix = ".spill";
constexpr time_t kStagingGraceSeconds = 60;

bool StartsWith(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }
bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// ---- Removal (async-signal-safe: raw system calls, stack buffers) ----------------

// getdents64(2)'s record; glibc's struct dirent64 is not guaranteed to match.
struct Dirent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

// Unlinks `name` in dfd if it is a regular file owned by this user; adds its size to *bytes.
bool UnlinkOwnedFile(int dfd, const char* name, uint64_t* bytes) {
  struct stat st {};
  if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return false;
  if (!S_ISREG(st.st_mode) || st.st_uid != geteuid()) return false;
  if (unlinkat(dfd, name, 0) != 0) return false;
  *bytes += static_cast<uint64_t>(st.st_size);
  return true;
}

// Calls f(const char* name) for each entry of the directory open as `dfd`, from
// its current offset on. Raw getdents64 into a stack buffer: no allocation, so
// it also serves the fatal-signal cleanup.
template <class F>
void ForEachEntry(int dfd, F&& f) {
  alignas(8) char buf[4096];
  for (;;) {
    long n = syscall(SYS_getdents64, dfd, buf, sizeof(buf));
    if (n <= 0) return;
    for (long off = 0; off < n;) {
      const auto* d = reinterpret_cast<const Dirent64*>(buf + off);
      off += d->d_reclen;
      f(d->d_name);
    }
  }
}

// Removes the files cloudmerge writes in the spill directory open as `dfd`
// (adding the spill files' sizes to *bytes): *.spill, then .lock, then the marker (last: a directory that still has its
// marker is still recognised as ours). Subdirectories, symlinks, other
// users' files and other names stay. Entries are unlinked while the
// directory is listed, which may make the listing skip some: it is listed
// again from the start until a pass removes nothing (at most max_passes).
void RemoveOwnedFiles(int dfd, uint64_t* bytes, int max_passes = 64) {
  for (int pass = 0; pass < max_passes; ++pass) {
    bool removed = false;
    if (lseek(dfd, 0, SEEK_SET) != 0) break;
    ForEachEntry(dfd, [&](const char* entry) {
      std::string_view name = entry;
      if (name.empty() || name[0] == '.' || !EndsWith(name, kSpillSuffix)) return;
      if (UnlinkOwnedFile(dfd, entry, bytes)) removed = true;
    });
    if (!removed) break;
  }
  uint64_t bookkeeping = 0;  // not spilled data: not counted
  UnlinkOwnedFile(dfd, kLockName, &bookkeeping);
  UnlinkOwnedFile(dfd, kMarkerName, &bookkeeping);
}

// Fills `out` (size n) with prefix + suffix, NUL-terminated; false when it does not fit.
bool JoinName(char* out, size_t n, std::string_view prefix, const char* suffix) {
  size_t s = std::strlen(suffix);
  if (prefix.size() + s + 1 > n) return false;
  std::memcpy(out, prefix.data(), prefix.size());
  std::memcpy(out + prefix.size(), suffix, s + 1);
  return true;
}

// Removes the private root at `path` (open as root_fd) if it is empty and still
// the directory opened: a run leaves the temp dir as it found it. A concurrent
// run that has the root open and finds it gone opens it again (Create).
void RemoveRootIfEmpty(int root_fd, const char* path) {
  struct stat opened {}, named {};
  if (fstat(root_fd, &opened) != 0 || lstat(path, &named) != 0) return;
  if (opened.st_dev == named.st_dev && opened.st_ino == named.st_ino) rmdir(path);
}

// ---- The fatal-signal cleanup table ----------------------------------------------
// A slot is claimed (kFree -> kBusy), filled, then published (kArmed); the hook
// only touches kArmed slots. Its descriptors could in principle be closed and
// reused by another thread while the hook runs, so the hook first checks that
// dir_fd still is the directory registered (device and inode): a reused
// descriptor is skipped. The rmdir through root_fd only removes an empty
// directory of the run's own random name.
enum : int { kFree = 0, kBusy = 1, kArmed = 2 };
struct CleanupSlot {
  std::atomic<int> state{kFree};
  int root_fd = -1, dir_fd = -1;
  dev_t dev = 0;
  ino_t ino = 0;
  char suffix[64] = {};  // <pid>-<rand>: the directory is kPrefix or kStagingPrefix + suffix
  char root_path[4096] = {};
};
constexpr int kCleanupSlots = 16;
CleanupSlot g_slots[kCleanupSlots];

// The run's other threads keep working while the handler runs (the signal
// stops only the thread it is delivered to). NewPath makes a thread that
// wants a new file wait for the end, but one that got its name just before
// can still create it between the emptying and the rmdir, which then fails
// with ENOTEMPTY: empty and try again (each attempt lists the directory once,
// then removes it). Once the rmdir succeeds, no file can be created in the
// directory any more (openat in a removed directory fails).
void RemoveInHandler(const CleanupSlot& s) {
  struct stat st {};
  if (fstat(s.dir_fd, &st) != 0 || st.st_dev != s.dev || st.st_ino != s.ino) return;
  for (int attempt = 0; attempt < 100000; ++attempt) {
    uint64_t ignored = 0;
    RemoveOwnedFiles(s.dir_fd, &ignored, /*max_passes=*/1);
    bool not_empty = false;
    char name[96];
    for (std::string_view prefix : {kPrefix, kStagingPrefix}) {
      if (!JoinName(name, sizeof(name), prefix, s.suffix)) continue;
      if (unlinkat(s.root_fd, name, AT_REMOVEDIR) == 0) {
        RemoveRootIfEmpty(s.root_fd, s.root_path);
        return;
      }
      if (errno == ENOTEMPTY || errno == EEXIST) not_empty = true;
    }
    if (!not_empty) break;
  }
  RemoveRootIfEmpty(s.root_fd, s.root_path);
}

void RemoveArmedDirectories() {
  for (CleanupSlot& s : g_slots)
    if (s.state.load() == kArmed) RemoveInHandler(s);
}

// -1 when the table is full (the directory is then removed only normally, or by a later run's reclaim).
int ArmCleanup(int root_fd, const std::string& root_path, int dir_fd, const std::string& suffix) {
  static const bool hooked = AddFatalSignalHook(&RemoveArmedDirectories);
  struct stat st {};
  if (!hooked || suffix.size() >= sizeof(CleanupSlot::suffix) || root_path.size() >= sizeof(CleanupSlot::root_path) ||
      fstat(dir_fd, &st) != 0)
    return -1;
  for (int i = 0; i < kCleanupSlots; ++i) {
    int expected = kFree;
    if (!g_slots[i].state.compare_exchange_strong(expected, kBusy)) continue;
    CleanupSlot& s = g_slots[i];
    s.root_fd = root_fd;
    s.dir_fd = dir_fd;
    s.dev = st.st_dev;
    s.ino = st.st_ino;
    std::memcpy(s.suffix, suffix.c_str(), suffix.size() + 1);
    std::memcpy(s.root_path, root_path.c_str(), root_path.size() + 1);
    s.state.store(kArmed);
    return i;
  }
  return -1;
}

void DisarmCleanup(int slot) {
  if (slot >= 0) g_slots[slot].state.store(kFree);
}

// ---- Reclaim ------------------------------------------------------------------------

// True when the process that made the staging directory `name`
// (.cloudmerge-spill-<pid>-<rand>) no longer exists. A run killed between its
// mkdir and its rename leaves such a directory; without this the next run
// would leave it for the grace minute. A pid reused since is seen as alive
// (the directory then waits for the minute), so the test errs on keeping.
bool StagingCreatorIsGone(std::string_view name) {
  name.remove_prefix(kStagingPrefix.size());
  long pid = 0;
  size_t i = 0;
  for (; i < name.size() && i < 10 && name[i] >= '0' && name[i] <= '9'; ++i) pid = pid * 10 + (name[i] - '0');
  if (i == 0 || i >= name.size() || name[i] != '-' || pid <= 1) return false;
  return kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

// The spill directory `name` of ROOT (open as root_fd) if a dead run of this
// user left it: emptied of cloudmerge's files and removed. Bytes freed.
uint64_t ReclaimOne(int root_fd, const char* name, bool staging, time_t now) {
  int dfd = openat(root_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0) return 0;  // not a directory (a symlink, a file), gone, or unreadable: not ours to judge
  uint64_t bytes = 0;
  struct stat st {}, marker {};
  const bool ours = fstat(dfd, &st) == 0 && st.st_uid == geteuid();
  // A staging directory's own lock is held by its live run (taken right after mkdir, kept after the rename).
  const bool live_staging =
      staging && (flock(dfd, LOCK_EX | LOCK_NB) != 0 ||
                  (now - st.st_mtime < kStagingGraceSeconds && !StagingCreatorIsGone(name)));
  if (!ours || live_staging) {
    close(dfd);
    return 0;
  }
  if (fstatat(dfd, kMarkerName, &marker, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(marker.st_mode) ||
      marker.st_uid != geteuid()) {
    close(dfd);
    unlinkat(root_fd, name, AT_REMOVEDIR);  // without the marker: only if empty (a removal that got that far)
    return 0;
  }
  int lock = openat(dfd, kLockName, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if ((lock < 0 && errno != ENOENT) || (lock >= 0 && flock(lock, LOCK_EX | LOCK_NB) != 0)) {
    if (lock >= 0) close(lock);  // held: a live run
    close(dfd);
    return 0;
  }
  RemoveOwnedFiles(dfd, &bytes);
  unlinkat(root_fd, name, AT_REMOVEDIR);
  if (lock >= 0) close(lock);
  close(dfd);
  return bytes;
}

uint64_t ReclaimDead(int root_fd) {
  int list = openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (list < 0) return 0;
  uint64_t bytes = 0;
  const time_t now = time(nullptr);
  ForEachEntry(list, [&](const char* entry) {
    std::string_view name = entry;
    const bool staging = StartsWith(name, kStagingPrefix);
    if (staging || StartsWith(name, kPrefix)) bytes += ReclaimOne(root_fd, entry, staging, now);
  });
  close(list);
  return bytes;
}

// ---- Errors -----------------------------------------------------------------------

Status ParentError(const std::string& parent, const std::string& what) {
  return Status::IOError(fmt::format(
      "cannot use the temporary directory {}: {}. Choose as the temporary directory an existing directory you may "
      "write to, on a disk with room for about as much as the inputs, compressed (when none is chosen cloudmerge "
      "uses $TMPDIR, else /tmp).",
      parent, what)).WithSetting(Setting::kTempDir);
}

Status RootError(const std::string& root, const std::string& what, const std::string& fix) {
  return Status::IOError(fmt::format(
      "cannot use {} for temporary files: {}. cloudmerge keeps its temporary files in a directory of its own, "
      "mode 0700, and uses it only when it is a real directory owned by you and closed to other users. {}",
      root, what, fix)).WithSetting(Setting::kTempDir);
}

Status NoSpaceError(const std::string& what, const std::string& where) {
  return Status::NoSpace(fmt::format(
      "cannot {} in {}: no space left on device. Free space there or choose a temporary directory on a larger disk "
      "(needs about as much space as the inputs, compressed).",
      what, where)).WithSetting(Setting::kTempDir);
}

}  // namespace

std::string DefaultTempParent() {
  const char* tmpdir = std::getenv("TMPDIR");
  return tmpdir != nullptr && *tmpdir != '\0' ? std::string(tmpdir) : std::string("/tmp");
}

Result<int> OpenPrivateTempRoot(const std::string& parent_in, std::string* path_out) {
  std::string parent = parent_in.empty() ? DefaultTempParent() : parent_in;
  while (parent.size() > 1 && parent.back() == '/') parent.pop_back();

  struct stat st {};
  if (stat(parent.c_str(), &st) != 0)
    return ParentError(parent, errno == ENOENT ? std::string("it does not exist") : std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) return ParentError(parent, "it is not a directory");
  if (access(parent.c_str(), W_OK | X_OK) != 0)
    return ParentError(parent, fmt::format("this user may not create files in it ({})", std::strerror(errno)));

  const uid_t uid = geteuid();
  const std::string root = fmt::format("{}/cloudmerge-{}", parent == "/" ? "" : parent, uid);
  if (path_out != nullptr) *path_out = root;
  const bool created = mkdir(root.c_str(), 0700) == 0;
  if (!created && errno != EEXIST) {
    int err = errno;
    if (err == ENOSPC || err == EDQUOT) return NoSpaceError("create a directory", parent);
    return ParentError(parent, fmt::format("cannot create {} in it ({})", root, std::strerror(err)));
  }
  int fd = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    struct stat lst {};
    if (lstat(root.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode))
      return RootError(root, "it is a symbolic link, which cloudmerge never follows there (someone may have planted "
                             "it to redirect or delete files)",
                       "Remove it, or choose as the temporary directory one only you may write to.");
    if (err == ENOTDIR)
      return RootError(root, "it is not a directory", "Remove it, or choose another temporary directory.");
    return RootError(root, std::strerror(err), "Check its permissions, or choose another temporary directory.");
  }
  if (created) fchmod(fd, 0700);  // whatever the umask did to it
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return RootError(root, std::strerror(err), "Choose another temporary directory.");
  }
  if (st.st_uid != uid) {
    close(fd);
    return RootError(
        root, fmt::format("it belongs to user {}, not to you (user {}): someone else created it", st.st_uid, uid),
        "Have it removed (by its owner or root), or choose as the temporary directory one only you may write to.");
  }
  if ((st.st_mode & 077) != 0) {
    close(fd);
    return RootError(root, fmt::format("its mode is {:04o}, which lets other users in", st.st_mode & 07777),
                     fmt::format("If nobody else has put files there, run `chmod 700 {}`; otherwise remove it, "
                                 "or choose another temporary directory.",
                                 root));
  }
  return fd;
}

Result<int> OpenAnonymousTempFile(const std::string& parent, const std::string& what) {
  std::string root;
  int fd = -1, err = 0;
  for (int attempt = 0; attempt < 8 && fd < 0; ++attempt) {
    auto root_fd = OpenPrivateTempRoot(parent, &root);
    if (!root_fd.ok()) return root_fd.status();
    fd = openat(*root_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
      // No O_TMPFILE on this file system: a random name, created exclusively and unlinked at once.
      const std::string name = fmt::format(".cloudmerge-scratch-{}-{:016x}", getpid(), RandomSeed());
      fd = openat(*root_fd, name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (fd >= 0) unlinkat(*root_fd, name.c_str(), 0);
    }
    err = errno;
    // The file has no name: the root need not stay for it.
    RemoveRootIfEmpty(*root_fd, root.c_str());
    close(*root_fd);
    if (fd < 0 && err != ENOENT) break;  // ENOENT: another run removed the root meanwhile; again
  }
  if (fd >= 0) return fd;
  if (err == ENOSPC || err == EDQUOT) return NoSpaceError(what, root);
  return ParentError(root, fmt::format("cannot {} there ({})", what, std::strerror(err)));
}

Result<std::unique_ptr<SpillDirectory>> SpillDirectory::Create(const std::string& parent,
                                                               uint64_t* reclaimed_bytes) {
  if (reclaimed_bytes != nullptr) *reclaimed_bytes = 0;
  std::string root;
  auto root_fd = OpenPrivateTempRoot(parent, &root);
  if (!root_fd.ok()) return root_fd.status();
  std::unique_ptr<SpillDirectory> dir(new SpillDirectory());
  dir->root_fd_ = *root_fd;  // closed (and removed if left empty) by the destructor from here on
  dir->root_path_ = root;

  uint64_t reclaimed = ReclaimDead(dir->root_fd_);
  if (reclaimed_bytes != nullptr) *reclaimed_bytes = reclaimed;

  for (int attempt = 0; attempt < 8; ++attempt) {
    const std::string suffix = fmt::format("{}-{:016x}", getpid(), RandomSeed());
    const std::string staging = fmt::format("{}{}", kStagingPrefix, suffix);
    const std::string final_name = fmt::format("{}{}", kPrefix, suffix);
    if (mkdirat(dir->root_fd_, staging.c_str(), 0700) != 0) {
      int err = errno;
      if (err == EEXIST) continue;
      if (err == ENOENT) {  // another run, ending, removed the empty root meanwhile: open it again
        close(dir->root_fd_);
        dir->root_fd_ = -1;
        auto again = OpenPrivateTempRoot(parent, &root);
        if (!again.ok()) return again.status();
        dir->root_fd_ = *again;
        continue;
      }
      if (err == ENOSPC || err == EDQUOT) return NoSpaceError("create a spill directory", root);
      return ParentError(root, fmt::format("cannot create {} in it ({})", staging, std::strerror(err)));
    }
    auto fail = [&](const std::string& what, int err) -> Status {
      if (dir->dir_fd_ >= 0) {
        uint64_t ignored = 0;
        RemoveOwnedFiles(dir->dir_fd_, &ignored);
      }
      unlinkat(dir->root_fd_, staging.c_str(), AT_REMOVEDIR);
      if (err == ENOSPC || err == EDQUOT) return NoSpaceError(what, root);
      return ParentError(root, fmt::format("cannot {} ({})", what, std::strerror(err)));
    };
    dir->dir_fd_ = openat(dir->root_fd_, staging.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir->dir_fd_ < 0) return fail("open the new spill directory", errno);
    // Marks the staging directory as alive for reclaimers (held for the run's life). Blocking: a reclaimer may
    // hold it for the instant it takes to see the directory is young and its process alive.
    if (flock(dir->dir_fd_, LOCK_EX) != 0) return fail("lock the new spill directory", errno);
    // Armed before anything is written, so that no signal can leave the directory behind.
    dir->slot_ = ArmCleanup(dir->root_fd_, root, dir->dir_fd_, suffix);
    int marker = openat(dir->dir_fd_, kMarkerName, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (marker < 0) return fail("create the spill directory's marker file", errno);
    const bool written =
        write(marker, kMarkerText.data(), kMarkerText.size()) == static_cast<ssize_t>(kMarkerText.size());
    int write_err = errno;
    close(marker);
    if (!written) return fail("write the spill directory's marker file", write_err);
    dir->lock_fd_ = openat(dir->dir_fd_, kLockName, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (dir->lock_fd_ < 0) return fail("create the spill directory's lock file", errno);
    if (flock(dir->lock_fd_, LOCK_EX | LOCK_NB) != 0) return fail("lock the spill directory's lock file", errno);
    if (renameat(dir->root_fd_, staging.c_str(), dir->root_fd_, final_name.c_str()) != 0)
      return fail("name the spill directory", errno);
    dir->name_ = final_name;
    dir->path_ = root + "/" + final_name;
    return dir;
  }
  return Status::Internal(fmt::format("cannot pick an unused spill directory name in {} in 8 attempts", root));
}

SpillDirectory::~SpillDirectory() {
  if (dir_fd_ >= 0) {
    uint64_t ignored = 0;
    RemoveOwnedFiles(dir_fd_, &ignored);
    if (!name_.empty()) unlinkat(root_fd_, name_.c_str(), AT_REMOVEDIR);
  }
  if (root_fd_ >= 0 && !root_path_.empty()) RemoveRootIfEmpty(root_fd_, root_path_.c_str());
  DisarmCleanup(slot_);
  if (lock_fd_ >= 0) close(lock_fd_);
  if (dir_fd_ >= 0) close(dir_fd_);
  if (root_fd_ >= 0) close(root_fd_);
}

std::string SpillDirectory::NewPath(std::string_view stem) {
  WaitIfProcessIsEnding();  // a file created now could outlive the fatal-signal cleanup
  return fmt::format("{}/{}-{}.spill", path_, stem, counter_.fetch_add(1, std::memory_order_relaxed));
}

uint64_t SpillDirectory::FreeBytes() const {
  struct statvfs vfs {};
  if (fstatvfs(dir_fd_, &vfs) != 0) return 0;
  return static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
}

}  // namespace cloudmerge
