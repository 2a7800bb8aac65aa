// JoinHashTable: the build side of the hash join. Maps each distinct key of y to
// the chain of y rows holding it, in y's file order. Rows are identified by
// their index; the chains live in a `next` array owned by the caller, so a
// probe walks head -> next[head] -> ... and emits matches in y order.
//
// Open addressing with linear probing. The slot index is the hash scaled to
// the capacity (multiply-shift, any capacity, not only powers of two), so the
// table can be sized to the key count at ~0.75 load (TableLoad::kCompact) or
// ~0.5 (kSparse, fewer cache misses per lookup); memory is what bounds in-memory
// joins and, on virtual machines, fresh memory is slow to fault in.
// A numeric slot is 12 bytes (key bits; chain head + 1 and the key's tag), a
// text slot 16 (hash, length, chain head + 1: the key is read from the head
// row). An all-zero slot is empty, so the tables need no initialisation pass.
//
// Built by inserting rows from last to first and prepending to each chain,
// which yields chains in file order without a tail pointer. The join splits
// the key space into partitions by hash (low bits), one table per partition,
// so threads build their partitions without synchronisation.
// Thread safety: Insert on one table from one thread; Find is safe from many
// threads once building is over.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

#include "cloudmerge/base/big_array.h"
#include "cloudmerge/engine/key_types.h"

namespace cloudmerge {

inline constexpr uint32_t kNoRow = 0xffffffffu;
// Rows are numbered below 2^30 in the in-memory engine (the top 2 bits of a
// numeric slot carry the key's tag).
inline constexpr uint64_t kMaxBuildRows = (uint64_t{1} << 30) - 2;

#pragma pack(push, 4)
struct NumericSlot {
  uint64_t bits;
  uint32_t head_tag;  // (chain head + 1) in the low 30 bits, NumericKey tag in the top 2; 0 = empty
  bool empty() const { return head_tag == 0; }
  uint32_t head() const { return (head_tag & ((1u << 30) - 1)) - 1; }
  uint32_t tag_bits() const { return head_tag & ~((1u << 30) - 1); }
};
#pragma pack(pop)
static_assert(sizeof(NumericSlot) == 12);

// A text slot keeps no pointer to its key: the key is its head row's, which the
// caller reads (key_of_row) only when the hash and length match, i.e. nearly
// always for the key itself; a hit needs that row anyway to emit its match.
struct TextSlot {
  uint64_t hash;
  uint32_t key_len;
  uint32_t head_plus_one;  // 0 = empty
  bool empty() const { return head_plus_one == 0; }
  uint32_t head() const { return head_plus_one - 1; }
};
static_assert(sizeof(TextSlot) == 16);

// How full a table is built: a trade between its memory and a lookup's cache
// misses. Linear probing at 0.75 walks ~8.5 slots (~100 bytes: two or three
// cache lines) to learn that a key is absent and ~2.5 to find one; at 0.5, ~2.5
// and ~1.5 (mostly one line). Sparse costs twice the keys in slots instead of
// 4/3: 8 bytes more per numeric key, 11 per text key. Measured at 10^7 int rows
// per side: the in-memory probe 1.0 -> 0.68 s, a cluster join task -17%.
enum class TableLoad : uint8_t { kCompact, kSparse };

namespace detail {
inline size_t CapacityFor(size_t keys, TableLoad load = TableLoad::kCompact) {
  return load == TableLoad::kSparse ? 2 * keys + 16 : keys + keys / 3 + 16;  // load <= 0.5 / 0.75
}
inline size_t SlotOf(uint64_t hash, size_t capacity) {
  return static_cast<size_t>((static_cast<unsigned __int128>(hash) * capacity) >> 64);
}
}  // namespace detail

// Cache-line aligned: the join keeps one table per partition side by side in a
// vector and each thread inserts into its own; unaligned, two tables' counters
// shared a line and every insert bounced it between the cores (a third of the
// build's time).
template <class Slot>
class alignas(64) SlotArray {
 public:
  explicit SlotArray(size_t expected_keys, TableLoad load = TableLoad::kCompact)
      : slots_(detail::CapacityFor(expected_keys, load)) {}
  size_t capacity() const { return slots_.size(); }
  size_t size() const { return size_; }
  size_t memory_bytes() const { return slots_.size() * sizeof(Slot); }
  void Prefetch(uint64_t hash) const { __builtin_prefetch(&slots_[detail::SlotOf(hash, slots_.size())]); }
  // For an insert: the slot's line and the next. A new key (most of y's) lands on
  // the first empty slot, a few slots on at the load the table fills up to, which
  // is often past the line (at 0.75 load, ~8 slots of 12 bytes). Not for a probe:
  // there the second line cost more than it saved (measured at 10^7 rows).
  void PrefetchForInsert(uint64_t hash) const {
    const char* s = reinterpret_cast<const char*>(&slots_[detail::SlotOf(hash, slots_.size())]);
    __builtin_prefetch(s, 1);
    __builtin_prefetch(s + 64, 1);
  }
  // Empties the table for about expected_keys keys, keeping its slots when they
  // are enough and at most twice what is needed: a join of many small tables in a
  // row (the out-of-core engine's partitions) then does not map, fault in, zero
  // and unmap fresh memory for each. false: too small or too big; build a new one.
  bool Reuse(size_t expected_keys, TableLoad load = TableLoad::kCompact) {
    const size_t need = detail::CapacityFor(expected_keys, load);
    if (slots_.size() < need || slots_.size() > 2 * need) return false;
    std::memset(static_cast<void*>(slots_.data()), 0, slots_.size() * sizeof(Slot));
    size_ = 0;
    return true;
  }

