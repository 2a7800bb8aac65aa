// JoinHashTable: the build side of the hash join. Maps each distinct key of y to
// the chain of y rows holding it, in y's file order. Rows are identified by
// their index; the chains live in a `next` array owned by the caller, so a
// probe walks head -> next[head] -> ... and emits matches in y order.
//
// Open addressing over buckets of one cache line (SlotArray). The home bucket is
// the hash, times the table's random odd multiplier, scaled to the bucket count
// (multiply-shift, any count, not only powers of two), so the table can be sized
// to the key count at ~0.75 load (TableLoad::kCompact) or ~0.5 (kSparse); memory
// is what bounds in-memory joins and, on virtual machines, fresh memory is slow
// to fault in. The multiplier is why an input cannot choose where its keys go:
// the key hashes are public functions (the numeric one is even invertible), so
// without it a y file of IDs picked to share one bucket made every insert walk
// all the keys before it, a quadratic build from a few megabytes of input.
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

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <type_traits>

#include "cloudmerge/base/big_array.h"
#include "cloudmerge/base/prefetch.h"
#include "cloudmerge/base/random_seed.h"
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
// The length is a filter (keys of 2^31 bytes or more share one value); the top
// bit of the first slot of a bucket is the bucket's overflow flag (Bucket).
struct TextSlot {
  static constexpr uint32_t kFlag = 0x80000000u;
  uint64_t hash;
  uint32_t len_flag;
  uint32_t head_plus_one;  // 0 = empty
  bool empty() const { return head_plus_one == 0; }
  uint32_t head() const { return head_plus_one - 1; }
  uint32_t key_len() const { return len_flag & ~kFlag; }
  static uint32_t LenOf(std::string_view key) { return static_cast<uint32_t>(std::min<size_t>(key.size(), ~kFlag)); }
};
static_assert(sizeof(TextSlot) == 16);

// How full a table is built: a trade between its memory and a lookup's cache
// misses. In buckets of one line (below), a lookup reads a second line when its
// home bucket overflowed: ~18% of buckets at 0.75 load, ~4% at 0.5. Sparse costs
// twice the keys in slots instead of 4/3: 8.5 bytes more per numeric key, 11 per
// text key. Measured at 10^7 rows per side in memory: int 1.40 -> 1.20 s, string
// 1.42 -> 1.35 s (plain linear probing read two or three lines for an absent key
// at 0.75: its probe was 1.0 s compact, 0.68 s sparse).
enum class TableLoad : uint8_t { kCompact, kSparse };

namespace detail {
inline size_t CapacityFor(size_t keys, TableLoad load = TableLoad::kCompact) {
  return load == TableLoad::kSparse ? 2 * keys + 16 : keys + keys / 3 + 16;  // load <= 0.5 / 0.75
}
// Home buckets of `slots_per_bucket` slots for CapacityFor's slots.
inline size_t BucketsFor(size_t keys, TableLoad load, size_t slots_per_bucket) {
  return (CapacityFor(keys, load) + slots_per_bucket - 1) / slots_per_bucket;
}
inline size_t SlotOf(uint64_t hash, size_t capacity) {
  return static_cast<size_t>((static_cast<unsigned __int128>(hash) * capacity) >> 64);
}
}  // namespace detail

// Slots are grouped in buckets of one cache line: 5 numeric slots or 4 text
// slots, and a flag that says whether a key whose home is this bucket had to go
// to a later one (the bucket was full). A key goes to the first slot free from
// its home bucket on, so a lookup reads one line unless its home bucket
// overflowed (~18% of buckets at 0.75 load, ~4% at 0.5), and an empty slot ends
// it. Plain linear probing at 0.75 read two or three lines for an absent key.
// The buckets do not wrap around: the home buckets are followed by a few
// overflow buckets, and the last one never overflows (the table grows first),
// so a lookup needs no bounds check.
template <class Slot>
struct Bucket;
template <>
struct alignas(64) Bucket<NumericSlot> {
  static constexpr size_t kSlots = 5;
  NumericSlot slots[kSlots];
  uint32_t flag;  // 1: a key with this home bucket lives in a later one
  bool overflowed() const { return flag != 0; }
  void set_overflowed() { flag = 1; }
  static NumericSlot Moved(NumericSlot s) { return s; }  // a slot as it goes to another table
};
// Four text slots fill the line; the flag is the top bit of the first slot's
// length, which is full whenever the flag is set (only a full bucket overflows).
template <>
struct alignas(64) Bucket<TextSlot> {
  static constexpr size_t kSlots = 4;
  TextSlot slots[kSlots];
  bool overflowed() const { return slots[0].len_flag & TextSlot::kFlag; }
  void set_overflowed() { slots[0].len_flag |= TextSlot::kFlag; }
  static TextSlot Moved(TextSlot s) {
    s.len_flag &= ~TextSlot::kFlag;
    return s;
  }
};
static_assert(sizeof(Bucket<NumericSlot>) == 64 && sizeof(Bucket<TextSlot>) == 64);

