// The probe and build pieces the in-memory join (in_memory_probe.cc) and the
// out-of-core partition join (grace_join.cc) share:
//
//   - ProbeBatch: the prefetch-batched probe loop. A probe costs dependent
//     cache misses (the table slot, then the y row it names, then that row's
//     text); looked up one by one they serialise. Rows are gathered in batches
//     of kProbeBatch (their slots prefetched as they are added), then the batch
//     runs stage by stage: find every head and prefetch its row, prefetch every
//     row's text, emit every match. Emission keeps the order rows were added in.
//   - InsertLastToFirst: the build loop, keys made a few rows early so their
//     buckets are prefetched before the insert that needs them.
//   - CountChains: each row's chain length from it on (so a head's is its key's
//     y row count), for key statistics and --max-output-rows.
//
// Thread safety: a ProbeBatch is used by one thread; CountChains is pure.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cloudmerge/engine/join_hash_table.h"

namespace cloudmerge {

// Rows per batch: enough misses in flight to cover DRAM latency, few enough
// that the prefetched lines are still in L1/L2 when they are used.
inline constexpr size_t kProbeBatch = 32;

// Item: what the caller keeps per probed row (its key, where its text is...).
template <class Item>
class ProbeBatch {
 public:
  bool empty() const { return n_ == 0; }
  bool full() const { return n_ == kProbeBatch; }
  // REQUIRES: !full(). The caller prefetches the item's slot (table Prefetch).
  void Add(const Item& item) { items_[n_++] = item; }

  // Runs the batch: find(item) -> head (kNoRow: no match); prefetch_row(head);
  // prefetch_text(head); emit(item, head) for every match, in order.
  template <class Find, class PrefetchRow, class PrefetchText, class Emit>
  void Flush(Find&& find, PrefetchRow&& prefetch_row, PrefetchText&& prefetch_text, Emit&& emit) {
    for (size_t i = 0; i < n_; ++i) {
      heads_[i] = find(items_[i]);
      if (heads_[i] != kNoRow) prefetch_row(heads_[i]);
    }
    for (size_t i = 0; i < n_; ++i)
      if (heads_[i] != kNoRow) prefetch_text(heads_[i]);
    for (size_t i = 0; i < n_; ++i)
      if (heads_[i] != kNoRow) emit(items_[i], heads_[i]);
    n_ = 0;
  }

 private:
  Item items_[kProbeBatch];
  uint32_t heads_[kProbeBatch];
  size_t n_ = 0;
};

// Inserts rows n-1 down to 0 (prepending to chains leaves them in file order).
// Row i's key is made kBuildAhead rows before its insert and its bucket
// prefetched then: make_key(i, Key*) is false for a row without a key (skipped),
// prefetch(const Key&), insert(i, const Key&).
inline constexpr size_t kBuildAhead = 8;
template <class Key, class MakeKeyOf, class Prefetch, class Insert>
void InsertLastToFirst(size_t n, MakeKeyOf&& make_key, Prefetch&& prefetch, Insert&& insert) {
  Key ring[kBuildAhead];
  bool valid[kBuildAhead] = {};
  auto stage = [&](size_t i) {
    const size_t r = i % kBuildAhead;
    valid[r] = make_key(i, &ring[r]);
    if (valid[r]) prefetch(ring[r]);
  };
  for (size_t i = n; i-- > 0 && i + kBuildAhead >= n;) stage(i);
  for (size_t i = n; i-- > 0;) {
    const size_t r = i % kBuildAhead;  // row i, staged kBuildAhead rows ago
    if (valid[r]) insert(i, ring[r]);
    if (i >= kBuildAhead) stage(i - kBuildAhead);  // reuses ring slot r, just consumed
  }
}

// chain_at(i) (a uint32_t&) = rows from i to the end of its chain (next_of(i)
// gives the following row or kNoRow); rows that are !present(i) (no key) get 0.
// Chains run forward in the file (next > i), so one backward pass suffices.
template <class NextOf, class Present, class ChainAt>
void CountChains(size_t n, NextOf&& next_of, Present&& present, ChainAt&& chain_at) {
  for (size_t i = n; i-- > 0;) {
    if (!present(i)) {
      chain_at(i) = 0;
      continue;
    }
    uint32_t next = next_of(i);
    chain_at(i) = 1 + (next == kNoRow ? 0 : chain_at(next));
  }
}

}  // namespace cloudmerge
