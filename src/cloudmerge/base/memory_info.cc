#include "cloudmerge/base/memory_info.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace cloudmerge {

namespace {

constexpr uint64_t kKiB = uint64_t{1} << 10;
constexpr uint64_t kMiB = uint64_t{1} << 20;

// cgroup files say "no limit" with "max" (v2) or with a huge number (v1 writes
// LONG_MAX rounded down to a page, 9223372036854771712): anything at or above
// 2^60 bytes (an exbibyte) is treated as no limit.
constexpr uint64_t kNoLimitAbove = uint64_t{1} << 60;

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

// The multiplier of a size suffix; 0 when the suffix is not one we know.
uint64_t SuffixMultiplier(std::string_view unit) {
  struct Unit {
    const char* name;
    uint64_t mult;
  };
  static constexpr Unit kUnits[] = {
      {"", 1},
      {"b", 1},
      {"k", 1000},
      {"kb", 1000},
      {"ki", kKiB},
      {"kib", kKiB},
      {"m", 1000 * 1000},
      {"mb", 1000 * 1000},
      {"mi", kMiB},
      {"mib", kMiB},
      {"g", 1000ull * 1000 * 1000},
      {"gb", 1000ull * 1000 * 1000},
      {"gi", uint64_t{1} << 30},
      {"gib", uint64_t{1} << 30},
      {"t", 1000ull * 1000 * 1000 * 1000},
      {"tb", 1000ull * 1000 * 1000 * 1000},
      {"ti", uint64_t{1} << 40},
      {"tib", uint64_t{1} << 40},
  };
  for (const Unit& u : kUnits)
    if (EqualsIgnoreCase(unit, u.name)) return u.mult;
  return 0;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

Status BadSize(std::string_view text, std::string_view why) {
  return Status::InvalidArgument(
      fmt::format("invalid size \"{}\": {}. Write a number with an optional unit, such as 2GiB, 512MiB, 1.5G or "
                  "1000000 (bytes); units (any case): B, K/KB (1000), KiB (1024), M/MB, MiB, G/GB, GiB, T/TB, TiB",
                  text, why));
}

// The first line of a small file, trimmed; "" when it cannot be read.
std::string ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return "";
  return std::string(Trim(line));
}

// A cgroup memory limit file's value; 0 when absent, unreadable or "no limit".
uint64_t ReadCgroupLimit(const std::string& path) {
  std::string text = ReadFirstLine(path);
  if (text.empty() || text == "max") return 0;
  char* end = nullptr;
  unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (end == text.c_str() || *end != '\0' || v == 0 || v >= kNoLimitAbove) return 0;
  return v;
}

// The process's cgroup path for the v2 hierarchy ("0::/path") or for v1's
// memory controller ("N:...memory...:/path"), from /proc/self/cgroup.
std::string CgroupPath(bool v2) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    size_t a = line.find(':');
    size_t b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1);
    bool match = v2 ? (line.compare(0, a, "0") == 0 && controllers.empty())
                    : (("," + controllers + ",").find(",memory,") != std::string::npos);
    if (match) return line.substr(b + 1);
  }
  return "";
}

// The smallest limit on the way from the process's cgroup up to the mount
// point (a parent's limit binds its children too), and the mount point's own
// file (inside a container with a cgroup namespace the process's path is "/").
uint64_t CgroupLimit(const std::string& mount, const std::string& file, bool v2) {
  uint64_t best = 0;
  auto consider = [&](uint64_t v) {
    if (v != 0 && (best == 0 || v < best)) best = v;
  };
  std::string rel = CgroupPath(v2);
  while (!rel.empty() && rel != "/") {
    consider(ReadCgroupLimit(mount + rel + "/" + file));
    size_t slash = rel.rfind('/');
    if (slash == std::string::npos) break;
    rel.resize(slash);
  }
  consider(ReadCgroupLimit(mount + "/" + file));
  return best;
}

// A "Name:   123 kB" field of /proc/self/status, in bytes; 0 when absent.
uint64_t ProcStatusBytes(const char* name) {
  std::ifstream in("/proc/self/status");
  std::string line;
  std::string prefix = std::string(name) + ":";
  while (std::getline(in, line)) {
    if (line.compare(0, prefix.size(), prefix) != 0) continue;
    return std::strtoull(line.c_str() + prefix.size(), nullptr, 10) * kKiB;  // always in kB
  }
  return 0;
}

}  // namespace

