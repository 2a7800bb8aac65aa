// UriEnv: routes s3:// / file:// / local paths, decodes compressed inputs, and
// adapts S3ObjectWriter to AtomicFile. The engine reads S3 objects and
// compressed files as streams (OpenStream): parallel ranged GETs handed over in
// order, decoded as they arrive, never the whole object at once. ReadFile still
// brings a whole input into memory for callers that want it so.
#include "cloudmerge/aws/uri_env.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "cloudmerge/aws/s3_object_writer.h"
#include "cloudmerge/io/compression.h"

namespace cloudmerge {
namespace {

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

class StringInput final : public InputData {
 public:
  explicit StringInput(std::string s) : s_(std::move(s)) {}
  std::string_view bytes() const override { return s_; }

 private:
  std::string s_;
};

// ---- Streams -------------------------------------------------------------------

// A mapped local file read in order; pages are given back once read.
class MappedStream final : public InputStream {
 public:
  explicit MappedStream(std::unique_ptr<InputData> in) : in_(std::move(in)) {}
  Status Read(size_t max_bytes, std::string* out) override {
    std::string_view b = in_->bytes();
    size_t n = std::min(max_bytes, b.size() - pos_);
    out->append(b.substr(pos_, n));
    in_->Release(pos_, pos_ + n);
    pos_ += n;
    return in_->Intact();
  }
  uint64_t size_hint() const override { return in_->bytes().size(); }

 private:
  std::unique_ptr<InputData> in_;
  size_t pos_ = 0;
};

// Decodes a compressed stream as it is read. The decoder is fed small pieces
// and asked for no more than the reader wants (plus one decoder step of 1 MiB):
// a highly compressible piece (a "gzip bomb") is decoded over many reads,
// never all at once.
class DecodingStream final : public InputStream {
 public:
  DecodingStream(std::unique_ptr<InputStream> raw, std::unique_ptr<Decoder> decoder)
      : raw_(std::move(raw)), decoder_(std::move(decoder)) {}
  Status Read(size_t max_bytes, std::string* out) override {
    while (pending_.size() - taken_ < max_bytes && !finished_) {
      if (taken_ > 0) {
        pending_.erase(0, taken_);
        taken_ = 0;
      }
      if (fed_ == compressed_.size() && !decoder_->pending()) {
        compressed_.clear();
        fed_ = 0;
        CM_RETURN_IF_ERROR(raw_->Read(kFeedBytes, &compressed_));
        if (compressed_.empty()) {
          CM_RETURN_IF_ERROR(decoder_->Finish());
          finished_ = true;
          break;
        }
      }
      size_t used = 0;
      CM_RETURN_IF_ERROR(decoder_->Feed(std::string_view(compressed_).substr(fed_), &pending_,
                                        max_bytes - pending_.size(), &used));
      fed_ += used;
    }
    size_t n = std::min(max_bytes, pending_.size() - taken_);
    out->append(pending_, taken_, n);
    taken_ += n;
    return Status::OK();
  }
  // Text compresses about 4:1 with gzip -6 or zstd -3: an estimate only.
  uint64_t size_hint() const override { return raw_->size_hint() * 4; }
  bool reopenable() const override { return raw_->reopenable(); }

