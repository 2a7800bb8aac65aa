#include "cloudmerge/engine/merge.h"

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "cloudmerge/engine/join_limits.h"
#include "cloudmerge/base/memory_info.h"
#include "cloudmerge/engine/grace_join.h"
#include "cloudmerge/engine/in_memory_build.h"
#include "cloudmerge/engine/in_memory_probe.h"
#include "cloudmerge/engine/key_stats.h"
#include "cloudmerge/engine/phase_timer.h"
#include "cloudmerge/engine/table_scan.h"

namespace cloudmerge {
namespace {

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

std::string OutputHeader(const Table& x, const Table& y) {
  const auto& xn = x.column_names();
  const auto& yn = y.column_names();
  // The script's fixed names for its two-column files, whatever the input headers say.
  if (xn.size() == 2 && yn.size() == 2 && x.key_index() == 0 && y.key_index() == 0) return "ID_x\tvalue_x\tvalue_y\n";
  std::string h;
  for (size_t i = 0; i < xn.size(); ++i) {
    if (i) h.push_back('\t');
    AppendEncoded(h, xn[i] + "_x");
  }
  for (size_t i = 0; i < yn.size(); ++i) {
    if (i == y.key_index()) continue;
    h.push_back('\t');
    AppendEncoded(h, yn[i] + "_y");
  }
  h.push_back('\n');
  return h;
}

namespace {

// Per-key counts (in_memory::KeyCounters) are kept for key statistics and for an output-row limit.
bool WantsKeyCounters(const MergeOptions& o) { return o.key_stats || o.max_output_rows > 0; }

// The in-memory join of one attempt (y whole in memory): scan y, then one of
// three ways through x, chosen by what the output and options allow:
//   - CountThenWrite (--max-output-rows): count first, refuse or write second;
//   - ProbeSpeculatively (a rewindable output): probe while inferring x's type,
//     probe again only if the type assumed keys differently;
//   - ScanThenProbe (standard output): infer x's type first, then probe.
class InMemoryJoin {
 public:
  InMemoryJoin(const MergeOptions& o, unsigned threads, Table& x, Table& y, AtomicOutput* out, MergeStats* stats)
      : o_(o), threads_(threads), x_(x), y_(y), out_(out), stats_(stats), header_(OutputHeader(x, y)),
        y_has_values_(y.column_names().size() > 1), want_keys_(WantsKeyCounters(o)) {}

  Status Run() {
    CM_RETURN_IF_ERROR(ScanYPhase());
    Status joined;
    if (o_.max_output_rows > 0 && ys_.record_count > 0) joined = CountThenWrite();
    else if (out_->can_restart() && ys_.record_count > 0) joined = ProbeSpeculatively();
    else joined = ScanThenProbe();
    CM_RETURN_IF_ERROR(joined);
    if (o_.max_output_rows == 0) CollectKeyStats();
    return Status::OK();
  }

 private:
  bool y_numeric() const { return IsNumeric(ys_.mode); }
  // Keys of x under x_mode are the keys the speculative probe used.
  bool SameKeys(KeyMode x_mode, const in_memory::ProbeCounts& counts) const {
    return y_numeric() ? (x_mode == KeyMode::kInt64 || (x_mode == KeyMode::kFloat && !counts.big_int))
                       : x_mode == KeyMode::kText;
  }
  in_memory::ProbeMode Speculative() const { return {true, KeyMode::kText, y_numeric(), o_.pandas}; }
  in_memory::ProbeMode Known(KeyMode x_mode) const { return {false, x_mode, y_numeric(), o_.pandas}; }
  in_memory::ProbeCounting Counting(bool count_only) {
    if (!want_keys_) return {};
    return {keys_.x_counts.data(), keys_.chain.data(), count_only};
  }
  Status RunProbe(const in_memory::ProbeMode& mode, const in_memory::ProbeCounting& counting,
                  in_memory::ProbeCounts* counts, KeyScan* x_scan) {
    return in_memory::Probe(x_, mode, build_, y_has_values_, threads_, o_.any_order, counting, o_.progress, out_,
                            counts, x_scan);
  }

