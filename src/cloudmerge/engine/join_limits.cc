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

// y's bytes stay mapped, plus bytes_per_row for each row (its record and hash slot); the
// probe holds up to 2 * threads + 2 chunks of output in flight.
uint64_t InMemoryJoinBytes(uint64_t y_bytes, uint64_t rows, uint64_t bytes_per_row, unsigned threads,
                           size_t chunk_bytes) {
  return y_bytes + bytes_per_row * rows + (2 * threads + 2) * chunk_bytes * 3;
}

}  // namespace

uint64_t EstimateInMemoryJoinBytes(const Table& y, unsigned threads, size_t chunk_bytes) {
  // A 20-byte record and a hash slot (~16 bytes at 0.75 load) per row, rounded up.
  return InMemoryJoinBytes(y.size(), SampleRows(y, y.size()), 40, threads, chunk_bytes);
}

TableLoad InMemoryTableLoad(uint64_t y_bytes, uint64_t rows, bool numeric, unsigned threads, size_t chunk_bytes,
                            uint64_t memory_limit) {
  const uint64_t tables = numeric ? HashTableBytes<NumericSlot>(rows, TableLoad::kSparse)
                                  : HashTableBytes<TextSlot>(rows, TableLoad::kSparse);
  const uint64_t sparse = InMemoryJoinBytes(y_bytes, rows, sizeof(in_memory::YRow), threads, chunk_bytes) + tables;
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
