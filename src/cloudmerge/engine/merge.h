// Merge: the join operator. Computes what analysis.py computes — every (x row,
// y row) pair whose IDs are equal under the script's type rules, x's file order
// then y's file order — with a hash join in O(|x| + |y| + |output|):
//
//   1. scan y (parallel by chunk): validate, infer y's key type, keep each row's
//      key and output text (pointers into the mapped input where possible);
//   2. build (parallel by hash partition) the hash table over y's keys;
//   3. probe (parallel by chunk of x): validate x and infer its key type while
//      each x row's matches are appended to the chunk's output buffer; buffers
//      are written in chunk order, so output is in the script's order without
//      sorting (--any-order writes them as they finish). The probe assumes x's
//      IDs are numbers when y's are (text when y's are text); when x's type
//      turns out to key differently, the output is rewound and x probed again.
//      To standard output, which cannot be rewound, x is scanned for its type
//      first and probed second.
//
// The output is written to a temporary next to OUT and renamed on success.
// Thread safety: RunMerge may be called from any thread; it starts its own.
#pragma once

#include <string_view>

#include "cloudmerge/base/status.h"
#include "cloudmerge/engine/key_types.h"
#include "cloudmerge/engine/merge_options.h"
#include "cloudmerge/io/env.h"

namespace cloudmerge {

Status RunMerge(Env* env, const MergeOptions& options, MergeStats* stats);

// The output's header line (with its '\n'): x's columns with _x, y's non-key columns with _y; for
// two-column files keyed on the first, the script's ID_x, value_x, value_y.
class Table;
std::string OutputHeader(const Table& x, const Table& y);

// Refuses (InvalidInput, naming the file, the data row and the value) a file whose
// scan met an ID the chosen pandas reads in a way cloudmerge does not reproduce:
// under pandas 3, an integer beyond 64 bits (KeyScan::big_int_at). Every engine calls it.
Status CheckPandasRulesSupported(const KeyScan& scan, std::string_view path, PandasRules rules);

}  // namespace cloudmerge
