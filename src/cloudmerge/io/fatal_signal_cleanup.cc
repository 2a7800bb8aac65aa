// The fatal-signal cleanup registry (fatal_signal_cleanup.h).
#include "cloudmerge/io/fatal_signal_cleanup.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>

namespace cloudmerge {
namespace {

// A slot is kFree, claimed (kFilling) while its path is copied in, then
// kArmed; the handler only reads kArmed slots.
enum SlotState : int { kFree = 0, kFilling = 1, kArmed = 2 };
struct CleanupSlot {
  std::atomic<int> state{kFree};
  char path[PATH_MAX];
};
constexpr int kCleanupSlots = 64;
CleanupSlot g_cleanup[kCleanupSlots];

// Hooks of other modules (AddFatalSignalHook), called in the order added.
constexpr int kMaxHooks = 8;
std::atomic<FatalSignalHook> g_hooks[kMaxHooks];

std::atomic<bool> g_ending{false};

void OnFatalSignal(int sig) {
  // errno is restored before the signal is raised again: under ThreadSanitizer
  // (which delivers it only when this handler returns) and in any code the
  // handler interrupted, a changed errno would be seen as the interrupted call's.
  const int saved_errno = errno;
  g_ending.store(true);
  for (CleanupSlot& slot : g_cleanup)
    if (slot.state.load() == kArmed) ::unlink(slot.path);
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

}  // namespace

int ArmFileCleanup(const std::string& path) {
  if (path.size() >= PATH_MAX) return -1;
  InstallFatalSignalHandlers();
  for (int i = 0; i < kCleanupSlots; ++i) {
    int expected = kFree;
    if (!g_cleanup[i].state.compare_exchange_strong(expected, kFilling)) continue;
    std::memcpy(g_cleanup[i].path, path.c_str(), path.size() + 1);
    g_cleanup[i].state.store(kArmed);
    return i;
  }
  return -1;
}

void DisarmFileCleanup(int slot) {
  if (slot >= 0 && slot < kCleanupSlots) g_cleanup[slot].state.store(kFree);
}

void WaitIfProcessIsEnding() {
  while (g_ending.load()) ::pause();  // the handler's raise ends the process
}

bool AddFatalSignalHook(FatalSignalHook hook) {
  InstallFatalSignalHandlers();
  for (auto& slot : g_hooks) {
    FatalSignalHook expected = nullptr;
    if (slot.compare_exchange_strong(expected, hook) || expected == hook) return true;
  }
  return false;
}

}  // namespace cloudmerge
