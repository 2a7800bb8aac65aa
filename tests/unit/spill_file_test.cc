// Spill blocks: round trips through a real file (raw, compressed, empty,
// large), and every kind of damage between write and read detected with an
// error naming the file and the block; a full temporary directory reported
// as NoSpace with the hint.
#include "cloudmerge/io/spill_file.h"
#include "faulty_env.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace cloudmerge {
namespace {

namespace fs = std::filesystem;

constexpr size_t kHeader = 28;  // docs/spill-format.md


// Records-like text (compresses well) or random bytes (does not).
std::string Compressible(size_t n, int seed) {
  std::string s;
  for (int i = 0; s.size() < n; ++i) s += std::to_string(seed * 1000003 + i) + "\tvalue_" + std::to_string(i % 97) + "\n";
  s.resize(n);
  return s;
}
std::string Random(size_t n, int seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

class SpillFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("cm_spill_file_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "part-0.spill").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  struct Block {
    std::string raw;
    uint32_t records;
  };

  // Writes `blocks` (through AppendBlock, or EncodeSpillBlock + one AppendFramed).
  void Write(const std::vector<Block>& blocks, bool framed_at_once = false) {
    auto w = SpillWriter::Create(Env::Default(), path_);
    ASSERT_TRUE(w.ok()) << w.status().message();
    if (framed_at_once) {
      std::string framed;
      for (const Block& b : blocks) EncodeSpillBlock(b.raw, b.records, kSpillZstdLevel, &framed);
      Status st = (*w)->AppendFramed(framed);
      ASSERT_TRUE(st.ok()) << st.message();
    } else {
      for (const Block& b : blocks) {
        Status st = (*w)->AppendBlock(b.raw, b.records);
        ASSERT_TRUE(st.ok()) << st.message();
      }
    }
    Status st = (*w)->Close();
    ASSERT_TRUE(st.ok()) << st.message();
    EXPECT_EQ((*w)->bytes_written(), fs::file_size(path_));
    uint64_t records = 0;
    for (const Block& b : blocks) records += b.records;
    EXPECT_EQ((*w)->records_written(), records);
  }

  // Reads every block; the status of the first failure, if any.
  Status ReadAll(std::vector<Block>* out) {
    auto r = SpillReader::Open(Env::Default(), path_);
    if (!r.ok()) return r.status();
    for (;;) {
      Block b;
      auto more = (*r)->Next(&b.raw, &b.records);
      if (!more.ok()) return more.status();
      if (!*more) return Status::OK();
      out->push_back(std::move(b));
    }
  }

  std::string Contents() {
    std::ifstream in(path_, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  void Overwrite(const std::string& bytes) { std::ofstream(path_, std::ios::binary | std::ios::trunc) << bytes; }

  // Reading fails with an IOError naming the file, `block` and its byte offset.
  void ExpectDamagedAt(uint64_t block, uint64_t offset, const std::string& detail) {
    std::vector<Block> got;
    Status st = ReadAll(&got);
    ASSERT_FALSE(st.ok()) << "damage not detected";
    EXPECT_EQ(st.code(), Status::Code::kIOError);
    const std::string& m = st.message();
    EXPECT_NE(m.find(path_), std::string::npos) << m;
    EXPECT_NE(m.find("damaged at block " + std::to_string(block) + " (byte " + std::to_string(offset) + ")"),
              std::string::npos)
        << m;
    EXPECT_NE(m.find(detail), std::string::npos) << m;
    EXPECT_EQ(st.setting(), Setting::kTempDir) << m;
    EXPECT_EQ(m.find("--temp-dir"), std::string::npos) << m;
    EXPECT_EQ(got.size(), block) << "the blocks before the damaged one read normally";
  }

  // Three blocks of 4 KiB (compressed); returns the byte offsets where each begins.
  std::vector<size_t> WriteThree() {
    std::vector<Block> blocks = {{Compressible(4096, 1), 10}, {Compressible(4096, 2), 20}, {Compressible(4096, 3), 30}};
    Write(blocks);
    std::vector<size_t> starts;
    std::string data = Contents();
    for (size_t off = 0; off < data.size();) {
      starts.push_back(off);
      uint32_t stored;
      std::memcpy(&stored, data.data() + off + 8, 4);
      off += kHeader + stored;
    }
    EXPECT_EQ(starts.size(), 3u);
    return starts;
  }

  fs::path dir_;
  std::string path_;
};

TEST_F(SpillFileTest, RoundTripsManyBlocksRawAndCompressed) {
  std::vector<Block> blocks;
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) {
    size_t n = rng() % 70000;
    blocks.push_back({i % 3 == 0 ? Random(n, i) : Compressible(n, i), static_cast<uint32_t>(rng())});
  }
  blocks.push_back({Compressible(3 << 20, 99), 1});  // bigger than the writer's buffer: written through
  Write(blocks);
  EXPECT_LT(fs::file_size(path_), 0.8 * 3 * (3 << 20)) << "compressible blocks were not compressed";
  std::vector<Block> got;
  Status st = ReadAll(&got);
  ASSERT_TRUE(st.ok()) << st.message();
  ASSERT_EQ(got.size(), blocks.size());
  for (size_t i = 0; i < blocks.size(); ++i) {
    EXPECT_EQ(got[i].raw, blocks[i].raw) << "block " << i;
    EXPECT_EQ(got[i].records, blocks[i].records) << "block " << i;
  }
}

TEST_F(SpillFileTest, StoresIncompressibleBlocksRawAndCompressibleOnesCompressed) {
  std::string framed;
  const std::string random = Random(10000, 1), text = Compressible(10000, 1);
  EncodeSpillBlock(random, 1, kSpillZstdLevel, &framed);
  EXPECT_EQ(framed.size(), kHeader + random.size());
  EXPECT_EQ(framed[4], 0) << "flags: raw";
  EXPECT_EQ(framed.substr(kHeader), random);
  framed.clear();
  EncodeSpillBlock(text, 1, kSpillZstdLevel, &framed);
  EXPECT_EQ(framed[4], 1) << "flags: zstd";
  EXPECT_LT(framed.size(), kHeader + text.size() * 7 / 8);
  EXPECT_EQ(framed.substr(0, 4), "CMSB");
}

TEST_F(SpillFileTest, EncodedBlocksAppendedAtOnceReadBackOneByOne) {
  std::vector<Block> blocks = {{Compressible(5000, 1), 5}, {"", 0}, {Random(100, 2), 1}, {Compressible(9, 3), 9}};
  Write(blocks, /*framed_at_once=*/true);
  std::vector<Block> got;
  ASSERT_TRUE(ReadAll(&got).ok());
  ASSERT_EQ(got.size(), blocks.size());
  for (size_t i = 0; i < blocks.size(); ++i) EXPECT_EQ(got[i].raw, blocks[i].raw);
}

TEST_F(SpillFileTest, RawBlocksWrittenWithoutACopyAreTheFramedBytes) {
  // AppendBlock with kSpillStoreRaw writes the header and the caller's bytes
  // separately: the file must be what EncodeSpillBlock frames, byte for byte.
  std::vector<Block> blocks = {{Compressible(100000, 1), 7}, {"", 0}, {Random(10, 2), 1}, {Compressible(300, 3), 2}};
  {
    auto w = SpillWriter::Create(Env::Default(), path_);
    ASSERT_TRUE(w.ok());
    for (const Block& b : blocks) ASSERT_TRUE((*w)->AppendBlock(b.raw, b.records, kSpillStoreRaw).ok());
    ASSERT_TRUE((*w)->Close().ok());
    EXPECT_EQ((*w)->bytes_written(), fs::file_size(path_));
    EXPECT_EQ((*w)->records_written(), 10u);
  }
  std::string framed;
  for (const Block& b : blocks) EncodeSpillBlock(b.raw, b.records, kSpillStoreRaw, &framed);
  EXPECT_EQ(Contents(), framed);
}

TEST_F(SpillFileTest, ViewsOfRawAndCompressedBlocksLastUntilTheNextOne) {
  std::vector<Block> blocks = {{Compressible(50000, 1), 3}, {Random(20000, 2), 4}, {"", 0}, {Compressible(7, 3), 1}};
  Write(blocks);  // compressed where that pays: block 0 is zstd, block 1 raw
  auto r = SpillReader::Open(Env::Default(), path_);
  ASSERT_TRUE(r.ok());
  for (const Block& b : blocks) {
    std::string_view view;
    uint32_t n = 0;
    auto more = (*r)->NextView(&view, &n);
    ASSERT_TRUE(more.ok()) << more.status().message();
    ASSERT_TRUE(*more);
    EXPECT_EQ(view, b.raw);
    EXPECT_EQ(n, b.records);
  }
  std::string_view view;
  uint32_t n;
  auto end = (*r)->NextView(&view, &n);
  ASSERT_TRUE(end.ok());
  EXPECT_FALSE(*end);
}

TEST_F(SpillFileTest, EmptyBlocksAndEmptyFiles) {
  Write({{"", 0}, {"", 3}, {"x", 1}, {"", 0}});
  std::vector<Block> got;
  ASSERT_TRUE(ReadAll(&got).ok());
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0].raw, "");
  EXPECT_EQ(got[1].records, 3u);
  EXPECT_EQ(got[2].raw, "x");
  EXPECT_EQ(fs::file_size(path_), 4 * kHeader + 1);

