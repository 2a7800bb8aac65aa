// RunGraceJoin: the out-of-core join's control thread. It sizes the run from the
// memory limit and the inputs, then runs the three phases that live in
// out_of_core/: partition (partition.h), join (join_phase.h), merge (run_merge.h).
#include "cloudmerge/engine/grace_join.h"

#include <malloc.h>

#include <algorithm>
#include <vector>

#include "cloudmerge/base/memory_info.h"
#include "cloudmerge/engine/join_limits.h"
#include "cloudmerge/engine/merge.h"
#include "cloudmerge/engine/out_of_core/context.h"
#include "cloudmerge/engine/out_of_core/join_phase.h"
#include "cloudmerge/engine/out_of_core/partition.h"
#include "cloudmerge/engine/out_of_core/run_merge.h"
#include "cloudmerge/engine/out_of_core/sinks.h"
#include "cloudmerge/engine/phase_timer.h"
#include "cloudmerge/io/spill_directory.h"

namespace cloudmerge {
namespace {

using ooc::Context;
using ooc::PartitionedSide;

// The run's sizes and settings, from the memory limit, the options and the inputs.
void Configure(Context& ctx, const MergeOptions& o, unsigned threads, uint64_t limit, const Table& x,
               const Table& y, SpillDirectory* dir) {
  ctx.options = &o;
  ctx.rules = o.pandas;
  ctx.threads = std::max(1u, threads);
  ctx.dir = dir;
  ctx.progress = o.progress;
  ctx.memory_limit = limit;
  ctx.task_budget = std::max<uint64_t>(limit / 2 / ctx.threads, 4u << 10);
  ctx.max_fanout = o.spill_fanout ? std::max(2u, o.spill_fanout) : 256;
  // Every open partition costs its file's write buffer and a block being filled per
  // worker: under a small limit, fewer partitions per level (and more levels).
  ctx.block_bytes = std::clamp<size_t>(limit / (16 * ctx.threads * 64), 16u << 10, 1u << 20);
  const uint64_t per_partition = ooc::kSpillWriteBuffer + ctx.block_bytes * ctx.threads;
  ctx.max_fanout = static_cast<uint32_t>(std::clamp<uint64_t>(limit / 4 / per_partition, 2, ctx.max_fanout));
  ctx.y_has_values = y.column_names().size() > 1;
  // Spill files take about 1.5x the inputs (partitions, then runs): compress them
  // when room is short, else spend the CPU on the join.
  const uint64_t input_bytes = x.size() + y.size();
  switch (o.spill_compression) {
    case MergeOptions::SpillCompression::kZstd: ctx.zstd_level = kSpillZstdLevel; break;
    case MergeOptions::SpillCompression::kNone: ctx.zstd_level = kSpillStoreRaw; break;
    case MergeOptions::SpillCompression::kAuto:
      ctx.zstd_level = dir->FreeBytes() < 4 * input_bytes ? kSpillZstdLevel : kSpillStoreRaw;
  }
}

// Level 0's fan-out: enough partitions that each fits a worker's memory, and more
// when y is big enough: a partition's hash table near cache size probes several
// times faster than one of hundreds of MiB (the radix-join observation), and more
// files cost little.
uint32_t FirstFanout(const Context& ctx, const Table& y) {
  const uint64_t y_bytes = y.size();
  const uint64_t y_rows_guess = SampleRows(y, y_bytes);
  const uint64_t y_build_bytes = y_bytes + 16 * y_rows_guess + ooc::kMaxBuildRowBytes * y_rows_guess;
  return std::max<uint32_t>(
      ooc::FanoutFor(ctx, y_build_bytes),
      static_cast<uint32_t>(std::min<uint64_t>(ctx.max_fanout, y_build_bytes / ooc::kCacheFriendlyPartition)));
}

// Partitions one side at level 0 as a timed phase.
Status PartitionPhase(Context& ctx, Table& t, bool is_y, uint32_t fanout, PartitionedSide* side, const char* name,
                      const KeyMode* known = nullptr) {
  PhaseTimer phase(ctx.progress, &ctx.stats->phases, name, t.size(), 0);
  CM_RETURN_IF_ERROR(ooc::PartitionTable(ctx, t, is_y, fanout, side, known));
  phase.End(side->rows, t.size());
  return Status::OK();
}

// A float64 file with an integer spelling pandas reads otherwise as a float
// ("000000000000000007" is 0.0) was partitioned by the integer's value: partition it
// again, now that its type is known (rare; costs one more pass over that input).
Status RepartitionIfLossy(Context& ctx, Table& t, bool is_y, uint32_t fanout, PartitionedSide& side,
                          KeyMode mode) {
  if (mode != KeyMode::kFloat || !side.scan.lossy_int()) return Status::OK();
  for (const ooc::SpillPart& part : side.parts) ctx.env->RemoveFile(part.path);
  side = PartitionedSide(ctx.rules);
  return PartitionPhase(ctx, t, is_y, fanout, &side, is_y ? "partition y again" : "partition x again", &mode);
}

// Partitions y, then x, and decides their key types.
Status PartitionBoth(Context& ctx, Table& x, Table& y, uint32_t fanout, PartitionedSide& xs, PartitionedSide& ys) {
  CM_RETURN_IF_ERROR(PartitionPhase(ctx, y, true, fanout, &ys, "partition y"));
  CM_RETURN_IF_ERROR(PartitionPhase(ctx, x, false, fanout, &xs, "partition x"));
  // Freed buffers of the phase go back to the system, not to the next phase's peak.
  malloc_trim(0);
  CM_RETURN_IF_ERROR(CheckPandasRulesSupported(ys.scan, y.path(), ctx.rules));
  CM_RETURN_IF_ERROR(CheckPandasRulesSupported(xs.scan, x.path(), ctx.rules));
  ctx.y_mode = ys.scan.Decide();
  ctx.x_mode = xs.scan.Decide();
  CM_RETURN_IF_ERROR(RepartitionIfLossy(ctx, y, true, fanout, ys, ctx.y_mode));
  CM_RETURN_IF_ERROR(RepartitionIfLossy(ctx, x, false, fanout, xs, ctx.x_mode));
  ctx.stats->y_rows = ys.rows;
  ctx.stats->x_rows = xs.rows;
  ctx.stats->y_mode = ctx.y_mode;
  ctx.stats->x_mode = ctx.x_mode;
  return Status::OK();
}

// The join phase over the level-0 partitions; sets stats->output_rows.
Status JoinPartitions(Context& ctx, ooc::Outputs* outs, const PartitionedSide& xs, const PartitionedSide& ys,
                      uint32_t fanout) {
  std::vector<ooc::JoinTask> tasks;
  uint64_t spilled_rows = 0, spilled_raw = 0;
  for (uint32_t p = 0; p < fanout; ++p) {
    tasks.push_back(ooc::JoinTask{ys.parts[p], xs.parts[p], 0, false});
    spilled_rows += ys.parts[p].records + xs.parts[p].records;
    spilled_raw += ys.parts[p].raw_bytes + xs.parts[p].raw_bytes;
  }
  PhaseTimer phase(ctx.progress, &ctx.stats->phases, "join", spilled_raw, spilled_rows);
  Status st = ooc::RunJoinPhase(&ctx, outs, std::move(tasks));
  ctx.stats->output_rows = ctx.output_rows.load();
  phase.End(ctx.stats->output_rows, 0);
  return st;
}

void CopyJoinStats(const Context& ctx, MergeStats* stats) {
  stats->partitions = ctx.stats_partitions.load();
  stats->y_distinct_keys = ctx.y_distinct_keys.load();
  stats->nested_loop_keys = ctx.stats_nested.load();
  stats->spill_levels = ctx.stats_levels.load();
}

void CopySpillStats(const Context& ctx, MergeStats* stats) {
  stats->spilled_bytes = ctx.spilled_bytes.load();
  stats->spill_files = ctx.spill_files.load();
}

}  // namespace

Status RunGraceJoin(Env* env, Table& x, Table& y, const MergeOptions& o, unsigned threads,
                    const std::string& header, AtomicOutput* out, MergeStats* stats) {
  const uint64_t limit = o.memory_limit ? o.memory_limit : DefaultMemoryLimit();
  const std::string parent = o.temp_dir.empty() ? DefaultTempParent() : o.temp_dir;
  auto dir = SpillDirectory::Create(parent, &stats->reclaimed_temp_bytes);
  if (!dir.ok()) return dir.status();

  Context ctx;
  ctx.env = env;
  ctx.stats = stats;
  Configure(ctx, o, threads, limit, x, y, dir->get());
  stats->spill_compressed = ctx.zstd_level != kSpillStoreRaw;
  const uint32_t fanout0 = FirstFanout(ctx, y);
  stats->out_of_core = true;
  stats->memory_limit = limit;
  stats->x_bytes = x.size();
  stats->y_bytes = y.size();

  PartitionedSide ys(ctx.rules), xs(ctx.rules);
  CM_RETURN_IF_ERROR(PartitionBoth(ctx, x, y, fanout0, xs, ys));

  ooc::Outputs outs;
  outs.out = out;
  CM_RETURN_IF_ERROR(out->Append(header));
  // A number never equals a text: with one numeric and one text file nothing matches.
  if (IsNumeric(ctx.x_mode) == IsNumeric(ctx.y_mode) && ys.rows && xs.rows)
    CM_RETURN_IF_ERROR(JoinPartitions(ctx, &outs, xs, ys, fanout0));
  CopyJoinStats(ctx, stats);
  if (o.max_output_rows && stats->output_rows > o.max_output_rows) {
    CopySpillStats(ctx, stats);
    return OutputRowLimitError(*stats, o.max_output_rows);
  }
  malloc_trim(0);
  if (!o.any_order && !outs.runs.empty()) {
    PhaseTimer phase(ctx.progress, &stats->phases, "merge", 0, stats->output_rows);
    CM_RETURN_IF_ERROR(ooc::MergeIntoOutput(ctx, &outs, out, &stats->merge_ranges));
    phase.End(stats->output_rows, 0);
  }
  CopySpillStats(ctx, stats);
  return Status::OK();
}

}  // namespace cloudmerge
