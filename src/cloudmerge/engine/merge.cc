#include "cloudmerge/engine/merge.h"

#include <xxhash.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "cloudmerge/base/arena.h"
#include "cloudmerge/base/big_array.h"
#include "cloudmerge/engine/grace_join.h"
#include "cloudmerge/engine/join_limits.h"
#include "cloudmerge/engine/join_hash_table.h"
#include "cloudmerge/engine/join_keys.h"
#include "cloudmerge/engine/key_stats.h"
#include "cloudmerge/base/memory_info.h"
#include "cloudmerge/base/parallel.h"
#include "cloudmerge/engine/phase_timer.h"
#include "cloudmerge/engine/table_scan.h"

namespace cloudmerge {
namespace {

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

constexpr uint32_t kMissingKey = 0xffffffffu;  // YRow::key_len of a row whose ID never matches

// One row of y as the join needs it, in 20 bytes: the text written after the x
// row (y's fields without its key, encoded for output), where the key is, and
// the next row with the same key (so a match costs one random access, not two).
// The key sits right before the text (key, one separator byte, text), or, when
// y's key is its last column, right after it (text, separator, key); rows that
// need re-encoding are laid out the first way in an arena.
#pragma pack(push, 4)
struct YRow {
  const char* out;
  uint32_t out_len;
  uint32_t key_info;  // key length | kKeyAfterText; kMissingKey: never matches (or no record)
  uint32_t next;      // next row of y with the same key, in file order; kNoRow ends the chain
  static constexpr uint32_t kKeyAfterText = 0x80000000u;
  bool missing() const { return key_info == kMissingKey; }
  std::string_view key() const {
    uint32_t len = key_info & ~kKeyAfterText;
    return (key_info & kKeyAfterText) ? std::string_view(out + out_len + 1, len) : std::string_view(out - 1 - len, len);
  }
};
#pragma pack(pop)
static_assert(sizeof(YRow) == 20);

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

// The first problem over chunks, in file order.
Status FirstProblem(const Table& t, const std::vector<ScanProblem>& problems) {
  for (const ScanProblem& p : problems)
    if (p.found) return t.Error(p);
  return Status::OK();
}

struct ScannedY {
  // One entry per possible record: chunk c owns [base[c], base[c+1]); entries a
  // chunk did not fill (blank lines) have key_len == kMissingKey.
  BigArray<YRow> rows;
  uint64_t record_count = 0;
  std::vector<Arena> arenas;
  KeyMode mode = KeyMode::kText;
  PandasRules rules;  // the merge's, under which mode was inferred
};

// An upper bound on the records in [b, e): line terminators + 1.
size_t MaxRecords(const char* b, const char* e) {
  size_t n = 1;
  for (const char* p = b; p < e; ++p) n += (*p == '\n') + (*p == '\r');
  return n;
}

Status ScanY(const Table& y, unsigned threads, PandasRules rules, Progress* progress, ScannedY* out) {
  const auto& chunks = y.chunks();
  const size_t ki = y.key_index();
  const size_t ncols = y.column_names().size();
  const char* base = y.data().data();
  // Rows go straight to their final place in one array: count first (cheap), then fill.
  std::vector<size_t> first(chunks.size() + 1, 0);
  ParallelFor(chunks.size(), threads, [&](size_t c, unsigned) {
    first[c + 1] = MaxRecords(base + chunks[c].begin, base + chunks[c].end);
  });
  for (size_t c = 0; c < chunks.size(); ++c) first[c + 1] += first[c];
  if (first.back() > kMaxBuildRows)
    return Status::InvalidInput(fmt::format(
        "{} has about {} rows; the in-memory engine holds at most {} rows of y. Split y into parts and merge each "
        "part.",
        y.path(), first.back(), kMaxBuildRows));
  out->rows = BigArray<YRow>(first.back());
  out->rules = rules;
  std::vector<KeyScan> scans(chunks.size(), KeyScan(rules));
  std::vector<ScanProblem> problems(chunks.size());
  std::vector<uint64_t> counts(chunks.size(), 0);
  out->arenas.resize(chunks.size());
  ParallelFor(chunks.size(), threads, [&](size_t c, unsigned) {
    Record rec;
    std::string tmp;
    Arena& arena = out->arenas[c];
    YRow* dst = out->rows.data() + first[c];
    y.ScanChunk(chunks[c], rec, &problems[c], [&](const Record& r) {
      std::string_view key = r.fields[ki].view();
      scans[c].Add(key);
      uint32_t key_len = static_cast<uint32_t>(key.size());
      if (!r.has_quote_char && ki == 0) {  // the common layout: ID first, no quotes
        const char* text = ncols == 1 ? key.data() + key.size() + 1 : r.fields[1].data;
        *dst++ = YRow{text, static_cast<uint32_t>(ncols == 1 ? 0 : r.end - text), key_len, kNoRow};
      } else if (!r.has_quote_char && ki == ncols - 1) {
        *dst++ = YRow{r.begin, static_cast<uint32_t>(key.data() - 1 - r.begin), key_len | YRow::kKeyAfterText, kNoRow};
      } else {  // re-encode into the arena as key, tab, text
        tmp.assign(key);
        tmp.push_back('\t');
        size_t text_at = tmp.size();
        std::string fields;
        EncodeFields(r, ki, fields);
        tmp += fields;
        std::string_view stored = arena.Copy(tmp);
        *dst++ = YRow{stored.data() + text_at, static_cast<uint32_t>(stored.size() - text_at), key_len, kNoRow};
      }
    });
    counts[c] = static_cast<uint64_t>(dst - (out->rows.data() + first[c]));
    if (progress) progress->Add(counts[c], chunks[c].end - chunks[c].begin);
    for (YRow* end = out->rows.data() + first[c + 1]; dst < end; ++dst) *dst = YRow{nullptr, 0, kMissingKey, kNoRow};
  });
  CM_RETURN_IF_ERROR(FirstProblem(y, problems));
  KeyScan total(rules);
  for (size_t c = 0; c < chunks.size(); ++c) {
    total.Append(scans[c]);
    out->record_count += counts[c];
  }
  CM_RETURN_IF_ERROR(CheckPandasRulesSupported(total, y.path(), rules));
  out->mode = total.Decide();
  return Status::OK();
}

Status ScanXKeysSegment(const Table& x, unsigned threads, Progress* progress, KeyScan* total) {
  const auto& chunks = x.chunks();
  const size_t ki = x.key_index();
  std::vector<KeyScan> scans(chunks.size(), KeyScan(total->rules()));
  std::vector<ScanProblem> problems(chunks.size());
  ParallelFor(chunks.size(), threads, [&](size_t c, unsigned) {
    Record rec;
    uint64_t before = scans[c].values();
    x.ScanChunk(chunks[c], rec, &problems[c], [&](const Record& r) { scans[c].Add(r.fields[ki].view()); });
    x.Release(chunks[c]);
    if (progress) progress->Add(scans[c].values() - before, chunks[c].end - chunks[c].begin);
  });
  CM_RETURN_IF_ERROR(FirstProblem(x, problems));
  for (const KeyScan& s : scans) total->Append(s);
  return Status::OK();
}

// Calls on_segment() for each segment of t, from the first (a streamed input is
// read again when it is not at its first segment).
template <class OnSegment>
Status ForEachSegment(Table& t, OnSegment&& on_segment) {
  CM_RETURN_IF_ERROR(t.Rewind());
  for (;;) {
    CM_RETURN_IF_ERROR(on_segment());
    auto more = t.NextSegment();
    if (!more.ok()) return more.status();
    if (!*more) return Status::OK();
  }
}

Status ScanXKeys(Table& x, unsigned threads, PandasRules rules, Progress* progress, KeyMode* mode, uint64_t* rows) {
  KeyScan total(rules);
  CM_RETURN_IF_ERROR(ForEachSegment(x, [&] { return ScanXKeysSegment(x, threads, progress, &total); }));
  CM_RETURN_IF_ERROR(CheckPandasRulesSupported(total, x.path(), rules));
  *mode = total.Decide();
  *rows = total.values();
  return Status::OK();
}

// Low bits pick the partition; the slot index within a table comes from the high bits.
// The probe key of an x value before x's type is known, for a numeric y: the
// value as an integer when it is one, else as a double. It equals MakeKey's
// under the type x turns out to have if that type is int64, or float64 when no
// integer beyond 2^53 or lossy as a pandas float occurred (*big flags those);
// otherwise the probe reruns.
inline bool MakeSpeculativeNumericKey(std::string_view v, PandasRules rules, ProbeKey* k, bool* big) {
  if (IsNaMarker(v, rules)) return false;
  int64_t i;
  IntParse ip = ParseInt64(v, &i);
  if (ip == IntParse::kOk) {
    // Beyond 2^53, or a spelling pandas reads otherwise as a float ("000000000000000007"
    // is 0.0): the key under a float64 x may differ, so a float x is probed again.
    if (i > (int64_t{1} << 53) || i < -(int64_t{1} << 53) || IntSpellingLosesInFloat(v, static_cast<double>(i), rules))
      *big = true;
    k->num = NumericKey{static_cast<uint64_t>(i), NumericKey::kSigned};
  } else {
    if (ip == IntParse::kOverflow) *big = true;
    double d;
    if (!ParsePandasFloat(v, &d, rules)) return false;
    k->num = CanonicalFromDouble(d);
  }
  k->hash = HashNumericKey(k->num);
  return true;
}

inline size_t PartitionOf(uint64_t hash, size_t partitions) { return (hash & 0xffff) % partitions; }

// The build side: y's rows, the chains through them, and one table per partition.
struct BuildSide {
  const ScannedY* y = nullptr;
  bool numeric = false;
  std::vector<NumericHashTable> numeric_tables;
  std::vector<TextHashTable> text_tables;