  Write({});
  got.clear();
  ASSERT_TRUE(ReadAll(&got).ok());
  EXPECT_TRUE(got.empty());
}

TEST_F(SpillFileTest, WritesInLargeBatches) {
  FaultyEnv env;
  auto w = SpillWriter::Create(&env, path_);
  ASSERT_TRUE(w.ok());
  for (int i = 0; i < 2000; ++i) ASSERT_TRUE((*w)->AppendBlock(Random(1000, i), 1).ok());
  ASSERT_TRUE((*w)->Close().ok());
  // ~2 MB of 1 KiB blocks: a few dozen writes of tens of KiB (the buffer is
  // kept small: hundreds of partition files are open at once), not 2000.
  EXPECT_LE(env.appends.size(), 70u);
  for (size_t i = 0; i + 1 < env.appends.size(); ++i) EXPECT_GE(env.appends[i], 30000u) << "write " << i;
}

TEST_F(SpillFileTest, FlippedPayloadByteIsDetected) {
  auto starts = WriteThree();
  std::string data = Contents();
  data[starts[1] + kHeader + 10] ^= 0x04;
  Overwrite(data);
  ExpectDamagedAt(1, starts[1], "checksum");
}

TEST_F(SpillFileTest, FlippedByteInEveryHeaderFieldIsDetected) {
  auto starts = WriteThree();
  const std::string good = Contents();
  // Every byte of block 2's header: magic, flags, reserved, lengths, record count, checksum.
  for (size_t i = 0; i < kHeader; ++i) {
    std::string data = good;
    data[starts[2] + i] ^= 0x01;
    Overwrite(data);
    SCOPED_TRACE("header byte " + std::to_string(i));
    std::vector<Block> got;
    Status st = ReadAll(&got);
    ASSERT_FALSE(st.ok()) << "a flipped bit in header byte " << i << " went unnoticed";
    EXPECT_EQ(st.code(), Status::Code::kIOError);
    EXPECT_NE(st.message().find("damaged at block 2 (byte " + std::to_string(starts[2]) + ")"), std::string::npos)
        << st.message();
  }
}

