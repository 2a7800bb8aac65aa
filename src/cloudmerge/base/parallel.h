// ParallelFor: runs task(index, worker) for index in [0, n) on `threads`
// threads that pull indices in increasing order from a shared counter. With
// threads == 1 everything runs on the calling thread (deterministic, and the
// easiest path to debug).
// Thread safety: task must be safe to call concurrently for distinct indices.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

namespace cloudmerge {

template <class Task>
void ParallelFor(size_t n, unsigned threads, Task&& task) {
  unsigned workers = static_cast<unsigned>(std::min<size_t>(std::max(1u, threads), n));
  if (workers <= 1) {
    for (size_t i = 0; i < n; ++i) task(i, 0u);
    return;
  }
  std::atomic<size_t> next{0};
  auto loop = [&](unsigned w) {
    for (size_t i; (i = next.fetch_add(1)) < n;) task(i, w);
  };
  std::vector<std::thread> pool;
  for (unsigned w = 1; w < workers; ++w) pool.emplace_back(loop, w);
  loop(0);
  for (auto& t : pool) t.join();
}

}  // namespace cloudmerge
