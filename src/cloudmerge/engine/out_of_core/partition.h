// Partitioning for the out-of-core join (grace_join.h, step 1): a table's rows,
// or a partition file's records, hashed into `fanout` spill files of partition
// records, each in file order.
// Thread safety: PartitionTable runs its own parallel units (ctx.threads) and
// returns when they are done; Repartition runs on the calling thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cloudmerge/base/status.h"
#include "cloudmerge/engine/key_types.h"
#include "cloudmerge/engine/out_of_core/context.h"
#include "cloudmerge/engine/out_of_core/spill_records.h"
#include "cloudmerge/engine/table_scan.h"

namespace cloudmerge::ooc {

// One side of the join, partitioned: its files (one per partition; an empty
// one has no path), its key scan (the file's type is decided from it) and rows.
struct PartitionedSide {
  explicit PartitionedSide(PandasRules rules) : scan(rules) {}
  std::vector<SpillPart> parts;
  KeyScan scan;
  uint64_t rows = 0;
};

// Level 0: partitions a whole table, segment by segment (one for a mapped file),
// under PartitionHash (or, when `known` is given, the file's known type).
Status PartitionTable(Context& ctx, Table& t, bool is_y, uint32_t fanout, PartitionedSide* out,
                      const KeyMode* known = nullptr);

// Level > 0: splits one partition file by the next level's hash and removes it.
// Hashes under the side's known type (PartitionHashUnder), the same for x and y.
Result<std::vector<SpillPart>> Repartition(Context& ctx, const SpillPart& in, KeyMode mode, const std::string& stem,
                                           unsigned level, uint32_t fanout);

}  // namespace cloudmerge::ooc