 private:
  static constexpr size_t kFeedBytes = 64 << 10;
  std::unique_ptr<InputStream> raw_;
  std::unique_ptr<Decoder> decoder_;
  std::string compressed_, pending_;
  size_t fed_ = 0;  // bytes of compressed_ given to the decoder
  size_t taken_ = 0;
  bool finished_ = false;
};

// Appends bytes [offset, offset + len) of the object to *out (pinned to `etag`),
// exactly that many or an error, *out as it was then; stops early once *stop
// is set (a reader that went away).
Status GetRangeInto(S3Client& client, const S3Uri& uri, const std::string& etag, uint64_t offset, uint64_t len,
                    const std::string& name, std::string* out, const std::atomic<bool>* stop = nullptr) {
  const size_t old = out->size();
  out->reserve(old + len);
  Status st = client.GetObjectRange(uri, offset, len, etag, [&](std::string_view piece) -> Status {
    if (stop && stop->load()) return Status::IOError("cancelled");
    if (out->size() - old + piece.size() > len) return Status::IOError("S3 sent more bytes than the range asked for");
    out->append(piece);
    return Status::OK();
  });
  if (st.ok() && out->size() - old != len)
    st = Status::IOError(fmt::format("{}: S3 sent {} bytes for a range of {}", name, out->size() - old, len));
  if (!st.ok()) out->resize(old);
  return st;
}

// An S3 object read in order through ranged GETs, `parallel` of them in flight
// ahead of the reader (at most parallel + 1 ranges held), each pinned to the
// ETag HeadObject saw. A single-part object's bytes are checked against its
// ETag (their MD5) when the last byte is read.
class S3RangeStream final : public InputStream {
 public:
  S3RangeStream(std::shared_ptr<S3Client> client, S3Uri uri, ObjectInfo info, std::string path,
                uint64_t range_bytes, unsigned parallel)
      : client_(std::move(client)),
        uri_(std::move(uri)),
        info_(std::move(info)),
        path_(std::move(path)),
        range_bytes_(std::max<uint64_t>(range_bytes, 1)),
        ranges_((info_.size + range_bytes_ - 1) / range_bytes_),
        window_(std::max(1u, parallel) + 1),
        md5_(EVP_MD_CTX_new()),
        sum_(EVP_MD_CTX_new()) {
    const std::string& e = info_.etag;
    check_md5_ = md5_ && e.size() == 32 && e.find_first_not_of("0123456789abcdef") == std::string::npos &&
                 EVP_DigestInit_ex(md5_, EVP_md5(), nullptr) == 1;
    const EVP_MD* md = info_.checksum_algorithm == "sha256" ? EVP_sha256()
                       : info_.checksum_algorithm == "sha1" ? EVP_sha1()
                                                            : nullptr;
    check_digest_ = md && sum_ && EVP_DigestInit_ex(sum_, md, nullptr) == 1;
    check_crc32_ = info_.checksum_algorithm == "crc32";
    unsigned n = static_cast<unsigned>(std::min<uint64_t>(std::max(1u, parallel), ranges_));
    for (unsigned i = 0; i < n; ++i) workers_.emplace_back([this] { Fetch(); });
  }
  ~S3RangeStream() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    EVP_MD_CTX_free(md5_);
    EVP_MD_CTX_free(sum_);
  }

  Status Read(size_t max_bytes, std::string* out) override {
    if (taken_ == current_.size()) {
      if (consumed_ == ranges_) return Verify();
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return !error_.ok() || ready_.count(consumed_) > 0; });
      if (!error_.ok()) return error_;
      current_ = std::move(ready_[consumed_]);
      ready_.erase(consumed_);
      ++consumed_;
      taken_ = 0;
      lock.unlock();
      cv_.notify_all();  // a slot is free
    }
    size_t n = std::min(max_bytes, current_.size() - taken_);
    const char* piece = current_.data() + taken_;
    if (check_md5_) EVP_DigestUpdate(md5_, piece, n);
    if (check_digest_) EVP_DigestUpdate(sum_, piece, n);
    if (check_crc32_) crc32_ = crc32_z(crc32_, reinterpret_cast<const Bytef*>(piece), n);
    out->append(current_, taken_, n);
    taken_ += n;
    return Status::OK();
  }
  uint64_t size_hint() const override { return info_.size; }

 private:
  void Fetch() {
    for (;;) {
      uint64_t r;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !error_.ok() || next_ >= ranges_ || next_ < consumed_ + window_; });
        if (stop_ || !error_.ok() || next_ >= ranges_) return;
        r = next_++;
      }
      uint64_t off = r * range_bytes_, len = std::min(range_bytes_, info_.size - off);
      std::string data;
      Status st = GetRangeInto(*client_, uri_, info_.etag, off, len, path_, &data, &stop_);
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (!st.ok()) {
          if (error_.ok() && !stop_) error_ = st;
        } else {
          ready_[r] = std::move(data);
        }
      }
      cv_.notify_all();
      if (!st.ok()) return;
    }
  }

  // At the end: the bytes received against the object's checksum (x-amz-checksum-*) and its
  // single-part ETag (an MD5), whichever S3 gave.
  Status Verify() {
    if (verified_) return Status::OK();
    verified_ = true;
    if (check_digest_ || check_crc32_) {
      unsigned char md[EVP_MAX_MD_SIZE];
      unsigned int len = 0;
      if (check_crc32_) {
        for (int i = 0; i < 4; ++i) md[i] = static_cast<unsigned char>(crc32_ >> (24 - 8 * i));  // big-endian
        len = 4;
      } else if (EVP_DigestFinal_ex(sum_, md, &len) != 1) {
        len = 0;
      }
      if (len > 0) {
        unsigned char b64[2 * EVP_MAX_MD_SIZE + 4];
        int n = EVP_EncodeBlock(b64, md, static_cast<int>(len));
        std::string got(reinterpret_cast<char*>(b64), static_cast<size_t>(n));
        if (got != info_.checksum)
          return Status::Corruption(fmt::format(
              "{}: the bytes received do not match the object's checksum ({} {}, received {}): the transfer was "
              "damaged. Run again.",
              path_, info_.checksum_algorithm, info_.checksum, got));
      }
    }
    if (!check_md5_) return Status::OK();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(md5_, md, &len) != 1) return Status::OK();
    std::string hex;
    for (unsigned int i = 0; i < len; ++i) hex += fmt::format("{:02x}", md[i]);
    if (hex == info_.etag) return Status::OK();
    return Status::Corruption(fmt::format("{}: the bytes received do not match the object's checksum (ETag {}, received "
                                       "MD5 {}): the transfer was damaged. Run again.",
                                       path_, info_.etag, hex));
  }

  std::shared_ptr<S3Client> client_;
  S3Uri uri_;
  ObjectInfo info_;
  std::string path_;
  uint64_t range_bytes_, ranges_, window_;
  EVP_MD_CTX* md5_;
  EVP_MD_CTX* sum_;
  bool check_md5_ = false, check_digest_ = false, check_crc32_ = false, verified_ = false;
  uLong crc32_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> stop_{false};
  Status error_;
  uint64_t next_ = 0;      // next range to fetch
  uint64_t consumed_ = 0;  // ranges handed to the reader
  std::map<uint64_t, std::string> ready_;
  std::vector<std::thread> workers_;

  // The reader's range.
  std::string current_;
  size_t taken_ = 0;
};