  void Prefetch(const ProbeKey& k) const {
    if (numeric) numeric_tables[PartitionOf(k.hash, numeric_tables.size())].Prefetch(k.hash);
    else text_tables[PartitionOf(k.hash, text_tables.size())].Prefetch(k.hash);
  }

  uint32_t Head(const ProbeKey& k) const {
    size_t p = PartitionOf(k.hash, numeric ? numeric_tables.size() : text_tables.size());
    return numeric ? numeric_tables[p].Find(k.num, k.hash) : text_tables[p].Find(k.text, k.hash);
  }
};

Status Build(ScannedY& y, unsigned threads, BuildSide* b) {
  b->y = &y;
  b->numeric = IsNumeric(y.mode);
  const size_t n = y.rows.size();
  const size_t partitions = std::max(1u, std::min(threads, 255u));
  // Each row's partition (one byte), in parallel by row range; rows whose key
  // never matches are marked missing.
  constexpr uint8_t kNoPartition = 0xff;
  BigArray<uint8_t> part(n);
  const size_t block = 1 << 16;
  ParallelFor((n + block - 1) / block, threads, [&](size_t t, unsigned) {
    size_t end = std::min(n, (t + 1) * block);
    for (size_t i = t * block; i < end; ++i) {
      YRow& r = y.rows[i];
      ProbeKey k;
      if (!r.missing() && MakeKey(y.mode, r.key(), &k, y.rules)) part[i] = static_cast<uint8_t>(PartitionOf(k.hash, partitions));
      else { r.key_info = kMissingKey; part[i] = kNoPartition; }
    }
  });
  size_t expected = y.record_count / partitions + y.record_count / partitions / 16 + 16;
  if (b->numeric) for (size_t p = 0; p < partitions; ++p) b->numeric_tables.emplace_back(expected);
  else for (size_t p = 0; p < partitions; ++p) b->text_tables.emplace_back(expected);
  ParallelFor(partitions, threads, [&](size_t p, unsigned) {
    // Keys of the rows this far ahead are computed early so their slots can be prefetched.
    constexpr size_t kAhead = 8;
    ProbeKey ring[kAhead];
    bool valid[kAhead] = {};
    auto stage = [&](size_t i) {  // compute and prefetch row i's key
      size_t r = i % kAhead;
      valid[r] = part[i] == p && MakeKey(y.mode, y.rows[i].key(), &ring[r], y.rules);
      if (valid[r]) {
        if (b->numeric) b->numeric_tables[p].Prefetch(ring[r].hash);
        else b->text_tables[p].Prefetch(ring[r].hash);
      }
    };
    for (size_t i = n; i-- > 0 && i + kAhead >= n;) stage(i);
    for (size_t i = n; i-- > 0;) {  // last to first: prepending leaves chains in file order
      size_t r = i % kAhead;  // row i was staged kAhead iterations ago
      if (valid[r]) {
        y.rows[i].next = b->numeric ? b->numeric_tables[p].Insert(ring[r].num, ring[r].hash, static_cast<uint32_t>(i))
                                    : b->text_tables[p].Insert(ring[r].text, ring[r].hash, static_cast<uint32_t>(i));
      }
      if (i >= kAhead) stage(i - kAhead);  // reuses ring slot r, just consumed
    }
  });
  return Status::OK();
}

// Hands chunk outputs from the probe workers to the writer: in chunk order, or
// with any_order in the order they finish. Workers may run at most `window`
// chunks ahead of the writer, which bounds the memory held by waiting outputs.
class OrderedSink {
 public:
  OrderedSink(size_t chunks, size_t window, bool any_order)
      : outputs_(chunks), state_(chunks, kPending), window_(window), any_order_(any_order) {}

