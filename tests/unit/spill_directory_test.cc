// The spill directory: created unique and locked in the per-user private root
// PARENT/cloudmerge-<uid>/, removed on destruction and on fatal signals, dead
// runs' directories (SIGKILLed, or left half-removed) reclaimed with their
// byte count, live ones left alone, bad parents and unsafe private roots
// refused with a clear error; nothing cloudmerge did not create is removed
// (symlinks, other users' directories, directories without the marker,
// foreign files inside a spill directory).
#include "cloudmerge/io/spill_directory.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utime.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace cloudmerge {
namespace {

namespace fs = std::filesystem;

void WriteFile(const fs::path& p, size_t bytes) { std::ofstream(p, std::ios::binary) << std::string(bytes, 'z'); }

class SpillDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    parent_ = fs::path(::testing::TempDir()) / ("cm_spill_dir_" + std::to_string(::getpid()));
    fs::remove_all(parent_);
    fs::create_directories(parent_);
    root_ = parent_ / ("cloudmerge-" + std::to_string(geteuid()));
  }
  void TearDown() override {
    fs::permissions(parent_, fs::perms::owner_all);
    fs::remove_all(parent_);
  }

  std::unique_ptr<SpillDirectory> Create(uint64_t* reclaimed = nullptr) {
    auto d = SpillDirectory::Create(parent_.string(), reclaimed);
    EXPECT_TRUE(d.ok()) << d.status().message();
    return d.ok() ? std::move(d.value()) : nullptr;
  }
  // The entries of the private root (where the spill directories are; removed when left empty).
  std::vector<std::string> Entries() {
    std::vector<std::string> names;
    if (!fs::exists(root_)) return names;
    for (const auto& e : fs::directory_iterator(root_)) names.push_back(e.path().filename().string());
    return names;
  }
  // A directory as a dead run leaves it: marker and lock file exist but nobody holds the lock.
  fs::path MakeDead(const std::string& name, size_t bytes_a, size_t bytes_b) {
    fs::create_directories(root_);
    fs::permissions(root_, fs::perms::owner_all);
    fs::path d = root_ / name;
    fs::create_directories(d);
    WriteFile(d / ".cloudmerge-spill-dir", 0);
    WriteFile(d / ".lock", 0);
    WriteFile(d / "x-0.spill", bytes_a);
    WriteFile(d / "y-1.spill", bytes_b);
    return d;
  }

  fs::path parent_;
  fs::path root_;  // parent_/cloudmerge-<uid>
};

TEST_F(SpillDirectoryTest, CreatesALockedDirectoryAndRemovesItOnDestruction) {
  auto d = Create();
  ASSERT_TRUE(d);
  fs::path p = d->path();
  EXPECT_EQ(p.parent_path(), root_);
  EXPECT_EQ(fs::status(root_).permissions(), fs::perms::owner_all) << "the private root is 0700";
  EXPECT_TRUE(fs::is_regular_file(p / ".cloudmerge-spill-dir")) << "the marker";
  EXPECT_EQ(p.filename().string().rfind("cloudmerge-spill-" + std::to_string(getpid()) + "-", 0), 0u) << p;
  EXPECT_TRUE(fs::is_directory(p));
  ASSERT_TRUE(fs::exists(p / ".lock"));
  // The lock is held: a second open file description cannot take it.
  int fd = open((p / ".lock").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  EXPECT_NE(flock(fd, LOCK_EX | LOCK_NB), 0);
  close(fd);
  EXPECT_EQ(Entries().size(), 1u) << "no staging directory left behind";

  WriteFile(d->NewPath("x"), 1000);
  WriteFile(d->NewPath("y"), 10);
  EXPECT_GT(d->FreeBytes(), 0u);
  d.reset();
  EXPECT_FALSE(fs::exists(p));
  EXPECT_FALSE(fs::exists(root_)) << "the temp dir is left as it was found";
}

TEST_F(SpillDirectoryTest, OnlyItsOwnFilesAreRemoved) {
  // Something put inside a live run's directory (not by cloudmerge) stays, and so does the directory.
  auto d = Create();
  ASSERT_TRUE(d);
  fs::path p = d->path();
  WriteFile(d->NewPath("x"), 1000);
  fs::create_directories(p / "nested");
  WriteFile(p / "nested" / "keep.spill", 10);
  WriteFile(p / "notes.txt", 10);
  d.reset();
  EXPECT_FALSE(fs::exists(p / "x-0.spill"));
  EXPECT_FALSE(fs::exists(p / ".lock"));
  EXPECT_TRUE(fs::exists(p / "nested" / "keep.spill"));
  EXPECT_TRUE(fs::exists(p / "notes.txt"));
}

TEST_F(SpillDirectoryTest, PathsAreUniqueAcrossThreadsAndDirectories) {
  auto a = Create(), b = Create();
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->path(), b->path());
  std::vector<std::vector<std::string>> per_thread(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 1000; ++i) per_thread[t].push_back(a->NewPath(t % 2 ? "x" : "y"));
    });
  for (auto& t : threads) t.join();
  std::set<std::string> all;
  for (const auto& v : per_thread)
    for (const auto& p : v) {
      EXPECT_EQ(fs::path(p).parent_path(), fs::path(a->path()));
      EXPECT_EQ(fs::path(p).extension(), ".spill");
      all.insert(p);
    }
  EXPECT_EQ(all.size(), 4000u);
  EXPECT_NE(a->NewPath("x"), b->NewPath("x"));
}