class S3AtomicFile final : public AtomicFile {
 public:
  explicit S3AtomicFile(std::unique_ptr<S3ObjectWriter> w) : w_(std::move(w)) {}
  ~S3AtomicFile() override {
    if (!committed_) (void)w_->Abort();
  }
  Status Append(std::string_view data) override { return w_->Append(data); }
  Status Commit() override {
    auto r = w_->Commit();
    if (!r.ok()) return r.status();
    committed_ = true;
    return Status::OK();
  }

 private:
  std::unique_ptr<S3ObjectWriter> w_;
  bool committed_ = false;
};

// An S3 object read at any offset, each read one ranged GET pinned to the ETag
// the object had when opened (If-Match: a changed object is an error, never a
// mix of two versions).
class S3RandomAccessInput final : public RandomAccessInput {
 public:
  S3RandomAccessInput(std::shared_ptr<S3Client> client, S3Uri uri, ObjectInfo info)
      : client_(std::move(client)), uri_(std::move(uri)), info_(std::move(info)) {}
  uint64_t size() const override { return info_.size; }
  std::string version() const override { return info_.etag; }
  Status ReadAt(uint64_t offset, size_t n, std::string* out) override {
    if (n == 0) return Status::OK();
    if (offset > info_.size || n > info_.size - offset) {
      return Status::IOError(fmt::format("{}: bytes {}-{} asked for, but the object has {} bytes. Run again.",
                                         uri_.ToString(), offset, offset + n, info_.size));
    }
    return GetRangeInto(*client_, uri_, info_.etag, offset, n, uri_.ToString(), out);
  }

 private:
  std::shared_ptr<S3Client> client_;
  S3Uri uri_;
  ObjectInfo info_;
};

class UriEnv final : public Env {
 public:
  UriEnv(Env* local, UriEnvOptions o) : local_(local), o_(std::move(o)) {}

  // Whole, for callers that want it so: a plain local file mapped, anything
  // else (S3, compressed) read through its stream, with the same checks.
  Result<std::unique_ptr<InputData>> ReadFile(const std::string& path) override {
    auto stream = path == "-" ? Result<std::unique_ptr<InputStream>>(std::unique_ptr<InputStream>()) : OpenStream(path);
    if (!stream.ok()) return stream.status();
    if (!*stream) return local_->ReadFile(LocalPath(path));
    std::string all;
    CM_RETURN_IF_ERROR(ForEachPiece(stream->get(), 8 << 20, [&](std::string_view piece) {
      all.append(piece);
      return Status::OK();
    }));
    return std::unique_ptr<InputData>(new StringInput(std::move(all)));
  }

  Result<std::unique_ptr<InputStream>> OpenStream(const std::string& path) override {
    Compression c = o_.decode_inputs ? CompressionForPath(path) : Compression::kNone;
    std::unique_ptr<InputStream> raw;
    if (S3Uri::IsS3(path)) {
      auto object = HeadS3Object(path);
      if (!object.ok()) return object.status();
      S3Client& client = *object->client;
      unsigned parallel = client.config().parallel_requests;
      uint64_t range = client.config().range_size ? client.config().range_size : o_.range_bytes;
      raw.reset(new S3RangeStream(object->client, object->uri, object->info, path, range, parallel));
    } else {
      // Standard input, FIFOs, devices: read in order, in pieces (never whole).
      auto local = local_->OpenStream(LocalPath(path));
      if (!local.ok()) return local.status();
      raw = std::move(local.value());
      if (!raw && c == Compression::kNone) return raw;  // a plain local file: mapped (ReadFile)
      if (!raw) {
        auto in = local_->ReadFile(LocalPath(path));
        if (!in.ok()) return in.status();
        raw.reset(new MappedStream(std::move(in.value())));
      }
    }
    if (c == Compression::kNone) return raw;
    return std::unique_ptr<InputStream>(
        new DecodingStream(std::move(raw), NewDecoder(c, LocalPath(path), o_.max_decompressed_bytes)));
  }

