// BigArray: zeroed on creation, and PrefaultForWrite leaves no fault for the
// writes that follow it (the in-memory build calls it on its hash tables).
#include "cloudmerge/base/big_array.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cstdint>
#include <fstream>

namespace cloudmerge {
namespace {

long MinorFaults() {
  rusage u{};
  getrusage(RUSAGE_THREAD, &u);
  return u.ru_minflt;
}

// Reads one byte of every page (as a hash table's inserts look before they
// write), then writes one; the faults the writes took.
long FaultsOfWritesAfterReads(BigArray<char>& a) {
  volatile char* p = a.data();
  long sum = 0;
  for (size_t i = 0; i < a.size(); i += BigArray<char>::kPageBytes) sum += p[i];
  EXPECT_EQ(sum, 0);  // handed out zeroed
  const long before = MinorFaults();
  for (size_t i = 0; i < a.size(); i += BigArray<char>::kPageBytes) p[i] = 1;
  return MinorFaults() - before;
}

TEST(BigArray, PrefaultForWriteLeavesNoFaultForTheWritesThatFollow) {
  constexpr size_t kBytes = size_t{64} << 20;
  BigArray<char> control(kBytes);
  // Read first, each page (4 KiB, or 2 MiB huge) is mapped to the zero page and
  // copied on its first write: at least one fault per huge page. (A kernel told
  // not to map huge pages to the zero page allocates them on the read.)
  const long control_faults = FaultsOfWritesAfterReads(control);
  std::ifstream zero_page("/sys/kernel/mm/transparent_hugepage/use_zero_page");
  int use_zero_page = 1;
  zero_page >> use_zero_page;
  if (use_zero_page) EXPECT_GE(control_faults, static_cast<long>(kBytes >> 21));
  BigArray<char> prefaulted(kBytes);
  prefaulted.PrefaultForWrite();
  EXPECT_LE(FaultsOfWritesAfterReads(prefaulted), 1);
  for (size_t i = 0; i < kBytes; i += 12345) EXPECT_EQ(prefaulted[i], (i % BigArray<char>::kPageBytes) ? 0 : 1);
}

}  // namespace
}  // namespace cloudmerge
