// The probe side of the in-memory join (merge.h): x streamed through the built
// y (in_memory_build.h), parallel by chunk, each chunk's output formatted into
// its own buffer and handed to one writer thread in chunk order (or, with
// --any-order, as chunks finish). A speculative probe infers x's key type in
// the same pass (ProbeMode). ScanXKeys only infers x's type (for an output that
// cannot be rewound).
// Thread safety: Probe and ScanXKeys start their own threads and must not race
// with anything else on x.
#pragma once

#include <cstdint>

#include "cloudmerge/base/progress.h"
#include "cloudmerge/base/status.h"
#include "cloudmerge/engine/in_memory_build.h"
#include "cloudmerge/engine/key_types.h"
#include "cloudmerge/engine/table_scan.h"
#include "cloudmerge/io/env.h"

namespace cloudmerge::in_memory {

struct ProbeCounts {
  uint64_t x_rows = 0, output_rows = 0;
  bool big_int = false;  // speculative probe: an integer beyond 2^53 (or int64) was seen
};

// How the probe keys x's values: with x's known type, or speculatively (while
// inferring x's type in the same pass).
struct ProbeMode {
  bool speculative = false;
  KeyMode x_mode = KeyMode::kText;  // the known type, or the one assumed for a text y
  bool y_numeric = false;
  PandasRules rules;
};

// Per-key counting during a probe (key statistics, --max-output-rows). x_counts[head]
// counts the x rows that found a key (atomically: threads share heads); chain[head]
// is the key's row count in y. count_only: no output, only output_rows.
struct ProbeCounting {
  uint32_t* x_counts = nullptr;
  const uint32_t* chain = nullptr;
  bool count_only = false;
};

// Probes every segment of x, in order, appending the matches to *out; adds to
// *counts and (speculative probes) folds x's key scan into *x_scan.
Status Probe(Table& x, const ProbeMode& mode, const BuildSide& b, bool y_has_values, unsigned threads, bool any_order,
             const ProbeCounting& counting, Progress* progress, AtomicOutput* out, ProbeCounts* counts,
             KeyScan* x_scan);

// Scans every segment of x for its key type only; the scan (values, plain_ints) in *total.
Status ScanXKeys(Table& x, unsigned threads, Progress* progress, KeyScan* total);

}  // namespace cloudmerge::in_memory