  // Worker: blocks until chunk c is within the window; false once the run failed.
  bool WaitTurn(size_t c) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return failed_ || c < taken_ + window_; });
    return !failed_;
  }
  void Deliver(size_t c, std::string out) {
    std::lock_guard<std::mutex> lock(mu_);
    outputs_[c] = std::move(out);
    state_[c] = kReady;
    cv_.notify_all();
  }
  // Writer: the next output to write, or nullopt when all have been taken.
  std::optional<std::string> Next() {
    std::unique_lock<std::mutex> lock(mu_);
    if (taken_ == outputs_.size()) return std::nullopt;
    size_t pick = 0;
    cv_.wait(lock, [&] {
      if (failed_) return true;
      if (!any_order_) { pick = next_in_order_; return state_[pick] == kReady; }
      for (size_t i = first_untaken_; i < state_.size(); ++i)
        if (state_[i] == kReady) { pick = i; return true; }
      return false;
    });
    if (failed_) return std::nullopt;
    std::string out = std::move(outputs_[pick]);
    outputs_[pick].clear();
    outputs_[pick].shrink_to_fit();
    state_[pick] = kTaken;
    ++taken_;
    if (!any_order_) ++next_in_order_;
    while (first_untaken_ < state_.size() && state_[first_untaken_] == kTaken) ++first_untaken_;
    cv_.notify_all();
    return out;
  }
  void Fail() {
    std::lock_guard<std::mutex> lock(mu_);
    failed_ = true;
    cv_.notify_all();
  }

 private:
  enum : uint8_t { kPending, kReady, kTaken };
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> outputs_;
  std::vector<uint8_t> state_;
  size_t window_;
  bool any_order_;
  size_t taken_ = 0, next_in_order_ = 0, first_untaken_ = 0;
  bool failed_ = false;
};

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

