// gzip through zlib's inflate (windowBits 15+32: gzip or zlib headers,
// restarted after each member) and deflate (16+15: a gzip member), zstd
// through ZSTD_decompressStream and ZSTD_compressStream2.
#include "cloudmerge/io/compression.h"

#include <zlib.h>
#include <zstd.h>


#include <algorithm>
#include <thread>

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
      "decompress it first or raise the limit for decompressed size.",
      name, limit)).WithSetting(Setting::kMaxDecompressedSize);
}

constexpr size_t kOutStep = 1 << 20;

class GzipDecoder final : public Decoder {
 public:
  GzipDecoder(std::string name, uint64_t limit) : name_(std::move(name)), limit_(limit) {
    inflateInit2(&z_, 15 + 32);
  }
  ~GzipDecoder() override { inflateEnd(&z_); }

  Status Feed(std::string_view in, std::string* out, size_t max_out, size_t* consumed) override {
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z_.avail_in = static_cast<uInt>(in.size());
    const size_t start = out->size();
    // An output step filled to the end may leave decoded bytes inside zlib: step again even without input.
    while ((z_.avail_in > 0 || out_full_) && out->size() - start < max_out) {
      if (stream_end_) {
        if (z_.avail_in == 0) break;
        // Another gzip member follows (concatenated .gz files are valid gzip).
        inflateReset(&z_);
        stream_end_ = false;
      }
      size_t old = out->size();
      out->resize(old + kOutStep);
      z_.next_out = reinterpret_cast<Bytef*>(out->data() + old);
      z_.avail_out = kOutStep;
      int rc = inflate(&z_, Z_NO_FLUSH);
      out_full_ = z_.avail_out == 0;
      out->resize(old + (kOutStep - z_.avail_out));
      total_ += kOutStep - z_.avail_out;
      if (total_ > limit_) return TooBig(name_, limit_);
      if (rc == Z_STREAM_END) {
        stream_end_ = true;
      } else if (rc == Z_BUF_ERROR) {
        if (z_.avail_in == 0 && !out_full_) break;  // nothing more to do without input
        continue;  // needs more output space: the loop gives it
      } else if (rc != Z_OK) {
        return Corrupt(name_, z_.msg ? z_.msg : "inflate failed");
      }
      seen_data_ = true;
    }
    *consumed = in.size() - z_.avail_in;
    return Status::OK();
  }
  bool pending() const override { return out_full_; }

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
  bool out_full_ = false;
  uint64_t total_ = 0;  // decoded bytes so far, against limit_
};

class ZstdDecoder final : public Decoder {
 public:
  ZstdDecoder(std::string name, uint64_t limit) : name_(std::move(name)), limit_(limit), d_(ZSTD_createDStream()) {}
  ~ZstdDecoder() override { ZSTD_freeDStream(d_); }

  Status Feed(std::string_view in, std::string* out, size_t max_out, size_t* consumed) override {
    ZSTD_inBuffer ib{in.data(), in.size(), 0};
    const size_t start = out->size();
    // An output step filled to the end may leave decoded bytes inside zstd: step again even without input.
    while ((ib.pos < ib.size || out_full_) && out->size() - start < max_out) {
      size_t old = out->size();
      out->resize(old + kOutStep);
      ZSTD_outBuffer ob{out->data() + old, kOutStep, 0};
      size_t rc = ZSTD_decompressStream(d_, &ob, &ib);
      out->resize(old + ob.pos);
      if (ZSTD_isError(rc)) return Corrupt(name_, ZSTD_getErrorName(rc));
      out_full_ = ob.pos == kOutStep;
      total_ += ob.pos;
      if (total_ > limit_) return TooBig(name_, limit_);
      frame_open_ = rc != 0;
    }
    *consumed = ib.pos;
    return Status::OK();
  }
  bool pending() const override { return out_full_; }

  Status Finish() override {
    if (frame_open_) return Corrupt(name_, "the file ends in the middle of a zstd frame");
    return Status::OK();
  }

 private:
  std::string name_;
  uint64_t limit_;
  ZSTD_DStream* d_;
  bool frame_open_ = false;
  bool out_full_ = false;
  uint64_t total_ = 0;  // decoded bytes so far, against limit_
};

// Encoders. Errors here mean a bug or memory exhaustion (the codecs do not
// fail on valid input): Internal, naming the codec's own message.
Status EncodeFailure(const char* codec, const char* what) {
  return Status::Internal(fmt::format("{} compression of the output failed: {}. This is a bug in cloudmerge or the "
                                      "machine is out of memory; write an uncompressed output instead.",
                                      codec, what));
}

