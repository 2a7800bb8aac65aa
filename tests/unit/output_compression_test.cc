// Outputs compressed by their name: `-o out.tsv.gz` / `.zst` write gzip / zstd
// whose contents are exactly the plain output (checked with zlib and libzstd
// directly, not with cloudmerge's decoders); a rewound output restarts the
// stream; a failed run leaves nothing behind.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>

#include "cloudmerge/io/compression.h"
#include "cloudmerge/io/env.h"
#include "cloudmerge/engine/merge.h"
#include "faulty_env.h"

namespace cloudmerge {
namespace {

namespace fs = std::filesystem;

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Every gzip member in `data`, inflated; *ok false if the stream is not valid and complete.
std::string Gunzip(const std::string& data, bool* ok) {
  *ok = false;
  std::string out;
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return out;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  char buf[1 << 16];
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof(buf);
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof(buf) - z.avail_out);
    if (rc == Z_STREAM_END && z.avail_in > 0) {  // another member follows
      inflateReset(&z);
      rc = Z_OK;
    }
  }
  *ok = rc == Z_STREAM_END && z.avail_in == 0;
  inflateEnd(&z);
  return out;
}

std::string Unzstd(const std::string& data, bool* ok) {
  *ok = false;
  std::string out;
  ZSTD_DStream* d = ZSTD_createDStream();
  ZSTD_inBuffer in{data.data(), data.size(), 0};
  char buf[1 << 16];
  size_t rc = 1;
  while (in.pos < in.size) {
    ZSTD_outBuffer ob{buf, sizeof(buf), 0};
    rc = ZSTD_decompressStream(d, &ob, &in);
    if (ZSTD_isError(rc)) break;
    out.append(buf, ob.pos);
  }
  for (bool more = !ZSTD_isError(rc) && rc != 0; more;) {  // flush what the last input left
    ZSTD_outBuffer ob{buf, sizeof(buf), 0};
    rc = ZSTD_decompressStream(d, &ob, &in);
    if (ZSTD_isError(rc)) break;
    out.append(buf, ob.pos);
    more = ob.pos == ob.size;
  }
  *ok = !ZSTD_isError(rc) && rc == 0;
  ZSTD_freeDStream(d);
  return out;
}

std::string Decompress(const fs::path& p) {
  std::string data = Slurp(p);
  bool ok = false;
  std::string plain = CompressionForPath(p.string()) == Compression::kGzip ? Gunzip(data, &ok) : Unzstd(data, &ok);
  EXPECT_TRUE(ok) << p << " is not a valid, complete compressed stream";
  return plain;
}

std::string Text(size_t n, int seed) {
  std::mt19937 rng(seed);
  std::string s;
  while (s.size() < n) s += std::to_string(rng()) + "\tgene_" + std::to_string(rng() % 1000) + "\n";
  return s;
}

class OutputCompressionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("cm_outz_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void WriteInputs(bool x_has_text_key) {
    std::ofstream x(dir_ / "x.tsv"), y(dir_ / "y.tsv");
    x << "ID\tvalue\n";
    y << "ID\tvalue\n";
    for (int i = 0; i < 40000; ++i) {
      x << i << "\tx" << i << "\n";
      y << (i * 7) % 40000 << "\ty" << i << "\n";
    }
    if (x_has_text_key) x << "not-a-number\tx\n";  // x is text: y's numbers never match it
  }
  MergeOptions Options(const std::string& out) {
    MergeOptions o;
    o.x_path = (dir_ / "x.tsv").string();
    o.y_path = (dir_ / "y.tsv").string();
    o.out_path = (dir_ / out).string();
    o.chunk_bytes = 4096;
    o.threads = 2;
    return o;
  }
  size_t FilesInDir() { return static_cast<size_t>(std::distance(fs::directory_iterator(dir_), {})); }

  fs::path dir_;
};

TEST_F(OutputCompressionTest, MergeWritesGzipAndZstdByExtension) {
  WriteInputs(false);
  MergeStats plain_stats;
  ASSERT_TRUE(RunMerge(Env::Default(), Options("out.tsv"), &plain_stats).ok());
  const std::string plain = Slurp(dir_ / "out.tsv");
  ASSERT_GT(plain.size(), 500000u);
  for (const char* name : {"out.tsv.gz", "out.tsv.zst"}) {
    SCOPED_TRACE(name);
    MergeStats stats;
    Status st = RunMerge(Env::Default(), Options(name), &stats);
    ASSERT_TRUE(st.ok()) << st.message();
    EXPECT_EQ(stats.output_rows, plain_stats.output_rows);
    EXPECT_LT(fs::file_size(dir_ / name), plain.size() / 2) << "not compressed";
    EXPECT_EQ(Decompress(dir_ / name), plain);
  }
  EXPECT_EQ(FilesInDir(), 5u) << "x, y and three outputs: no temporaries";
}