Status ProbeSegment(const Table& x, const ProbeMode& mode, const BuildSide& b, bool y_has_values, unsigned threads,
                    bool any_order, const ProbeCounting& counting, Progress* progress, AtomicOutput* out,
                    ProbeCounts* counts, KeyScan* x_scan) {
  const auto& chunks = x.chunks();
  const size_t ki = x.key_index();
  const BigArray<YRow>& yrows = b.y->rows;
  std::vector<ProbeCounts> per_chunk(chunks.size());
  std::vector<KeyScan> scans(mode.speculative ? chunks.size() : 0, KeyScan(mode.rules));
  std::vector<ScanProblem> problems(chunks.size());
  const unsigned workers = std::max(1u, threads);
  OrderedSink sink(chunks.size(), 2 * workers + 2, any_order);

  auto probe_chunk = [&](size_t c, unsigned) {
    if (!sink.WaitTurn(c)) return;
    Record rec;
    std::string xenc;
    std::string buf;
    buf.reserve(chunks[c].end - chunks[c].begin + 4096);
    ProbeCounts pc;
    KeyScan* scan = mode.speculative ? &scans[c] : nullptr;
    auto key_of = [&](std::string_view v, ProbeKey* k) {
      if (scan) {
        scan->Add(v);
        if (mode.y_numeric) return MakeSpeculativeNumericKey(v, mode.rules, k, &pc.big_int);
      }
      return MakeKey(mode.x_mode, v, k, mode.rules);
    };
    auto emit = [&](std::string_view xo, uint32_t j) {
      if (counting.x_counts) std::atomic_ref<uint32_t>(counting.x_counts[j]).fetch_add(1, std::memory_order_relaxed);
      if (counting.count_only) {
        pc.output_rows += counting.chain[j];
        return;
      }
      for (; j != kNoRow; j = yrows[j].next) {
        const YRow& yr = yrows[j];
        buf.append(xo);
        if (y_has_values) {
          buf.push_back('\t');
          buf.append(yr.out, yr.out_len);
        }
        buf.push_back('\n');
        ++pc.output_rows;
      }
    };
    // Rows are probed in small batches so that the memory accesses of one row
    // (table slot, y row, y text) overlap with those of the others: prefetch,
    // then use, stage by stage. Order within the chunk is kept.
    struct Pending {
      const char* row;
      uint32_t len;
      uint32_t head;
      ProbeKey key;
    };
    constexpr size_t kBatch = 32;
    Pending batch[kBatch];
    size_t pending = 0;
    auto flush = [&] {
      for (size_t i = 0; i < pending; ++i) {
        batch[i].head = b.Head(batch[i].key);
        if (batch[i].head != kNoRow) __builtin_prefetch(&yrows[batch[i].head]);
      }
      for (size_t i = 0; i < pending; ++i)
        if (batch[i].head != kNoRow) __builtin_prefetch(yrows[batch[i].head].out);
      for (size_t i = 0; i < pending; ++i)
        if (batch[i].head != kNoRow) emit({batch[i].row, batch[i].len}, batch[i].head);
      pending = 0;
    };
    bool valid = x.ScanChunk(chunks[c], rec, &problems[c], [&](const Record& r) {
      ++pc.x_rows;
      ProbeKey k;
      if (!key_of(r.fields[ki].view(), &k)) return;
      if (r.has_quote_char) {  // its fields live in the record's scratch: handle it now, in order
        flush();
        uint32_t j = b.Head(k);
        if (j == kNoRow) return;
        EncodeFields(r, std::string::npos, xenc);
        emit(xenc, j);
        return;
      }
      b.Prefetch(k);
      batch[pending++] = Pending{r.begin, static_cast<uint32_t>(r.end - r.begin), kNoRow, k};
      if (pending == kBatch) flush();
    });
    flush();
    x.Release(chunks[c]);
    per_chunk[c] = pc;
    if (progress) progress->Add(pc.x_rows, chunks[c].end - chunks[c].begin);
    if (!valid) sink.Fail();  // bad input: stop; the error is reported below
    sink.Deliver(c, std::move(buf));
  };

  Status write_status;
  std::thread writer([&] {
    while (auto piece = sink.Next()) {
      if (piece->empty()) continue;
      write_status = out->Append(*piece);
      if (!write_status.ok()) sink.Fail();  // workers stop; the writer's Next() returns nullopt
    }
  });
  ParallelFor(chunks.size(), workers, probe_chunk);
  writer.join();
  CM_RETURN_IF_ERROR(FirstProblem(x, problems));
  CM_RETURN_IF_ERROR(write_status);
  for (const ProbeCounts& pc : per_chunk) {
    counts->x_rows += pc.x_rows;
    counts->output_rows += pc.output_rows;
    counts->big_int |= pc.big_int;
  }
  for (const KeyScan& sc : scans) x_scan->Append(sc);
  return Status::OK();
}

