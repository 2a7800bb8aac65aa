// KeyStats: what the join learns about its matched keys while it runs — how
// many there are, the hottest ones (most output rows), and how output rows are
// spread over keys (a log2 histogram). Each worker fills its own collector;
// collectors are folded into MergeStats at the end.
// Thread safety: a KeyStats is used by one thread; AddTo under the caller's lock.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cloudmerge/engine/merge_options.h"

namespace cloudmerge {

class KeyStats {
 public:
  static constexpr size_t kHottest = 10;

  // A key that matched: cx rows of x and cy rows of y (cx * cy output rows).
  void Add(std::string_view key, uint64_t cx, uint64_t cy) {
    uint64_t rows = cx * cy;
    if (rows == 0) return;
    ++matched_;
    ++histogram_[63 - std::countl_zero(rows)];
    if (hot_.size() < kHottest || rows >= floor_) {  // ties kept: the top is decided by (rows, key)
      hot_.push_back(HotKey{std::string(key.substr(0, 200)), cx, cy});
      if (hot_.size() >= 4 * kHottest) Prune();
    }
  }

  void AddTo(MergeStats* s) {
    s->matched_keys += matched_;
    for (size_t i = 0; i < histogram_.size(); ++i) s->matches_per_key[i] += histogram_[i];
    s->hottest_keys.insert(s->hottest_keys.end(), hot_.begin(), hot_.end());
    SortAndTruncate(&s->hottest_keys);
  }

  static void SortAndTruncate(std::vector<HotKey>* keys) {
    std::sort(keys->begin(), keys->end(), [](const HotKey& a, const HotKey& b) {
      return a.output_rows() != b.output_rows() ? a.output_rows() > b.output_rows() : a.key < b.key;
    });
    if (keys->size() > kHottest) keys->resize(kHottest);
  }

 private:
  void Prune() {
    SortAndTruncate(&hot_);
    floor_ = hot_.back().output_rows();
  }
  uint64_t matched_ = 0;
  std::array<uint64_t, 64> histogram_{};
  std::vector<HotKey> hot_;
  uint64_t floor_ = 0;
};

}  // namespace cloudmerge