 protected:
  bool NeedsGrow() const { return (size_ + 1) * 20 > slots_.size() * 17; }  // keep load <= 0.85
  // Finds the slot of the key that `same(slot)` recognises, or the empty slot where it belongs.
  template <class Same>
  Slot* Locate(uint64_t hash, Same&& same) {
    size_t cap = slots_.size();
    size_t i = detail::SlotOf(hash, cap);
    for (;;) {
      Slot& s = slots_[i];
      if (s.empty() || same(s)) return &s;
      if (++i == cap) i = 0;
    }
  }
  template <class Same>
  const Slot* Lookup(uint64_t hash, Same&& same) const {
    return const_cast<SlotArray*>(this)->Locate(hash, same);
  }
  template <class HashOf>
  void Grow(HashOf&& hash_of) {
    BigArray<Slot> old(std::move(slots_));
    slots_ = BigArray<Slot>(old.size() * 2);
    for (size_t o = 0; o < old.size(); ++o) {
      if (old[o].empty()) continue;
      size_t cap = slots_.size();
      size_t i = detail::SlotOf(hash_of(old[o]), cap);
      while (!slots_[i].empty())
        if (++i == cap) i = 0;
      slots_[i] = old[o];
    }
  }

  BigArray<Slot> slots_;
  size_t size_ = 0;
};

class NumericHashTable : public SlotArray<NumericSlot> {
 public:
  using SlotArray::SlotArray;

  // Prepends row (< kMaxBuildRows) to the chain of key; returns the row that
  // follows it in the chain (kNoRow for a new key).
  uint32_t Insert(const NumericKey& key, uint64_t hash, uint32_t row) {
    if (NeedsGrow()) Grow([](const NumericSlot& s) { return HashNumericKey(KeyOf(s)); });
    uint32_t tag_bits = static_cast<uint32_t>(key.tag) << 30;
    NumericSlot* s = Locate(hash, [&](const NumericSlot& c) { return c.bits == key.bits && c.tag_bits() == tag_bits; });
    uint32_t successor = kNoRow;
    if (s->empty()) {
      s->bits = key.bits;
      ++size_;
    } else {
      successor = s->head();
    }
    s->head_tag = tag_bits | (row + 1);
    return successor;
  }

  // Head of the chain of key, or kNoRow.
  uint32_t Find(const NumericKey& key, uint64_t hash) const {
    uint32_t tag_bits = static_cast<uint32_t>(key.tag) << 30;
    const NumericSlot* s =
        Lookup(hash, [&](const NumericSlot& c) { return c.bits == key.bits && c.tag_bits() == tag_bits; });
    return s->empty() ? kNoRow : s->head();
  }

 private:
  static NumericKey KeyOf(const NumericSlot& s) {
    return NumericKey{s.bits, static_cast<uint8_t>(s.tag_bits() >> 30)};
  }
};

class TextHashTable : public SlotArray<TextSlot> {
 public:
  using SlotArray::SlotArray;

  // As NumericHashTable::Insert; key_of_row(r) is the key of a row already inserted.
  template <class KeyOfRow>
  uint32_t Insert(std::string_view key, uint64_t hash, uint32_t row, KeyOfRow&& key_of_row) {
    if (NeedsGrow()) Grow([](const TextSlot& s) { return s.hash; });
    TextSlot* s = Locate(hash, [&](const TextSlot& c) { return Same(c, key, hash, key_of_row); });
    uint32_t successor = kNoRow;
    if (s->empty()) {
      s->hash = hash;
      s->key_len = static_cast<uint32_t>(key.size());
      ++size_;
    } else {
      successor = s->head();
    }
    s->head_plus_one = row + 1;
    return successor;
  }

  template <class KeyOfRow>
  uint32_t Find(std::string_view key, uint64_t hash, KeyOfRow&& key_of_row) const {
    const TextSlot* s = Lookup(hash, [&](const TextSlot& c) { return Same(c, key, hash, key_of_row); });
    return s->empty() ? kNoRow : s->head();
  }

  // Find in two steps, for a batched probe that prefetches the head rows between
  // them (reading a row's key inside Find would wait on it there, row after row):
  // FindCandidate looks at slots only, and gives the head of the first slot with
  // key's hash and length, or kNoRow when there is none (key is absent); Confirm
  // then compares the candidate row's key and, in the rare case it is another
  // key of that hash and length, looks further with Find.
  uint32_t FindCandidate(std::string_view key, uint64_t hash) const {
    const TextSlot* s = Lookup(hash, [&](const TextSlot& c) { return c.hash == hash && c.key_len == key.size(); });
    return s->empty() ? kNoRow : s->head();
  }
  template <class KeyOfRow>
  uint32_t Confirm(std::string_view key, uint64_t hash, uint32_t candidate, KeyOfRow&& key_of_row) const {
    return key_of_row(candidate) == key ? candidate : Find(key, hash, key_of_row);
  }

 private:
  template <class KeyOfRow>
  static bool Same(const TextSlot& c, std::string_view key, uint64_t hash, KeyOfRow& key_of_row) {
    return c.hash == hash && c.key_len == key.size() && key_of_row(c.head()) == key;
  }
};

}  // namespace cloudmerge
