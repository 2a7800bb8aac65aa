// Spill files: the out-of-core join's temporary data (partitions of x and y,
// sorted runs of output) as a sequence of self-checking blocks.
//
// A block is a run of records encoded by the caller (see grace_join.cc); this
// layer frames it, compresses it with zstd when that pays, and protects it with
// an XXH3 checksum so that a file damaged between write and read is detected
// (an IOError naming the file, the block and its byte offset), never silently
// joined. The format is documented in docs/spill-format.md.
//
// Blocks are encoded (compressed + framed) by EncodeSpillBlock, a pure
// function, so worker threads compress in parallel and one thread appends the
// framed blocks to the file in order.
//
// Thread safety: EncodeSpillBlock/DecodeSpillBlock are pure. A SpillWriter or
// SpillReader is used by one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "cloudmerge/io/env.h"
#include "cloudmerge/base/status.h"

namespace cloudmerge {

// zstd level used for spill blocks; blocks that do not shrink by 1/8 are stored raw.
inline constexpr int kSpillZstdLevel = 1;
// As a level: store every block raw, without trying to compress it (when the
// temp dir has room to spare, compression costs more time than it saves).
inline constexpr int kSpillStoreRaw = -1000000;

// Frames `raw` (records encoded by the caller, `records` of them) as one block,
// compressed when that pays. Appends to *framed.
void EncodeSpillBlock(std::string_view raw, uint32_t records, int zstd_level, std::string* framed);

class SpillWriter {
 public:
  static Result<std::unique_ptr<SpillWriter>> Create(Env* env, const std::string& path);
  ~SpillWriter();
  // Appends one or more framed blocks (from EncodeSpillBlock).
  Status AppendFramed(std::string_view framed);
  // Convenience: encode + append.
  Status AppendBlock(std::string_view raw, uint32_t records, int zstd_level = kSpillZstdLevel);
  // Flushes and closes; the file is complete and can be opened by SpillReader.
  Status Close();
  uint64_t bytes_written() const { return bytes_; }  // framed bytes on disk
  uint64_t records_written() const { return records_; }
  const std::string& path() const { return path_; }

 private:
  SpillWriter() = default;
  std::string path_;
  std::unique_ptr<WritableFile> file_;
  uint64_t bytes_ = 0, records_ = 0;
};

class SpillReader {
 public:
  static Result<std::unique_ptr<SpillReader>> Open(Env* env, const std::string& path);
  // The next block's decoded records into *raw (replacing its contents) and their
  // count into *records. Returns false at the end of the file. A damaged block
  // (bad magic, checksum mismatch, truncated frame, decompression failure) is an
  // IOError: "spill file F is damaged at block B (byte O): ... The temporary
  // directory's storage is unreliable; rerun, with another temporary directory." (Setting::kTempDir)
  Result<bool> Next(std::string* raw, uint32_t* records);
  // As Next, without the copy: *raw views the block where it lies (an
  // uncompressed block in the mapped file) or where it was decompressed to.
  // The view stays valid until the next call or the reader's end; the block's
  // pages are given back at the next call.
  Result<bool> NextView(std::string_view* raw, uint32_t* records);
  // Continues at a block boundary the writer reported (bytes_written() before the
  // block was appended), counting blocks from `block` in error messages. Any
  // other offset reads as a damaged block, never as records.
  void Seek(uint64_t offset, uint64_t block) {
    offset_ = offset;
    block_ = block;
  }
  uint64_t file_bytes() const;

 private:
  SpillReader() = default;
  std::string path_;
  void ReleaseRead();
  std::unique_ptr<InputData> input_;
  size_t offset_ = 0;
  uint64_t block_ = 0;
  size_t read_from_ = 0, read_to_ = 0;  // the last block's bytes, given back at the next call
  std::string decoded_;                 // the last block, when it was compressed
};

// Reads the spill file at `path` block by block, in order: on_block(std::string_view
// raw, uint32_t records) -> Status per block (raw is valid until it returns). Stops at the first error, the reader's or on_block's.
template <class OnBlock>
Status ForEachSpillBlock(Env* env, const std::string& path, OnBlock&& on_block) {
  auto reader = SpillReader::Open(env, path);
  if (!reader.ok()) return reader.status();
  std::string_view block;
  uint32_t n;
  for (;;) {
    auto more = (*reader)->NextView(&block, &n);
    if (!more.ok()) return more.status();
    if (!*more) return Status::OK();
    CM_RETURN_IF_ERROR(on_block(block, n));
  }
}

}  // namespace cloudmerge