TEST_F(OutputCompressionTest, AnyOrderOutputDecompressesToTheSameRows) {
  WriteInputs(false);
  MergeOptions o = Options("any.tsv.zst");
  o.any_order = true;
  MergeStats stats;
  ASSERT_TRUE(RunMerge(Env::Default(), o, &stats).ok());
  std::string text = Decompress(dir_ / "any.tsv.zst");
  EXPECT_EQ(static_cast<uint64_t>(std::count(text.begin(), text.end(), '\n')), stats.output_rows + 1);
}

TEST_F(OutputCompressionTest, RewoundMergeRestartsTheCompressedStream) {
  // y numeric, x text: the speculative probe (as numbers) is rewound and x probed again.
  WriteInputs(true);
  MergeStats plain_stats;
  ASSERT_TRUE(RunMerge(Env::Default(), Options("out.tsv"), &plain_stats).ok());
  ASSERT_TRUE(plain_stats.speculation_failed) << "the test no longer exercises AtomicOutput::Restart";
  const std::string plain = Slurp(dir_ / "out.tsv");
  for (const char* name : {"out.tsv.gz", "out.tsv.zst"}) {
    SCOPED_TRACE(name);
    MergeStats stats;
    ASSERT_TRUE(RunMerge(Env::Default(), Options(name), &stats).ok());
    EXPECT_TRUE(stats.speculation_failed);
    EXPECT_EQ(Decompress(dir_ / name), plain);
  }
}

// --compression-level (MergeOptions::output_level) reaches the encoder: a
// higher level makes a smaller file of the same rows. The level is kept for a
// rewound output too (AtomicOutput::Restart opens a new encoder).
TEST_F(OutputCompressionTest, OutputLevelReachesTheEncoderAlsoAfterARestart) {
  WriteInputs(false);
  MergeStats plain_stats;
  ASSERT_TRUE(RunMerge(Env::Default(), Options("out.tsv"), &plain_stats).ok());
  const std::string plain = Slurp(dir_ / "out.tsv");
  for (const std::string ext : {".gz", ".zst"}) {
    SCOPED_TRACE(ext);
    std::map<int, uintmax_t> merged, restarted;
    for (int level : {1, 9}) {
      MergeOptions o = Options("l" + std::to_string(level) + ".tsv" + ext);
      o.output_level = level;
      MergeStats stats;
      ASSERT_TRUE(RunMerge(Env::Default(), o, &stats).ok());
      EXPECT_EQ(Decompress(o.out_path), plain);
      merged[level] = fs::file_size(o.out_path);

      const fs::path path = dir_ / ("r" + std::to_string(level) + ".tsv" + ext);
      auto out = AtomicOutput::Open(Env::Default(), path.string(), /*compress_by_name=*/true, level);
      ASSERT_TRUE(out.ok());
      ASSERT_TRUE((*out)->Append(Text(1 << 20, 3)).ok());
      ASSERT_TRUE((*out)->Restart().ok());
      ASSERT_TRUE((*out)->Append(plain).ok());
      ASSERT_TRUE((*out)->Commit().ok());
      EXPECT_EQ(Decompress(path), plain);
      restarted[level] = fs::file_size(path);
    }
    EXPECT_LT(merged[9], merged[1] * 95 / 100) << "level 9 should be smaller than level 1";
    EXPECT_LT(restarted[9], restarted[1] * 95 / 100) << "the level was lost in Restart";
  }
}

TEST_F(OutputCompressionTest, RestartDiscardsWhatWasCompressedBefore) {
  for (const char* name : {"r.tsv.gz", "r.tsv.zst"}) {
    SCOPED_TRACE(name);
    auto out = AtomicOutput::Open(Env::Default(), (dir_ / name).string());
    ASSERT_TRUE(out.ok());
    ASSERT_TRUE((*out)->can_restart());
    ASSERT_TRUE((*out)->Append(Text(3 << 20, 1)).ok());  // past the 1 MiB flush: some already on disk
    ASSERT_TRUE((*out)->Restart().ok());
    const std::string second = Text(2 << 20, 2);
    for (size_t off = 0; off < second.size(); off += 1000) ASSERT_TRUE((*out)->Append(second.substr(off, 1000)).ok());
    ASSERT_TRUE((*out)->Commit().ok());
    EXPECT_EQ(Decompress(dir_ / name), second);
  }
  EXPECT_EQ(FilesInDir(), 2u);
}