TEST_F(SpillFileTest, FlippedRecordCountIsDetected) {
  // The record count is covered by the checksum: nothing else could notice it.
  auto starts = WriteThree();
  std::string data = Contents();
  data[starts[0] + 16] ^= 0x02;
  Overwrite(data);
  ExpectDamagedAt(0, 0, "checksum");
}

TEST_F(SpillFileTest, TruncatedFileIsDetected) {
  auto starts = WriteThree();
  const std::string good = Contents();
  Overwrite(good.substr(0, good.size() - 1));  // in the last block's payload
  ExpectDamagedAt(2, starts[2], "the file has only");
  Overwrite(good.substr(0, starts[2] + 5));  // in the last block's header
  ExpectDamagedAt(2, starts[2], "ends 5 bytes into");
}

TEST_F(SpillFileTest, GarbageAppendedIsDetected) {
  auto starts = WriteThree();
  const std::string good = Contents();
  Overwrite(good + "leftover bytes from somewhere else, longer than a header");
  ExpectDamagedAt(3, good.size(), "expected the marker");
  Overwrite(good + "ab");
  ExpectDamagedAt(3, good.size(), "ends 2 bytes into");
}

// Frames built by hand from docs/spill-format.md, checksum included: they
// pass the checksum, so these check the validation behind it (what a writer
// bug or a checksum collision would produce) and pin the documented layout.
std::string HandFrame(uint8_t flags, std::string_view stored, uint32_t raw_length, uint32_t records,
                      uint8_t reserved = 0) {
  std::string h(kHeader, '\0');
  std::memcpy(h.data(), "CMSB", 4);
  h[4] = static_cast<char>(flags);
  h[5] = static_cast<char>(reserved);
  uint32_t fields[3] = {static_cast<uint32_t>(stored.size()), raw_length, records};
  std::memcpy(h.data() + 8, fields, 12);  // little-endian host
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  XXH3_64bits_update(&state, h.data(), 20);
  XXH3_64bits_update(&state, stored.data(), stored.size());
  uint64_t sum = XXH3_64bits_digest(&state);
  std::memcpy(h.data() + 20, &sum, 8);
  return h + std::string(stored);
}

