// The join phase (join_phase.h): the worker pool and the task rules.
#include "cloudmerge/engine/out_of_core/join_phase.h"

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "cloudmerge/engine/key_stats.h"
#include "cloudmerge/engine/out_of_core/partition.h"
#include "cloudmerge/engine/out_of_core/partition_join.h"

namespace cloudmerge::ooc {
namespace {

class JoinPhase {
 public:
  JoinPhase(Context* ctx, Outputs* outs) : ctx_(ctx), outs_(outs) {}

  Status Run(std::vector<JoinTask> tasks) {
    for (auto& t : tasks) queue_.push_back(std::move(t));
    std::vector<std::thread> pool;
    for (unsigned w = 0; w < ctx_->threads; ++w) pool.emplace_back([this] { Work(); });
    for (auto& t : pool) t.join();
    for (auto& k : keys_) k.AddTo(ctx_->stats);
    return error_.Get();
  }

 private:
  void Work() {
    KeyStats keys;
    JoinScratch scratch;  // this worker's tables, reused from partition to partition
    for (;;) {
      JoinTask task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return !queue_.empty() || active_ == 0 || error_.failed(); });
        if (queue_.empty() || error_.failed()) {
          cv_.notify_all();
          break;
        }
        task = std::move(queue_.front());
        queue_.pop_front();
        ++active_;
      }
      Status st = RunTask(task, &keys, &scratch);
      if (!st.ok()) error_.Set(st);
      {
        std::lock_guard<std::mutex> lock(mu_);
        --active_;
        cv_.notify_all();
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    keys_.push_back(std::move(keys));
  }

  void Push(JoinTask t) {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(t));
    cv_.notify_all();
  }

  Status RunTask(const JoinTask& t, KeyStats* keys, JoinScratch* scratch) {
    auto remove = [&] {
      if (!t.y.path.empty()) ctx_->env->RemoveFile(t.y.path);
      if (!t.x.path.empty()) ctx_->env->RemoveFile(t.x.path);
    };
    if (t.y.records == 0 || t.x.records == 0) {  // nothing can match
      const bool fits = t.y.records && BuildBytes(t.y, ctx_->y_mode) <= ctx_->task_budget;
      Status st = fits ? CountDistinctKeys(*ctx_, t.y) : Status::OK();
      remove();
      return st;
    }
    NoteLevel(t.level);
    if (BuildBytes(t.y, ctx_->y_mode) > ctx_->task_budget) {
      // Too big for memory: split by the next level's hash, unless splitting cannot help.
      if (t.hot || t.level + 1 >= kMaxLevels || t.y.records == 1) return RunHot(t, keys);
      uint32_t fanout = FanoutFor(*ctx_, BuildBytes(t.y, ctx_->y_mode));
      unsigned level = t.level + 1;
      std::string stem = fmt::format("l{}", level);
      auto ys = Repartition(*ctx_, t.y, ctx_->y_mode, "y" + stem, level, fanout);
      if (!ys.ok()) return ys.status();
      auto xs = Repartition(*ctx_, t.x, ctx_->x_mode, "x" + stem, level, fanout);
      if (!xs.ok()) return xs.status();
      for (uint32_t p = 0; p < fanout; ++p) {
        JoinTask child{(*ys)[p], (*xs)[p], level, false};
        // No split at all: every row shares the hash at two levels — one key (or a few equal as doubles).
        child.hot = child.y.records == t.y.records;
        Push(std::move(child));
      }
      return Status::OK();
    }
    ctx_->stats_partitions.fetch_add(1, std::memory_order_relaxed);
    std::unique_ptr<MatchSink> sink = NewMatchSink(ctx_, outs_);
    CM_RETURN_IF_ERROR(JoinInMemory(*ctx_, t.y, t.x, sink.get(), keys, scratch));
    CM_RETURN_IF_ERROR(sink->Finish());
    ctx_->AddProgress(t.x.records + t.y.records, t.x.raw_bytes + t.y.raw_bytes);
    remove();
    return Status::OK();
  }

  Status RunHot(const JoinTask& t, KeyStats* keys) {
    ctx_->stats_partitions.fetch_add(1, std::memory_order_relaxed);
    ctx_->stats_nested.fetch_add(1, std::memory_order_relaxed);
    CM_RETURN_IF_ERROR(JoinByBlocks(*ctx_, t.y, t.x, outs_, keys));
    ctx_->AddProgress(t.x.records + t.y.records, t.x.raw_bytes + t.y.raw_bytes);
    ctx_->env->RemoveFile(t.y.path);
    ctx_->env->RemoveFile(t.x.path);
    return Status::OK();
  }

  void NoteLevel(unsigned level) {
    unsigned cur = ctx_->stats_levels.load();
    while (level + 1 > cur && !ctx_->stats_levels.compare_exchange_weak(cur, level + 1)) {}
  }

  Context* ctx_;
  Outputs* outs_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<JoinTask> queue_;
  unsigned active_ = 0;
  FirstError error_;
  std::vector<KeyStats> keys_;
};

}  // namespace

Status RunJoinPhase(Context* ctx, Outputs* outs, std::vector<JoinTask> tasks) {
  JoinPhase join(ctx, outs);
  return join.Run(std::move(tasks));
}

}  // namespace cloudmerge::ooc
