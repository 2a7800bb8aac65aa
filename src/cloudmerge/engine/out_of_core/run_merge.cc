// The merge phase (run_merge.h): cursors over runs, the k-way merge, the split
// of x positions into ranges merged in parallel, and the ordered hand-over of
// the ranges to OUT.
//
// Every run is sorted on (x position, y position). The final merge splits the
// x positions into ranges of about equal output, one merger thread per range,
// each reading every run from its range's start (RunFile::blocks). A writer
// (the calling thread) appends the ranges to OUT in order: range 0 as it is
// merged, a later range from the temp file it filled while waiting for its
// turn, then as it is merged. So both cores merge, and the output is the same
// bytes for any number of ranges.
#include "cloudmerge/engine/out_of_core/run_merge.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cloudmerge/base/parallel.h"

namespace cloudmerge::ooc {
namespace {

// x positions [lo, hi) (hi == kNoEnd: to the end).
struct XRange {
  static constexpr uint64_t kNoEnd = UINT64_MAX;
  uint64_t lo = 0, hi = kNoEnd;
};

// Reads one run's output records in order, within an x range.
class RunCursor {
 public:
  Status Open(Env* env, const RunFile& run, XRange range) {
    path_ = run.path;
    range_ = range;
    auto r = SpillReader::Open(env, path_);
    if (!r.ok()) return r.status();
    reader_ = std::move(r.value());
    if (range.lo > 0 && !run.blocks.empty()) {
      // The last block starting below lo: rows at lo may begin in it.
      auto it = std::lower_bound(run.blocks.begin(), run.blocks.end(), range.lo,
                                 [](const RunBlock& b, uint64_t x) { return b.first_x < x; });
      if (it != run.blocks.begin()) --it;
      reader_->Seek(it->offset, static_cast<uint64_t>(it - run.blocks.begin()));
    }
    return Status::OK();
  }
  // The next record of the range into x, y, line; false at its end.
  Result<bool> Next() {
    if (past_range_) return false;
    for (;;) {
      while (records_.done()) {
        uint32_t n;
        auto more = reader_->NextView(&block_, &n);
        if (!more.ok()) return more.status();
        if (!*more) return false;
        records_ = OutRecords(block_);
      }
      if (!records_.Next(&x, &y, &line)) return BadRecord(path_);
      if (x < range_.lo) continue;  // before the range, in the block it starts in
      if (range_.hi != XRange::kNoEnd && x >= range_.hi) {
        past_range_ = true;
        return false;
      }
      return true;
    }
  }
  uint64_t x = 0, y = 0;
  std::string_view line;

 private:
  std::string path_;
  XRange range_;
  std::unique_ptr<SpillReader> reader_;
  std::string_view block_;  // valid until the reader's next block
  OutRecords records_{std::string_view()};  // the records of block_ not yet read
  bool past_range_ = false;
};

// A tournament ("loser") tree over k sorted inputs, keyed by (x, y) position:
// the smallest head is at the root, and replacing it costs one comparison per
// level (log2 k), where a binary heap's pop + push costs about two per level.
// Leaves are padded to a power of two with exhausted inputs (kDone).
class LoserTree {
 public:
  using Key = unsigned __int128;  // x position << 64 | y position: unique per match
  static constexpr Key kDone = ~Key{0};
  static Key KeyOf(uint64_t x, uint64_t y) { return (Key{x} << 64) | y; }

  explicit LoserTree(const std::vector<Key>& heads) {
    size_t k = 1;
    while (k < heads.size()) k *= 2;
    keys_.assign(k, kDone);
    std::copy(heads.begin(), heads.end(), keys_.begin());
    losers_.assign(k, 0);
    winner_ = k == 1 ? 0 : Play(1);
  }
  uint32_t winner() const { return winner_; }
  bool done() const { return keys_[winner_] == kDone; }
  // The winner's input moved on to `next` (kDone: exhausted): replays its path to the root.
  void ReplaceWinner(Key next) {
    keys_[winner_] = next;
    uint32_t w = winner_;
    for (size_t node = (w + keys_.size()) / 2; node >= 1; node /= 2)
      if (keys_[losers_[node]] < keys_[w]) std::swap(w, losers_[node]);
    winner_ = w;
  }

 private:
  // The winner of the subtree at `node` (leaves are nodes k..2k-1); records each node's loser.
  uint32_t Play(size_t node) {
    const size_t k = keys_.size();
    uint32_t a = node * 2 >= k ? static_cast<uint32_t>(node * 2 - k) : Play(node * 2);
    uint32_t b = node * 2 + 1 >= k ? static_cast<uint32_t>(node * 2 + 1 - k) : Play(node * 2 + 1);
    bool a_wins = keys_[a] < keys_[b] || (keys_[a] == keys_[b] && a < b);
    losers_[node] = a_wins ? b : a;
    return a_wins ? a : b;
  }

