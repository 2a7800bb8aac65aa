// Split tasks: the merge cut into the pieces a cluster scheduler (Spark) runs
// as tasks, so that every row is handled by this engine and Spark only moves
// opaque blobs of bytes between them (spark/merge_job.py drives them through
// `cloudmerge cluster-task`, src/tools/cluster_task_command.h).
//
//   scan      one split of a file (a byte range that starts and ends at record
//             boundaries, or the whole file): validates its rows, returns the
//             split's KeyScan (the counters pandas' type inference needs) and
//             its rows as records (file position, ID, output text) in blobs per
//             destination partition (whole, or streamed in pieces), by the out-of-core engine's
//             type-independent PartitionHash (so partitioning needs no types);
//   combine   the splits' KeyScans appended in file order: the file's type,
//             exactly as one pass over the whole file decides it;
//   join      one partition's x and y records (each in file order) joined
//             under the files' types, matches in (x position, y position)
//             order, cut into ranges of x position for the ordered write;
//   write     one range's match blobs (one per join partition, each ordered by
//             x position) merged by x position and written as output lines.
//
// Record boundaries: a file without '"' is split at line ends (a record starts
// right after "\n", "\r\n" or a lone "\r"; RecordStartAtOrAfter). A '"' may hide
// line breaks in a quoted field, so a split that sees one says so and the
// driver reads that file as one split (as the native engine tokenizes a quoted
// file in one chunk).
//
// Blob formats (native byte order; producer and consumer are the same binary):
//   record: varint position delta | varint (ID bytes << 1 | 1) | varint ID offset in text | varint text bytes | text
//           when the ID lies within the text (x's records: the text is the whole row), else
//           varint position delta | varint (ID bytes << 1) | varint text bytes | ID | text
//   match:  varint x position delta | varint line bytes | line (without '\n')
// (varints: LEB128; a position is stored as the difference from the previous
// record's or match's in the same blob, the first one's from 0.)
// Frames on a pipe: u32 tag | u64 bytes | bytes.
//
// Thread safety: pure functions and single-threaded tasks; each call owns its data.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "cloudmerge/base/status.h"
#include "cloudmerge/engine/key_types.h"
#include "cloudmerge/engine/table_scan.h"

namespace cloudmerge {

// ---- Frames (read and written by the cluster-task command) -----------------------
struct Frame {
  uint32_t tag;
  std::string_view bytes;
};

// ---- KeyScan across processes ---------------------------------------------------
std::string EncodeKeyScan(const KeyScan& scan);
bool DecodeKeyScan(std::string_view bytes, KeyScan* out);

// ---- Record boundaries ------------------------------------------------------------
// Where the first record starting at or after `pos` begins in a quote-free file,
// given its bytes [base, base + bytes.size()) and that the file has `size`
// bytes: after the first line end that ends at or after pos - 1. Returns false
// when `bytes` ends before that is known (read more and call again).
// REQUIRES: base <= pos - 1 (pos > 0).
bool RecordStartAtOrAfter(std::string_view bytes, uint64_t base, uint64_t size, uint64_t pos, uint64_t* start);

// ---- scan ------------------------------------------------------------------------
struct SplitScan {
  KeyScan scan;
  uint64_t rows = 0;
  uint64_t end_position = 0;  // one past the last byte scanned (file position)
  bool has_quote = false;     // a '"' in the split: read the file whole instead
  std::vector<std::string> partitions;  // record blobs, one per partition
};

struct ScanOptions {
  uint32_t partitions = 0;     // 0: validate and scan types only
  bool keep_key_column = true;  // x: all fields are output text; y: all but the key
  // Partition by PartitionHashUnder(mode) (a float64 file with lossy integer
  // spellings, see join_keys.h) instead of the type-independent PartitionHash.
  bool hash_under_mode = false;
  KeyMode mode = KeyMode::kText;
  PandasRules rules;
  // Added to the table's byte offsets to give file positions (a split's table
  // is its file's header followed by the split's bytes: split start - header bytes).
  int64_t position_shift = 0;
  bool stop_at_quote = false;  // a split: a '"' means the file must be read whole
  // Streaming: when set, a partition's blob is handed to flush(partition, blob) whenever it
  // reaches flush_bytes (at a record boundary), and at the end, then reused: the task holds
  // about partitions x flush_bytes, not its whole output, and writes into memory already
  // mapped. A partition's flushed blobs, in order, are its records in file order. Unset: the
  // blobs stay whole in SplitScan::partitions.
  std::function<Status(uint32_t, std::string_view)> flush;
  size_t flush_bytes = size_t{8} << 20;
};

// Scans every segment of `table` (its current segment first). Bad input:
// InvalidInput with file, line and column (exact when the table is the whole file).
Status ScanTable(Table& table, const ScanOptions& options, SplitScan* out);

// ---- join -------------------------------------------------------------------------
struct JoinOptions {
  KeyMode x_mode = KeyMode::kText, y_mode = KeyMode::kText;
  PandasRules rules;
  bool y_has_values = true;  // y has columns besides its key
  // Matches go to range r = x position * ranges / x_end (ranges 0 or 1: one range).
  uint32_t ranges = 1;
  uint64_t x_end = 1;
};
// Joins one partition whose records arrive as several blobs per side (one per split, in
// file order; read as one sequence, never concatenated); out[r] receives range r's match
// blob. Returns the matches.
Result<uint64_t> JoinPartition(const std::vector<std::string_view>& x_records,
                               const std::vector<std::string_view>& y_records, const JoinOptions& options,
                               std::vector<std::string>* out);

// ---- write ------------------------------------------------------------------------
// Merges match blobs (each ordered by x position) by x position; calls
// emit(bytes) with output text in pieces of about a few MiB. Returns the lines.
Result<uint64_t> MergeMatches(const std::vector<std::string_view>& blobs,
                              const std::function<Status(std::string_view)>& emit);

}  // namespace cloudmerge
