// MergeOptions, MergeStats, PhaseStats, HotKey: the vocabulary every engine,
// the report and the callers share — what a merge is asked to do and what it
// found. A ground-floor header: it includes no engine header that could include
// it back (merge.h, grace_join.h, key_stats.h, phase_timer.h and
// report/merge_report.h all build on it).
// Thread safety: plain data.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "cloudmerge/base/progress.h"
#include "cloudmerge/engine/key_types.h"

namespace cloudmerge {

struct MergeOptions {
  std::string x_path;
  std::string y_path;
  std::string out_path = "-";
  std::string x_key = "1";  // 1-based position or column name
  std::string y_key = "1";
  bool any_order = false;
  bool allow_numeric_header = false;
  unsigned threads = 0;              // 0: one per hardware thread
  size_t chunk_bytes = size_t{1} << 20;  // work unit of the parallel scans
  // Streamed inputs (S3 objects, .gz/.zst files) are read in segments of about
  // this many bytes (0: StreamSegmentSizes(memory limit), 1-64 MiB).
  size_t segment_bytes = 0;
  // A mapped input whose body is at least this big is split before it is known
  // to hold no '"' and checked in the background, just ahead of its scan
  // (table_scan.h); 0: every mapped input big enough to split (tests).
  uint64_t quote_check_ahead_from = uint64_t{1} << 30;
  // Out of core (see grace_join.h): the memory the join may use (0: DefaultMemoryLimit()),
  // where it spills ("": DefaultTempParent()).
  uint64_t memory_limit = 0;
  std::string temp_dir;
  // The gzip / zstd level of an output named *.gz / *.zst (--compression-level; < 0: the
  // output level of io/compression.h).
  int output_level = -1;
  // Refuse (Status::InvalidInput, nothing written) a result of more rows than this; 0: no limit.
  uint64_t max_output_rows = 0;
  // Partitions per level of spilling (0: chosen from the sizes); small values force deep recursion (tests).
  unsigned spill_fanout = 0;
  // Spill blocks compressed with zstd: kAuto compresses when the temp dir's free
  // space is under 4x the inputs (on Lambda's /tmp, say), else stores them raw.
  enum class SpillCompression { kAuto, kZstd, kNone } spill_compression = SpillCompression::kAuto;
  // Compute matched keys, hottest keys and the matches-per-key histogram (always out of core; in memory
  // it costs a counter per y row, so only when asked: --report, --stats, --max-output-rows, the pipeline).
  bool key_stats = false;
  // Whose read_csv to reproduce (--pandas-version; docs/pandas-versions.md). Default: pandas 1.5.3.
  PandasRules pandas;
  Progress* progress = nullptr;  // may be null
};

// Time and work of one phase of a merge, in the order they ran.
struct PhaseStats {
  std::string name;
  double seconds = 0;
  uint64_t rows = 0, bytes = 0;
};

// A key that matched, with its rows on each side (it produced x_rows * y_rows output rows).
struct HotKey {
  std::string key;
  uint64_t x_rows = 0, y_rows = 0;
  uint64_t output_rows() const { return x_rows * y_rows; }
};

struct MergeStats {
  uint64_t x_rows = 0, y_rows = 0, output_rows = 0;
  uint64_t y_distinct_keys = 0;
  KeyMode x_mode = KeyMode::kText, y_mode = KeyMode::kText;
  unsigned threads = 1;
  bool speculation_failed = false;  // x's type was not the one assumed: x was probed twice
  bool damaged_transfer_retried = false;  // a streamed input arrived damaged: the merge ran again
  bool sparse_hash_tables = false;  // in memory: the tables built at 0.5 load (join_hash_table.h TableLoad)
  double seconds_scan_y = 0, seconds_scan_x = 0, seconds_build = 0, seconds_probe = 0, seconds_total = 0;
  uint64_t x_bytes = 0, y_bytes = 0;  // input sizes (decoded)
  // ID values typed by the plain-integer fast path (ParsePlainInt) while inferring types, x and y (in memory).
  uint64_t plain_int_keys = 0;
  uint64_t matched_keys = 0;          // distinct keys present in both x and y
  std::vector<HotKey> hottest_keys;   // up to 10, most output rows first
  // matches_per_key[i]: matched keys that produced [2^i, 2^(i+1)) output rows.
  std::array<uint64_t, 64> matches_per_key{};
  std::vector<PhaseStats> phases;
  // Out of core.
  bool out_of_core = false;
  uint64_t memory_limit = 0;
  uint64_t partitions = 0;        // leaf partitions joined
  unsigned spill_levels = 0;      // deepest re-partitioning (1: partitioned once)
  unsigned merge_ranges = 0;      // x ranges merged in parallel into the script's order (0: no merge)
  uint64_t nested_loop_keys = 0;  // hot keys joined block by block (bigger than memory)
  uint64_t spilled_bytes = 0;     // bytes written to the temp dir (compressed)
  uint64_t spill_files = 0;
  bool spill_compressed = false;  // spill blocks compressed with zstd (see SpillCompression)
  uint64_t reclaimed_temp_bytes = 0;  // left behind by crashed runs, removed at start
  uint64_t peak_rss_bytes = 0;
};

}  // namespace cloudmerge
