// Streaming compression by name: inputs named `.gz` (zlib, gzip and
// multi-member gzip as written by pigz/bgzip) and `.zst` (zstd, multi-frame)
// are decompressed, outputs so named are compressed (AtomicOutput, env.h).
// A Decoder turns compressed bytes, fed in any pieces, into the plain bytes
// appended to `out`, at most about `max_out` of them per call (a few bytes of
// a zstd or gzip bomb can stand for gigabytes: the caller takes the output in
// bounded pieces and feeds the rest of the input again); Finish() reports a
// truncated stream. An Encoder is the
// reverse: plain bytes in any pieces, one gzip member or one zstd frame out,
// completed by Finish().
//
// The decoded size is bounded (max_output_bytes) so that a small hostile file
// (a "gzip bomb") fails with a clear error instead of exhausting memory.
// Thread safety: a Decoder or Encoder is used by one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "cloudmerge/base/status.h"

namespace cloudmerge {

enum class Compression { kNone, kGzip, kZstd };

// By the name's suffix (an S3 key or a local path).
Compression CompressionForPath(std::string_view path);

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Decodes from `in`, appending to *out, until all of `in` is consumed and no
  // decoded byte is held back, or until *out has grown by `max_out` bytes (or
  // up to 1 MiB more). *consumed receives the bytes of `in` used; the caller
  // passes the rest again, or an empty `in` to drain what is held back at the
  // end of the input.
  virtual Status Feed(std::string_view in, std::string* out, size_t max_out, size_t* consumed) = 0;
  // True while decoded bytes are held back (the last Feed stopped at max_out).
  virtual bool pending() const = 0;
  virtual Status Finish() = 0;
};

// `name` is used in error messages only.
std::unique_ptr<Decoder> NewDecoder(Compression c, std::string name, uint64_t max_output_bytes);

class Encoder {
 public:
  virtual ~Encoder() = default;
  // Compresses `in`, appending to *out whatever compressed bytes are ready
  // (the codec keeps some back until it has a block's worth).
  virtual Status Feed(std::string_view in, std::string* out) = 0;
  // Ends the stream (the gzip trailer, the zstd frame's end) into *out. The
  // Encoder accepts no more input afterwards.
  virtual Status Finish(std::string* out) = 0;
};

// Output levels (merge --compression-level overrides them). A merge's output
// can be GBs and its compression is on the merge's critical path, so speed
// matters: on a 47 MB merge output, gzip -1 took 1.6 s for 19.4 MB, gzip -6
// (gzip's default) 9.5 s for 17.2 MB. zstd -1 rather than zstd's default -3:
// on merge outputs (numeric and string IDs, decimal values) -1 compressed
// 2.3-3.4x faster and its files were 5% smaller, not larger; at 10^9 rows -3
// cost ~2 CPU-minutes more (docs/benchmarks.md, fifteenth session). On prose
// and code -3 is ~13% smaller: a user who wants that asks for it.
inline constexpr int kOutputGzipLevel = 1;
inline constexpr int kOutputZstdLevel = 1;

// nullptr for kNone. `level` < 0: the output level above.
std::unique_ptr<Encoder> NewEncoder(Compression c, int level = -1);

}  // namespace cloudmerge
