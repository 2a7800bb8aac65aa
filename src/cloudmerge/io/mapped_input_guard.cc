// The SIGBUS guard of mapped inputs (mapped_input_guard.h).
#include "cloudmerge/io/mapped_input_guard.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

namespace cloudmerge {
namespace {

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

}  // namespace

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

bool MappingTruncated(int slot) { return slot >= 0 && g_maps[slot].truncated.load(); }

}  // namespace cloudmerge
