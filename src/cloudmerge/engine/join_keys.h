// Join keys: an ID value as the hash join compares it, under its file's type
// (KeyMode), and the type-independent hash the out-of-core join partitions by.
//
// Partitioning happens while the files' types are still being inferred (pandas
// decides a column's type from all of its values), so the partition of a value
// cannot depend on the type. PartitionHash gives equal hashes to values that are
// equal under ANY pair of types the files may end up with: numbers hash by their
// value as a double (7, 007, 7.0, 7e0 and True hash alike; so do two integers
// beyond 2^53 that round to the same double, which costs nothing but a shared
// partition), everything else by its bytes. Values equal as text are equal bytes.
// Every function takes the pandas rules of the merge (MergeOptions::pandas).
// Thread safety: pure functions.
#pragma once

#include <xxhash.h>

#include <cstdint>
#include <cstring>
#include <string_view>

#include "cloudmerge/engine/key_types.h"

namespace cloudmerge {

// Key of one value under its file's mode, with its hash. MakeKey returns false
// for a value that never matches (NaN/NA under the mode).
struct ProbeKey {
  NumericKey num;
  std::string_view text;
  uint64_t hash;
};

inline uint64_t HashTextKey(std::string_view v) { return XXH3_64bits(v.data(), v.size()); }

// Always inline: the build and probe loops call it per row, and GCC stopped
// inlining it there once YRow::key() grew.
[[gnu::always_inline]] inline bool MakeKey(KeyMode mode, std::string_view v, ProbeKey* k, PandasRules rules) {
  if (IsNumeric(mode)) {
    if (!ToNumericKey(mode, v, &k->num, rules)) return false;
    k->hash = HashNumericKey(k->num);
    return true;
  }
  if (mode == KeyMode::kText && IsNaMarker(v, rules)) return false;
  k->text = v;
  k->hash = HashTextKey(v);
  return true;
}

inline uint64_t PartitionHash(std::string_view v, PandasRules rules) {
  double d;
  int64_t i;
  uint64_t u;
  bool b;
  if (ParseInt64(v, &i) == IntParse::kOk) d = static_cast<double>(i);
  else if (ParseUInt64(v, &u) == UIntParse::kOk) d = static_cast<double>(u);
  else if (ParsePandasFloat(v, &d, rules)) {}
  else if (ParseBool(v, &b)) d = b ? 1.0 : 0.0;
  else return XXH3_64bits(v.data(), v.size());
  return HashNumericKey(CanonicalFromDouble(d));
}

// The partition hash once the file's type is known: equal keys under the types
// hash alike, and a value hashes as PartitionHash does whenever its key is the
// value PartitionHash assumes (always, except an integer spelling pandas reads
// otherwise as a float: IntSpellingLosesInFloat). Used to re-partition a float64
// file that has such spellings, and at every level after the first.
inline uint64_t PartitionHashUnder(KeyMode mode, std::string_view v, PandasRules rules) {
  NumericKey k;
  if (!IsNumeric(mode) || !ToNumericKey(mode, v, &k, rules)) return XXH3_64bits(v.data(), v.size());
  double d;
  if (k.tag == NumericKey::kSigned) d = static_cast<double>(static_cast<int64_t>(k.bits));
  else if (k.tag == NumericKey::kUnsigned) d = static_cast<double>(k.bits);
  else std::memcpy(&d, &k.bits, sizeof d);
  return HashNumericKey(CanonicalFromDouble(d));
}

// The partition of a hash at a given level of (re-)partitioning: each level
// remixes the hash so that a partition split again spreads over all children.
inline uint32_t PartitionAt(uint64_t hash, unsigned level, uint32_t fanout) {
  uint64_t h = hash ^ (0x9e3779b97f4a7c15ull * (level + 1));
  h ^= h >> 31; h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 29;
  return static_cast<uint32_t>((static_cast<unsigned __int128>(h) * fanout) >> 64);
}

// PartitionHash (or, when the file's type is known, PartitionHashUnder) of a
// key that is also added to its file's type scan. A plain integer (the common
// ID) is parsed once for both: PartitionHash hashes it as CanonicalFromDouble of
// its value, which for the at most 15 digits ParsePlainInt accepts is exact: the
// same signed key.
inline uint64_t PartitionHashScanning(std::string_view v, const KeyMode* known, PandasRules rules, KeyScan* scan) {
  int64_t plain;
  if (!known && ParsePlainInt(v, &plain)) {
    scan->AddPlainInt(v[0] == '-');
    return HashNumericKey(NumericKey{static_cast<uint64_t>(plain), NumericKey::kSigned});
  }
  scan->Add(v);
  return known ? PartitionHashUnder(*known, v, rules) : PartitionHash(v, rules);
}

}  // namespace cloudmerge
