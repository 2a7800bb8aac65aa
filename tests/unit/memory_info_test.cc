// memory_info: the --memory-limit size syntax, human byte counts, the memory
// this process may use, and its resident memory.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "cloudmerge/base/memory_info.h"

namespace cloudmerge {
namespace {

uint64_t Parsed(const std::string& text) {
  auto r = ParseByteSize(text);
  EXPECT_TRUE(r.ok()) << text << ": " << r.status().message();
  return r.ok() ? r.value() : 0;
}

TEST(ParseByteSize, PlainBytes) {
  EXPECT_EQ(Parsed("0"), 0u);
  EXPECT_EQ(Parsed("1000000"), 1000000u);
  EXPECT_EQ(Parsed("512B"), 512u);
  EXPECT_EQ(Parsed("18446744073709551615"), UINT64_MAX);
}

TEST(ParseByteSize, EverySuffixAnyCase) {
  struct Case {
    const char* text;
    uint64_t bytes;
  };
  const std::vector<Case> cases = {
      {"1K", 1000},          {"1KB", 1000},          {"1kb", 1000},         {"64k", 64000},
      {"1KiB", 1024},        {"1kib", 1024},         {"1Ki", 1024},         {"1M", 1000000},
      {"1MB", 1000000},      {"1MiB", 1048576},      {"512MiB", 536870912}, {"1G", 1000000000},
      {"1GB", 1000000000},   {"2GiB", 2147483648},   {"2gib", 2147483648},  {"1T", 1000000000000},
      {"1TB", 1000000000000}, {"1TiB", 1099511627776}, {"3b", 3},
  };
  for (const Case& c : cases) EXPECT_EQ(Parsed(c.text), c.bytes) << c.text;
}

TEST(ParseByteSize, DecimalsAndSpaces) {
  EXPECT_EQ(Parsed("1.5G"), 1500000000u);
  EXPECT_EQ(Parsed("1.5GiB"), 1610612736u);
  EXPECT_EQ(Parsed("0.5KiB"), 512u);
  EXPECT_EQ(Parsed(".5K"), 500u);
  EXPECT_EQ(Parsed("1.1KiB"), 1126u);  // 1126.4: fractions of a byte are dropped
  EXPECT_EQ(Parsed("2 GiB"), 2147483648u);
  EXPECT_EQ(Parsed("  800M  "), 800000000u);
  EXPECT_EQ(Parsed("1.000000000000000000001K"), 1000u);  // long fractions do not overflow
}

TEST(ParseByteSize, BadTextIsAClearInvalidArgument) {
  struct Case {
    const char* text;
    const char* why;
  };
  const std::vector<Case> cases = {
      {"", "empty"},
      {"   ", "empty"},
      {"3XB", "\"XB\" is not a unit"},
      {"GiB", "does not start with a number"},
      {"-1G", "cannot be negative"},
      {"1e9", "\"e9\" is not a unit"},
      {"1.5.G", "\".G\" is not a unit"},
      {"2 GiB extra", "is not a unit"},
      {"17EiB", "is not a unit"},
      {"18446744073709551616", "larger than 16 EiB"},
      {"20000000TiB", "larger than 16 EiB"},
  };
  for (const Case& c : cases) {
    auto r = ParseByteSize(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument) << c.text;
    const std::string& msg = r.status().message();
    EXPECT_NE(msg.find("invalid size \"" + std::string(c.text) + "\""), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.why), std::string::npos) << msg;
    EXPECT_NE(msg.find("such as 2GiB"), std::string::npos) << "says what to write instead: " << msg;
  }
}

TEST(FormatBytes, HumanUnits) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1024), "1.0 KiB");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(800ull << 20), "800.0 MiB");
  EXPECT_EQ(FormatBytes(3ull << 29), "1.5 GiB");
  EXPECT_EQ(FormatBytes(2ull << 40), "2.0 TiB");
  EXPECT_EQ(FormatBytes((1ull << 30) - 1), "1.0 GiB");  // not "1024.0 MiB"
  EXPECT_EQ(FormatBytes(UINT64_MAX), "16.0 EiB");
}

TEST(FormatBytes, RoundTripsThroughParse) {
  EXPECT_EQ(Parsed(FormatBytes(3ull << 29)), 3ull << 29);  // "1.5 GiB"
}

TEST(MemoryInfo, RssIsSaneAndPeakIsAtLeastCurrent) {
  uint64_t current = CurrentRssBytes();
  EXPECT_GT(current, 1u << 20) << "a running test binary has more than 1 MiB resident";
  EXPECT_LT(current, AvailableMemoryBytes() + (1ull << 30));
  // Touch 64 MiB: the current and peak values must see it.
  std::vector<char> block(64 << 20);
  for (size_t i = 0; i < block.size(); i += 4096) block[i] = static_cast<char>(i);
  uint64_t with_block = CurrentRssBytes();
  EXPECT_GE(with_block, current + (48u << 20));
  uint64_t peak = PeakRssBytes();
  EXPECT_GE(peak, with_block);
  block = std::vector<char>();
  EXPECT_GE(PeakRssBytes(), peak) << "a peak never goes down";
  EXPECT_GE(PeakRssBytes(), CurrentRssBytes());
}

TEST(MemoryInfo, AvailableIsAtMostPhysicalAndCgroup) {
  uint64_t avail = AvailableMemoryBytes();
  EXPECT_GT(avail, 0u);
  std::ifstream meminfo("/proc/meminfo");
  std::string name;
  uint64_t kib = 0;
  if (meminfo >> name >> kib && name == "MemTotal:") {
    EXPECT_LE(avail, kib * 1024 + 4096);
  }
  std::ifstream cg("/sys/fs/cgroup/memory.max");
  std::string limit;
  if (cg >> limit && limit != "max") {
    EXPECT_LE(avail, std::stoull(limit));
  }
  EXPECT_EQ(DefaultMemoryLimit(), avail / 10 * 6);
}

TEST(MemoryInfo, LambdaMemorySizeBoundsAvailable) {
  const char* old = std::getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE");
  std::string saved = old ? old : "";
  unsetenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE");
  uint64_t machine = AvailableMemoryBytes();
  setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128", 1);
  EXPECT_EQ(AvailableMemoryBytes(), 128u << 20);
  EXPECT_EQ(DefaultMemoryLimit(), (128u << 20) / 10 * 6);
  // More than the machine has: the machine's (or cgroup's) limit wins.
  setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", std::to_string((machine >> 20) + 1024).c_str(), 1);
  EXPECT_EQ(AvailableMemoryBytes(), machine);
  // Garbage is ignored, not read as 0 or as a tiny limit.
  for (const char* bad : {"not-a-number", "", "0", "128MiB"}) {
    setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", bad, 1);
    EXPECT_EQ(AvailableMemoryBytes(), machine) << bad;
  }
  if (old) setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", saved.c_str(), 1);
  else unsetenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE");
}

}  // namespace
}  // namespace cloudmerge
