// RandomSeed: 64 random bits from the kernel (getrandom(2)), for retry
// jitter and temporary names. Used instead of std::random_device, whose
// libstdc++ implementation calls arc4random@GLIBC_2.36 when libstdc++ is
// linked statically: the Lambda package (provided.al2023, glibc 2.34) links
// it statically and must not need it. Thread-safe.
#pragma once

#include <sys/random.h>

#include <chrono>
#include <cstdint>

namespace cloudmerge {

inline uint64_t RandomSeed() {
  uint64_t v = 0;
  if (getrandom(&v, sizeof(v), 0) != static_cast<ssize_t>(sizeof(v)))  // never short for 8 bytes; be safe anyway
    v = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) * 0x9E3779B97F4A7C15ull;
  return v;
}

}  // namespace cloudmerge
