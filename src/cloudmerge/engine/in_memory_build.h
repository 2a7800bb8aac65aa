// The build side of the in-memory join (merge.h): y scanned into one flat
// array of rows (ScanY, parallel by chunk: validated, its key type inferred),
// then hashed (Build, parallel by hash partition: one table per partition, so
// threads build without synchronisation), chains of equal keys in file order.
// Thread safety: ScanY and Build start their own threads; a built BuildSide is
// read-only and may be probed from many threads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "cloudmerge/base/arena.h"
#include "cloudmerge/base/big_array.h"
#include "cloudmerge/base/progress.h"
#include "cloudmerge/base/status.h"
#include "cloudmerge/engine/join_hash_table.h"
#include "cloudmerge/engine/join_keys.h"
#include "cloudmerge/engine/key_types.h"
#include "cloudmerge/engine/table_scan.h"

namespace cloudmerge::in_memory {

// One row of y as the join needs it, in 16 bytes (four to a cache line, none
// straddling two): the text written after the x row (y's fields without its
// key, encoded for output), where the key is, and the next row with the same
// key (so a match costs one random access, not two). The key sits right before
// the text (key, one separator byte, text), or, when y's key is its last
// column, right after it (text, separator, key); rows that need re-encoding are
// laid out the first way in an arena. The text's address, the key's length and
// which side the key is on share one word: user-space addresses fit in 48 bits
// on x86-64 and arm64 (ScanY checks). A key of kLongKey bytes or more is
// stored as key, its 8-byte length, separator, text.
struct YRow {
  static constexpr uint64_t kAddressBits = 48;
  static constexpr uint64_t kAddressMask = (uint64_t{1} << kAddressBits) - 1;
  static constexpr uint32_t kLongKey = 0x7fff;  // key length field: the length is stored before the separator
  static constexpr uint64_t kKeyAfterText = uint64_t{1} << 63;
  static constexpr uint64_t kMissing = ~uint64_t{0};  // never matches (or no record)

  uint64_t out_key;  // text address | key length << 48 | kKeyAfterText; kMissing
  uint32_t out_len;
  uint32_t next;  // next row of y with the same key, in file order; kNoRow ends the chain

  // REQUIRES: key_len < kLongKey, or == kLongKey with the length stored (KeyBefore only).
  static YRow KeyBefore(const char* out, uint32_t out_len, uint32_t key_len) {
    return YRow{Address(out) | uint64_t{key_len} << kAddressBits, out_len, kNoRow};
  }
  static YRow KeyAfter(const char* out, uint32_t out_len, uint32_t key_len) {
    return YRow{Address(out) | uint64_t{key_len} << kAddressBits | kKeyAfterText, out_len, kNoRow};
  }
  static YRow Missing() { return YRow{kMissing, 0, kNoRow}; }

  // The first and last bytes a hit reads: the key (to confirm it) and the text
  // (to write it). They often sit on two cache lines (a 9-byte key before a
  // text that starts near a line's start, or a text that runs into the next):
  // the probe prefetches both. A long key's stored length is not looked up:
  // its first line is then not prefetched.
  const char* first_byte() const {
    const uint32_t len = static_cast<uint32_t>(out_key >> kAddressBits) & kLongKey;
    return (out_key & kKeyAfterText) || len == kLongKey ? out() : out() - 1 - len;
  }
  const char* last_byte() const {
    const uint32_t len = static_cast<uint32_t>(out_key >> kAddressBits) & kLongKey;
    return (out_key & kKeyAfterText) ? out() + out_len + len : out() + out_len - 1;  // text, separator, key
  }

  bool missing() const { return out_key == kMissing; }
  void set_missing() { out_key = kMissing; }
  const char* out() const { return reinterpret_cast<const char*>(out_key & kAddressMask); }
  std::string_view key() const {
    const char* text = out();
    uint32_t len = static_cast<uint32_t>(out_key >> kAddressBits) & kLongKey;
    if (out_key & kKeyAfterText) return std::string_view(text + out_len + 1, len);
    if (len != kLongKey) return std::string_view(text - 1 - len, len);
    uint64_t long_len;
    std::memcpy(&long_len, text - 1 - sizeof long_len, sizeof long_len);
    return std::string_view(text - 1 - sizeof long_len - long_len, long_len);
  }

