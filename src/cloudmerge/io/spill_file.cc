// Spill blocks: framing, compression, checksums; the writer's buffering and
// the reader's validation. Layout (docs/spill-format.md), little-endian:
//
//   offset  size  field
//        0     4  magic "CMSB"
//        4     1  flags: 0 stored raw, 1 zstd
//        5     3  reserved, zero
//        8     4  stored length (bytes following the header)
//       12     4  raw length (after decompression)
//       16     4  record count
//       20     8  XXH3-64 of bytes [0, 20) of this header followed by the stored bytes
//       28     -  stored bytes
//
// The checksum covers the header's fields as well as the payload so that a
// flipped bit in the record count (which nothing else could notice) is caught
// like one in the data.
#include "cloudmerge/io/spill_file.h"

#include <unistd.h>
#include <xxhash.h>
#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_decompressBound (exported by Debian's libzstd 1.5)
#include <zstd.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

namespace cloudmerge {
namespace {

constexpr char kMagic[4] = {'C', 'M', 'S', 'B'};
constexpr size_t kHeaderBytes = 28;
constexpr size_t kChecksumOffset = 20;
constexpr uint8_t kFlagRaw = 0, kFlagZstd = 1;
constexpr size_t kWriteBufferBytes = 64 << 10;  // hundreds of partition files are open at once

void PutU32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
void PutU64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}
uint64_t GetU64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

uint64_t FrameChecksum(const char* header, std::string_view stored) {
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  XXH3_64bits_update(&state, header, kChecksumOffset);
  XXH3_64bits_update(&state, stored.data(), stored.size());
  return XXH3_64bits_digest(&state);
}

// One compression and one decompression context per thread: creating them
// costs more than compressing a small block.
struct ZstdContexts {
  ZSTD_CCtx* c = nullptr;
  ZSTD_DCtx* d = nullptr;
  ~ZstdContexts() {
    ZSTD_freeCCtx(c);
    ZSTD_freeDCtx(d);
  }
};
ZstdContexts& Contexts() {
  thread_local ZstdContexts contexts;
  return contexts;
}

std::string Directory(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

// The directory to name when the disk is full: the one the user chose
// (the chosen one, $TMPDIR), not the run's private subdirectory in it.
std::string TempDirOf(const std::string& path) {
  std::string dir = Directory(path);
  size_t slash = dir.rfind('/');
  std::string_view name = slash == std::string::npos ? std::string_view(dir) : std::string_view(dir).substr(slash + 1);
  return name.substr(0, 17) == "cloudmerge-spill-" ? Directory(dir) : dir;
}

// The spill file's write error: a full temporary directory keeps its code
// (NoSpace) and says where and what to do; the Env's own message is about
// outputs ("write the result elsewhere with -o"), which does not apply here.
Status WriteError(const std::string& path, const Status& st) {
  if (st.code() == Status::Code::kNoSpace)
    return Status::NoSpace(fmt::format(
        "cannot write spill file {}: no space left on device. The temporary directory {} is full: free space there "
        "or choose a temporary directory on a larger disk (needs about as much space as the inputs, compressed). "
        "Nothing was written to the destination.",
        path, TempDirOf(path))).WithSetting(Setting::kTempDir);
  return Status::IOError(fmt::format("cannot write spill file {}: {}", path, st.message())).WithSetting(st.setting());
}

// Appends to a WritableFile in writes of about kWriteBufferBytes.
class BufferedFile final : public WritableFile {
 public:
  explicit BufferedFile(std::unique_ptr<WritableFile> base) : base_(std::move(base)) {}
  Status Append(std::string_view data) override {
    if (buffer_.size() + data.size() < kWriteBufferBytes) {
      buffer_.append(data);
      return Status::OK();
    }
    CM_RETURN_IF_ERROR(Flush());
    if (data.size() >= kWriteBufferBytes) return base_->Append(data);  // large: write through, no copy
    buffer_.append(data);
    return Status::OK();
  }
  Status Close() override {
    CM_RETURN_IF_ERROR(Flush());
    return base_->Close();
  }

 private:
  Status Flush() {
    if (buffer_.empty()) return Status::OK();
    Status st = base_->Append(buffer_);
    buffer_.clear();
    return st;
  }
  std::unique_ptr<WritableFile> base_;
  std::string buffer_;
};

// The header of a block whose stored bytes are `payload` (raw_size bytes once decoded).
void WriteHeader(char* h, uint8_t flags, std::string_view payload, size_t raw_size, uint32_t records) {
  std::memcpy(h, kMagic, 4);
  h[4] = static_cast<char>(flags);
  h[5] = h[6] = h[7] = 0;
  PutU32(h + 8, static_cast<uint32_t>(payload.size()));
  PutU32(h + 12, static_cast<uint32_t>(raw_size));
  PutU32(h + 16, records);
  PutU64(h + kChecksumOffset, FrameChecksum(h, payload));
}

}  // namespace

void EncodeSpillBlock(std::string_view raw, uint32_t records, int zstd_level, std::string* framed) {
  const size_t start = framed->size();
  size_t stored = raw.size();
  uint8_t flags = kFlagRaw;
  if (!raw.empty() && zstd_level != kSpillStoreRaw) {
    // Compress straight into the frame's place; fall back to copying raw when
    // that did not pay (or failed: a raw block is always valid).
    const size_t bound = ZSTD_compressBound(raw.size());
    framed->resize(start + kHeaderBytes + bound);
    ZstdContexts& z = Contexts();
    if (z.c == nullptr) z.c = ZSTD_createCCtx();
    size_t n = z.c == nullptr ? 0
                              : ZSTD_compressCCtx(z.c, framed->data() + start + kHeaderBytes, bound, raw.data(),
                                                  raw.size(), zstd_level);
    if (z.c != nullptr && !ZSTD_isError(n) && n * 8 < raw.size() * 7) {
      stored = n;
      flags = kFlagZstd;
    }
  }
  framed->resize(start + kHeaderBytes + stored);
  char* h = framed->data() + start;
  if (flags == kFlagRaw && !raw.empty()) std::memcpy(h + kHeaderBytes, raw.data(), raw.size());
  WriteHeader(h, flags, std::string_view(h + kHeaderBytes, stored), raw.size(), records);
}

// --- SpillWriter ----------------------------------------------------------------

Result<std::unique_ptr<SpillWriter>> SpillWriter::Create(Env* env, const std::string& path) {
  auto file = env->NewWritableFile(path);
  if (!file.ok()) {
    if (file.status().code() == Status::Code::kNoSpace) return WriteError(path, file.status());
    return Status(Status::IOError(fmt::format("cannot create spill file {}: {}", path, file.status().message())));
  }
  std::unique_ptr<SpillWriter> w(new SpillWriter());
  w->path_ = path;
  w->file_ = std::make_unique<BufferedFile>(std::move(file.value()));
  return w;
}

SpillWriter::~SpillWriter() = default;  // an unclosed writer is abandoned; its directory removes the file

Status SpillWriter::AppendFramed(std::string_view framed) {
  if (!file_) return Status::Internal(fmt::format("spill file {} was appended to after Close()", path_));
  // Walk the frames for their record counts; a malformed frame here is a bug
  // in the caller, caught before it reaches the disk.
  uint64_t records = 0;
  for (size_t off = 0; off < framed.size();) {
    if (framed.size() - off < kHeaderBytes || std::memcmp(framed.data() + off, kMagic, 4) != 0)
      return Status::Internal(fmt::format("spill file {}: AppendFramed was given bytes that are not framed blocks "
                                          "(at byte {} of {}); this is a bug in cloudmerge",
                                          path_, off, framed.size()));
    const uint32_t stored = GetU32(framed.data() + off + 8);
    records += GetU32(framed.data() + off + 16);
    off += kHeaderBytes + stored;
    if (off > framed.size())
      return Status::Internal(fmt::format("spill file {}: AppendFramed was given a truncated block; this is a bug in "
                                          "cloudmerge",
                                          path_));
  }
  Status st = file_->Append(framed);
  if (!st.ok()) return WriteError(path_, st);
  bytes_ += framed.size();
  records_ += records;
  return Status::OK();
}

Status SpillWriter::AppendBlock(std::string_view raw, uint32_t records, int zstd_level) {
  if (zstd_level == kSpillStoreRaw && !raw.empty()) {
    // Stored as it is: the header, then the caller's bytes, without framing a copy.
    if (!file_) return Status::Internal(fmt::format("spill file {} was appended to after Close()", path_));
    char h[kHeaderBytes];
    WriteHeader(h, kFlagRaw, raw, raw.size(), records);
    Status st = file_->Append(std::string_view(h, kHeaderBytes));
    if (st.ok()) st = file_->Append(raw);
    if (!st.ok()) return WriteError(path_, st);
    bytes_ += kHeaderBytes + raw.size();
    records_ += records;
    return Status::OK();
  }
  std::string framed;
  EncodeSpillBlock(raw, records, zstd_level, &framed);
  return AppendFramed(framed);
}

Status SpillWriter::Close() {
  if (!file_) return Status::OK();
  Status st = file_->Close();
  file_.reset();
  if (!st.ok()) return WriteError(path_, st);
  return Status::OK();
}

// --- SpillReader ----------------------------------------------------------------

Result<std::unique_ptr<SpillReader>> SpillReader::Open(Env* env, const std::string& path) {
  auto input = env->ReadFile(path);
  if (!input.ok())
    return Status(Status::IOError(fmt::format("cannot read spill file {}: {}", path, input.status().message())));
  std::unique_ptr<SpillReader> r(new SpillReader());
  r->path_ = path;
  r->input_ = std::move(input.value());
  return r;
}

uint64_t SpillReader::file_bytes() const { return input_->bytes().size(); }

Result<bool> SpillReader::Next(std::string* raw, uint32_t* records) {
  std::string_view view;
  auto more = NextView(&view, records);
  if (more.ok() && *more) {
    raw->assign(view);
    ReleaseRead();  // copied out
  }
  return more;
}

// Gives back the pages of the last block read. From the page the block began
// in, so that a page shared with the previous block is released too.
void SpillReader::ReleaseRead() {
  if (read_to_ == 0) return;
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  input_->Release(read_from_ / page * page, read_to_);
  read_from_ = read_to_ = 0;
}

Result<bool> SpillReader::NextView(std::string_view* raw, uint32_t* records) {
  ReleaseRead();
  const std::string_view file = input_->bytes();
  if (offset_ == file.size()) return false;
  if (offset_ > file.size())
    return Status::IOError(fmt::format("spill file {} has {} bytes, but block {} should start at byte {}: it was "
                                       "truncated. The temporary directory's storage is unreliable; rerun, with "
                                       "another temporary directory.",
                                       path_, file.size(), block_, offset_)).WithSetting(Setting::kTempDir);
  const size_t at = offset_;
  auto damaged = [&](const std::string& what) -> Status {
    // A file truncated by another program reads as zeros; say that instead.
    Status intact = input_->Intact();
    return Status::IOError(fmt::format(
        "spill file {} is damaged at block {} (byte {}): {}. The temporary directory's storage is unreliable; "
        "rerun, with another temporary directory.",
        path_, block_, at, intact.ok() ? what : intact.message())).WithSetting(Setting::kTempDir);
  };
  const size_t left = file.size() - at;
  const char* h = file.data() + at;
  if (left < kHeaderBytes)
    return damaged(fmt::format("the file ends {} bytes into a {}-byte block header (truncated, or trailing garbage)",
                               left, kHeaderBytes));
  if (std::memcmp(h, kMagic, 4) != 0)
    return damaged(fmt::format("no block starts here (expected the marker \"CMSB\", found {:02x} {:02x} {:02x} {:02x})",
                               static_cast<uint8_t>(h[0]), static_cast<uint8_t>(h[1]), static_cast<uint8_t>(h[2]),
                               static_cast<uint8_t>(h[3])));
  const uint8_t flags = static_cast<uint8_t>(h[4]);
  const uint32_t stored = GetU32(h + 8), raw_length = GetU32(h + 12), count = GetU32(h + 16);
  if (stored > left - kHeaderBytes)
    return damaged(fmt::format("the block says it holds {} bytes but the file has only {} after its header "
                               "(truncated, or a damaged length)",
                               stored, left - kHeaderBytes));
  const std::string_view payload(h + kHeaderBytes, stored);
  if (FrameChecksum(h, payload) != GetU64(h + kChecksumOffset))
    return damaged("its checksum does not match its contents");
  // Past the checksum, a bad field means a writer bug rather than damage, but
  // the reader still refuses it rather than trust it.
  if (h[5] != 0 || h[6] != 0 || h[7] != 0 || flags > kFlagZstd)
    return damaged(fmt::format("unsupported block flags {:#04x}, reserved bytes {:02x} {:02x} {:02x} (written by "
                               "another version of cloudmerge?)",
                               flags, static_cast<uint8_t>(h[5]), static_cast<uint8_t>(h[6]),
                               static_cast<uint8_t>(h[7])));
  if (flags == kFlagRaw) {
    if (raw_length != stored)
      return damaged(fmt::format("an uncompressed block of {} bytes says it holds {}", stored, raw_length));
    *raw = payload;
  } else {
    ZstdContexts& z = Contexts();
    if (z.d == nullptr) z.d = ZSTD_createDCtx();
    if (z.d == nullptr) return Status::Internal("cannot allocate a zstd decompression context: out of memory");
    // The writer's frames record their decompressed size: check it against the
    // header before allocating raw_length bytes, so that a bad length costs an
    // error, not a 4 GiB allocation (found by fuzz/spill_reader_fuzz.cc).
    const unsigned long long content = ZSTD_getFrameContentSize(payload.data(), payload.size());
    if (content == ZSTD_CONTENTSIZE_ERROR || content == ZSTD_CONTENTSIZE_UNKNOWN)
      return damaged(content == ZSTD_CONTENTSIZE_ERROR
                         ? "it does not decompress (its payload is not a zstd frame)"
                         : "it does not decompress (its zstd frame does not record its size, as the writer's do)");
    if (content > raw_length)
      return damaged(fmt::format("it does not decompress into the {} bytes its header says (its zstd frame holds {})",
                                 raw_length, content));
    if (content < raw_length)
      return damaged(fmt::format("it decompresses to {} bytes, not the {} its header says", content, raw_length));
    // And a frame whose recorded size is more than its blocks can hold.
    const unsigned long long bound = ZSTD_decompressBound(payload.data(), payload.size());
    if (bound == ZSTD_CONTENTSIZE_ERROR || bound < raw_length)
      return damaged(fmt::format("it does not decompress (its zstd frame records {} bytes but its blocks hold "
                                 "at most {})",
                                 content, bound == ZSTD_CONTENTSIZE_ERROR ? 0 : bound));
    decoded_.resize(raw_length);
    size_t n = ZSTD_decompressDCtx(z.d, decoded_.data(), decoded_.size(), payload.data(), payload.size());
    if (ZSTD_isError(n)) return damaged(fmt::format("it does not decompress ({})", ZSTD_getErrorName(n)));
    if (n != raw_length)
      return damaged(fmt::format("it decompresses to {} bytes, not the {} its header says", n, raw_length));
    *raw = decoded_;
  }
  *records = count;
  offset_ = at + kHeaderBytes + stored;
  ++block_;
  read_from_ = at;
  read_to_ = offset_;
  return true;
}

}  // namespace cloudmerge