TEST_F(OutputCompressionTest, EmptyAndTinyOutputsAreValidStreams) {
  for (const char* name : {"e.gz", "e.zst", "t.gz", "t.zst"}) {
    SCOPED_TRACE(name);
    auto out = AtomicOutput::Open(Env::Default(), (dir_ / name).string());
    ASSERT_TRUE(out.ok());
    const std::string content = name[0] == 't' ? "ID\n" : "";
    if (!content.empty()) {
      ASSERT_TRUE((*out)->Append(content).ok());
    }
    ASSERT_TRUE((*out)->Commit().ok());
    EXPECT_GT(fs::file_size(dir_ / name), 0u);
    EXPECT_EQ(Decompress(dir_ / name), content);
  }
}

TEST_F(OutputCompressionTest, PlainNamesStayPlain) {
  for (const char* name : {"p.tsv", "p.gz.tsv", "p.tsv.gzx"}) {
    auto out = AtomicOutput::Open(Env::Default(), (dir_ / name).string());
    ASSERT_TRUE(out.ok());
    ASSERT_TRUE((*out)->Append("ID\tv\n1\ta\n").ok());
    ASSERT_TRUE((*out)->Commit().ok());
    EXPECT_EQ(Slurp(dir_ / name), "ID\tv\n1\ta\n") << name;
  }
}

TEST_F(OutputCompressionTest, UncommittedOutputLeavesNothing) {
  auto out = AtomicOutput::Open(Env::Default(), (dir_ / "u.tsv.gz").string());
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE((*out)->Append(Text(3 << 20, 3)).ok());
  out->reset();
  EXPECT_EQ(FilesInDir(), 0u);
}


TEST_F(OutputCompressionTest, FullDiskLeavesNoCompressedOutput) {
  WriteInputs(false);
  // The compressed result is small: it reaches the disk at Commit, which fails.
  for (size_t limit : {size_t{20000}, size_t{0}}) {
    for (const char* name : {"f.tsv.gz", "f.tsv.zst"}) {
      SCOPED_TRACE(std::string(name) + " limit " + std::to_string(limit));
      FaultyEnv env;
      env.fail_after = limit;
      MergeStats stats;
      Status st = RunMerge(&env, Options(name), &stats);
      ASSERT_FALSE(st.ok());
      EXPECT_EQ(st.code(), Status::Code::kNoSpace) << st.message();
      EXPECT_FALSE(fs::exists(dir_ / name));
      EXPECT_EQ(FilesInDir(), 2u);
    }
  }
}

TEST_F(OutputCompressionTest, FullDiskInTheMiddleOfTheStream) {
  for (const char* name : {"m.tsv.gz", "m.tsv.zst"}) {
    SCOPED_TRACE(name);
    FaultyEnv env;
    env.fail_after = 100000;
    auto out = AtomicOutput::Open(&env, (dir_ / name).string());
    ASSERT_TRUE(out.ok());
    std::mt19937_64 rng(5);
    std::string noise(1 << 20, '\0');  // incompressible: every MiB in is about a MiB out
    Status st;
    // 32 MiB: zstd compresses on worker threads in 2 MiB jobs, so its output trails the
    // input by a few jobs (bounded); the full disk must still surface in an Append.
    for (int i = 0; i < 32 && st.ok(); ++i) {
      for (char& ch : noise) ch = static_cast<char>(rng());
      st = (*out)->Append(noise);
    }
    EXPECT_EQ(st.code(), Status::Code::kNoSpace) << "an Append, not the Commit, meets the full disk";
    out->reset();
    EXPECT_EQ(FilesInDir(), 0u);
  }
}

TEST(EncoderTest, RoundTripsAnyPieceSizesAtAnyLevel) {
  const std::string text = Text(5 << 20, 4);
  for (Compression c : {Compression::kGzip, Compression::kZstd}) {
    for (int level : {-1, 1, 9}) {
      SCOPED_TRACE(std::to_string(static_cast<int>(c)) + " level " + std::to_string(level));
      auto enc = NewEncoder(c, level);
      ASSERT_TRUE(enc);
      std::string out;
      std::mt19937 rng(level + 10);
      for (size_t off = 0; off < text.size();) {
        size_t n = std::min<size_t>(text.size() - off, rng() % 3 == 0 ? rng() % 10 : rng() % (3 << 20));
        ASSERT_TRUE(enc->Feed(std::string_view(text).substr(off, n), &out).ok());
        off += n;
      }
      ASSERT_TRUE(enc->Finish(&out).ok());
      bool ok = false;
      EXPECT_EQ(c == Compression::kGzip ? Gunzip(out, &ok) : Unzstd(out, &ok), text);
      EXPECT_TRUE(ok);
      EXPECT_LT(out.size(), text.size() / 2);
    }
  }
  EXPECT_EQ(NewEncoder(Compression::kNone), nullptr);
}

}  // namespace
}  // namespace cloudmerge
