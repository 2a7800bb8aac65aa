// Fuzz harness: SpillReader (src/cloudmerge/io/spill_file.h) on arbitrary bytes
// written to a real temporary file and opened through Env::Default() (mmap, as
// the join reads its partitions).
//
// Input: one mode byte, then the file's bytes. Mode bit 0 set: before writing,
// every frame's XXH3 checksum is recomputed (walking the frames by their stored
// lengths), so the fuzzer gets past the checksum and reaches what it guards:
// bad flags and reserved bytes, raw lengths that disagree with the payload,
// zstd frames that do not decode or decode to another size. Mode bit 0 clear:
// the bytes as they are (damage the checksum must catch).
//
// Properties: no crash, no hang, no over-read (the file is mapped at its exact
// size; ASan in the fuzz build); every failure is an IOError naming the file and
// the block; a file that reads to the end OK holds at most size/28 blocks; and,
// differentially, the decoded blocks re-encoded with EncodeSpillBlock and
// written with SpillWriter read back as the same (bytes, record count)
// sequence. Single-threaded; the temporary directory is removed at exit.
#include <unistd.h>
#include <xxhash.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cloudmerge/io/env.h"
#include "cloudmerge/io/spill_file.h"

namespace {

using cloudmerge::Status;

constexpr size_t kHeaderBytes = 28;  // docs/spill-format.md

[[noreturn]] void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "spill_reader_fuzz: %s: %s\n", what, detail.c_str());
  std::abort();
}

// One private directory per process, removed at exit.
struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "spill_reader_fuzz-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) Fail("cannot create a temporary directory", tmpl);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};
const std::string& Dir() {
  static TempDir dir;
  return dir.path;
}

void WriteFile(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out.good()) Fail("cannot write the temporary file", path);
}

uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

// Recomputes the checksum of every whole frame, as a writer would have.
void RepairChecksums(std::string* file) {
  for (size_t off = 0; file->size() - off >= kHeaderBytes;) {
    char* h = file->data() + off;
    const uint32_t stored = GetU32(h + 8);
    if (stored > file->size() - off - kHeaderBytes) break;
    XXH3_state_t state;
    XXH3_64bits_reset(&state);
    XXH3_64bits_update(&state, h, 20);
    XXH3_64bits_update(&state, h + kHeaderBytes, stored);
    uint64_t sum = XXH3_64bits_digest(&state);
    for (int i = 0; i < 8; ++i) h[20 + i] = static_cast<char>(sum >> (8 * i));
    off += kHeaderBytes + stored;
  }
}

struct Block {
  std::string raw;
  uint32_t records;
};

// Reads every block of `path`. Returns the failure, if any; *blocks gets the
// blocks read before it.
Status ReadAll(const std::string& path, std::vector<Block>* blocks) {
  auto reader = cloudmerge::SpillReader::Open(cloudmerge::Env::Default(), path);
  if (!reader.ok()) return reader.status();
  const uint64_t size = reader.value()->file_bytes();
  for (;;) {
    Block b;
    auto more = reader.value()->Next(&b.raw, &b.records);
    if (!more.ok()) return more.status();
    if (!more.value()) break;
    blocks->push_back(std::move(b));
    if (blocks->size() > size / kHeaderBytes) Fail("more blocks than 28-byte headers fit in the file", path);
  }
  return Status::OK();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > (1 << 16)) return 0;
  const bool repair = data[0] & 1;
  std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (repair) RepairChecksums(&bytes);

  const std::string path = Dir() + "/in.spill";
  WriteFile(path, bytes);
  std::vector<Block> blocks;
  Status st = ReadAll(path, &blocks);
  if (!st.ok()) {
    if (st.code() != Status::Code::kIOError) Fail("a failure that is not an IOError", st.message());
    if (st.message().find(path) == std::string::npos || st.message().find("block") == std::string::npos)
      Fail("an error that does not name the file and the block", st.message());
    return 0;
  }

  // Differential: what was decoded, re-encoded by the writer, decodes the same.
  const std::string again = Dir() + "/again.spill";
  {
    auto writer = cloudmerge::SpillWriter::Create(cloudmerge::Env::Default(), again);
    if (!writer.ok()) Fail("cannot create the re-encoded file", writer.status().message());
    uint64_t records = 0;
    for (const Block& b : blocks) {
      Status a = writer.value()->AppendBlock(b.raw, b.records);
      if (!a.ok()) Fail("cannot append a re-encoded block", a.message());
      records += b.records;
    }
    Status c = writer.value()->Close();
    if (!c.ok()) Fail("cannot close the re-encoded file", c.message());
    if (writer.value()->records_written() != records) Fail("SpillWriter counted records wrong", again);
  }
  std::vector<Block> round;
  Status st2 = ReadAll(again, &round);
  if (!st2.ok()) Fail("a re-encoded file does not read back", st2.message());
  if (round.size() != blocks.size()) Fail("the re-encoded file has another number of blocks", again);
  for (size_t i = 0; i < round.size(); ++i)
    if (round[i].raw != blocks[i].raw || round[i].records != blocks[i].records)
      Fail("a re-encoded block reads back different", "block " + std::to_string(i));
  return 0;
}