inline uint64_t SlotHash(const NumericSlot& s) {
  return HashNumericKey(NumericKey{s.bits, static_cast<uint8_t>(s.tag_bits() >> 30)});
}
inline uint64_t SlotHash(const TextSlot& s) { return s.hash; }

// Cache-line aligned: the join keeps one table per partition side by side in a
// vector and each thread inserts into its own; unaligned, two tables' counters
// shared a line and every insert bounced it between the cores (a third of the
// build's time).
template <class Slot>
class alignas(64) SlotArray {
  using B = Bucket<Slot>;

 public:
  // multiplier: odd, random by default (see the file comment); tests that place
  // keys in chosen buckets pass kUnscattered, under which the home is the hash's.
  static constexpr uint64_t kUnscattered = 1;
  explicit SlotArray(size_t expected_keys, TableLoad load = TableLoad::kCompact,
                     uint64_t multiplier = RandomSeed())
      : multiplier_(multiplier | 1), home_(BucketsFor(expected_keys, load)), buckets_(home_ + OverflowFor(home_)) {}
  // Slots in home buckets.
  size_t capacity() const { return home_ * B::kSlots; }
  size_t size() const { return size_; }
  size_t memory_bytes() const { return buckets_.size() * sizeof(B); }
  // Faults the slots in before a build (BigArray::PrefaultForWrite): an insert
  // reads its bucket before it writes it.
  void PrefaultForWrite() { buckets_.PrefaultForWrite(); }
  void Prefetch(uint64_t hash) const { PrefetchForRead(&buckets_[HomeOf(hash)]); }
  void PrefetchForInsert(uint64_t hash) const { PrefetchForWrite(&buckets_[HomeOf(hash)]); }
  // Empties the table for about expected_keys keys, keeping its slots when they
  // are enough and at most twice what is needed: a join of many small tables in a
  // row (the out-of-core engine's partitions) then does not map, fault in, zero
  // and unmap fresh memory for each. false: too small or too big; build a new one.
  bool Reuse(size_t expected_keys, TableLoad load = TableLoad::kCompact) {
    const size_t need = BucketsFor(expected_keys, load);
    if (home_ < need || home_ > 2 * need) return false;
    std::memset(static_cast<void*>(buckets_.data()), 0, buckets_.size() * sizeof(B));
    size_ = 0;
    return true;
  }

 protected:
  static size_t BucketsFor(size_t keys, TableLoad load) { return detail::BucketsFor(keys, load, B::kSlots); }
  // Buckets after the home ones: a full bucket at the end spills a few on at any
  // sane load; Locate grows the area when a run of full buckets reaches its end.
  static size_t OverflowFor(size_t home) { return 4 + home / 1024; }
  size_t HomeOf(uint64_t hash) const { return detail::SlotOf(hash * multiplier_, home_); }
  bool NeedsGrow() const { return (size_ + 1) * 10 > capacity() * 9; }  // keep load <= 0.9

  // Whether slot s holds the key of `hash` that `same` recognises. A numeric
  // slot compares its key (cheap, and the same key has the same hash); a text
  // slot compares the hash first (its `same` reads a row).
  template <class Same>
  static bool Holds(const Slot& s, uint64_t hash, Same& same) {
    if constexpr (std::is_same_v<Slot, NumericSlot>) return same(s);
    else return s.hash == hash && same(s);
  }

  // The slot of the key, or nullptr.
  template <class Same>
  const Slot* Lookup(uint64_t hash, Same&& same) const {
    for (const B* b = &buckets_[HomeOf(hash)];; ++b) {
      for (const Slot& s : b->slots) {
        if (s.empty()) return nullptr;  // a bucket with a free slot never overflowed
        if (Holds(s, hash, same)) return &s;
      }
      if (!b->overflowed()) return nullptr;
    }
  }
  // The slot of the key, or the free slot it goes to (*fresh = true; counted in
  // size()). May grow the table.
  template <class Same>
  Slot* Locate(uint64_t hash, Same&& same, bool* fresh) {
    if (NeedsGrow()) Grow(home_ * 2, buckets_.size() - home_);
    for (;;) {
      B* last = &buckets_[buckets_.size() - 1];
      for (B* b = &buckets_[HomeOf(hash)];; ++b) {
        for (Slot& s : b->slots) {
          if (s.empty()) {
            ++size_;
            *fresh = true;
            return &s;
          }
          if (Holds(s, hash, same)) {
            *fresh = false;
            return &s;
          }
        }
        if (b == last) break;  // it never overflows: more overflow buckets first
        b->set_overflowed();
      }
      Grow(home_, 2 * (buckets_.size() - home_));
    }
  }
  // Rebuilds the table with `home` home buckets and at least `overflow` after
  // them (more if the keys need them).
  void Grow(size_t home, size_t overflow) {
    BigArray<B> old(std::move(buckets_));
    home_ = home;
    for (overflow = std::max(overflow, OverflowFor(home));; overflow *= 2) {
      buckets_ = BigArray<B>(home + overflow);
      if (Reinsert(old)) return;
    }
  }