// One pass over all of x (every segment of a streamed x, in order).
Status Probe(Table& x, const ProbeMode& mode, const BuildSide& b, bool y_has_values, unsigned threads, bool any_order,
             const ProbeCounting& counting, Progress* progress, AtomicOutput* out, ProbeCounts* counts,
             KeyScan* x_scan) {
  return ForEachSegment(x, [&] {
    return ProbeSegment(x, mode, b, y_has_values, threads, any_order, counting, progress, out, counts, x_scan);
  });
}

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
  SegmentSizes y_segments = segments;
  y_segments.first = std::max<size_t>(segments.first, stats->memory_limit / 8);
  auto y = Table::Open(env, o.y_path, o.y_key, o.allow_numeric_header, o.chunk_bytes, y_segments);
  if (!y.ok()) return y.status();
  auto x = Table::Open(env, o.x_path, o.x_key, o.allow_numeric_header, o.chunk_bytes, segments);
  if (!x.ok()) return x.status();

  stats->x_bytes = (*x)->size();
  stats->y_bytes = (*y)->size();
  const bool out_of_core =
      !(*y)->whole() || EstimateInMemoryJoinBytes(**y, threads, o.chunk_bytes) > stats->memory_limit;

  // The join proper. Its outcome counts only while both inputs are intact: a
  // file truncated under us reads as zeros (see InputData::Intact), and the
  // truncation, not the NULs, is what to report.
  auto join = [&]() -> Status {
    if (out_of_core) return RunGraceJoin(env, **x, **y, o, threads, OutputHeader(**x, **y), out->get(), stats);
    ScannedY ys;
    {
      PhaseTimer phase(o.progress, &stats->phases, "scan y", stats->y_bytes, 0);
      CM_RETURN_IF_ERROR(ScanY(**y, threads, o.pandas, o.progress, &ys));
      stats->seconds_scan_y = phase.End(ys.record_count, stats->y_bytes);
    }
    stats->y_rows = ys.record_count;
    stats->y_mode = ys.mode;
    const bool y_has_values = (*y)->column_names().size() > 1;
    const std::string header = OutputHeader(**x, **y);

    // Per-key counts (see ProbeCounting): for key statistics and the output-row guard.
    const bool guard = o.max_output_rows > 0;
    const bool want_keys = o.key_stats || guard;
    BigArray<uint32_t> chain, x_counts;
    BuildSide build;
    auto build_once = [&]() -> Status {
      if (!build.y) {
        PhaseTimer phase(o.progress, &stats->phases, "build", 0, ys.record_count);
        CM_RETURN_IF_ERROR(Build(ys, threads, &build));
        stats->seconds_build = phase.End(ys.record_count, 0);
        for (const auto& tab : build.numeric_tables) stats->y_distinct_keys += tab.size();
        for (const auto& tab : build.text_tables) stats->y_distinct_keys += tab.size();
        if (want_keys) {
          const size_t n = ys.rows.size();
          chain = BigArray<uint32_t>(n);
          x_counts = BigArray<uint32_t>(n);
          for (size_t i = n; i-- > 0;)  // chains run forward in the file: next > i
            if (!ys.rows[i].missing()) chain[i] = 1 + (ys.rows[i].next == kNoRow ? 0 : chain[ys.rows[i].next]);
        }
      }
      return Status::OK();
    };
    auto reset_counts = [&] {
      if (x_counts.size()) std::memset(x_counts.data(), 0, x_counts.size() * sizeof(uint32_t));
    };
    const ProbeCounting no_counting;
    auto counting = [&](bool count_only) { return ProbeCounting{x_counts.data(), chain.data(), count_only}; };
    auto collect_key_stats = [&] {
      if (!want_keys || !x_counts.size()) return;
      KeyStats keys;
      for (size_t i = 0; i < x_counts.size(); ++i)
        if (x_counts[i]) keys.Add(ys.rows[i].key(), x_counts[i], chain[i]);
      keys.AddTo(stats);
    };
    // The join with x's type known.
    auto probe_known = [&](KeyMode x_mode) -> Status {
      CM_RETURN_IF_ERROR((*out)->Append(header));
      // A number never equals a text: with one numeric and one text file nothing matches.
      if (IsNumeric(x_mode) != IsNumeric(ys.mode) || ys.record_count == 0) return Status::OK();
      CM_RETURN_IF_ERROR(build_once());
      PhaseTimer phase(o.progress, &stats->phases, "probe", stats->x_bytes, 0);
      ProbeCounts counts;
      KeyScan unused;
      CM_RETURN_IF_ERROR(Probe(**x, ProbeMode{false, x_mode, IsNumeric(ys.mode), o.pandas}, build, y_has_values, threads,
                               o.any_order, want_keys ? counting(false) : no_counting, o.progress, out->get(), &counts, &unused));
      stats->seconds_probe += phase.End(counts.x_rows, stats->x_bytes);
      stats->output_rows = counts.output_rows;
      return Status::OK();
    };

    const bool y_numeric = IsNumeric(ys.mode);
    if (guard && ys.record_count > 0) {
      // --max-output-rows: count first (a probe that writes nothing, inferring x's
      // type on the way), refuse or write second.
      CM_RETURN_IF_ERROR(build_once());
      PhaseTimer count_phase(o.progress, &stats->phases, "count", stats->x_bytes, 0);
      ProbeCounts counts;
      KeyScan x_scan(o.pandas);
      CM_RETURN_IF_ERROR(Probe(**x, ProbeMode{true, KeyMode::kText, y_numeric, o.pandas}, build, y_has_values, threads,
                               o.any_order, counting(true), o.progress, out->get(), &counts, &x_scan));
      CM_RETURN_IF_ERROR(CheckPandasRulesSupported(x_scan, (*x)->path(), o.pandas));
      KeyMode x_mode = x_scan.Decide();
      stats->x_rows = counts.x_rows;
      stats->x_mode = x_mode;
      bool same_keys = y_numeric ? (x_mode == KeyMode::kInt64 || (x_mode == KeyMode::kFloat && !counts.big_int))
                                 : x_mode == KeyMode::kText;
      bool comparable = IsNumeric(x_mode) == y_numeric;
      if (!same_keys) {
        stats->speculation_failed = true;
        reset_counts();
        counts.output_rows = 0;
        KeyScan unused;
        if (comparable)
          CM_RETURN_IF_ERROR(Probe(**x, ProbeMode{false, x_mode, y_numeric, o.pandas}, build, y_has_values, threads,
                                   o.any_order, counting(true), o.progress, out->get(), &counts, &unused));
      }
      stats->seconds_scan_x = count_phase.End(counts.x_rows, stats->x_bytes);
      stats->output_rows = counts.output_rows;
      collect_key_stats();
      if (counts.output_rows > o.max_output_rows) return OutputRowLimitError(*stats, o.max_output_rows);
      CM_RETURN_IF_ERROR((*out)->Append(header));
      if (!comparable) return Status::OK();
      PhaseTimer phase(o.progress, &stats->phases, "probe", stats->x_bytes, 0);
      KeyScan unused;
      CM_RETURN_IF_ERROR(Probe(**x, ProbeMode{false, x_mode, y_numeric, o.pandas}, build, y_has_values, threads, o.any_order,
                               no_counting, o.progress, out->get(), &counts, &unused));
      stats->seconds_probe = phase.End(counts.x_rows, stats->x_bytes);
      return Status::OK();
    }
    if ((*out)->can_restart() && ys.record_count > 0) {
      // One pass over x: probe while inferring x's type, assuming the common case
      // (numbers if y is numeric, text otherwise); if x's type turns out to give
      // different keys, rewind the output and probe again with the type now known.
      CM_RETURN_IF_ERROR(build_once());
      CM_RETURN_IF_ERROR((*out)->Append(header));
      ProbeCounts counts;
      KeyScan x_scan(o.pandas);
      {
        PhaseTimer phase(o.progress, &stats->phases, "probe", stats->x_bytes, 0);
        CM_RETURN_IF_ERROR(Probe(**x, ProbeMode{true, KeyMode::kText, y_numeric, o.pandas}, build, y_has_values, threads,
                                 o.any_order, want_keys ? counting(false) : no_counting, o.progress, out->get(), &counts,
                                 &x_scan));
        stats->seconds_probe = phase.End(counts.x_rows, stats->x_bytes);
      }
      stats->x_rows = counts.x_rows;
      stats->output_rows = counts.output_rows;
      CM_RETURN_IF_ERROR(CheckPandasRulesSupported(x_scan, (*x)->path(), o.pandas));
      KeyMode x_mode = x_scan.Decide();
      stats->x_mode = x_mode;
      bool same_keys = y_numeric ? (x_mode == KeyMode::kInt64 || (x_mode == KeyMode::kFloat && !counts.big_int))
                                 : x_mode == KeyMode::kText;
      if (!same_keys) {
        stats->speculation_failed = true;
        reset_counts();
        CM_RETURN_IF_ERROR((*out)->Restart());
        CM_RETURN_IF_ERROR(probe_known(x_mode));
      }
    } else {
      // Standard output cannot be rewound: infer x's type first, then probe.
      PhaseTimer phase(o.progress, &stats->phases, "scan x", stats->x_bytes, 0);
      KeyMode x_mode = KeyMode::kText;
      CM_RETURN_IF_ERROR(ScanXKeys(**x, threads, o.pandas, o.progress, &x_mode, &stats->x_rows));
      stats->seconds_scan_x = phase.End(stats->x_rows, stats->x_bytes);
      stats->x_mode = x_mode;
      CM_RETURN_IF_ERROR(probe_known(x_mode));
    }
    collect_key_stats();
    return Status::OK();
  };
  Status joined = join();
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
  auto out = AtomicOutput::Open(env, o.out_path);
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
