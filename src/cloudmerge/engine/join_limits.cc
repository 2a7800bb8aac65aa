#include "cloudmerge/engine/join_limits.h"

#include <algorithm>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "cloudmerge/engine/in_memory_build.h"

namespace cloudmerge {

uint64_t SampleRows(const Table& t, uint64_t bytes) {
  std::string_view d = t.data();
  size_t sample = std::min<size_t>(d.size(), 4u << 20);
  size_t lines = std::count(d.data(), d.data() + sample, '\n');
  if (sample == 0) return 0;
  return static_cast<uint64_t>(static_cast<double>(bytes) * (lines + 1) / static_cast<double>(sample)) + 1;
}

namespace {

// The process before any join: code, libraries, thread stacks (12 MiB measured for a
// tiny merge), rounded up.
constexpr uint64_t kProcessBytes = uint64_t{16} << 20;

// The tables Build makes for y's rows (in_memory_build.h): one per partition.
uint64_t TableBytes(uint64_t rows, TableLoad load, unsigned threads) {
  const size_t partitions = in_memory::BuildPartitions(threads);
  return partitions * HashTableBytes<RefSlot>(in_memory::ExpectedKeysPerTable(rows, partitions), load);
}

}  // namespace

uint64_t InMemoryJoinPeakBytes(uint64_t y_bytes, uint64_t rows, TableLoad load, unsigned threads, size_t chunk_bytes,
                               bool key_counters) {
  const uint64_t per_row = sizeof(in_memory::YRow) + 1 + (key_counters ? 2 * sizeof(uint32_t) : 0);
  return kProcessBytes + y_bytes + per_row * rows + TableBytes(rows, load, threads) +
         (2 * threads + 2) * chunk_bytes * 3;
}

uint64_t EstimateInMemoryJoinBytes(const Table& y, unsigned threads, size_t chunk_bytes, bool key_counters) {
  return InMemoryJoinPeakBytes(y.size(), SampleRows(y, y.size()), TableLoad::kCompact, threads, chunk_bytes,
                               key_counters);
}

TableLoad InMemoryTableLoad(uint64_t y_bytes, uint64_t rows, unsigned threads, size_t chunk_bytes,
                            uint64_t memory_limit, bool key_counters) {
  const uint64_t sparse = InMemoryJoinPeakBytes(y_bytes, rows, TableLoad::kSparse, threads, chunk_bytes, key_counters);
  return sparse <= memory_limit ? TableLoad::kSparse : TableLoad::kCompact;
}

Status OutputRowLimitError(const MergeStats& s, uint64_t limit) {
  std::string hot;
  for (const HotKey& k : s.hottest_keys)
    hot += fmt::format("\n  {:>12} rows  ID '{}' ({} rows in x × {} in y)", k.output_rows(), k.key, k.x_rows, k.y_rows);
  return Status::InvalidInput(fmt::format(
      "the result would have {} rows, more than the output-row limit {}; nothing was written. The keys that "
      "produce the most rows:{}\nIDs repeated on both sides multiply: check that the key column is the right one, "
      "remove the duplicates, or raise the output-row limit.",
      s.output_rows, limit, hot)).WithSetting(Setting::kMaxOutputRows);
}

}  // namespace cloudmerge