  // Plain inputs only: a compressed one is read in order (its stream decodes it).
  Result<std::unique_ptr<RandomAccessInput>> OpenRandomAccess(const std::string& path,
                                                              const std::string& version) override {
    if (path == "-" || (o_.decode_inputs && CompressionForPath(path) != Compression::kNone))
      return std::unique_ptr<RandomAccessInput>();
    if (!S3Uri::IsS3(path)) return local_->OpenRandomAccess(LocalPath(path), version);
    auto object = HeadS3Object(path);
    if (!object.ok()) return object.status();
    if (!version.empty() && object->info.etag != version) {
      return Status::IOError(fmt::format("{} changed while the merge was reading it (its ETag is no longer \"{}\"). "
                                         "Run again once nothing writes it.", path, version));
    }
    return std::unique_ptr<RandomAccessInput>(
        new S3RandomAccessInput(object->client, object->uri, std::move(object->info)));
  }

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    if (S3Uri::IsS3(path))
      return Status::Internal("S3 objects are written through NewAtomicFile, never as plain files");
    return local_->NewWritableFile(LocalPath(path));
  }
  Status RenameFile(const std::string& from, const std::string& to) override {
    return local_->RenameFile(LocalPath(from), LocalPath(to));
  }
  Status RemoveFile(const std::string& path) override {
    if (S3Uri::IsS3(path)) {
      auto client = Client();
      if (!client.ok()) return client.status();
      auto uri = S3Uri::Parse(path);
      if (!uri.ok()) return uri.status();
      return (*client)->DeleteObject(*uri);
    }
    return local_->RemoveFile(LocalPath(path));
  }
  bool IsSpecialFile(const std::string& path) override {
    return !S3Uri::IsS3(path) && local_->IsSpecialFile(LocalPath(path));
  }
  Result<OutputTarget> ResolveOutput(const std::string& path) override {
    if (!S3Uri::IsS3(path)) return local_->ResolveOutput(LocalPath(path));
    return OutputTarget{path, false, -1};  // an object is replaced whole, by its key
  }
  Result<std::unique_ptr<AtomicFile>> NewAtomicFile(const std::string& path) override {
    if (!S3Uri::IsS3(path)) return local_->NewAtomicFile(LocalPath(path));
    auto uri = S3Uri::Parse(path);
    if (!uri.ok()) return uri.status();
    if (uri->key.empty() || uri->key.back() == '/')
      return Status::InvalidArgument(fmt::format(
          "output {} names a bucket or a prefix, not an object: give the object's key, e.g. s3://{}/merged.tsv",
          path, uri->bucket));
    auto client = Client();
    if (!client.ok()) return client.status();
    return std::unique_ptr<AtomicFile>(new S3AtomicFile(S3ObjectWriter::Open(*client, *uri)));
  }

 private:
  static std::string LocalPath(const std::string& path) {
    return StartsWith(path, "file://") ? path.substr(7) : path;
  }

  Result<std::shared_ptr<S3Client>> Client() {
    std::lock_guard<std::mutex> lock(mu_);
    if (!client_) {
      if (!o_.make_s3_client) return Status::InvalidArgument("S3 paths are not supported in this context");
      auto c = o_.make_s3_client();
      if (!c.ok()) return c.status();
      client_ = *c;
    }
    return client_;
  }

  // An object as HeadObject describes it, with the client to read it by.
  struct S3Object {
    std::shared_ptr<S3Client> client;
    S3Uri uri;
    ObjectInfo info;
  };
  Result<S3Object> HeadS3Object(const std::string& path) {
    auto uri = S3Uri::Parse(path);
    if (!uri.ok()) return uri.status();
    auto client = Client();
    if (!client.ok()) return client.status();
    auto info = (*client)->HeadObject(*uri);
    if (!info.ok()) return info.status();
    return S3Object{std::move(*client), std::move(*uri), std::move(*info)};
  }

  Env* local_;
  UriEnvOptions o_;
  std::mutex mu_;
  std::shared_ptr<S3Client> client_;
};

}  // namespace

std::unique_ptr<Env> NewUriEnv(Env* local, UriEnvOptions options) {
  return std::make_unique<UriEnv>(local, std::move(options));
}

}  // namespace cloudmerge