TEST_F(SpillFileTest, HandBuiltFramesFollowTheDocumentedLayout) {
  const std::string text = Compressible(4096, 1);
  std::string framed;
  EncodeSpillBlock(text, 42, kSpillZstdLevel, &framed);
  ASSERT_EQ(framed[4], 1);
  std::string compressed = framed.substr(kHeader);
  EXPECT_EQ(HandFrame(1, compressed, 4096, 42), framed) << "the encoder's frame is not the documented one";
  Overwrite(HandFrame(0, "abc", 3, 1) + HandFrame(1, compressed, 4096, 42));
  std::vector<Block> got;
  ASSERT_TRUE(ReadAll(&got).ok());
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].raw, "abc");
  EXPECT_EQ(got[1].raw, text);
  EXPECT_EQ(got[1].records, 42u);
}

TEST_F(SpillFileTest, ConsistentFramesWithBadContentsAreRefused) {
  std::string framed;
  EncodeSpillBlock(Compressible(4096, 1), 1, kSpillZstdLevel, &framed);
  const std::string compressed = framed.substr(kHeader);
  const std::string first = HandFrame(0, "ok", 2, 1);
  Overwrite(first + HandFrame(1, "this is not zstd data", 100, 1));
  ExpectDamagedAt(1, first.size(), "does not decompress");
  Overwrite(first + HandFrame(1, compressed, 4000, 1));  // too small a raw length
  ExpectDamagedAt(1, first.size(), "does not decompress");
  Overwrite(first + HandFrame(1, compressed, 5000, 1));  // too large
  ExpectDamagedAt(1, first.size(), "decompresses to 4096 bytes, not the 5000");
  Overwrite(first + HandFrame(0, "abc", 4, 1));
  ExpectDamagedAt(1, first.size(), "uncompressed block of 3 bytes says it holds 4");
  Overwrite(first + HandFrame(2, "abc", 3, 1));
  ExpectDamagedAt(1, first.size(), "unsupported block flags");
  Overwrite(first + HandFrame(0, "abc", 3, 1, /*reserved=*/1));
  ExpectDamagedAt(1, first.size(), "unsupported block flags");
}

