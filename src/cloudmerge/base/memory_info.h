// Memory facts the engine plans with and reports: the size syntax of
// --memory-limit, the default limit, and the process's resident memory.
// Thread safety: all functions are safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "cloudmerge/base/status.h"

namespace cloudmerge {

// "2GiB", "512MiB", "1.5G", "800M", "64k", "1000000" (bytes). Binary and decimal
// suffixes (K/KB=1000, KiB=1024, M/MB, MiB, G/GB, GiB, T/TB, TiB; case-insensitive).
// A clear InvalidArgument naming the text otherwise.
Result<uint64_t> ParseByteSize(std::string_view text);
// "1.5 GiB", "800.0 MiB", "512 B": for messages and summaries.
std::string FormatBytes(uint64_t bytes);
// 1234567 -> "1,234,567": row and key counts for people (they reach billions).
std::string Grouped(uint64_t v);

// The memory this process may use: the smallest of physical memory (sysconf),
// the cgroup v2/v1 memory limit, and AWS_LAMBDA_FUNCTION_MEMORY_SIZE (MiB) when set.
uint64_t AvailableMemoryBytes();
// The default --memory-limit: 60% of AvailableMemoryBytes().
uint64_t DefaultMemoryLimit();

// Resident set size now (/proc/self/statm) and at its peak (getrusage ru_maxrss, VmHWM).
uint64_t CurrentRssBytes();
uint64_t PeakRssBytes();

}  // namespace cloudmerge