TEST_F(SpillDirectoryTest, DeadSiblingIsReclaimedWithItsByteCount) {
  fs::path dead = MakeDead("cloudmerge-spill-999999-00000000deadbeef", 1000, 2345);
  fs::path lockless = root_ / "cloudmerge-spill-999998-0000000000000001";  // an interrupted removal
  fs::create_directories(lockless);
  WriteFile(lockless / ".cloudmerge-spill-dir", 0);
  WriteFile(lockless / "z-3.spill", 55);
  fs::path unrelated = root_ / "someone-elses-dir";
  fs::create_directories(unrelated);
  WriteFile(unrelated / ".lock", 0);
  WriteFile(root_ / "cloudmerge-spill-not-a-directory", 7);
  fs::path empty = root_ / "cloudmerge-spill-999997-0000000000000002";  // a removal that got to rmdir
  fs::create_directories(empty);

  uint64_t reclaimed = 0;
  auto d = Create(&reclaimed);
  ASSERT_TRUE(d);
  EXPECT_EQ(reclaimed, 1000u + 2345u + 55u);
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_FALSE(fs::exists(lockless));
  EXPECT_FALSE(fs::exists(empty));
  EXPECT_TRUE(fs::exists(unrelated / ".lock")) << "only cloudmerge-spill-* directories are touched";
  EXPECT_TRUE(fs::exists(root_ / "cloudmerge-spill-not-a-directory"));
}