 private:
  static uint64_t Address(const char* p) { return reinterpret_cast<uintptr_t>(p); }
};
static_assert(sizeof(YRow) == 16);

// The first problem over chunks, in file order.
inline Status FirstProblem(const Table& t, const std::vector<ScanProblem>& problems) {
  for (const ScanProblem& p : problems)
    if (p.found) return t.Error(p);
  return Status::OK();
}

struct ScannedY {
  // One entry per possible record: chunk c owns [base[c], base[c+1]); entries a
  // chunk did not fill (blank lines) are missing().
  BigArray<YRow> rows;
  uint64_t record_count = 0;
  std::vector<Arena> arenas;
  KeyMode mode = KeyMode::kText;
  PandasRules rules;  // the merge's, under which mode was inferred
  uint64_t plain_ints = 0;  // IDs typed by the fast path (KeyScan::plain_ints)

  // The key of row j under a numeric mode. REQUIRES: row j is in a table (its key is valid).
  NumericKey NumericKeyOf(uint32_t j) const {
    NumericKey k{};
    ToNumericKey(mode, rows[j].key(), &k, rules);
    return k;
  }
};

// Scans all of y (its one, whole segment) into *out: rows, key type, counts.
Status ScanY(const Table& y, unsigned threads, PandasRules rules, Progress* progress, ScannedY* out);

// Low bits pick the partition; the slot index within a table comes from the high bits.
inline size_t PartitionOf(uint64_t hash, size_t partitions) { return (hash & 0xffff) % partitions; }

// Build's tables: one per thread (at most 255, a partition being a byte), each
// sized for its share of y's rows with 1/16 slack (hashes do not split evenly).
inline size_t BuildPartitions(unsigned threads) { return std::max(1u, std::min(threads, 255u)); }
inline size_t ExpectedKeysPerTable(uint64_t rows, size_t partitions) {
  return rows / partitions + rows / partitions / 16 + 16;
}

// The build side: y's rows, the chains through them, and one table per
// partition. The tables keep no key (RefHashTable): a key is read back from its
// head row, parsed under y's type when numeric.
struct BuildSide {
  const ScannedY* y = nullptr;
  bool numeric = false;
  std::vector<RefHashTable> tables;

  const RefHashTable& TableOf(uint64_t hash) const { return tables[PartitionOf(hash, tables.size())]; }
  auto NumericKeys() const { return [y = y](uint32_t j) { return y->NumericKeyOf(j); }; }
  auto TextKeys() const { return [y = y](uint32_t j) { return y->rows[j].key(); }; }

  void Prefetch(const ProbeKey& k) const { TableOf(k.hash).Prefetch(k.hash); }
  uint32_t Head(const ProbeKey& k) const {
    return numeric ? TableOf(k.hash).Find(k.num, k.hash, NumericKeys()) : TableOf(k.hash).Find(k.text, k.hash, TextKeys());
  }
  // Head in two steps for the batched probe (FindCandidate): the candidate from
  // the slots alone, then, once its row is in cache, the head.
  uint32_t HeadCandidate(const ProbeKey& k) const { return TableOf(k.hash).FindCandidate(k.hash); }
  uint32_t ConfirmHead(const ProbeKey& k, uint32_t candidate) const {
    return numeric ? TableOf(k.hash).Confirm(k.num, k.hash, candidate, NumericKeys())
                   : TableOf(k.hash).Confirm(k.text, k.hash, candidate, TextKeys());
  }
};


// Hashes y's rows into b's tables, built at `load` (marking rows whose key never
// matches missing), linking each row to the next of its key.
Status Build(ScannedY& y, unsigned threads, TableLoad load, BuildSide* b);

// Per-key counts for key statistics and --max-output-rows: chain[i] is the y rows of
// row i's key from i on (see CountChains), x_counts[head] the x rows that found it.
struct KeyCounters {
  BigArray<uint32_t> chain, x_counts;
  void Init(const ScannedY& y);
  void ResetX();
  bool active() const { return x_counts.size() != 0; }
};

}  // namespace cloudmerge::in_memory