  Status ScanYPhase() {
    PhaseTimer phase(o_.progress, &stats_->phases, "scan y", stats_->y_bytes, 0);
    CM_RETURN_IF_ERROR(in_memory::ScanY(y_, threads_, o_.pandas, o_.progress, &ys_));
    stats_->seconds_scan_y = phase.End(ys_.record_count, stats_->y_bytes);
    stats_->y_rows = ys_.record_count;
    stats_->y_mode = ys_.mode;
    stats_->plain_int_keys = ys_.plain_ints;
    return Status::OK();
  }

  // Builds the hash table once (a join that matches nothing never builds it).
  Status BuildOnce() {
    if (build_.y) return Status::OK();
    PhaseTimer phase(o_.progress, &stats_->phases, "build", 0, ys_.record_count);
    // Sparse tables when the memory limit has room for them (join_hash_table.h TableLoad).
    const TableLoad load = InMemoryTableLoad(stats_->y_bytes, ys_.record_count, threads_,
                                             o_.chunk_bytes, stats_->memory_limit, want_keys_);
    stats_->sparse_hash_tables = load == TableLoad::kSparse;
    CM_RETURN_IF_ERROR(in_memory::Build(ys_, threads_, load, &build_));
    stats_->seconds_build = phase.End(ys_.record_count, 0);
    for (const auto& tab : build_.tables) stats_->y_distinct_keys += tab.size();
    if (want_keys_) keys_.Init(ys_);
    return Status::OK();
  }

  // x's type from a finished scan of it (refusing what the pandas rules cannot reproduce).
  Status DecideX(const KeyScan& x_scan, KeyMode* x_mode) {
    CM_RETURN_IF_ERROR(CheckPandasRulesSupported(x_scan, x_.path(), o_.pandas));
    *x_mode = x_scan.Decide();
    stats_->x_mode = *x_mode;
    stats_->plain_int_keys += x_scan.plain_ints();
    return Status::OK();
  }

  // The header, then the join with x's type known.
  Status ProbeKnown(KeyMode x_mode) {
    CM_RETURN_IF_ERROR(out_->Append(header_));
    // A number never equals a text: with one numeric and one text file nothing matches.
    if (IsNumeric(x_mode) != y_numeric() || ys_.record_count == 0) return Status::OK();
    CM_RETURN_IF_ERROR(BuildOnce());
    PhaseTimer phase(o_.progress, &stats_->phases, "probe", stats_->x_bytes, 0);
    in_memory::ProbeCounts counts;
    KeyScan unused;
    CM_RETURN_IF_ERROR(RunProbe(Known(x_mode), Counting(false), &counts, &unused));
    stats_->seconds_probe += phase.End(counts.x_rows, stats_->x_bytes);
    stats_->output_rows = counts.output_rows;
    return Status::OK();
  }

  // One pass over x: probe while inferring x's type, assuming the common case
  // (numbers if y is numeric, text otherwise); if x's type turns out to give
  // different keys, rewind the output and probe again with the type now known.
  Status ProbeSpeculatively() {
    CM_RETURN_IF_ERROR(BuildOnce());
    CM_RETURN_IF_ERROR(out_->Append(header_));
    in_memory::ProbeCounts counts;
    KeyScan x_scan(o_.pandas);
    {
      PhaseTimer phase(o_.progress, &stats_->phases, "probe", stats_->x_bytes, 0);
      CM_RETURN_IF_ERROR(RunProbe(Speculative(), Counting(false), &counts, &x_scan));
      stats_->seconds_probe = phase.End(counts.x_rows, stats_->x_bytes);
    }
    stats_->x_rows = counts.x_rows;
    stats_->output_rows = counts.output_rows;
    KeyMode x_mode;
    CM_RETURN_IF_ERROR(DecideX(x_scan, &x_mode));
    if (SameKeys(x_mode, counts)) return Status::OK();
    stats_->speculation_failed = true;
    keys_.ResetX();
    CM_RETURN_IF_ERROR(out_->Restart());
    return ProbeKnown(x_mode);
  }

