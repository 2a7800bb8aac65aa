// GraceJoin: the merge out of core, for inputs whose join does not fit in
// the memory limit (MergeOptions::memory_limit). Same answer as the in-memory engine (merge.cc), byte for byte.
//
//   1. partition: y, then x, are scanned in parallel units (groups of chunks;
//      a streamed input segment by segment, see table_scan.h);
//      every row goes to partition PartitionAt(PartitionHash(ID), 0, fanout) as
//      a record (its position in the file, its ID, its output text) in a spill
//      file per side and partition (spill_file.h). Units hand their blocks to the
//      files in file order, so each partition file is in file order. The files'
//      key types are inferred on the way (pandas decides them from all values).
//   2. join: worker threads take partitions; one whose y side fits the worker's
//      share of memory is joined in memory (hash table over y's records, x's
//      records streamed through it); one that does not is split again with the
//      next level's hash (recursion), and one that cannot be split (one hot key,
//      or the level cap) is joined by blocks of y that fit (block nested loop).
//      Every match becomes an output record (x position, y position, line) in a
//      run file per task, sorted by (x position, y position) by construction.
//   3. merge: the runs are merged on (x position, y position), which is the
//      script's order, and written to OUT. With --any-order, step 2 writes lines
//      to OUT directly and there is no step 3.
//
// Memory: units in flight, one partition's y per worker, and the merge's block
// per run are sized from the limit; see docs/out-of-core.md.
// Spill format: docs/spill-format.md. Temp files live in a SpillDirectory,
// removed on success, failure and fatal signals, reclaimed after SIGKILL.
// Code: grace_join.cc sizes the run and calls the phases in
// out_of_core/ — spill_records.h (record layouts), context.h (shared state and
// sizing), partition.h (step 1), partition_join.h and join_phase.h (step 2),
// sinks.h (runs or OUT), run_merge.h (step 3).
// Thread safety: RunGraceJoin starts and joins its own threads.
#pragma once

#include <cstdint>
#include <string>

#include "cloudmerge/io/env.h"
#include "cloudmerge/engine/merge_options.h"
#include "cloudmerge/base/status.h"
#include "cloudmerge/engine/table_scan.h"

namespace cloudmerge {

// Writes the header and the joined rows to out (not committed). Fills stats.
Status RunGraceJoin(Env* env, Table& x, Table& y, const MergeOptions& options, unsigned threads,
                    const std::string& header, AtomicOutput* out, MergeStats* stats);

}  // namespace cloudmerge
