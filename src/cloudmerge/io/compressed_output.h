// Compressed output: an AtomicFile whose bytes are gzip- or zstd-compressed
// (compression.h) on their way to another AtomicFile, so that a destination
// named *.gz / *.zst (a local file or an S3 object) is written compressed
// with the same all-or-nothing guarantee (AtomicOutput, env.h, uses it).
//
// Thread safety: as AtomicFile (one thread at a time).
#pragma once

#include <memory>

#include "cloudmerge/io/compression.h"
#include "cloudmerge/io/env.h"

namespace cloudmerge {

// `base` receiving the appended bytes compressed with `c` at `level` (< 0: the
// output level of compression.h; kNone: `base` itself).
// Destroying it uncommitted discards everything, with `base`.
std::unique_ptr<AtomicFile> NewCompressedAtomicFile(std::unique_ptr<AtomicFile> base, Compression c, int level = -1);

}  // namespace cloudmerge
