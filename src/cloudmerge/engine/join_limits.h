// Limits both engines (merge.cc in memory, grace_join.h out of core) apply:
// whether a join fits in memory, and the refusal of a result over
// --max-output-rows.
// Thread safety: pure functions (SampleRows reads the table's mapped bytes).
#pragma once

#include <cstddef>
#include <cstdint>

#include "cloudmerge/base/status.h"
#include "cloudmerge/engine/join_hash_table.h"
#include "cloudmerge/engine/merge_options.h"
#include "cloudmerge/engine/table_scan.h"

namespace cloudmerge {

// Rows of a table of `bytes` bytes, estimated from its first 4 MiB.
uint64_t SampleRows(const Table& t, uint64_t bytes);

// Bytes the in-memory engine needs to join with y as its build side (y's bytes
// stay mapped, plus per row its record and hash slot), estimated from a sample.
uint64_t EstimateInMemoryJoinBytes(const Table& y, unsigned threads, size_t chunk_bytes);

// The load of the in-memory join's hash tables for y's `rows` (numeric keys or
// text): sparse (fewer cache misses per lookup) when the join's estimated bytes
// with it stay within memory_limit, else compact.
TableLoad InMemoryTableLoad(uint64_t y_bytes, uint64_t rows, bool numeric, unsigned threads, size_t chunk_bytes,
                            uint64_t memory_limit);

// The refusal of a result bigger than the output-row limit: the count and the hottest keys.
Status OutputRowLimitError(const MergeStats& stats, uint64_t limit);

}  // namespace cloudmerge