  std::vector<Key> keys_;        // each input's head
  std::vector<uint32_t> losers_;  // losers_[node] for internal nodes 1..k-1
  uint32_t winner_ = 0;
};

// Merges the runs' records in `range` on (x position, y position), calling
// emit(x, y, line) in order.
template <class Emit>
Status MergeRuns(Context& ctx, const std::vector<RunFile>& runs, XRange range, Emit&& emit) {
  if (runs.empty()) return Status::OK();
  std::vector<RunCursor> cursors(runs.size());
  std::vector<LoserTree::Key> heads(runs.size(), LoserTree::kDone);
  for (size_t i = 0; i < runs.size(); ++i) {
    CM_RETURN_IF_ERROR(cursors[i].Open(ctx.env, runs[i], range));
    auto more = cursors[i].Next();
    if (!more.ok()) return more.status();
    if (*more) heads[i] = LoserTree::KeyOf(cursors[i].x, cursors[i].y);
  }
  LoserTree tree(heads);
  while (!tree.done()) {
    RunCursor& c = cursors[tree.winner()];
    CM_RETURN_IF_ERROR(emit(c.x, c.y, c.line));
    auto more = c.Next();
    if (!more.ok()) return more.status();
    tree.ReplaceWinner(*more ? LoserTree::KeyOf(c.x, c.y) : LoserTree::kDone);
  }
  return Status::OK();
}

// Split points that cut the runs' output into about `ways` equal parts, from the
// blocks' first x positions and sizes. Fewer ranges when the output is too
// concentrated to split (one x row matching most of y).
std::vector<XRange> SplitByX(const std::vector<RunFile>& runs, unsigned ways) {
  std::vector<RunBlock> blocks;
  uint64_t total = 0;
  for (const RunFile& r : runs)
    for (const RunBlock& b : r.blocks) {
      blocks.push_back(b);
      total += b.raw_bytes;
    }
  std::sort(blocks.begin(), blocks.end(), [](const RunBlock& a, const RunBlock& b) { return a.first_x < b.first_x; });
  std::vector<XRange> ranges(1);
  uint64_t seen = 0;
  for (const RunBlock& b : blocks) {
    const uint64_t target = total / ways * ranges.size();
    if (ranges.size() < ways && seen >= target && b.first_x > ranges.back().lo) {
      ranges.back().hi = b.first_x;
      ranges.push_back(XRange{b.first_x, XRange::kNoEnd});
    }
    seen += b.raw_bytes;
  }
  return ranges;
}

// The output of one range of the final merge, from its merger to the writer.
// Until the writer reaches the range, the merger appends its buffers to a temp
// file (spill blocks: checksummed, compressed like the runs); from then on it
// hands them over directly, two at most in flight.
class RangeOutput {
 public:
  explicit RangeOutput(Context* ctx) : ctx_(ctx) {}
  ~RangeOutput() {
    if (file_) file_->Close();
    if (!file_path_.empty()) ctx_->env->RemoveFile(file_path_);
  }

  // Merger: the next buffer of output lines.
  Status Put(std::string buf) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!writer_status_.ok()) return writer_status_;
    if (wanted_ && !streaming_) {
      CM_RETURN_IF_ERROR(CloseFile());  // complete, for the writer to read
      streaming_ = true;
      cv_.notify_all();
    }
    if (!streaming_) return AppendToFile(buf);
    cv_.wait(lock, [&] { return queue_.size() < 2 || !writer_status_.ok(); });
    if (!writer_status_.ok()) return writer_status_;
    queue_.push_back(std::move(buf));
    cv_.notify_all();
    return Status::OK();
  }
  // Merger: no more buffers; `st` is how the merge ended.
  void Close(Status st) {
    std::lock_guard<std::mutex> lock(mu_);
    if (st.ok() && !streaming_) st = CloseFile();
    merger_status_ = std::move(st);
    closed_ = true;
    cv_.notify_all();
  }
  // Writer: appends the whole range to `out`, in order, as it comes.
  Status DrainInto(AtomicOutput* out) {
    std::unique_lock<std::mutex> lock(mu_);
    wanted_ = true;
    cv_.wait(lock, [&] { return streaming_ || closed_; });
    if (!merger_status_.ok()) return merger_status_;
    if (!file_path_.empty()) {
      lock.unlock();
      Status st = CopyFile(out);
      lock.lock();
      if (!st.ok()) return Fail(std::move(st));
    }
    for (;;) {
      cv_.wait(lock, [&] { return !queue_.empty() || closed_; });
      if (queue_.empty()) return merger_status_;
      std::string piece = std::move(queue_.front());
      queue_.pop_front();
      cv_.notify_all();
      lock.unlock();
      Status st = out->Append(piece);
      lock.lock();
      if (!st.ok()) return Fail(std::move(st));
    }
  }
  // Writer: stop this range's merger (the output failed, or an earlier range did).
  void Abandon(const Status& st) {
    std::lock_guard<std::mutex> lock(mu_);
    Fail(st);
  }

