// gzip through zlib's inflate (windowBits 15+32: gzip or zlib headers,
// restarted after each member), zstd through ZSTD_decompressStream.
#include "cloudmerge/compression.h"

#include <zlib.h>
#include <zstd.h>

#include <fmt/format.h>

namespace cloudmerge {
namespace {

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

Status Corrupt(const std::string& name, const std::string& what) {
  return Status::InvalidInput(fmt::format(
      "{}: the compressed data is damaged ({}). Check that the file was copied completely; "
      "`gzip -t` or `zstd -t` tells whether it is intact.",
      name, what));
}

Status TooBig(const std::string& name, uint64_t limit) {
  return Status::InvalidInput(fmt::format(
      "{}: decompresses to more than {} bytes, the limit for a compressed input. If the file is genuine, "
      "decompress it first or raise --max-decompressed-size.",
      name, limit));
}

constexpr size_t kOutStep = 1 << 20;

class GzipDecoder final : public Decoder {
 public:
  GzipDecoder(std::string name, uint64_t limit) : name_(std::move(name)), limit_(limit) {
    inflateInit2(&z_, 15 + 32);
  }
  ~GzipDecoder() override { inflateEnd(&z_); }

  Status Feed(std::string_view in, std::string* out) override {
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z_.avail_in = static_cast<uInt>(in.size());
    while (z_.avail_in > 0) {
      if (stream_end_) {
        // Another gzip member follows (concatenated .gz files are valid gzip).
        inflateReset(&z_);
        stream_end_ = false;
      }
      size_t old = out->size();
      out->resize(old + kOutStep);
      z_.next_out = reinterpret_cast<Bytef*>(out->data() + old);
      z_.avail_out = kOutStep;
      int rc = inflate(&z_, Z_NO_FLUSH);
      out->resize(old + (kOutStep - z_.avail_out));
      if (out->size() > limit_) return TooBig(name_, limit_);
      if (rc == Z_STREAM_END) {
        stream_end_ = true;
      } else if (rc == Z_BUF_ERROR) {
        continue;  // needs more output space or more input: both handled by the loop
      } else if (rc != Z_OK) {
        return Corrupt(name_, z_.msg ? z_.msg : "inflate failed");
      }
      seen_data_ = true;
    }
    return Status::OK();
  }

  Status Finish() override {
    if (seen_data_ && !stream_end_) return Corrupt(name_, "the file ends in the middle of a gzip stream");
    return Status::OK();
  }

 private:
  std::string name_;
  uint64_t limit_;
  z_stream z_{};
  bool stream_end_ = false;
  bool seen_data_ = false;
};

class ZstdDecoder final : public Decoder {
 public:
  ZstdDecoder(std::string name, uint64_t limit) : name_(std::move(name)), limit_(limit), d_(ZSTD_createDStream()) {}
  ~ZstdDecoder() override { ZSTD_freeDStream(d_); }

  Status Feed(std::string_view in, std::string* out) override {
    ZSTD_inBuffer ib{in.data(), in.size(), 0};
    while (ib.pos < ib.size) {
      size_t old = out->size();
      out->resize(old + kOutStep);
      ZSTD_outBuffer ob{out->data() + old, kOutStep, 0};
      size_t rc = ZSTD_decompressStream(d_, &ob, &ib);
      out->resize(old + ob.pos);
      if (ZSTD_isError(rc)) return Corrupt(name_, ZSTD_getErrorName(rc));
      if (out->size() > limit_) return TooBig(name_, limit_);
      frame_open_ = rc != 0;
    }
    return Status::OK();
  }

  Status Finish() override {
    if (frame_open_) return Corrupt(name_, "the file ends in the middle of a zstd frame");
    return Status::OK();
  }

 private:
  std::string name_;
  uint64_t limit_;
  ZSTD_DStream* d_;
  bool frame_open_ = false;
};

}  // namespace

Compression CompressionForPath(std::string_view path) {
  if (EndsWith(path, ".gz") || EndsWith(path, ".gzip")) return Compression::kGzip;
  if (EndsWith(path, ".zst") || EndsWith(path, ".zstd")) return Compression::kZstd;
  return Compression::kNone;
}

std::unique_ptr<Decoder> NewDecoder(Compression c, std::string name, uint64_t max_output_bytes) {
  switch (c) {
    case Compression::kGzip: return std::make_unique<GzipDecoder>(std::move(name), max_output_bytes);
    case Compression::kZstd: return std::make_unique<ZstdDecoder>(std::move(name), max_output_bytes);
    default: return nullptr;
  }
}

}  // namespace cloudmerge
