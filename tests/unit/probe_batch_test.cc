// The probe/build pieces shared by the in-memory and out-of-core joins
// (engine/probe_batch.h): batched probes emit in the order rows were added,
// whatever the batch boundaries; chain counts follow the chains.
#include "cloudmerge/engine/probe_batch.h"

#include "cloudmerge/engine/join_hash_table.h"
#include "cloudmerge/engine/join_limits.h"
#include "cloudmerge/engine/out_of_core/context.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace cloudmerge {
namespace {

TEST(ProbeBatch, EmitsMatchesInOrderAcrossBatches) {
  ProbeBatch<int> batch;
  std::vector<std::pair<int, uint32_t>> emitted;
  std::vector<uint32_t> prefetched_rows, prefetched_texts;
  auto find = [](int item) { return item % 3 == 0 ? kNoRow : static_cast<uint32_t>(item * 10); };
  auto flush = [&] {
    batch.Flush(find, [&](uint32_t h) { prefetched_rows.push_back(h); },
                [&](uint32_t h) { prefetched_texts.push_back(h); },
                [&](int item, uint32_t head) { emitted.emplace_back(item, head); });
  };
  const int n = 3 * static_cast<int>(kProbeBatch) + 5;
  for (int i = 0; i < n; ++i) {
    batch.Add(i);
    if (batch.full()) flush();
  }
  flush();
  EXPECT_TRUE(batch.empty());
  std::vector<std::pair<int, uint32_t>> expect;
  for (int i = 0; i < n; ++i)
    if (i % 3 != 0) expect.emplace_back(i, static_cast<uint32_t>(i * 10));
  EXPECT_EQ(emitted, expect);
  EXPECT_EQ(prefetched_rows.size(), expect.size());  // only matches cost a row and a text access
  EXPECT_EQ(prefetched_texts.size(), expect.size());
}

TEST(CountChains, LengthsFromEachRowOnAndZeroForMissingRows) {
  // Rows 0, 2, 5 share a key; 1 and 4 another; 3 has no key.
  std::vector<uint32_t> next{2, 4, 5, kNoRow, kNoRow, kNoRow};
  std::vector<bool> present{true, true, true, false, true, true};
  std::vector<uint32_t> chain(next.size(), 99);
  CountChains(
      next.size(), [&](size_t i) { return next[i]; }, [&](size_t i) { return present[i]; },
      [&](size_t i) -> uint32_t& { return chain[i]; });
  EXPECT_EQ(chain, (std::vector<uint32_t>{3, 2, 2, 0, 1, 1}));
}

// The out-of-core join reuses one table per worker across partitions
// (JoinScratch): an emptied table finds nothing and builds as a new one does;
// a table much too small or too big is not reused.
TEST(JoinHashTable, ReuseEmptiesTheTableAndKeepsItsSlots) {
  NumericHashTable t(1000);
  auto key = [](uint64_t v) { return NumericKey{v, NumericKey::kSigned}; };
  for (uint32_t i = 0; i < 1000; ++i) t.Insert(key(i), HashNumericKey(key(i)), i);
  ASSERT_EQ(t.size(), 1000u);
  const size_t capacity = t.capacity();
  ASSERT_TRUE(t.Reuse(900));
  EXPECT_EQ(t.capacity(), capacity) << "the same slots";
  EXPECT_EQ(t.size(), 0u);
  for (uint32_t i = 0; i < 1000; ++i) EXPECT_EQ(t.Find(key(i), HashNumericKey(key(i))), kNoRow) << i;
  EXPECT_EQ(t.Insert(key(7), HashNumericKey(key(7)), 3), kNoRow);
  EXPECT_EQ(t.Insert(key(7), HashNumericKey(key(7)), 1), 3u) << "chains build as in a new table";
  EXPECT_EQ(t.Find(key(7), HashNumericKey(key(7))), 1u);
  EXPECT_FALSE(t.Reuse(5000)) << "too small";
  EXPECT_FALSE(t.Reuse(100)) << "more than twice the slots needed";
  TextHashTable text(10);
  auto key_a = [](uint32_t) { return std::string_view("a"); };
  text.Insert("a", 1, 0, key_a);
  ASSERT_TRUE(text.Reuse(10));
  EXPECT_EQ(text.Find("a", 1, key_a), kNoRow);
}

// A text slot holds no key: it compares the hash and length, then the key of
// its head row. Keys with one hash (and length) stay apart.
TEST(JoinHashTable, TextKeysWithOneHashAreToldApartByTheirRows) {
  const std::vector<std::string_view> rows = {"ab", "cd", "ab", "ef", "abc"};
  auto key_of_row = [&](uint32_t j) { return rows[j]; };
  TextHashTable t(8);
  for (uint32_t i = static_cast<uint32_t>(rows.size()); i-- > 0;) t.Insert(rows[i], 42, i, key_of_row);
  EXPECT_EQ(t.size(), 4u);
  EXPECT_EQ(t.Find("ab", 42, key_of_row), 0u) << "the chain's head: the first row of the key";
  EXPECT_EQ(t.Find("cd", 42, key_of_row), 1u);
  EXPECT_EQ(t.Find("ef", 42, key_of_row), 3u);
  EXPECT_EQ(t.Find("abc", 42, key_of_row), 4u);
  EXPECT_EQ(t.Find("gh", 42, key_of_row), kNoRow);
  EXPECT_EQ(t.Find("ab", 43, key_of_row), kNoRow);
}

// Keys whose homes are the last bucket spill into the overflow area, which
// grows when a run outgrows it. The caller picks the text hashes and the table
// does not scatter them (kUnscattered), so the test places keys where it wants.
TEST(JoinHashTable, KeysAtTheEndSpillPastTheHomeSlotsAndStayFindable) {
  std::vector<std::string> keys;
  for (int i = 0; i < 3000; ++i) keys.push_back("k" + std::to_string(i));
  auto key_of_row = [&](uint32_t j) { return std::string_view(keys[j]); };
  // Hashes descending from the top: every key's home is the last home slot, and
  // each arrives before the keys of lower hash it must come after (a shift each).
  auto hash_of = [](size_t i) { return ~uint64_t{0} - (i / 3); };  // three keys per hash
  TextHashTable t(4000, TableLoad::kCompact, TextHashTable::kUnscattered);
  const size_t memory_before = t.memory_bytes();
  for (uint32_t i = 0; i < keys.size(); ++i) EXPECT_EQ(t.Insert(keys[i], hash_of(i), i, key_of_row), kNoRow) << i;
  EXPECT_GT(t.memory_bytes(), memory_before) << "a 3000-slot run outgrows the overflow area";
  EXPECT_LT(t.memory_bytes(), 2 * memory_before) << "the overflow area grew, not the home slots";
  for (uint32_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(t.Find(keys[i], hash_of(i), key_of_row), i) << i;
    EXPECT_EQ(t.Find(keys[i], hash_of(i) - 1000, key_of_row), kNoRow) << i;  // another hash: absent
  }
  EXPECT_EQ(t.Find("k-1", hash_of(0), key_of_row), kNoRow);
  EXPECT_EQ(t.Find("k-1", 0, key_of_row), kNoRow);
}

// IDs picked so that their hashes share one bucket (the hashes are public, the
// numeric one invertible) pile up in a table that places keys by their hash
// alone: each insert walks every key before it, and, the bucket being the last
// home one, the overflow area grows for them. A table with its own random multiplier (the default) spreads the
// same keys: no run reaches the end, and the table keeps its size.
TEST(JoinHashTable, KeysPickedToShareABucketAreSpreadByTheTablesMultiplier) {
  const size_t n = 2000;
  const size_t home_buckets = detail::BucketsFor(n, TableLoad::kCompact, 5);
  std::vector<NumericKey> picked;
  for (uint64_t v = 0; picked.size() < n; ++v) {
    const NumericKey k{v, NumericKey::kSigned};
    if (detail::SlotOf(HashNumericKey(k), home_buckets) == home_buckets - 1) picked.push_back(k);  // the last
  }
  auto insert_all = [&](NumericHashTable& t) {
    for (uint32_t i = 0; i < n; ++i) EXPECT_EQ(t.Insert(picked[i], HashNumericKey(picked[i]), i), kNoRow) << i;
    for (uint32_t i = 0; i < n; ++i) EXPECT_EQ(t.Find(picked[i], HashNumericKey(picked[i])), i) << i;
  };
  NumericHashTable by_hash(n, TableLoad::kCompact, NumericHashTable::kUnscattered);
  const size_t size_before = by_hash.memory_bytes();
  insert_all(by_hash);
  EXPECT_GT(by_hash.memory_bytes(), size_before) << "the attack works on a table without a multiplier";
  for (int trial = 0; trial < 5; ++trial) {
    NumericHashTable spread(n);
    const size_t spread_before = spread.memory_bytes();
    EXPECT_EQ(spread_before, size_before);
    insert_all(spread);
    EXPECT_EQ(spread.memory_bytes(), spread_before) << "trial " << trial << ": the picked keys still piled up";
  }
}

// Random keys into small tables that grow many times (the expected key count is
// far too low), with repeats: every key's chain matches a map's, and absent keys
// are absent, at both loads.
// 50000 values in [-15000, 15000), drawn by a fixed LCG: about 40% repeat an earlier one.
std::vector<int64_t> RepeatingValues() {
  uint64_t state = 12345;
  auto next = [&] { state = state * 6364136223846793005ull + 1442695040888963407ull; return state >> 40; };
  std::vector<int64_t> values;
  for (uint32_t i = 0; i < 50000; ++i) values.push_back(static_cast<int64_t>(next() % 30000) - 15000);
  return values;
}

TEST(JoinHashTable, GrowingTablesFindWhatAMapFinds) {
  for (TableLoad load : {TableLoad::kCompact, TableLoad::kSparse}) {
    NumericHashTable t(10, load);
    std::unordered_map<int64_t, uint32_t> head;
    const std::vector<int64_t> values = RepeatingValues();
    for (uint32_t i = static_cast<uint32_t>(values.size()); i-- > 0;) {  // last to first, as the join builds
      const NumericKey k{static_cast<uint64_t>(values[i]), NumericKey::kSigned};
      auto it = head.find(values[i]);
      EXPECT_EQ(t.Insert(k, HashNumericKey(k), i), it == head.end() ? kNoRow : it->second) << i;
      head[values[i]] = i;
    }
    EXPECT_EQ(t.size(), head.size());
    for (int64_t v = -16000; v < 16000; ++v) {
      const NumericKey k{static_cast<uint64_t>(v), NumericKey::kSigned};
      auto it = head.find(v);
      EXPECT_EQ(t.Find(k, HashNumericKey(k)), it == head.end() ? kNoRow : it->second) << v;
      const NumericKey as_double{static_cast<uint64_t>(v), NumericKey::kDouble};  // same bits, another tag
      EXPECT_EQ(t.Find(as_double, HashNumericKey(as_double)), kNoRow) << v;
    }
  }
}

// The in-memory join's reference table (RefSlot) keeps no key: it reads a
// slot's key from its head row. Random keys with repeats into tables that grow
// many times (placing every key again by its row's key), at both loads: every
// chain matches a map's, FindCandidate + Confirm give what Find gives, absent
// keys are absent.
TEST(RefHashTable, GrowingTablesFindWhatAMapFindsReadingKeysFromRows) {
  for (TableLoad load : {TableLoad::kCompact, TableLoad::kSparse}) {
    RefHashTable t(10, load);
    std::unordered_map<int64_t, uint32_t> head;
    std::vector<NumericKey> rows;
    for (int64_t v : RepeatingValues()) rows.push_back(NumericKey{static_cast<uint64_t>(v), NumericKey::kSigned});
    auto key_of_row = [&](uint32_t j) { return rows[j]; };
    auto hash_of = [](const NumericKey& k) { return HashNumericKey(k); };
    for (uint32_t i = static_cast<uint32_t>(rows.size()); i-- > 0;) {  // last to first, as the join builds
      const int64_t v = static_cast<int64_t>(rows[i].bits);
      auto it = head.find(v);
      EXPECT_EQ(t.Insert(rows[i], HashNumericKey(rows[i]), i, key_of_row, hash_of), it == head.end() ? kNoRow : it->second)
          << i;
      head[v] = i;
    }
    EXPECT_EQ(t.size(), head.size());
    EXPECT_GT(t.capacity(), 4 * head.size() / 3) << "grew";
    for (int64_t v = -16000; v < 16000; ++v) {
      const NumericKey k{static_cast<uint64_t>(v), NumericKey::kSigned};
      auto it = head.find(v);
      const uint32_t want = it == head.end() ? kNoRow : it->second;
      EXPECT_EQ(t.Find(k, HashNumericKey(k), key_of_row), want) << v;
      const uint32_t candidate = t.FindCandidate(HashNumericKey(k));
      EXPECT_EQ(candidate == kNoRow ? kNoRow : t.Confirm(k, HashNumericKey(k), candidate, key_of_row), want) << v;
      const NumericKey as_double{static_cast<uint64_t>(v), NumericKey::kDouble};  // same bits, another tag
      EXPECT_EQ(t.Find(as_double, HashNumericKey(as_double), key_of_row), kNoRow) << v;
    }
  }
}

// Keys whose filters agree (here: all keys given one hash, so one bucket and one
// filter) are told apart by their rows' keys, in Insert, Find and Confirm; the
// pile-up overflows into later buckets and still finds every key.
TEST(RefHashTable, KeysWithTheSameFilterAreToldApartByTheirRows) {
  RefHashTable t(64, TableLoad::kSparse, RefHashTable::kUnscattered);
  std::vector<std::string> rows;
  for (int i = 0; i < 40; ++i) rows.push_back("key" + std::to_string(i % 20));  // each key twice
  auto key_of_row = [&](uint32_t j) { return std::string_view(rows[j]); };
  auto hash_of = [](std::string_view) { return uint64_t{42}; };
  for (uint32_t i = static_cast<uint32_t>(rows.size()); i-- > 0;)
    EXPECT_EQ(t.Insert(std::string_view(rows[i]), 42, i, key_of_row, hash_of), i >= 20 ? kNoRow : i + 20) << i;
  EXPECT_EQ(t.size(), 20u);
  for (uint32_t k = 0; k < 20; ++k) {
    EXPECT_EQ(t.Find(std::string_view(rows[k]), 42, key_of_row), k);
    const uint32_t candidate = t.FindCandidate(42);
    ASSERT_NE(candidate, kNoRow);
    EXPECT_EQ(t.Confirm(std::string_view(rows[k]), 42, candidate, key_of_row), k);
  }
  EXPECT_EQ(t.Find(std::string_view("key20"), 42, key_of_row), kNoRow);
}

// A sparse table has twice its keys in slots (load <= 0.5), a compact one 4/3
// (<= 0.75), rounded up to whole buckets (5 numeric or 4 text slots in 64
// bytes); both find every key and chain its rows alike.
TEST(JoinHashTable, SparseTablesHaveTwiceTheKeysInSlotsAndFindTheSame) {
  auto key = [](uint64_t v) { return NumericKey{v * 7919, NumericKey::kSigned}; };
  NumericHashTable compact(30000), sparse(30000, TableLoad::kSparse);
  EXPECT_EQ(compact.capacity(), 40020u);  // 30000 + 10000 + 16, in buckets of 5
  EXPECT_EQ(sparse.capacity(), 60020u);
  EXPECT_EQ(sparse.memory_bytes(), (60020u / 5 + 4 + 60020u / 5 / 1024) * 64) << "home and overflow buckets";
  for (uint32_t i = 0; i < 30000; ++i) {
    const NumericKey k = key(i % 20000);  // a third of the rows repeat a key
    EXPECT_EQ(compact.Insert(k, HashNumericKey(k), i), sparse.Insert(k, HashNumericKey(k), i)) << i;
  }
  EXPECT_EQ(sparse.size(), 20000u);
  for (uint32_t v = 0; v < 40000; ++v)
    EXPECT_EQ(compact.Find(key(v), HashNumericKey(key(v))), sparse.Find(key(v), HashNumericKey(key(v)))) << v;
  TextHashTable text(100, TableLoad::kSparse);
  EXPECT_EQ(text.capacity(), 216u);  // 216 slots: 54 buckets of 4
}

// The in-memory join builds sparse tables when the memory limit has room for
// them and compact ones when only those fit.
TEST(InMemoryTableLoad, SparseWhenItFitsTheLimit) {
  const uint64_t y_bytes = 200 << 20, rows = 10'000'000, chunk = 4 << 20;
  EXPECT_EQ(InMemoryTableLoad(y_bytes, rows, 2, chunk, uint64_t{14} << 30, false), TableLoad::kSparse);
  // 16 MiB of process + y's bytes + 10^7 rows of 16 bytes and a partition byte + 6
  // chunks x 3 + two tables (one per thread), each for 5 * 10^6 * 17 / 16 + 16 keys
  // at 0.5 load: twice that plus 16 reference slots, in 64-byte buckets of 8.
  const uint64_t per_table = (2 * (rows / 2 + rows / 2 / 16 + 16) + 16 + 7) / 8 * 64;
  const uint64_t sparse = (16 << 20) + y_bytes + rows * 17 + 6 * chunk * 3 + 2 * per_table;
  EXPECT_EQ(InMemoryTableLoad(y_bytes, rows, 2, chunk, sparse, false), TableLoad::kSparse);
  EXPECT_EQ(InMemoryTableLoad(y_bytes, rows, 2, chunk, sparse - 1, false), TableLoad::kCompact);
  EXPECT_EQ(InMemoryTableLoad(y_bytes, rows, 2, chunk, sparse, true), TableLoad::kCompact)
      << "key counters take 8 bytes a row";
  EXPECT_EQ(InMemoryTableLoad(y_bytes, rows, 2, chunk, sparse + rows * 8, true), TableLoad::kSparse);
}

// The out-of-core partition budget counts each y record's hash slots as the
// sparse tables hold them (context.h BuildRowBytes): text slots are 16 bytes,
// 4 to a bucket, so a text partition needs more per record than a numeric one.
// (The budget once counted 80 bytes for both: 8 fewer than a text record uses.)
TEST(BuildRowBytes, CountTheSparseSlotsOfEachKeyType) {
  for (size_t keys : {size_t{1000}, size_t{1} << 20}) {
    const double numeric = static_cast<double>(HashTableBytes<NumericSlot>(keys, TableLoad::kSparse)) / keys;
    const double text = static_cast<double>(HashTableBytes<TextSlot>(keys, TableLoad::kSparse)) / keys;
    EXPECT_GE(ooc::BuildRowBytes(KeyMode::kInt64) - ooc::kBuildRowEntryBytes + 0.5, numeric) << keys;
    EXPECT_GE(ooc::BuildRowBytes(KeyMode::kText) - ooc::kBuildRowEntryBytes + 0.5, text) << keys;
    EXPECT_LE(ooc::BuildRowBytes(KeyMode::kText) - ooc::kBuildRowEntryBytes, text + 1) << "not far over";
  }
  EXPECT_GT(ooc::BuildRowBytes(KeyMode::kText), ooc::BuildRowBytes(KeyMode::kFloat));
  EXPECT_EQ(ooc::kMaxBuildRowBytes, ooc::BuildRowBytes(KeyMode::kText));
}

}  // namespace
}  // namespace cloudmerge