 private:
  bool Reinsert(const BigArray<B>& old) {
    B* last = &buckets_[buckets_.size() - 1];
    for (size_t o = 0; o < old.size(); ++o)
      for (const Slot& s : old[o].slots) {
        if (s.empty()) break;
        B* b = &buckets_[HomeOf(SlotHash(s))];
        for (;; ++b) {
          Slot* free = std::find_if(std::begin(b->slots), std::end(b->slots), [](const Slot& t) { return t.empty(); });
          if (free != std::end(b->slots)) {
            *free = B::Moved(s);
            break;
          }
          if (b == last) return false;
          b->set_overflowed();
        }
      }
    return true;
  }

  uint64_t multiplier_;  // odd: spreads hashes over the buckets (HomeOf)
  size_t home_;         // home buckets
  BigArray<B> buckets_;
  size_t size_ = 0;
};

// The memory of a table built for `keys` keys, without its overflow buckets.
template <class Slot>
size_t HashTableBytes(size_t keys, TableLoad load) {
  return detail::BucketsFor(keys, load, Bucket<Slot>::kSlots) * sizeof(Bucket<Slot>);
}

class NumericHashTable : public SlotArray<NumericSlot> {
 public:
  using SlotArray::SlotArray;

  // Prepends row (< kMaxBuildRows) to the chain of key; returns the row that
  // follows it in the chain (kNoRow for a new key).
  uint32_t Insert(const NumericKey& key, uint64_t hash, uint32_t row) {
    uint32_t tag_bits = static_cast<uint32_t>(key.tag) << 30;
    bool fresh;
    NumericSlot* s = Locate(hash, [&](const NumericSlot& c) { return c.bits == key.bits && c.tag_bits() == tag_bits; },
                            &fresh);
    uint32_t successor = fresh ? kNoRow : s->head();
    s->bits = key.bits;
    s->head_tag = tag_bits | (row + 1);
    return successor;
  }

  // Head of the chain of key, or kNoRow.
  uint32_t Find(const NumericKey& key, uint64_t hash) const {
    uint32_t tag_bits = static_cast<uint32_t>(key.tag) << 30;
    const NumericSlot* s =
        Lookup(hash, [&](const NumericSlot& c) { return c.bits == key.bits && c.tag_bits() == tag_bits; });
    return s ? s->head() : kNoRow;
  }
};

class TextHashTable : public SlotArray<TextSlot> {
 public:
  using SlotArray::SlotArray;

  // As NumericHashTable::Insert; key_of_row(r) is the key of a row already inserted.
  template <class KeyOfRow>
  uint32_t Insert(std::string_view key, uint64_t hash, uint32_t row, KeyOfRow&& key_of_row) {
    bool fresh;
    TextSlot* s = Locate(hash, [&](const TextSlot& c) { return Same(c, key, key_of_row); }, &fresh);
    if (!fresh) {
      uint32_t successor = s->head();
      s->head_plus_one = row + 1;
      return successor;
    }
    *s = TextSlot{hash, TextSlot::LenOf(key), row + 1};  // a free slot: no flag to keep
    return kNoRow;
  }

  template <class KeyOfRow>
  uint32_t Find(std::string_view key, uint64_t hash, KeyOfRow&& key_of_row) const {
    const TextSlot* s = Lookup(hash, [&](const TextSlot& c) { return Same(c, key, key_of_row); });
    return s ? s->head() : kNoRow;
  }

  // Find in two steps, for a batched probe that prefetches the head rows between
  // them (reading a row's key inside Find would wait on it there, row after row):
  // FindCandidate looks at slots only, and gives the head of the first slot with
  // key's hash and length, or kNoRow when there is none (key is absent); Confirm
  // then compares the candidate row's key and, in the rare case it is another
  // key of that hash and length, looks further with Find.
  uint32_t FindCandidate(std::string_view key, uint64_t hash) const {
    const uint32_t len = TextSlot::LenOf(key);
    const TextSlot* s = Lookup(hash, [&](const TextSlot& c) { return c.key_len() == len; });
    return s ? s->head() : kNoRow;
  }
  template <class KeyOfRow>
  uint32_t Confirm(std::string_view key, uint64_t hash, uint32_t candidate, KeyOfRow&& key_of_row) const {
    return key_of_row(candidate) == key ? candidate : Find(key, hash, key_of_row);
  }

 private:
  // Called on slots of key's hash only.
  template <class KeyOfRow>
  static bool Same(const TextSlot& c, std::string_view key, KeyOfRow& key_of_row) {
    return c.key_len() == TextSlot::LenOf(key) && key_of_row(c.head()) == key;
  }
};

}  // namespace cloudmerge
