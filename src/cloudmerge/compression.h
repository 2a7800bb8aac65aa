// Streaming decompression of inputs by their name: `.gz` (zlib, gzip and
// multi-member gzip as written by pigz/bgzip) and `.zst` (zstd, multi-frame).
// A Decoder turns compressed bytes, fed in any pieces, into the plain bytes
// appended to `out`; Finish() reports a truncated stream.
//
// The decoded size is bounded (max_output_bytes) so that a small hostile file
// (a "gzip bomb") fails with a clear error instead of exhausting memory.
// Thread safety: a Decoder is used by one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "cloudmerge/status.h"

namespace cloudmerge {

enum class Compression { kNone, kGzip, kZstd };

// By the name's suffix (an S3 key or a local path).
Compression CompressionForPath(std::string_view path);

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual Status Feed(std::string_view in, std::string* out) = 0;
  virtual Status Finish() = 0;
};

// `name` is used in error messages only.
std::unique_ptr<Decoder> NewDecoder(Compression c, std::string name, uint64_t max_output_bytes);

}  // namespace cloudmerge