TEST_F(SpillDirectoryTest, LiveSiblingsAreLeftAlone) {
  // One locked by hand through another open file description (flock locks
  // belong to it, so this conflicts even within one process)...
  fs::path live = MakeDead("cloudmerge-spill-999999-0000000000001111", 100, 200);
  int fd = open((live / ".lock").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(flock(fd, LOCK_EX | LOCK_NB), 0);
  // ...and a real one.
  auto first = Create();
  ASSERT_TRUE(first);
  WriteFile(first->NewPath("x"), 500);

  uint64_t reclaimed = 12345;
  auto second = Create(&reclaimed);
  ASSERT_TRUE(second);
  EXPECT_EQ(reclaimed, 0u);
  EXPECT_TRUE(fs::exists(live / "x-0.spill"));
  EXPECT_TRUE(fs::exists(live / "y-1.spill"));
  EXPECT_TRUE(fs::exists(first->path()));

  // Once released, the hand-locked one is dead and goes on the next start.
  close(fd);
  auto third = Create(&reclaimed);
  EXPECT_EQ(reclaimed, 300u);
  EXPECT_FALSE(fs::exists(live));
  EXPECT_TRUE(fs::exists(first->path()));
}

TEST_F(SpillDirectoryTest, StagingDirectoriesGetAMinuteOfGrace) {
  // A young staging directory of a live process (this one) may be between its mkdir and its flock: it stays.
  fs::path young = MakeDead(fmt::format(".cloudmerge-spill-{}-000000000000aaaa", getpid()), 10, 20);
  fs::path old = MakeDead(fmt::format(".cloudmerge-spill-{}-000000000000bbbb", getpid()), 30, 40);
  struct utimbuf long_ago {time(nullptr) - 3600, time(nullptr) - 3600};
  ASSERT_EQ(utime(old.c_str(), &long_ago), 0);
  uint64_t reclaimed = 0;
  auto d = Create(&reclaimed);
  EXPECT_EQ(reclaimed, 70u);
  EXPECT_TRUE(fs::exists(young / "x-0.spill")) << "a run may be between its mkdir and its rename";
  EXPECT_FALSE(fs::exists(old));
}

// A run SIGKILLed between its mkdir and its rename (seen in the kill campaign under ASan): the next run removes
// the young staging directory at once when the process its name carries is gone, not a minute later.
TEST_F(SpillDirectoryTest, AYoungStagingDirectoryOfADeadProcessIsReclaimed) {
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);  // reaped: its pid names no process
  fs::path orphan = MakeDead(fmt::format(".cloudmerge-spill-{}-000000000000cccc", child), 5, 6);
  fs::path unmarked = root_ / fmt::format(".cloudmerge-spill-{}-000000000000dddd", child);  // killed before its marker
  fs::create_directories(unmarked);
  uint64_t reclaimed = 0;
  auto d = Create(&reclaimed);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(reclaimed, 11u);
  EXPECT_FALSE(fs::exists(orphan));
  EXPECT_FALSE(fs::exists(unmarked));
}

// A live run's staging directory is locked from right after its mkdir: even old and with its process's pid
// unknown, a reclaimer leaves it.
TEST_F(SpillDirectoryTest, ALockedStagingDirectoryIsNeverReclaimed) {
  fs::path held = MakeDead(".cloudmerge-spill-999999-000000000000eeee", 7, 8);
  struct utimbuf long_ago {time(nullptr) - 3600, time(nullptr) - 3600};
  ASSERT_EQ(utime(held.c_str(), &long_ago), 0);
  int fd = open(held.c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(flock(fd, LOCK_EX), 0);
  uint64_t reclaimed = 0;
  auto d = Create(&reclaimed);
  EXPECT_EQ(reclaimed, 0u);
  EXPECT_TRUE(fs::exists(held / "x-0.spill"));
  close(fd);
}

// Forks a child that creates a spill directory, runs fill on it, then raises
// sig. Returns the directory's path once the signal has ended the child ("" ,
// with a failure recorded, otherwise).
template <class Fill>
std::string SpillDirectoryOfSignalledChild(const fs::path& parent, int sig, Fill&& fill) {
  int pipefd[2];
  if (pipe(pipefd) != 0) return ADD_FAILURE() << "pipe", "";
  pid_t pid = fork();
  if (pid < 0) return ADD_FAILURE() << "fork", "";
  if (pid == 0) {
    auto d = SpillDirectory::Create(parent.string(), nullptr);
    if (!d.ok()) _exit(1);
    fill(**d);
    std::string p = (*d)->path();
    if (write(pipefd[1], p.data(), p.size()) != static_cast<ssize_t>(p.size())) _exit(2);
    raise(sig);
    _exit(3);
  }
  close(pipefd[1]);
  char buf[4096];
  ssize_t n = read(pipefd[0], buf, sizeof(buf));
  close(pipefd[0]);
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return ADD_FAILURE() << "waitpid", "";
  if (!WIFSIGNALED(status) || WTERMSIG(status) != sig)
    return ADD_FAILURE() << "the signal does not end the process: status " << status, "";
  if (n <= 0) return ADD_FAILURE() << "the child did not say its directory", "";
  return std::string(buf, static_cast<size_t>(n));
}

TEST_F(SpillDirectoryTest, ARunKilledWithSigkillIsReclaimedByTheNext) {
  // SIGKILL: no destructor, no handler, as the OOM killer would.
  fs::path left = SpillDirectoryOfSignalledChild(parent_, SIGKILL, [](SpillDirectory& d) {
    WriteFile(d.NewPath("x"), 4321);
  });
  ASSERT_FALSE(left.empty());
  ASSERT_TRUE(fs::exists(left)) << "SIGKILL cannot clean up: the directory stays";

  uint64_t reclaimed = 0;
  auto d = Create(&reclaimed);
  EXPECT_EQ(reclaimed, 4321u);
  EXPECT_FALSE(fs::exists(left));
}

TEST_F(SpillDirectoryTest, FatalSignalsRemoveTheDirectory) {
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
    SCOPED_TRACE(strsignal(sig));
    std::string dir = SpillDirectoryOfSignalledChild(parent_, sig, [](SpillDirectory& d) {
      for (int i = 0; i < 300; ++i) WriteFile(d.NewPath("x"), 100);  // more than one getdents64 batch
    });
    ASSERT_FALSE(dir.empty());
    EXPECT_FALSE(fs::exists(dir));
    EXPECT_TRUE(Entries().empty());
  }
}

