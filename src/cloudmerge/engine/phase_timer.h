// PhaseTimer: one phase of a merge (scan y, partition x, join, ...): shown by the
// progress display while it runs, timed into MergeStats::phases when it ends.
// Thread safety: the engine's control thread only (workers call Progress::Add).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "cloudmerge/engine/merge_options.h"
#include "cloudmerge/base/progress.h"

namespace cloudmerge {

class PhaseTimer {
 public:
  PhaseTimer(Progress* progress, std::vector<PhaseStats>* phases, const char* name, uint64_t total_bytes,
             uint64_t total_rows)
      : progress_(progress), phases_(phases), name_(name), start_(std::chrono::steady_clock::now()) {
    if (progress_) progress_->BeginPhase(name, total_bytes, total_rows);
  }
  ~PhaseTimer() {
    if (!ended_ && progress_) progress_->EndPhase();
  }
  // Returns the phase's seconds.
  double End(uint64_t rows, uint64_t bytes) {
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    if (progress_) progress_->EndPhase();
    ended_ = true;
    phases_->push_back(PhaseStats{name_, s, rows, bytes});
    return s;
  }

 private:
  Progress* progress_;
  std::vector<PhaseStats>* phases_;
  const char* name_;
  std::chrono::steady_clock::time_point start_;
  bool ended_ = false;
};

}  // namespace cloudmerge
