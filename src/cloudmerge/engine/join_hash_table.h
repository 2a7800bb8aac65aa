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
// row), a reference slot 8 (31 bits of hash, chain head + 1: the key of any
// type is read from the head row; the in-memory join's tables, numeric and
// text). An all-zero slot is empty, so the tables need no initialisation pass.
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

// The chain head and a 31-bit filter of the key (its length, or hash bits)
// that text and reference slots share; the word's top bit is free for the
// bucket's overflow flag (Bucket), set on the first slot only.
struct FilteredHead {
  static constexpr uint32_t kFlag = 0x80000000u;
  uint32_t filter_flag;
  uint32_t head_plus_one;  // 0 = empty
  bool empty() const { return head_plus_one == 0; }
  uint32_t head() const { return head_plus_one - 1; }
  uint32_t filter() const { return filter_flag & ~kFlag; }
};
static_assert(sizeof(FilteredHead) == 8);

// A text slot keeps no pointer to its key: the key is its head row's, which the
// caller reads (key_of_row) only when the hash and length match, i.e. nearly
// always for the key itself; a hit needs that row anyway to emit its match.
// The filter is the length (keys of 2^31 bytes or more share one value).
struct TextSlot : FilteredHead {
  uint64_t hash;
  TextSlot() = default;
  TextSlot(uint64_t h, uint32_t len, uint32_t head_plus) : FilteredHead{len, head_plus}, hash(h) {}
  uint32_t key_len() const { return filter(); }
  static uint32_t LenOf(std::string_view key) { return static_cast<uint32_t>(std::min<size_t>(key.size(), ~kFlag)); }
};
static_assert(sizeof(TextSlot) == 16);

// A slot that keeps no key at all (the in-memory join's tables, RefHashTable):
// 31 bits of the key's hash as a filter, and the chain head, whose row holds
// the key. A lookup reads the row only when the filter matches: for the key
// itself (whose row a hit reads anyway, to emit it) or, one time in 2^31 per
// slot compared, another key. Half the bytes of a numeric slot, so twice the
// slots fit a line (8) and a table at the sparse load costs 16 bytes a key
// instead of 25.6.
struct RefSlot : FilteredHead {
  // High bits: the partitions of the in-memory join split by the low ones.
  static uint32_t FilterOf(uint64_t hash) { return static_cast<uint32_t>(hash >> 33); }
};
static_assert(sizeof(RefSlot) == 8);

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
// Text and reference slots fill the line (4 and 8); the flag is the top bit of
// the first slot's filter word, which is in use whenever the flag is set (only
// a full bucket overflows).
template <class Slot>
struct alignas(64) FirstSlotFlaggedBucket {
  static constexpr size_t kSlots = 64 / sizeof(Slot);
  Slot slots[kSlots];
  bool overflowed() const { return slots[0].filter_flag & FilteredHead::kFlag; }
  void set_overflowed() { slots[0].filter_flag |= FilteredHead::kFlag; }
  static Slot Moved(Slot s) {
    s.filter_flag &= ~FilteredHead::kFlag;
    return s;
  }
};
template <>
struct Bucket<TextSlot> : FirstSlotFlaggedBucket<TextSlot> {};
template <>
struct Bucket<RefSlot> : FirstSlotFlaggedBucket<RefSlot> {};
static_assert(sizeof(Bucket<NumericSlot>) == 64 && sizeof(Bucket<TextSlot>) == 64 && sizeof(Bucket<RefSlot>) == 64);
static_assert(Bucket<TextSlot>::kSlots == 4 && Bucket<RefSlot>::kSlots == 8);

