// The out-of-core join's shared state (see grace_join.h): the run's settings
// and sizes, worker-shared counters, the first error of a parallel phase, and
// the sizing rules that every phase applies (build bytes, fan-out).
// Thread safety: Context's settings are written by RunGraceJoin before any
// worker starts and only read after; its atomics and FirstError are shared by
// the workers.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>

#include "cloudmerge/base/progress.h"
#include "cloudmerge/base/status.h"
#include "cloudmerge/engine/key_types.h"
#include "cloudmerge/engine/merge_options.h"
#include "cloudmerge/engine/out_of_core/spill_records.h"
#include "cloudmerge/io/env.h"
#include "cloudmerge/io/spill_directory.h"
#include "cloudmerge/io/spill_file.h"

namespace cloudmerge::ooc {

// The first error of a parallel phase; later ones are dropped.
class FirstError {
 public:
  void Set(Status s) {
    std::lock_guard<std::mutex> lock(mu_);
    if (status_.ok() && !s.ok()) status_ = std::move(s);
    failed_.store(true, std::memory_order_relaxed);
  }
  bool failed() const { return failed_.load(std::memory_order_relaxed); }
  Status Get() {
    std::lock_guard<std::mutex> lock(mu_);
    return status_;
  }

 private:
  std::mutex mu_;
  Status status_;
  std::atomic<bool> failed_{false};
};

// Everything a run shares between its phases and threads.
struct Context {
  Env* env = nullptr;
  const MergeOptions* options = nullptr;
  unsigned threads = 1;
  SpillDirectory* dir = nullptr;
  MergeStats* stats = nullptr;
  Progress* progress = nullptr;
  uint64_t memory_limit = 0;
  uint64_t task_budget = 0;  // memory for one join task's y side
  size_t block_bytes = 0;    // raw bytes per spill block
  int zstd_level = kSpillZstdLevel;  // or kSpillStoreRaw
  uint32_t max_fanout = 2;
  KeyMode x_mode = KeyMode::kText, y_mode = KeyMode::kText;
  PandasRules rules;  // options->pandas
  bool y_has_values = true;

  std::atomic<uint64_t> spilled_bytes{0}, spill_files{0};
  std::atomic<uint64_t> output_rows{0};
  std::atomic<bool> over_limit{false};  // --max-output-rows exceeded: count, stop emitting
  std::atomic<uint64_t> stats_partitions{0}, stats_nested{0}, y_distinct_keys{0};
  std::atomic<unsigned> stats_levels{0};

  void AddProgress(uint64_t rows, uint64_t bytes) {
    if (progress) progress->Add(rows, bytes);
  }
  void CountSpill(const SpillWriter& w) {
    spilled_bytes.fetch_add(w.bytes_written(), std::memory_order_relaxed);
    spill_files.fetch_add(1, std::memory_order_relaxed);
  }
  void AddOutputRows(uint64_t n) {
    uint64_t total = output_rows.fetch_add(n, std::memory_order_relaxed) + n;
    if (options->max_output_rows && total > options->max_output_rows) over_limit.store(true, std::memory_order_relaxed);
  }
  bool emitting() const { return !over_limit.load(std::memory_order_relaxed); }
};


// Bytes a partition's join holds per y record besides its raw bytes: its row
// entry (kBuildRowEntryBytes: the parsed record with its chain length, and its x count) and its
// hash slots at 0.5 load, in buckets of one cache line (join_hash_table.h): 5
// numeric slots or 4 text slots per 64 bytes, so 26 or 32 bytes per record.
// The type of x and y is not known when level 0's fan-out is chosen: that uses
// the larger, text's.
constexpr uint64_t kBuildRowEntryBytes = 52;
constexpr uint64_t BuildRowBytes(KeyMode y_mode) {
  return kBuildRowEntryBytes + (IsNumeric(y_mode) ? 26 : 32);
}
constexpr uint64_t kMaxBuildRowBytes = BuildRowBytes(KeyMode::kText);
constexpr uint64_t kCacheFriendlyPartition = 8u << 20;
constexpr uint64_t kSpillWriteBuffer = 64u << 10;  // SpillWriter's buffer (spill_file.cc)
inline uint64_t BuildBytes(const SpillPart& y, KeyMode y_mode) {
  return y.raw_bytes + BuildRowBytes(y_mode) * y.records;
}

// Fan-out to split `bytes` of build side into pieces of a task's budget, with slack.
inline uint32_t FanoutFor(const Context& ctx, uint64_t bytes) {
  uint64_t want = bytes * 3 / 2 / std::max<uint64_t>(1, ctx.task_budget) + 1;
  return static_cast<uint32_t>(std::clamp<uint64_t>(want, 2, ctx.max_fanout));
}

}  // namespace cloudmerge::ooc
