// Prefetch hints the optimiser cannot drop: the join's hash-table and row
// prefetches (probe_batch.h, join_hash_table.h) hide DRAM latency only if they
// are in the binary.
//
// Why not __builtin_prefetch alone: GCC 12 (Debian 12's compiler) infers that a
// function whose only statement is a __builtin_prefetch is pure (ipa-modref),
// and then deletes calls to it whose result is unused. Every bucket prefetch
// made through SlotArray::Prefetch was missing from the binary, so the
// in-memory probe and build waited on each bucket in turn. The empty volatile
// asm that names the address is a side effect the optimiser must keep; it costs
// no instruction. The prefetch_kept test (tests/tools/check_prefetch_kept.py) checks the built
// binary.
// Thread safety: stateless.
#pragma once

#include <cstdint>

namespace cloudmerge {

// Brings the line at p towards the core for reading (all cache levels).
inline void PrefetchForRead(const void* p) {
  __builtin_prefetch(p, 0, 3);
  asm volatile("" : : "r"(p));
}

// As PrefetchForRead, for a line about to be written.
inline void PrefetchForWrite(const void* p) {
  __builtin_prefetch(p, 1, 3);
  asm volatile("" : : "r"(p));
}

// Prefetches the bytes [first, last] for reading: first's line, and last's when
// it is another one. A join hit reads a short key and text that straddle a
// line boundary about a third of the time; the second line is the miss that
// prefetching only the start leaves.
inline void PrefetchSpanForRead(const char* first, const char* last) {
  PrefetchForRead(first);
  if ((reinterpret_cast<uintptr_t>(first) ^ reinterpret_cast<uintptr_t>(last)) >> 6) PrefetchForRead(last);
}

}  // namespace cloudmerge
