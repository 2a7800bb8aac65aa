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

// Bytes the in-memory engine's process peaks at with y's `rows` as its build
// side: the process itself, y's bytes (they stay mapped), per row its record,
// partition byte and, with key_counters (key statistics or an output-row limit),
// its two counts, the hash tables as Build sizes them at `load`, and the output
// in flight. The join runs in memory only when this fits --memory-limit, so the
// limit holds for the whole process.
uint64_t InMemoryJoinPeakBytes(uint64_t y_bytes, uint64_t rows, TableLoad load, unsigned threads, size_t chunk_bytes,
                               bool key_counters);

// InMemoryJoinPeakBytes before y is scanned: rows estimated from a sample, and
// the tables at the compact load (the tables are the same for any key type).
uint64_t EstimateInMemoryJoinBytes(const Table& y, unsigned threads, size_t chunk_bytes, bool key_counters);

// The load of the in-memory join's hash tables for y's `rows`: sparse (fewer
// cache misses per lookup) when the join's bytes with it (as
// InMemoryJoinPeakBytes counts them) stay within memory_limit, else compact.
TableLoad InMemoryTableLoad(uint64_t y_bytes, uint64_t rows, unsigned threads, size_t chunk_bytes,
                            uint64_t memory_limit, bool key_counters);

// The refusal of a result bigger than the output-row limit: the count and the hottest keys.
Status OutputRowLimitError(const MergeStats& stats, uint64_t limit);

}  // namespace cloudmerge
