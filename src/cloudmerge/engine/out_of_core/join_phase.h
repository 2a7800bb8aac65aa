// The out-of-core join's join phase (grace_join.h, step 2): a pool of
// ctx.threads workers over a queue of partition tasks. A task whose y side fits
// a worker's budget is joined in memory; a bigger one is split with the next
// level's hash into new tasks, or joined by blocks when splitting cannot help.
// Thread safety: RunJoinPhase starts and joins its workers.
#pragma once

#include <vector>

#include "cloudmerge/base/status.h"
#include "cloudmerge/engine/out_of_core/context.h"
#include "cloudmerge/engine/out_of_core/sinks.h"
#include "cloudmerge/engine/out_of_core/spill_records.h"

namespace cloudmerge::ooc {

struct JoinTask {
  SpillPart y, x;
  unsigned level = 0;
  bool hot = false;  // splitting did not divide it: if still too big, join by blocks
};

constexpr unsigned kMaxLevels = 6;

// Joins every task (and the tasks they split into); matches go to outs (runs,
// or OUT under --any-order). Folds the workers' key statistics into ctx->stats.
Status RunJoinPhase(Context* ctx, Outputs* outs, std::vector<JoinTask> tasks);

}  // namespace cloudmerge::ooc