// The signal stops only the thread it reaches: the run's other threads go on
// creating spill files while the handler empties the directory (a TSan CI run
// left the directory behind this way). NewPath stops them once the handler
// has started, and the handler empties and removes again until the removal
// succeeds.
TEST_F(SpillDirectoryTest, FatalSignalRemovesTheDirectoryWhileAnotherThreadKeepsCreatingFiles) {
  for (int round = 0; round < 10; ++round) {
    SCOPED_TRACE(round);
    std::string dir = SpillDirectoryOfSignalledChild(parent_, SIGINT, [](SpillDirectory& d) {
      // A run creates a bounded number of files (partitions, runs, ranges); this
      // thread creates files for half a second, or until the directory is gone.
      // It outlives this function (the signal ends the process), so what it
      // uses is on the heap.
      auto* created = new std::atomic<int>(0);
      new std::thread([&d, created] {
        const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
        while (std::chrono::steady_clock::now() < end) {
          int fd = open(d.NewPath("w").c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
          if (fd < 0) return;
          close(fd);
          created->fetch_add(1);
        }
      });
      while (created->load() < 50) std::this_thread::yield();
    });
    ASSERT_FALSE(dir.empty());
    EXPECT_FALSE(fs::exists(dir));
    EXPECT_TRUE(Entries().empty());
  }
}


TEST_F(SpillDirectoryTest, ManyAtOnceAllRemoved) {
  // More than the signal handler's table holds: the rest still work, and are removed normally.
  std::vector<std::unique_ptr<SpillDirectory>> dirs;
  for (int i = 0; i < 20; ++i) dirs.push_back(Create());
  std::set<std::string> paths;
  for (auto& d : dirs) {
    ASSERT_TRUE(d);
    paths.insert(d->path());
  }
  EXPECT_EQ(paths.size(), 20u);
  dirs.clear();
  EXPECT_TRUE(Entries().empty());
}

TEST_F(SpillDirectoryTest, BadParentIsAClearError) {
  auto missing = SpillDirectory::Create((parent_ / "no" / "such").string(), nullptr);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Status::Code::kIOError);
  EXPECT_NE(missing.status().message().find((parent_ / "no" / "such").string()), std::string::npos);
  EXPECT_NE(missing.status().message().find("does not exist"), std::string::npos) << missing.status().message();
  EXPECT_EQ(missing.status().setting(), Setting::kTempDir);
  EXPECT_NE(missing.status().message().find("temporary directory"), std::string::npos);
  EXPECT_EQ(missing.status().message().find("--temp-dir"), std::string::npos) << missing.status().message();

  WriteFile(parent_ / "file", 1);
  auto file = SpillDirectory::Create((parent_ / "file").string(), nullptr);
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.status().message().find("not a directory"), std::string::npos) << file.status().message();

}

