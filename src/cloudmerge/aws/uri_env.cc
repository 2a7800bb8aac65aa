// UriEnv: routes s3:// / file:// / local paths, decodes compressed inputs, and
// adapts S3ObjectWriter to AtomicFile. Inputs are brought into memory (the
// in-memory engine needs them there), downloaded by parallel ranged GETs.
#include "cloudmerge/aws/uri_env.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <openssl/evp.h>

#include "cloudmerge/aws/s3_object_writer.h"
#include "cloudmerge/compression.h"

namespace cloudmerge {
namespace {

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// Anonymous memory holding a downloaded object.
class AnonymousInput final : public InputData {
 public:
  static Result<std::unique_ptr<AnonymousInput>> Allocate(size_t size, const std::string& name) {
    if (size == 0) return std::unique_ptr<AnonymousInput>(new AnonymousInput(nullptr, 0));
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
      return Status::IOError(fmt::format("cannot allocate {} bytes of memory to read {}", size, name));
    return std::unique_ptr<AnonymousInput>(new AnonymousInput(static_cast<char*>(p), size));
  }
  ~AnonymousInput() override {
    if (size_) munmap(data_, size_);
  }
  char* data() { return data_; }
  std::string_view bytes() const override { return {data_, size_}; }
  // No Release: the engine may read a range again after releasing it (a
  // mapped file re-reads the page from disk; anonymous memory would come back
  // as zeros), so the bytes stay until the input is destroyed.

 private:
  AnonymousInput(char* d, size_t n) : data_(d), size_(n) {}
  char* data_;
  size_t size_;
};

class StringInput final : public InputData {
 public:
  explicit StringInput(std::string s) : s_(std::move(s)) {}
  std::string_view bytes() const override { return s_; }

 private:
  std::string s_;
};

// Downloads [0, size) with up to `parallel` ranged GETs in flight; the first
// failure stops the others.
Status ParallelDownload(S3Client* client, const S3Uri& uri, const ObjectInfo& info, uint64_t range_bytes,
                        unsigned parallel, char* dest) {
  const uint64_t ranges = (info.size + range_bytes - 1) / range_bytes;
  std::atomic<uint64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  Status first_error;
  auto worker = [&] {
    for (uint64_t r; !failed.load() && (r = next.fetch_add(1)) < ranges;) {
      uint64_t off = r * range_bytes, len = std::min(range_bytes, info.size - off);
      uint64_t pos = off;
      Status st = client->GetObjectRange(uri, off, len, info.etag, [&](std::string_view piece) -> Status {
        if (failed.load()) return Status::IOError("cancelled: another range failed");
        if (pos + piece.size() > off + len) return Status::IOError("S3 sent more bytes than the range asked for");
        std::memcpy(dest + pos, piece.data(), piece.size());
        pos += piece.size();
        return Status::OK();
      });
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (!failed.exchange(true)) first_error = st;
        return;
      }
    }
  };
  unsigned n = static_cast<unsigned>(std::max<uint64_t>(1, std::min<uint64_t>(parallel, ranges)));
  std::vector<std::thread> threads;
  for (unsigned i = 1; i < n; ++i) threads.emplace_back(worker);
  worker();
  for (auto& t : threads) t.join();
  return first_error;
}

// A single-part upload's ETag is the MD5 of the object (SSE-S3 or none): the
// bytes assembled from ranges are checked against it. Multipart ETags
// ("<md5 of md5s>-<parts>") and SSE-KMS ones cannot be checked this way.
Status VerifySinglePartEtag(const std::string& path, const ObjectInfo& info, std::string_view bytes) {
  const std::string& etag = info.etag;
  if (etag.size() != 32 || etag.find_first_not_of("0123456789abcdef") != std::string::npos) return Status::OK();
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_md5(), nullptr) != 1) return Status::OK();
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) hex += fmt::format("{:02x}", md[i]);
  if (hex == etag) return Status::OK();
  return Status::IOError(fmt::format("{}: the bytes received do not match the object's checksum (ETag {}, received "
                                     "MD5 {}): the transfer was damaged. Run again.",
                                     path, etag, hex));
}

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

class UriEnv final : public Env {
 public:
  UriEnv(Env* local, UriEnvOptions o) : local_(local), o_(std::move(o)) {}

  Result<std::unique_ptr<InputData>> ReadFile(const std::string& path) override {
    Compression c = CompressionForPath(path);
    if (S3Uri::IsS3(path)) return ReadS3(path, c);
    std::string local = LocalPath(path);
    auto in = local_->ReadFile(local);
    if (!in.ok() || c == Compression::kNone) return in;
    auto decoder = NewDecoder(c, local, o_.max_decompressed_bytes);
    std::string out;
    std::string_view bytes = (*in)->bytes();
    for (size_t off = 0; off < bytes.size(); off += 4 << 20) {
      size_t n = std::min<size_t>(4 << 20, bytes.size() - off);
      CM_RETURN_IF_ERROR(decoder->Feed(bytes.substr(off, n), &out));
      (*in)->Release(off, off + n);
    }
    CM_RETURN_IF_ERROR(decoder->Finish());
    return std::unique_ptr<InputData>(new StringInput(std::move(out)));
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

  Result<std::unique_ptr<InputData>> ReadS3(const std::string& path, Compression c) {
    auto uri = S3Uri::Parse(path);
    if (!uri.ok()) return uri.status();
    auto client = Client();
    if (!client.ok()) return client.status();
    auto info = (*client)->HeadObject(*uri);
    if (!info.ok()) return info.status();
    if (c != Compression::kNone) {
      // Compressed streams decode in order: one GET, decoded as it arrives.
      auto decoder = NewDecoder(c, path, o_.max_decompressed_bytes);
      std::string out;
      if (info->size > 0)
        CM_RETURN_IF_ERROR((*client)->GetObjectRange(
          *uri, 0, info->size, info->etag, [&](std::string_view piece) { return decoder->Feed(piece, &out); }));
      CM_RETURN_IF_ERROR(decoder->Finish());
      return std::unique_ptr<InputData>(new StringInput(std::move(out)));
    }
    auto buf = AnonymousInput::Allocate(info->size, path);
    if (!buf.ok()) return buf.status();
    // A damaged transfer (the checksum disagrees) is fetched once more.
    Status verified;
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (info->size > 0)
        CM_RETURN_IF_ERROR(ParallelDownload(client->get(), *uri, *info, o_.range_bytes,
                                            (*client)->config().parallel_requests, (*buf)->data()));
      verified = VerifySinglePartEtag(path, *info, (*buf)->bytes());
      if (verified.ok()) break;
    }
    CM_RETURN_IF_ERROR(verified);
    return std::unique_ptr<InputData>(std::move(buf.value()));
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