class GzipEncoder final : public Encoder {
 public:
  explicit GzipEncoder(int level) {
    // windowBits 16 + 15: a gzip header and trailer, not zlib's.
    init_ = deflateInit2(&z_, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  }
  ~GzipEncoder() override {
    if (init_ == Z_OK) deflateEnd(&z_);
  }

  Status Feed(std::string_view in, std::string* out) override {
    if (init_ != Z_OK) return EncodeFailure("gzip", "deflateInit2 failed");
    // avail_in is 32 bits: feed large pieces in slices.
    while (!in.empty()) {
      size_t n = std::min<size_t>(in.size(), 1u << 30);
      CM_RETURN_IF_ERROR(Run(in.substr(0, n), Z_NO_FLUSH, out));
      in.remove_prefix(n);
    }
    return Status::OK();
  }

  Status Finish(std::string* out) override {
    if (init_ != Z_OK) return EncodeFailure("gzip", "deflateInit2 failed");
    return Run({}, Z_FINISH, out);
  }

 private:
  Status Run(std::string_view in, int flush, std::string* out) {
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z_.avail_in = static_cast<uInt>(in.size());
    for (;;) {
      size_t old = out->size();
      constexpr size_t step = 256 << 10;
      out->resize(old + step);
      z_.next_out = reinterpret_cast<Bytef*>(out->data() + old);
      z_.avail_out = static_cast<uInt>(step);
      int rc = deflate(&z_, flush);
      out->resize(old + (step - z_.avail_out));
      if (rc == Z_STREAM_END) return Status::OK();
      if (rc != Z_OK && rc != Z_BUF_ERROR) return EncodeFailure("gzip", z_.msg ? z_.msg : "deflate failed");
      // Done with this input once deflate left output space unused (nothing pending).
      if (flush != Z_FINISH && z_.avail_in == 0 && z_.avail_out > 0) return Status::OK();
    }
  }

  z_stream z_{};
  int init_;
};

class ZstdEncoder final : public Encoder {
 public:
  explicit ZstdEncoder(int level) : c_(ZSTD_createCCtx()) {
    if (c_ == nullptr) return;
    ZSTD_CCtx_setParameter(c_, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(c_, ZSTD_c_checksumFlag, 1);  // so that `zstd -t` can vouch for the result
    // Compress on every core: one core compressed the 10^9-row result at ~0.3 GB/s and the
    // merge waited on it. zstd's multithreaded frames are the same bytes for any number of
    // workers >= 1, so the output stays identical whatever the machine; a libzstd built
    // without threads refuses the parameter and compresses on this thread, as before.
    ZSTD_CCtx_setParameter(c_, ZSTD_c_nbWorkers, static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    // Jobs of 2 MiB (the default at level 3 is 8 MiB): ~20 MB of buffers on 2 cores instead
    // of ~70 MB, which matters under a Lambda-sized memory limit; the ratio is the same.
    ZSTD_CCtx_setParameter(c_, ZSTD_c_jobSize, 2 << 20);
  }
  ~ZstdEncoder() override { ZSTD_freeCCtx(c_); }

  Status Feed(std::string_view in, std::string* out) override { return Run(in, ZSTD_e_continue, out); }
  Status Finish(std::string* out) override { return Run({}, ZSTD_e_end, out); }

 private:
  Status Run(std::string_view in, ZSTD_EndDirective mode, std::string* out) {
    if (c_ == nullptr) return EncodeFailure("zstd", "ZSTD_createCCtx failed");
    ZSTD_inBuffer ib{in.data(), in.size(), 0};
    for (;;) {
      size_t old = out->size();
      const size_t step = ZSTD_CStreamOutSize();
      out->resize(old + step);
      ZSTD_outBuffer ob{out->data() + old, step, 0};
      size_t rc = ZSTD_compressStream2(c_, &ob, &ib, mode);
      out->resize(old + ob.pos);
      if (ZSTD_isError(rc)) return EncodeFailure("zstd", ZSTD_getErrorName(rc));
      // e_continue: done once all input is taken; e_end: once the frame is flushed (rc == 0).
      if (mode == ZSTD_e_end ? rc == 0 : ib.pos == ib.size) return Status::OK();
    }
  }

  ZSTD_CCtx* c_;
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

namespace cloudmerge {

std::unique_ptr<Encoder> NewEncoder(Compression c, int level) {
  switch (c) {
    case Compression::kGzip: return std::make_unique<GzipEncoder>(level < 0 ? kOutputGzipLevel : level);
    case Compression::kZstd: return std::make_unique<ZstdEncoder>(level < 0 ? kOutputZstdLevel : level);
    default: return nullptr;
  }
}

}  // namespace cloudmerge