  // Standard output cannot be rewound: infer x's type first, then probe.
  Status ScanThenProbe() {
    PhaseTimer phase(o_.progress, &stats_->phases, "scan x", stats_->x_bytes, 0);
    KeyScan x_scan(o_.pandas);
    CM_RETURN_IF_ERROR(in_memory::ScanXKeys(x_, threads_, o_.progress, &x_scan));
    KeyMode x_mode;
    CM_RETURN_IF_ERROR(DecideX(x_scan, &x_mode));
    stats_->x_rows = x_scan.values();
    stats_->seconds_scan_x = phase.End(stats_->x_rows, stats_->x_bytes);
    return ProbeKnown(x_mode);
  }

  // --max-output-rows: count first (a probe that writes nothing, inferring x's
  // type on the way), refuse or write second.
  Status CountThenWrite() {
    CM_RETURN_IF_ERROR(BuildOnce());
    PhaseTimer count_phase(o_.progress, &stats_->phases, "count", stats_->x_bytes, 0);
    in_memory::ProbeCounts counts;
    KeyScan x_scan(o_.pandas);
    CM_RETURN_IF_ERROR(RunProbe(Speculative(), Counting(true), &counts, &x_scan));
    KeyMode x_mode;
    CM_RETURN_IF_ERROR(DecideX(x_scan, &x_mode));
    stats_->x_rows = counts.x_rows;
    const bool comparable = IsNumeric(x_mode) == y_numeric();
    if (!SameKeys(x_mode, counts)) {
      stats_->speculation_failed = true;
      keys_.ResetX();
      counts.output_rows = 0;
      KeyScan unused;
      if (comparable) CM_RETURN_IF_ERROR(RunProbe(Known(x_mode), Counting(true), &counts, &unused));
    }
    stats_->seconds_scan_x = count_phase.End(counts.x_rows, stats_->x_bytes);
    stats_->output_rows = counts.output_rows;
    CollectKeyStats();
    if (counts.output_rows > o_.max_output_rows) return OutputRowLimitError(*stats_, o_.max_output_rows);
    CM_RETURN_IF_ERROR(out_->Append(header_));
    if (!comparable) return Status::OK();
    PhaseTimer phase(o_.progress, &stats_->phases, "probe", stats_->x_bytes, 0);
    KeyScan unused;
    CM_RETURN_IF_ERROR(RunProbe(Known(x_mode), {}, &counts, &unused));
    stats_->seconds_probe = phase.End(counts.x_rows, stats_->x_bytes);
    return Status::OK();
  }

  void CollectKeyStats() {
    if (!want_keys_ || !keys_.active()) return;
    KeyStats keys;
    for (size_t i = 0; i < keys_.x_counts.size(); ++i)
      if (keys_.x_counts[i]) keys.Add(ys_.rows[i].key(), keys_.x_counts[i], keys_.chain[i]);
    keys.AddTo(stats_);
  }

