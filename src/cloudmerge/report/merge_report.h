// MergeReport: the end-of-run summary of a merge, for people (printed to
// stderr) and for programs (--report FILE, one JSON object).
// Thread safety: pure functions.
#pragma once

#include <string>

#include "cloudmerge/engine/merge_options.h"

namespace cloudmerge {

// A few lines: rows read per side (and key types), rows written, matched keys,
// hottest keys, out-of-core facts (partitions, spill levels, spilled bytes),
// peak memory vs the limit, time per phase.
std::string MergeSummaryText(const MergeStats& stats, const MergeOptions& options);
// Everything in MergeStats as JSON (schema documented in docs/report.md).
std::string MergeReportJson(const MergeStats& stats, const MergeOptions& options);

}  // namespace cloudmerge