 private:
  Status Fail(Status st) {
    writer_status_ = st;
    cv_.notify_all();
    return st;
  }
  // Under mu_ (the writer does not touch the file until streaming_ or closed_).
  Status AppendToFile(std::string_view buf) {
    if (!file_) {
      file_path_ = ctx_->dir->NewPath("range");
      auto w = SpillWriter::Create(ctx_->env, file_path_);
      if (!w.ok()) return w.status();
      file_ = std::move(w.value());
    }
    return file_->AppendBlock(buf, 0, ctx_->zstd_level);
  }
  Status CloseFile() {
    if (!file_) return Status::OK();
    Status st = file_->Close();
    ctx_->CountSpill(*file_);
    file_.reset();
    return st;
  }
  Status CopyFile(AtomicOutput* out) {
    CM_RETURN_IF_ERROR(ForEachSpillBlock(ctx_->env, file_path_,
                                         [&](std::string_view block, uint32_t) { return out->Append(block); }));
    ctx_->env->RemoveFile(file_path_);
    file_path_.clear();
    return Status::OK();
  }

  Context* ctx_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool wanted_ = false, streaming_ = false, closed_ = false;
  Status merger_status_, writer_status_;
  std::deque<std::string> queue_;
  std::unique_ptr<SpillWriter> file_;
  std::string file_path_;
};

// The final merge: one merger thread per range, the calling thread writes.
Status MergeRangesIntoOutput(Context& ctx, const std::vector<RunFile>& runs, const std::vector<XRange>& ranges,
                             AtomicOutput* out) {
  std::vector<std::unique_ptr<RangeOutput>> parts;
  for (size_t k = 0; k < ranges.size(); ++k) parts.push_back(std::make_unique<RangeOutput>(&ctx));
  const size_t buffer_bytes = std::clamp<size_t>(ctx.memory_limit / 32 / ranges.size(), 64u << 10, 4u << 20);
  std::vector<std::thread> mergers;
  for (size_t k = 0; k < ranges.size(); ++k)
    mergers.emplace_back([&, k] {
      RangeOutput& part = *parts[k];
      std::string buf;
      uint64_t lines = 0, bytes = 0;
      Status st = MergeRuns(ctx, runs, ranges[k], [&](uint64_t, uint64_t, std::string_view line) {
        buf.append(line);
        bytes += line.size();
        if (++lines == 65536) {
          ctx.AddProgress(lines, bytes);
          lines = bytes = 0;
        }
        if (buf.size() < buffer_bytes) return Status::OK();
        Status put = part.Put(std::move(buf));
        buf = std::string();
        buf.reserve(buffer_bytes + (64u << 10));
        return put;
      });
      ctx.AddProgress(lines, bytes);
      if (st.ok() && !buf.empty()) st = part.Put(std::move(buf));
      part.Close(std::move(st));
    });
  Status st;
  for (size_t k = 0; k < parts.size(); ++k) {
    if (st.ok()) st = parts[k]->DrainInto(out);
    if (!st.ok()) parts[k]->Abandon(st);
  }
  for (auto& t : mergers) t.join();
  return st;
}

}  // namespace

// Merges all runs into OUT; first in groups when there are more runs than the
// memory allows cursors for. Every merger holds a cursor per run, so the final
// merge runs in as many ranges as the threads and the cursors' memory allow.
Status MergeIntoOutput(Context& ctx, Outputs* outs, AtomicOutput* out, unsigned* ranges_used) {
  std::vector<RunFile> runs = std::move(outs->runs);
  const size_t fan_in = std::clamp<size_t>(ctx.memory_limit / (4 * ctx.block_bytes + 1), 8, 512);
  // Already grouping: group down to what every thread can merge at once.
  const size_t group = runs.size() > fan_in ? std::max<size_t>(2, fan_in / ctx.threads) : fan_in;
  while (runs.size() > group) {
    std::vector<std::vector<RunFile>> groups;
    for (size_t i = 0; i < runs.size(); i += group)
      groups.emplace_back(runs.begin() + i, runs.begin() + std::min(runs.size(), i + group));
    Outputs merged;
    FirstError error;
    ParallelFor(groups.size(), ctx.threads, [&](size_t g, unsigned) {
      if (error.failed()) return;
      RunSink sink(&ctx, &merged);
      Status st = MergeRuns(ctx, groups[g], XRange{}, [&](uint64_t x, uint64_t y, std::string_view line) {
        return sink.EmitLine(x, y, line);
      });
      if (st.ok()) st = sink.Finish();
      if (!st.ok()) error.Set(st);
      for (const RunFile& r : groups[g]) ctx.env->RemoveFile(r.path);
    });
    CM_RETURN_IF_ERROR(error.Get());
    runs = std::move(merged.runs);
  }
  const unsigned ways = static_cast<unsigned>(
      std::clamp<size_t>(fan_in / std::max<size_t>(1, runs.size()), 1, ctx.threads));
  const std::vector<XRange> ranges = SplitByX(runs, ways);
  *ranges_used = static_cast<unsigned>(ranges.size());
  Status st = MergeRangesIntoOutput(ctx, runs, ranges, out);
  for (const RunFile& r : runs) ctx.env->RemoveFile(r.path);
  return st;
}

}  // namespace cloudmerge::ooc