  const MergeOptions& o_;
  const unsigned threads_;
  Table& x_;
  Table& y_;
  AtomicOutput* out_;
  MergeStats* stats_;
  const std::string header_;
  const bool y_has_values_, want_keys_;
  in_memory::ScannedY ys_;
  in_memory::BuildSide build_;
  in_memory::KeyCounters keys_;
};

// One attempt at the merge into *out (not committed).
Status MergeInto(Env* env, const MergeOptions& o, unsigned threads, std::unique_ptr<AtomicOutput>* out,
                 MergeStats* stats) {
  // Streamed inputs (S3 objects, .gz/.zst files, standard input, FIFOs, devices) are read in segments. y, the
  // build side, is read whole into memory only when it is small enough for the
  // in-memory join (a first segment of an eighth of the limit holds all of it);
  // otherwise the out-of-core join partitions it segment by segment.
  stats->memory_limit = o.memory_limit ? o.memory_limit : DefaultMemoryLimit();
  SegmentSizes segments = StreamSegmentSizes(stats->memory_limit);
  if (o.segment_bytes) segments.first = segments.rest = o.segment_bytes;
  segments.temp_dir = o.temp_dir;  // where standard input is kept if it must be read twice
  segments.quote_check_ahead_from = o.quote_check_ahead_from;
  SegmentSizes y_segments = segments;
  y_segments.first = std::max<size_t>(segments.first, stats->memory_limit / 8);
  auto y = Table::Open(env, o.y_path, o.y_key, o.allow_numeric_header, o.chunk_bytes, y_segments);
  if (!y.ok()) return y.status();
  auto x = Table::Open(env, o.x_path, o.x_key, o.allow_numeric_header, o.chunk_bytes, segments);
  if (!x.ok()) return x.status();

  stats->x_bytes = (*x)->size();
  stats->y_bytes = (*y)->size();
  const bool out_of_core =
      !(*y)->whole() || EstimateInMemoryJoinBytes(**y, threads, o.chunk_bytes, WantsKeyCounters(o)) >
                            stats->memory_limit;
  // The join proper. Its outcome counts only while both inputs are intact: a
  // file truncated under us reads as zeros (see InputData::Intact), and the
  // truncation, not the NULs, is what to report.
  Status joined = out_of_core ? RunGraceJoin(env, **x, **y, o, threads, OutputHeader(**x, **y), out->get(), stats)
                              : InMemoryJoin(o, threads, **x, **y, out->get(), stats).Run();
  CM_RETURN_IF_ERROR((*y)->Intact());
  CM_RETURN_IF_ERROR((*x)->Intact());
  CM_RETURN_IF_ERROR(joined);
  stats->x_bytes = (*x)->size();  // exact now for streamed inputs read to their end
  stats->y_bytes = (*y)->size();
  return Status::OK();
}

}  // namespace

Status CheckPandasRulesSupported(const KeyScan& scan, std::string_view path, PandasRules rules) {
  if (scan.big_int_at() == 0) return Status::OK();
  return Status::InvalidInput(fmt::format(
      "{}: data row {} has the ID {}, an integer beyond 64 bits. Under pandas {} (--pandas-version) such IDs are "
      "Python ints, compared as numbers with the other file's IDs, and NA markers beside them stay text; cloudmerge "
      "does not reproduce that (a deliberate deviation, docs/pandas-versions.md rules 3-4). Merge with "
      "--pandas-version 2.2 to get pandas 1.5-2.2's answer (the column is text there), or correct the ID.",
      path, scan.big_int_at(), scan.big_int(), PandasVersionName(rules.version)));
}

Status RunMerge(Env* env, const MergeOptions& o, MergeStats* stats) {
  auto t0 = Clock::now();
  unsigned threads = o.threads ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  stats->threads = threads;
  if (o.x_path == "-" && o.y_path == "-")
    return Status::InvalidArgument("x and y cannot both be standard input (-): give at least one of them as a file.");

  // Open the destination first: a bad output path fails before any work.
  auto out = AtomicOutput::Open(env, o.out_path, /*compress_by_name=*/true, o.output_level);
  if (!out.ok()) return out.status();
  Status merged = MergeInto(env, o, threads, &out.value(), stats);
  // Standard input, a FIFO or a device cannot be read from the start again.
  auto read_once = [&](const std::string& p) { return p == "-" || env->IsSpecialFile(p); };
  if (merged.code() == Status::Code::kCorruption && (*out)->can_restart() && !read_once(o.x_path) &&
      !read_once(o.y_path)) {
    // A streamed input arrived damaged (its checksum, checked at its end,
    // disagrees): nothing is committed yet, so read everything once more.
    const MergeStats fresh;
    *stats = fresh;
    stats->threads = threads;
    stats->damaged_transfer_retried = true;
    CM_RETURN_IF_ERROR((*out)->Restart());
    merged = MergeInto(env, o, threads, &out.value(), stats);
  }
  CM_RETURN_IF_ERROR(merged);
  CM_RETURN_IF_ERROR((*out)->Commit());
  stats->seconds_total = Since(t0);
  stats->peak_rss_bytes = PeakRssBytes();
  return Status::OK();
}

}  // namespace cloudmerge
