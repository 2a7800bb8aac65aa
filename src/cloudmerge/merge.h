// Merge: the join operator. Computes what analysis.py computes — every (x row,
// y row) pair whose IDs are equal under the script's type rules, x's file order
// then y's file order — with a hash join in O(|x| + |y| + |output|):
//
//   1. scan y (parallel by chunk): validate, infer y's key type, keep each row's
//      key and output text (pointers into the mapped input where possible);
//   2. build (parallel by hash partition) the hash table over y's keys;
//   3. probe (parallel by chunk of x): validate x and infer its key type while
//      each x row's matches are appended to the chunk's output buffer; buffers
//      are written in chunk order, so output is in the script's order without
//      sorting (--any-order writes them as they finish). The probe assumes x's
//      IDs are numbers when y's are (text when y's are text); when x's type
//      turns out to key differently, the output is rewound and x probed again.
//      To standard output, which cannot be rewound, x is scanned for its type
//      first and probed second.
//
// The output is written to a temporary next to OUT and renamed on success.
// Thread safety: RunMerge may be called from any thread; it starts its own.
#pragma once

#include <cstdint>
#include <string>

#include "cloudmerge/env.h"
#include "cloudmerge/key_types.h"
#include "cloudmerge/status.h"

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
};

struct MergeStats {
  uint64_t x_rows = 0, y_rows = 0, output_rows = 0;
  uint64_t y_distinct_keys = 0;
  KeyMode x_mode = KeyMode::kText, y_mode = KeyMode::kText;
  unsigned threads = 1;
  bool speculation_failed = false;  // x's type was not the one assumed: x was probed twice
  double seconds_scan_y = 0, seconds_scan_x = 0, seconds_build = 0, seconds_probe = 0, seconds_total = 0;
};

Status RunMerge(Env* env, const MergeOptions& options, MergeStats* stats);

}  // namespace cloudmerge
