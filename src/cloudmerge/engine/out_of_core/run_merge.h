// The out-of-core join's merge phase (grace_join.h, step 3): the sorted runs
// merged on (x position, y position), the script's order, into OUT.
// Thread safety: MergeIntoOutput starts and joins its own threads.
#pragma once

#include "cloudmerge/base/status.h"
#include "cloudmerge/engine/out_of_core/context.h"
#include "cloudmerge/engine/out_of_core/sinks.h"
#include "cloudmerge/io/env.h"

namespace cloudmerge::ooc {

// Merges all runs into OUT; first in groups when there are more runs than the
// memory allows cursors for. Every merger holds a cursor per run, so the final
// merge runs in as many ranges as the threads and the cursors' memory allow.
// *ranges_used: the ranges the final merge ran in. Removes the runs.
Status MergeIntoOutput(Context& ctx, Outputs* outs, AtomicOutput* out, unsigned* ranges_used);

}  // namespace cloudmerge::ooc
