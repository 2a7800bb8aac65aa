#include "cloudmerge/engine/in_memory_probe.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cloudmerge/base/parallel.h"
#include "cloudmerge/base/prefetch.h"
#include "cloudmerge/engine/join_keys.h"
#include "cloudmerge/engine/probe_batch.h"

namespace cloudmerge::in_memory {
namespace {

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

}  // namespace

Status ScanXKeys(Table& x, unsigned threads, Progress* progress, KeyScan* total) {
  return ForEachSegment(x, [&] { return ScanXKeysSegment(x, threads, progress, total); });
}

namespace {

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

// What every chunk's probe shares.
struct ProbeContext {
  const Table& x;
  const ProbeMode& mode;
  const BuildSide& b;
  bool y_has_values;
  const ProbeCounting& counting;
};

// Probes one chunk of x into its output buffer: keys each row (inferring x's
// type on the way when speculative), batches the rows (ProbeBatch), and
// formats each match as x's row, then y's text.
class ChunkProber {
 public:
  ChunkProber(const ProbeContext& ctx, KeyScan* scan, size_t chunk_bytes) : ctx_(ctx), scan_(scan) {
    buf_.reserve(chunk_bytes + 4096);
  }

  // false: a bad row (its problem in *problem); the rows before it are probed.
  bool Run(const ChunkRange& chunk, ScanProblem* problem) {
    bool valid = ctx_.x.ScanChunk(chunk, rec_, problem, [&](const Record& r) { OnRecord(r); });
    Flush();
    return valid;
  }
  const ProbeCounts& counts() const { return counts_; }
  std::string TakeOutput() { return std::move(buf_); }

 private:
  // A row probed in a batch: quote-free, so its text is its bytes in the input.
  struct Pending {
    const char* row;
    uint32_t len;
    ProbeKey key;
  };

  void OnRecord(const Record& r) {
    ++counts_.x_rows;
    ProbeKey k;
    if (!KeyOf(r.fields[ctx_.x.key_index()].view(), &k)) return;
    if (r.has_quote_char) {  // its fields live in the record's scratch: handle it now, in order
      Flush();
      uint32_t j = ctx_.b.Head(k);
      if (j == kNoRow) return;
      EncodeFields(r, std::string::npos, xenc_);
      Emit(xenc_, j);
      return;
    }
    ctx_.b.Prefetch(k);
    batch_.Add(Pending{r.begin, static_cast<uint32_t>(r.end - r.begin), k});
    if (batch_.full()) Flush();
  }

  bool KeyOf(std::string_view v, ProbeKey* k) {
    const ProbeMode& mode = ctx_.mode;
    if (scan_) {
      int64_t plain;
      if (mode.y_numeric && ParsePlainInt(v, &plain)) {  // the common case, parsed once for type and key
        scan_->AddPlainInt(v[0] == '-');
        k->num = NumericKey{static_cast<uint64_t>(plain), NumericKey::kSigned};
        k->hash = HashNumericKey(k->num);
        return true;
      }
      scan_->Add(v);
      if (mode.y_numeric) return MakeSpeculativeNumericKey(v, mode.rules, k, &counts_.big_int);
    }
    return MakeKey(mode.x_mode, v, k, mode.rules);
  }

  void Flush() {
    const BigArray<YRow>& yrows = ctx_.b.y->rows;
    batch_.Flush([&](const Pending& p) { return ctx_.b.HeadCandidate(p.key); },
                 [&](uint32_t head) { PrefetchForRead(&yrows[head]); },
                 [&](uint32_t head) { PrefetchSpanForRead(yrows[head].first_byte(), yrows[head].last_byte()); },
                 [&](const Pending& p, uint32_t candidate) {
                   uint32_t head = ctx_.b.ConfirmHead(p.key, candidate);
                   if (head != kNoRow) Emit({p.row, p.len}, head);
                 });
  }

  // Writes x's row once per y row of the key (or, count_only, only counts them).
  void Emit(std::string_view xo, uint32_t j) {
    const ProbeCounting& counting = ctx_.counting;
    if (counting.x_counts) std::atomic_ref<uint32_t>(counting.x_counts[j]).fetch_add(1, std::memory_order_relaxed);
    if (counting.count_only) {
      counts_.output_rows += counting.chain[j];
      return;
    }
    const BigArray<YRow>& yrows = ctx_.b.y->rows;
    for (; j != kNoRow; j = yrows[j].next) {
      const YRow& yr = yrows[j];
      buf_.append(xo);
      if (ctx_.y_has_values) {
        buf_.push_back('\t');
        buf_.append(yr.out(), yr.out_len);
      }
      buf_.push_back('\n');
      ++counts_.output_rows;
    }
  }

  const ProbeContext& ctx_;
  KeyScan* scan_;
  Record rec_;
  std::string xenc_, buf_;
  ProbeCounts counts_;
  ProbeBatch<Pending> batch_;
};

// One segment of x: chunks probed in parallel, one writer thread appending their outputs.
Status ProbeSegment(const ProbeContext& ctx, unsigned threads, bool any_order, Progress* progress, AtomicOutput* out,
                    ProbeCounts* counts, KeyScan* x_scan) {
  const auto& chunks = ctx.x.chunks();
  std::vector<ProbeCounts> per_chunk(chunks.size());
  std::vector<KeyScan> scans(ctx.mode.speculative ? chunks.size() : 0, KeyScan(ctx.mode.rules));
  std::vector<ScanProblem> problems(chunks.size());
  const unsigned workers = std::max(1u, threads);
  OrderedSink sink(chunks.size(), 2 * workers + 2, any_order);

  auto probe_chunk = [&](size_t c, unsigned) {
    if (!sink.WaitTurn(c)) return;
    ChunkProber prober(ctx, ctx.mode.speculative ? &scans[c] : nullptr, chunks[c].end - chunks[c].begin);
    bool valid = prober.Run(chunks[c], &problems[c]);
    ctx.x.Release(chunks[c]);
    per_chunk[c] = prober.counts();
    if (progress) progress->Add(per_chunk[c].x_rows, chunks[c].end - chunks[c].begin);
    if (!valid) sink.Fail();  // bad input: stop; the error is reported below
    sink.Deliver(c, prober.TakeOutput());
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
  CM_RETURN_IF_ERROR(FirstProblem(ctx.x, problems));
  CM_RETURN_IF_ERROR(write_status);
  for (const ProbeCounts& pc : per_chunk) {
    counts->x_rows += pc.x_rows;
    counts->output_rows += pc.output_rows;
    counts->big_int |= pc.big_int;
  }
  for (const KeyScan& sc : scans) x_scan->Append(sc);
  return Status::OK();
}

}  // namespace

Status Probe(Table& x, const ProbeMode& mode, const BuildSide& b, bool y_has_values, unsigned threads, bool any_order,
             const ProbeCounting& counting, Progress* progress, AtomicOutput* out, ProbeCounts* counts,
             KeyScan* x_scan) {
  const ProbeContext ctx{x, mode, b, y_has_values, counting};
  return ForEachSegment(x, [&] { return ProbeSegment(ctx, threads, any_order, progress, out, counts, x_scan); });
}

}  // namespace cloudmerge::in_memory
