// Joining one partition of the out-of-core join (grace_join.h, step 2): y's
// records hashed in memory, x's records streamed through them, every match
// handed to a sink. A partition whose y side does not fit and cannot be split
// (a hot key) is joined by blocks of y that fit (block nested loop).
// Thread safety: each call uses its own tables (or its worker's JoinScratch); ctx's counters are atomic and
// `keys` belongs to the calling worker.
#pragma once

#include <memory>

#include "cloudmerge/base/status.h"
#include "cloudmerge/engine/key_stats.h"
#include "cloudmerge/engine/out_of_core/context.h"
#include "cloudmerge/engine/out_of_core/sinks.h"
#include "cloudmerge/engine/out_of_core/spill_records.h"

namespace cloudmerge::ooc {

// What one worker reuses from one partition's join to the next: the hash
// table's slots and the row and count arrays. Hundreds of partitions of about
// the same size are joined in a row; fresh memory for each costs page faults,
// zeroing and, when it is unmapped, a TLB shootdown on every core.
// Thread safety: one worker's.
class JoinScratch {
 public:
  JoinScratch();
  ~JoinScratch();
  struct Tables;
  std::unique_ptr<Tables> tables;  // made by the first join
};

// Joins a partition whose y side fits: one table, one pass over x.
Status JoinInMemory(Context& ctx, const SpillPart& yp, const SpillPart& xp, MatchSink* sink, KeyStats* keys,
                    JoinScratch* scratch);

// Joins a partition too big for memory that cannot be split (a hot key): y in
// blocks that fit, all of x through each. Each block's matches form their own
// sorted run (matches of one x row from block 2 follow block 1's in y order).
Status JoinByBlocks(Context& ctx, const SpillPart& yp, const SpillPart& xp, Outputs* outs, KeyStats* keys);

// y's distinct keys of a partition no x row reaches (for the report), into ctx.
Status CountDistinctKeys(Context& ctx, const SpillPart& yp);

}  // namespace cloudmerge::ooc