inline uint64_t SlotHash(const NumericSlot& s) {
  return HashNumericKey(NumericKey{s.bits, static_cast<uint8_t>(s.tag_bits() >> 30)});
}
inline uint64_t SlotHash(const TextSlot& s) { return s.hash; }
// The hash of a slot's key when the table grows: from the slot (numeric, text),
// or, for a RefSlot, from its head row (RefHashTable passes its own).
struct HashFromSlot {
  template <class Slot>
  uint64_t operator()(const Slot& s) const { return SlotHash(s); }
};

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
  // slot compares the hash first (its `same` reads a row); a reference slot's
  // `same` compares the filter first.
  template <class Same>
  static bool Holds(const Slot& s, uint64_t hash, Same& same) {
    if constexpr (std::is_same_v<Slot, TextSlot>) return s.hash == hash && same(s);
    else return same(s);  // numeric: the key itself; reference: the filter, then the row
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
  // size()). May grow the table, placing its keys by rehash(slot).
  template <class Same, class Rehash = HashFromSlot>
  Slot* Locate(uint64_t hash, Same&& same, bool* fresh, Rehash&& rehash = {}) {
    if (NeedsGrow()) Grow(home_ * 2, buckets_.size() - home_, rehash);
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
      Grow(home_, 2 * (buckets_.size() - home_), rehash);
    }
  }
  // Rebuilds the table with `home` home buckets and at least `overflow` after
  // them (more if the keys need them).
  template <class Rehash>
  void Grow(size_t home, size_t overflow, Rehash& rehash) {
    BigArray<B> old(std::move(buckets_));
    home_ = home;
    for (overflow = std::max(overflow, OverflowFor(home));; overflow *= 2) {
      buckets_ = BigArray<B>(home + overflow);
      if (Reinsert(old, rehash)) return;
    }
  }

 private:
  template <class Rehash>
  bool Reinsert(const BigArray<B>& old, Rehash& rehash) {
    B* last = &buckets_[buckets_.size() - 1];
    for (size_t o = 0; o < old.size(); ++o)
      for (const Slot& s : old[o].slots) {
        if (s.empty()) break;
        B* b = &buckets_[HomeOf(rehash(s))];
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

// The in-memory join's table (RefSlot): chain heads filtered by 31 bits of the
// key's hash; the key is read from the head row. Key is NumericKey or
// std::string_view; key_of_row(r) is the key of a row already inserted, equal
// keys have equal hashes, and hash_of(key) is the hash the table was given for it
// (used to place keys again when the table grows).
class RefHashTable : public SlotArray<RefSlot> {
 public:
  using SlotArray::SlotArray;

  // Prepends row (< kMaxBuildRows) to the chain of key; returns the row that
  // follows it in the chain (kNoRow for a new key).
  template <class Key, class KeyOfRow, class HashOf>
  uint32_t Insert(const Key& key, uint64_t hash, uint32_t row, KeyOfRow&& key_of_row, HashOf&& hash_of) {
    const uint32_t filter = RefSlot::FilterOf(hash);
    bool fresh;
    RefSlot* s = Locate(
        hash, [&](const RefSlot& c) { return c.filter() == filter && key_of_row(c.head()) == key; }, &fresh,
        [&](const RefSlot& c) { return hash_of(key_of_row(c.head())); });
    if (!fresh) {
      uint32_t successor = s->head();
      s->head_plus_one = row + 1;
      return successor;
    }
    *s = RefSlot{{filter, row + 1}};  // a free slot: no flag to keep
    return kNoRow;
  }

  template <class Key, class KeyOfRow>
  uint32_t Find(const Key& key, uint64_t hash, KeyOfRow&& key_of_row) const {
    const uint32_t filter = RefSlot::FilterOf(hash);
    const RefSlot* s = Lookup(hash, [&](const RefSlot& c) { return c.filter() == filter && key_of_row(c.head()) == key; });
    return s ? s->head() : kNoRow;
  }

  // Find in two steps, for the batched probe (as TextHashTable's): the head of
  // the first slot whose filter matches (kNoRow: the key is absent), then, once
  // that row is in cache, Confirm compares its key and looks further in the rare
  // case it is another key.
  uint32_t FindCandidate(uint64_t hash) const {
    const uint32_t filter = RefSlot::FilterOf(hash);
    const RefSlot* s = Lookup(hash, [&](const RefSlot& c) { return c.filter() == filter; });
    return s ? s->head() : kNoRow;
  }
  template <class Key, class KeyOfRow>
  uint32_t Confirm(const Key& key, uint64_t hash, uint32_t candidate, KeyOfRow&& key_of_row) const {
    return key_of_row(candidate) == key ? candidate : Find(key, hash, key_of_row);
  }
};

}  // namespace cloudmerge