TEST_F(SpillDirectoryTest, ReadOnlyParentIsAClearError) {
  // As root everything is writable: check as `nobody` (65534) in a child
  // process, in a directory owned by root that only root may write to.
  fs::path ro = parent_ / "ro";
  fs::create_directories(ro);
  fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                          fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec);
  fs::permissions(parent_, fs::perms::owner_all | fs::perms::others_exec | fs::perms::group_exec);
  auto check = [&]() -> std::string {
    auto d = SpillDirectory::Create(ro.string(), nullptr);
    if (d.ok()) return "created a spill directory in a read-only parent";
    const std::string& m = d.status().message();
    if (m.find("may not create files") == std::string::npos || m.find(ro.string()) == std::string::npos)
      return "unclear message: " + m;
    return "";
  };
  if (geteuid() != 0) {
    EXPECT_EQ(check(), "");
    return;
  }
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::string problem = setgid(65534) == 0 && setuid(65534) == 0 ? check() : "cannot become nobody";
    ssize_t ignored = write(pipefd[1], problem.data(), problem.size());
    (void)ignored;
    _exit(0);
  }
  close(pipefd[1]);
  std::string problem;
  char buf[4096];
  for (ssize_t n; (n = read(pipefd[0], buf, sizeof(buf))) > 0;) problem.append(buf, static_cast<size_t>(n));
  close(pipefd[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_EQ(problem, "");
}

// What a local attacker or a careless user may have put in the temp dir:
// nothing of it is removed, whatever its name.
TEST_F(SpillDirectoryTest, NeverRemovesWhatItDidNotCreate) {
  fs::path victim = parent_ / "victim";
  fs::create_directories(victim);
  for (int i = 0; i < 5; ++i) WriteFile(victim / ("x-" + std::to_string(i) + ".spill"), 10);
  WriteFile(victim / ".lock", 0);
  WriteFile(victim / ".cloudmerge-spill-dir", 0);
  // In the parent (where earlier versions tidied up): a user's folder, a planted
  // symlink, an old-style dead spill directory. Never looked at.
  fs::create_directories(parent_ / "cloudmerge-spill-results");
  WriteFile(parent_ / "cloudmerge-spill-results" / "results.spill", 10);
  fs::create_directory_symlink(victim, parent_ / "cloudmerge-spill-1-0000000000000001");
  fs::create_directories(parent_ / "cloudmerge-spill-2-0000000000000002");
  WriteFile(parent_ / "cloudmerge-spill-2-0000000000000002" / ".lock", 0);
  WriteFile(parent_ / "cloudmerge-spill-2-0000000000000002" / "x-0.spill", 10);
  // In the private root (only reachable by this user, but still): a symlink to
  // the victim, a directory without the marker, one with the marker owned by
  // another user (as root: nobody).
  fs::create_directories(root_);
  fs::permissions(root_, fs::perms::owner_all);
  fs::create_directory_symlink(victim, root_ / "cloudmerge-spill-3-0000000000000003");
  fs::create_directory_symlink(victim, root_ / ".cloudmerge-spill-4-0000000000000004");
  fs::path unmarked = root_ / "cloudmerge-spill-5-0000000000000005";
  fs::create_directories(unmarked);
  WriteFile(unmarked / ".lock", 0);
  WriteFile(unmarked / "x-0.spill", 10);
  fs::path foreign = MakeDead("cloudmerge-spill-6-0000000000000006", 10, 10);
  const bool root = geteuid() == 0;
  if (root) {
    for (const char* f : {"", ".lock", ".cloudmerge-spill-dir", "x-0.spill", "y-1.spill"})
      ASSERT_EQ(lchown((foreign / f).c_str(), 65534, 65534), 0);
  }

  uint64_t reclaimed = 0;
  auto d = Create(&reclaimed);
  ASSERT_TRUE(d);
  d.reset();
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(fs::exists(victim / ("x-" + std::to_string(i) + ".spill"))) << i;
  EXPECT_TRUE(fs::exists(victim / ".lock"));
  EXPECT_TRUE(fs::exists(parent_ / "cloudmerge-spill-results" / "results.spill"));
  EXPECT_TRUE(fs::is_symlink(parent_ / "cloudmerge-spill-1-0000000000000001"));
  EXPECT_TRUE(fs::exists(parent_ / "cloudmerge-spill-2-0000000000000002" / "x-0.spill"));
  EXPECT_TRUE(fs::is_symlink(root_ / "cloudmerge-spill-3-0000000000000003"));
  EXPECT_TRUE(fs::exists(unmarked / "x-0.spill"));
  if (root) {
    EXPECT_TRUE(fs::exists(foreign / "x-0.spill")) << "another user's directory";
    EXPECT_EQ(reclaimed, 0u);
  }
}

// The private root is used only when it is a real directory, ours, mode 0700.
TEST_F(SpillDirectoryTest, UnsafePrivateRootIsAClearError) {
  fs::path victim = parent_ / "victim";
  fs::create_directories(victim / "cloudmerge-spill-9-0000000000000009");
  WriteFile(victim / "cloudmerge-spill-9-0000000000000009" / ".cloudmerge-spill-dir", 0);
  WriteFile(victim / "cloudmerge-spill-9-0000000000000009" / "x-0.spill", 10);
  fs::create_directory_symlink(victim, root_);
  auto linked = SpillDirectory::Create(parent_.string(), nullptr);
  ASSERT_FALSE(linked.ok());
  EXPECT_EQ(linked.status().code(), Status::Code::kIOError);
  EXPECT_NE(linked.status().message().find("symbolic link"), std::string::npos) << linked.status().message();
  EXPECT_NE(linked.status().message().find(root_.string()), std::string::npos) << linked.status().message();
  EXPECT_TRUE(fs::exists(victim / "cloudmerge-spill-9-0000000000000009" / "x-0.spill"));
  fs::remove(root_);

  fs::create_directories(root_);
  fs::permissions(root_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                             fs::perms::others_read | fs::perms::others_exec);
  auto open = SpillDirectory::Create(parent_.string(), nullptr);
  ASSERT_FALSE(open.ok());
  EXPECT_NE(open.status().message().find("mode is 0755"), std::string::npos) << open.status().message();
  EXPECT_NE(open.status().message().find("chmod 700"), std::string::npos) << open.status().message();

  if (geteuid() == 0) {
    fs::permissions(root_, fs::perms::owner_all);
    ASSERT_EQ(chown(root_.c_str(), 65534, 65534), 0);
    auto theirs = SpillDirectory::Create(parent_.string(), nullptr);
    ASSERT_FALSE(theirs.ok());
    EXPECT_NE(theirs.status().message().find("belongs to user 65534"), std::string::npos)
        << theirs.status().message();
  }
}

TEST_F(SpillDirectoryTest, AnonymousTempFilesLeaveNothingBehind) {
  auto fd = OpenAnonymousTempFile(parent_.string(), "spool standard input");
  ASSERT_TRUE(fd.ok()) << fd.status().message();
  ASSERT_EQ(write(*fd, "abc", 3), 3);
  char buf[3];
  ASSERT_EQ(pread(*fd, buf, 3, 0), 3);
  EXPECT_EQ(std::string(buf, 3), "abc");
  EXPECT_TRUE(Entries().empty()) << "unnamed from the start";
  close(*fd);
}

TEST(SpillDirectoryDefaultTest, DefaultParentIsTmpdirElseTmp) {
  const char* saved = std::getenv("TMPDIR");
  std::optional<std::string> old = saved ? std::optional<std::string>(saved) : std::nullopt;
  setenv("TMPDIR", "/var/scratch", 1);
  EXPECT_EQ(DefaultTempParent(), "/var/scratch");
  setenv("TMPDIR", "", 1);
  EXPECT_EQ(DefaultTempParent(), "/tmp");
  unsetenv("TMPDIR");
  EXPECT_EQ(DefaultTempParent(), "/tmp");
  if (old) setenv("TMPDIR", old->c_str(), 1);
}

}  // namespace
}  // namespace cloudmerge
