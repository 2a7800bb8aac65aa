// JoinHashTable: the build side of the hash join. Maps each distinct key of y to
// the chain of y rows holding it, in y's file order. Rows are identified by
// their index; the chains live in a `next` array owned by the caller, so a
// probe walks head -> next[head] -> ... and emits matches in y order.
//
// Open addressing with linear probing over a power-of-two slot array; a slot is
// 16 bytes for numeric keys (the key, chain head, count and tag) and 32 bytes
// for text keys (hash, pointer to the key bytes, length, head, count). Built by
// inserting rows from last to first, prepending to each chain, which yields
// chains in file order without a tail pointer.
//
// The join splits the key space into partitions by hash, one table per
// partition, so that threads build their partitions without synchronisation.
// Thread safety: Insert on one table from one thread; Find is safe from many
// threads once building is over.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "cloudmerge/big_array.h"
#include "cloudmerge/key_types.h"

namespace cloudmerge {

inline constexpr uint32_t kNoRow = 0xffffffffu;

struct NumericSlot {
  uint64_t bits;
  uint32_t head;
  uint32_t count_tag;  // count in the low 30 bits, NumericKey tag in the top 2; 0 = empty slot
  static constexpr uint32_t kCountMask = (1u << 30) - 1;
  bool empty() const { return count_tag == 0; }
  uint32_t count() const { return count_tag & kCountMask; }
};

struct TextSlot {
  uint64_t hash;
  const char* key;
  uint32_t key_len;
  uint32_t head;
  uint32_t count;  // 0 = empty slot
  uint32_t pad_;
  bool empty() const { return count == 0; }
};

class NumericHashTable {
 public:
  explicit NumericHashTable(size_t expected_keys) { Reset(expected_keys); }

  // Prepends row to the chain of key; next is the caller's chain array.
  // Returns false when one key would hold more rows than a chain can count.
  bool Insert(const NumericKey& key, uint64_t hash, uint32_t row, uint32_t* next) {
    if ((size_ + 1) * 4 > slots_.size() * 3) Grow();
    size_t i = hash & mask_;
    uint32_t tag_bits = static_cast<uint32_t>(key.tag) << 30;
    for (;;) {
      NumericSlot& s = slots_[i];
      if (s.empty()) {
        s.bits = key.bits;
        s.head = row;
        s.count_tag = tag_bits | 1u;
        next[row] = kNoRow;
        ++size_;
        return true;
      }
      if (s.bits == key.bits && (s.count_tag & ~NumericSlot::kCountMask) == tag_bits) {
        if (s.count() == NumericSlot::kCountMask) return false;
        next[row] = s.head;
        s.head = row;
        ++s.count_tag;
        return true;
      }
      i = (i + 1) & mask_;
    }
  }

  void Prefetch(uint64_t hash) const { __builtin_prefetch(&slots_[hash & mask_]); }

  const NumericSlot* Find(const NumericKey& key, uint64_t hash) const {
    size_t i = hash & mask_;
    uint32_t tag_bits = static_cast<uint32_t>(key.tag) << 30;
    for (;;) {
      const NumericSlot& s = slots_[i];
      if (s.empty()) return nullptr;
      if (s.bits == key.bits && (s.count_tag & ~NumericSlot::kCountMask) == tag_bits) return &s;
      i = (i + 1) & mask_;
    }
  }

  size_t size() const { return size_; }
  size_t memory_bytes() const { return slots_.size() * sizeof(NumericSlot); }

 private:
  void Reset(size_t expected) {
    size_t cap = 16;
    while (cap * 3 < expected * 4 + 4) cap <<= 1;
    slots_ = BigArray<NumericSlot>(cap);  // zeroed: all slots empty
    mask_ = cap - 1;
    size_ = 0;
  }
  void Grow() {
    BigArray<NumericSlot> old(std::move(slots_));
    slots_ = BigArray<NumericSlot>(old.size() * 2);
    mask_ = slots_.size() - 1;
    for (size_t o = 0; o < old.size(); ++o) {
      const NumericSlot& s = old[o];
      if (s.empty()) continue;
      NumericKey k{s.bits, static_cast<uint8_t>(s.count_tag >> 30)};
      size_t i = HashNumericKey(k) & mask_;
      while (!slots_[i].empty()) i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }

  BigArray<NumericSlot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

class TextHashTable {
 public:
  explicit TextHashTable(size_t expected_keys) {
    size_t cap = 16;
    while (cap * 3 < expected_keys * 4 + 4) cap <<= 1;
    slots_ = BigArray<TextSlot>(cap);
    mask_ = cap - 1;
  }

  bool Insert(std::string_view key, uint64_t hash, uint32_t row, uint32_t* next) {
    if ((size_ + 1) * 4 > slots_.size() * 3) Grow();
    size_t i = hash & mask_;
    for (;;) {
      TextSlot& s = slots_[i];
      if (s.empty()) {
        s = TextSlot{hash, key.data(), static_cast<uint32_t>(key.size()), row, 1, 0};
        next[row] = kNoRow;
        ++size_;
        return true;
      }
      if (s.hash == hash && s.key_len == key.size() && std::memcmp(s.key, key.data(), key.size()) == 0) {
        if (s.count == 0xffffffffu) return false;
        next[row] = s.head;
        s.head = row;
        ++s.count;
        return true;
      }
      i = (i + 1) & mask_;
    }
  }

  void Prefetch(uint64_t hash) const { __builtin_prefetch(&slots_[hash & mask_]); }

  const TextSlot* Find(std::string_view key, uint64_t hash) const {
    size_t i = hash & mask_;
    for (;;) {
      const TextSlot& s = slots_[i];
      if (s.empty()) return nullptr;
      if (s.hash == hash && s.key_len == key.size() && std::memcmp(s.key, key.data(), key.size()) == 0) return &s;
      i = (i + 1) & mask_;
    }
  }

  size_t size() const { return size_; }
  size_t memory_bytes() const { return slots_.size() * sizeof(TextSlot); }

 private:
  void Grow() {
    BigArray<TextSlot> old(std::move(slots_));
    slots_ = BigArray<TextSlot>(old.size() * 2);
    mask_ = slots_.size() - 1;
    for (size_t o = 0; o < old.size(); ++o) {
      const TextSlot& s = old[o];
      if (s.empty()) continue;
      size_t i = s.hash & mask_;
      while (!slots_[i].empty()) i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }

  BigArray<TextSlot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace cloudmerge
