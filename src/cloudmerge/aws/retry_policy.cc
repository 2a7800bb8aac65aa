// RetryPolicy: count, back off with full jitter (retry_policy.h).
#include "cloudmerge/aws/retry_policy.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>

#include "cloudmerge/base/random_seed.h"

namespace cloudmerge {
namespace {

uint64_t NextRandom() {
  thread_local std::mt19937_64 rng{RandomSeed()};
  return rng();
}

}  // namespace

int RetryPolicy::DelayMs(int retry, uint64_t random) const {
  int shift = std::clamp(retry - 1, 0, 20);
  int64_t cap = std::min<int64_t>(max_delay_ms, int64_t{base_delay_ms} << shift);
  if (cap <= 0) return 0;
  return static_cast<int>(random % static_cast<uint64_t>(cap + 1));
}

int RetryPolicy::Run(const std::function<RetryVerdict(int attempt)>& attempt,
                     const std::function<void(int attempt, int delay_ms)>& on_retry) const {
  int failures = 0;  // consecutive failed attempts in the current budget
  for (;;) {
    int n = failures + 1;
    RetryVerdict verdict = attempt(n);
    if (verdict == RetryVerdict::kStop) return n;
    failures = verdict == RetryVerdict::kAgainFresh ? 1 : failures + 1;
    if (failures >= std::max(1, max_attempts)) return failures;
    int ms = DelayMs(failures, NextRandom());
    if (on_retry) on_retry(failures, ms);
    if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  }
}

}  // namespace cloudmerge
