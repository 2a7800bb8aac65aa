// RetryPolicy: the one retry policy of every AWS call (S3, SQS, SNS,
// CloudWatch Logs, EMR, EMR Serverless, through AwsClient or S3Client) and of
// the Lambda Runtime API's /next: a bounded number of attempts, capped
// exponential backoff with full jitter between them (AWS Architecture Blog,
// "Exponential Backoff And Jitter"), so that many workers throttled at once
// spread their retries instead of retrying in step.
//
// What is worth retrying stays with each caller (an S3 SlowDown, an SQS
// throttle, a Runtime API 503); the policy only counts and waits.
//
// Thread safety: a RetryPolicy is a value; Run may run on many
// threads at once (each thread draws its jitter from its own generator).
#pragma once

#include <cstdint>
#include <functional>

namespace cloudmerge {

enum class RetryVerdict {
  kStop,        // done: success, or a failure another attempt would not change
  kAgain,       // worth another attempt
  kAgainFresh,  // worth another attempt, and this one made progress: the budget starts over
};

struct RetryPolicy {
  int max_attempts = 5;  // attempts per budget, including the first (values < 1 act as 1)
  int base_delay_ms = 100;
  int max_delay_ms = 5000;

  // Full jitter: uniform in [0, min(max_delay_ms, base_delay_ms * 2^(retry-1))]
  // for retry = 1, 2, ... (the wait before the retry-th retry), from `random`.
  int DelayMs(int retry, uint64_t random) const;

  // Calls attempt(n) until it returns kStop or the budget is used up, sleeping
  // between attempts. n is the attempt's number within the current budget
  // (1, 2, ...; back to 1 after a kAgainFresh). on_retry (optional) hears of
  // each retry before its wait: the number of the attempt that failed and the
  // wait in ms. Returns the number of the last attempt within its budget.
  int Run(const std::function<RetryVerdict(int attempt)>& attempt,
          const std::function<void(int attempt, int delay_ms)>& on_retry = nullptr) const;
};

}  // namespace cloudmerge