TEST_F(SpillFileTest, FullDiskIsNoSpaceWithTheHint) {
  FaultyEnv env;
  env.fail_after = 3 << 20;
  auto w = SpillWriter::Create(&env, path_);
  ASSERT_TRUE(w.ok());
  Status st;
  for (int i = 0; i < 100 && st.ok(); ++i) st = (*w)->AppendBlock(Random(100000, i), 1000);
  if (st.ok()) st = (*w)->Close();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Status::Code::kNoSpace);
  EXPECT_NE(st.message().find(path_), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("The temporary directory " + dir_.string() + " is full"), std::string::npos)
      << st.message();
  EXPECT_EQ(st.setting(), Setting::kTempDir) << st.message();
  EXPECT_EQ(st.message().find("--temp-dir"), std::string::npos) << st.message();
}

TEST_F(SpillFileTest, FullDiskNamesTheTemporaryDirectoryNotTheRunsSubdirectory) {
  fs::create_directories(dir_ / "cloudmerge-spill-1-0123456789abcdef");
  path_ = (dir_ / "cloudmerge-spill-1-0123456789abcdef" / "x-0.spill").string();
  FaultyEnv env;
  env.fail_after = 0;
  auto w = SpillWriter::Create(&env, path_);
  ASSERT_TRUE(w.ok());
  Status st = (*w)->AppendBlock(Random(100000, 1), 1);  // bigger than the buffer: written at once
  EXPECT_EQ(st.code(), Status::Code::kNoSpace);
  EXPECT_NE(st.message().find("The temporary directory " + dir_.string() + " is full"), std::string::npos)
      << st.message();
}

TEST_F(SpillFileTest, FullDiskAtCloseIsNoSpace) {
  FaultyEnv env;
  env.fail_after = 1000;  // the buffered bytes only reach the file at Close
  auto w = SpillWriter::Create(&env, path_);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->AppendBlock(Random(5000, 1), 1).ok());
  Status st = (*w)->Close();
  EXPECT_EQ(st.code(), Status::Code::kNoSpace) << st.message();
  EXPECT_NE(st.message().find("is full"), std::string::npos) << st.message();
}

TEST_F(SpillFileTest, FullDiskAtCreateIsNoSpace) {
  FaultyEnv env;
  env.fail_create = true;
  auto w = SpillWriter::Create(&env, path_);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), Status::Code::kNoSpace);
  EXPECT_EQ(w.status().setting(), Setting::kTempDir) << w.status().message();
  EXPECT_EQ(w.status().message().find("--temp-dir"), std::string::npos) << w.status().message();
}

TEST_F(SpillFileTest, MissingFileIsAnIOErrorNamingIt) {
  auto r = SpillReader::Open(Env::Default(), (dir_ / "nope.spill").string());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kIOError);
  EXPECT_NE(r.status().message().find("nope.spill"), std::string::npos);
}

TEST_F(SpillFileTest, AppendFramedRefusesBytesThatAreNotBlocks) {
  auto w = SpillWriter::Create(Env::Default(), path_);
  ASSERT_TRUE(w.ok());
  Status st = (*w)->AppendFramed("definitely not a framed spill block");
  EXPECT_EQ(st.code(), Status::Code::kInternal);
  std::string framed;
  EncodeSpillBlock(Compressible(1000, 1), 1, kSpillZstdLevel, &framed);
  st = (*w)->AppendFramed(std::string_view(framed).substr(0, framed.size() - 1));
  EXPECT_EQ(st.code(), Status::Code::kInternal);
  EXPECT_EQ((*w)->bytes_written(), 0u);
}

}  // namespace
}  // namespace cloudmerge