Result<uint64_t> ParseByteSize(std::string_view text) {
  std::string_view s = Trim(text);
  if (s.empty()) return BadSize(text, "it is empty");
  // The number: digits, optionally a '.' and more digits. Parsed exactly
  // (integer part and fraction apart) so that "1000000" and "1.5G" are exact.
  size_t i = 0;
  unsigned __int128 whole = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
    whole = whole * 10 + static_cast<unsigned>(s[i] - '0');
    if (whole > UINT64_MAX) return BadSize(text, "it is larger than 16 EiB");
    ++i;
  }
  size_t int_digits = i;
  unsigned __int128 frac = 0, frac_scale = 1;
  size_t frac_digits = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      if (frac_digits < 18) {  // beyond 18 digits nothing changes the byte count
        frac = frac * 10 + static_cast<unsigned>(s[i] - '0');
        frac_scale *= 10;
      }
      ++frac_digits;
      ++i;
    }
  }
  if (int_digits == 0 && frac_digits == 0) {
    if (!s.empty() && s[0] == '-') return BadSize(text, "a size cannot be negative");
    return BadSize(text, "it does not start with a number");
  }
  std::string_view unit = Trim(s.substr(i));
  uint64_t mult = SuffixMultiplier(unit);
  if (mult == 0) return BadSize(text, fmt::format("\"{}\" is not a unit", unit));
  // Fractions of a byte are dropped: "1.1KiB" is 1126 bytes.
  unsigned __int128 bytes = whole * mult + frac * mult / frac_scale;
  if (bytes > UINT64_MAX) return BadSize(text, "it is larger than 16 EiB");
  return static_cast<uint64_t>(bytes);
}

std::string Grouped(uint64_t v) {
  std::string digits = std::to_string(v), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

std::string FormatBytes(uint64_t bytes) {
  if (bytes < kKiB) return fmt::format("{} B", bytes);
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes) / 1024.0;
  size_t u = 0;
  // Move up a unit when the value would print as 1024.0 or more.
  while (u + 1 < std::size(kUnits) && v >= 1023.95) {
    v /= 1024.0;
    ++u;
  }
  return fmt::format("{:.1f} {}", v, kUnits[u]);
}

uint64_t AvailableMemoryBytes() {
  uint64_t best = 0;
  auto consider = [&](uint64_t v) {
    if (v != 0 && (best == 0 || v < best)) best = v;
  };
  long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page_size > 0) consider(static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size));
  consider(CgroupLimit("/sys/fs/cgroup", "memory.max", /*v2=*/true));
  consider(CgroupLimit("/sys/fs/cgroup/memory", "memory.limit_in_bytes", /*v2=*/false));
  // Lambda sets the function's configured memory in MiB; its sandbox may not
  // expose that limit through a cgroup file we can read.
  if (const char* lambda = std::getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")) {
    char* end = nullptr;
    unsigned long long mib = std::strtoull(lambda, &end, 10);
    if (end != lambda && *end == '\0' && mib > 0 && mib < (kNoLimitAbove >> 20)) consider(mib * kMiB);
  }
  // Nothing readable at all (an odd sandbox): assume a small machine rather
  // than no limit, so that the default limit is conservative.
  return best != 0 ? best : 1024 * kMiB;
}

uint64_t DefaultMemoryLimit() { return AvailableMemoryBytes() / 10 * 6; }

uint64_t CurrentRssBytes() {
  std::ifstream in("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  if (!(in >> size >> resident)) return ProcStatusBytes("VmRSS");
  long page_size = sysconf(_SC_PAGESIZE);
  return resident * static_cast<uint64_t>(page_size > 0 ? page_size : 4096);
}

uint64_t PeakRssBytes() {
  // VmHWM is this process image's high-water mark. ru_maxrss (KiB on Linux) is
  // the fallback where /proc is not mounted.
  uint64_t peak = ProcStatusBytes("VmHWM");
  if (peak == 0) {
    struct rusage ru {};
    if (getrusage(RUSAGE_SELF, &ru) == 0) peak = static_cast<uint64_t>(ru.ru_maxrss) * kKiB;
  }
  // The kernel's RSS counters are per-CPU and synced lazily, so VmHWM and
  // statm can disagree by a few hundred KiB, either way: never report a peak
  // below the current value, nor below a peak reported before.
  static std::atomic<uint64_t> highest{0};
  peak = std::max(peak, CurrentRssBytes());
  uint64_t seen = highest.load(std::memory_order_relaxed);
  while (seen < peak && !highest.compare_exchange_weak(seen, peak, std::memory_order_relaxed)) {
  }
  return std::max(seen, peak);
}

}  // namespace cloudmerge
