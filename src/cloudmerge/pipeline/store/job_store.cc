// Local-directory and S3 JobStores.
#include "cloudmerge/pipeline/store/job_store.h"
#include "cloudmerge/pipeline/store/s3_job_store.h"
#include "cloudmerge/pipeline/store/confined_env.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <sstream>

#include <fmt/format.h>

namespace cloudmerge {
namespace fs = std::filesystem;

Status CheckKey(const std::string& key) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidInput(fmt::format(
        "the object name \"{}\" is not allowed ({}). Use plain names made of letters, digits, '-', '_', '.' "
        "and '/' between folders.",
        key.size() > 200 ? key.substr(0, 200) + "..." : key, why));
  };
  if (key.empty()) return bad("empty");
  if (key.size() > 1024) return bad("longer than 1024 bytes");
  if (key.front() == '/') return bad("absolute path");
  for (unsigned char c : key) {
    if (c < 0x20 || c == 0x7f) return bad("control character");
    if (c == '\\') return bad("backslash");
  }
  std::stringstream ss(key);
  std::string seg;
  size_t pos = 0;
  while (pos <= key.size()) {
    size_t next = key.find('/', pos);
    if (next == std::string::npos) next = key.size();
    std::string part = key.substr(pos, next - pos);
    bool last = next == key.size();
    if (part == "..") return bad("\"..\" would leave the job's folder");
    if (part == ".") return bad("\".\" segment");
    if (part.empty() && !last) return bad("empty folder name");
    pos = next + 1;
  }
  return Status::OK();
}

namespace {

Status LocalError(const std::string& what, const fs::path& p, const std::error_code& ec) {
  return Status::IOError(fmt::format("cannot {} {}: {}", what, p.string(), ec.message()));
}

// The local store's view of its Env: every write goes through `base` (so a
// fault-injecting Env reaches the store), and a key's path is written as
// itself, never resolved: Env's atomic output writes a temporary beside it
// and renames it over the key, so a symbolic link or a FIFO planted at a key
// in the shared folder is replaced, never written through.
class StoreEnv final : public Env {
 public:
  explicit StoreEnv(Env* base) : base_(base) {}
  Result<std::unique_ptr<InputData>> ReadFile(const std::string& path) override { return base_->ReadFile(path); }
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    return base_->NewWritableFile(path);
  }
  Status RenameFile(const std::string& from, const std::string& to) override { return base_->RenameFile(from, to); }
  Status RemoveFile(const std::string& path) override { return base_->RemoveFile(path); }
  Result<OutputTarget> ResolveOutput(const std::string& path) override { return OutputTarget{path}; }

 private:
  Env* base_;
};

class LocalJobStore final : public JobStore {
 public:
  LocalJobStore(std::string dir, Env* env) : root_(fs::absolute(dir).lexically_normal()), env_(env) {}

  std::string Uri(const std::string& key) const override { return (root_ / key).string(); }
  std::string Describe() const override { return "local directory " + root_.string(); }

  Result<std::vector<StoredObject>> List(const std::string& prefix) override {
    std::vector<StoredObject> out;
    std::error_code ec;
    if (!fs::exists(root_, ec)) return out;
    // Links are listed as what they are, not followed (into folders neither).
    for (auto it = fs::recursive_directory_iterator(root_, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_directory(ec) && !it->is_symlink(ec)) continue;
      std::string key = fs::relative(it->path(), root_, ec).generic_string();
      if (key.rfind(prefix, 0) != 0) continue;
      if (key.find(".cloudmerge-tmp-") != std::string::npos) continue;  // a result being written
      auto obj = Stat(key);
      if (obj) out.push_back(*obj);
    }
    if (ec) return LocalError("list", root_, ec);
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.key < b.key; });
    return out;
  }

  Result<std::optional<StoredObject>> Head(const std::string& key) override {
    CM_RETURN_IF_ERROR(CheckKey(key));
    return Stat(key);
  }

  Result<std::string> Get(const std::string& key) override { return Read(key, std::string::npos); }

  Result<std::string> GetHead(const std::string& key, size_t max_bytes) override { return Read(key, max_bytes); }

  // Env's atomic output: a temporary beside the key (.cloudmerge-tmp-<pid>-<hex>),
  // renamed into place on Commit, removed on failure or a fatal signal.
  Status Put(const std::string& key, const std::string& body, const std::string&) override {
    CM_RETURN_IF_ERROR(CheckKey(key));
    CM_RETURN_IF_ERROR(CreateParent(key));
    auto out = AtomicOutput::Open(&env_, (root_ / key).string(), /*compress_by_name=*/false);
    if (!out.ok()) return out.status();
    CM_RETURN_IF_ERROR((*out)->Append(body));
    return (*out)->Commit();
  }

  Result<bool> CreateIfAbsent(const std::string& key, const std::string& body) override {
    CM_RETURN_IF_ERROR(CheckKey(key));
    CM_RETURN_IF_ERROR(CreateParent(key));
    // A complete temporary, written through the Env, then link(2)ed to the
    // key: link fails with EEXIST when the marker exists, so the creation is
    // atomic and the marker complete from the moment it appears. (Env has no
    // link: it is this store's exactly-once primitive, see job_store.h.)
    std::string dest = (root_ / key).string();
    std::string tmp = AtomicTemporaryPath(dest);
    auto file = env_.NewWritableFile(tmp);
    if (!file.ok()) return file.status();
    Status written = (*file)->Append(body);
    Status closed = (*file)->Close();
    file->reset();
    if (written.ok()) written = closed;
    if (!written.ok()) {
      (void)env_.RemoveFile(tmp);
      return written;
    }
    int rc = ::link(tmp.c_str(), dest.c_str());
    int err = errno;
    (void)env_.RemoveFile(tmp);
    if (rc == 0) return true;
    if (err == EEXIST) return false;
    return Status::IOError(fmt::format("cannot create {}: {}", dest, std::strerror(err)));
  }

  Status Delete(const std::string& key) override {
    CM_RETURN_IF_ERROR(CheckKey(key));
    return env_.RemoveFile((root_ / key).string());  // already gone: OK
  }

  Status AbortAbandonedWrites(const std::string& prefix) override {
    CM_RETURN_IF_ERROR(CheckKey(prefix));
    std::error_code ec;
    fs::path dir = root_ / prefix;
    if (!fs::is_directory(dir, ec)) return Status::OK();
    for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
      if (it->path().filename().string().find(".cloudmerge-tmp-") != std::string::npos)
        (void)env_.RemoveFile(it->path().string());
    }
    return Status::OK();
  }

 private:
  // lstat: a link is described, not followed.
  std::optional<StoredObject> Stat(const std::string& key) const {
    struct stat st {};
    if (::lstat((root_ / key).c_str(), &st) != 0 || S_ISDIR(st.st_mode)) return std::nullopt;
    long long mtime_ns = static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
    StoredObject o;
    o.key = key;
    o.size = static_cast<uint64_t>(st.st_size);
    o.etag = fmt::format("{}-{}-{}", mtime_ns, st.st_size, static_cast<unsigned long long>(st.st_ino));
    o.modified = std::to_string(mtime_ns);
    if (S_ISLNK(st.st_mode)) o.kind = "a symbolic link";
    else if (S_ISFIFO(st.st_mode)) o.kind = "a FIFO (named pipe)";
    else if (!S_ISREG(st.st_mode)) o.kind = "not a regular file";
    return o;
  }

  // At most max_bytes of a regular file below the root, no link followed.
  Result<std::string> Read(const std::string& key, size_t max_bytes) {
    CM_RETURN_IF_ERROR(CheckKey(key));
    auto fd = OpenBeneath(root_.string(), key);
    if (!fd.ok()) {
      if (fd.status().code() == Status::Code::kNotFound)
        return Status::NotFound(fmt::format("cannot read {}: no such file", (root_ / key).string()));
      return fd.status();
    }
    std::string out;
    char buf[65536];
    while (out.size() < max_bytes) {
      ssize_t n = ::read(*fd, buf, std::min(sizeof buf, max_bytes - out.size()));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int err = errno;
        ::close(*fd);
        return Status::IOError(fmt::format("cannot read {}: {}", (root_ / key).string(), std::strerror(err)));
      }
      if (n == 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    ::close(*fd);
    return out;
  }

  // Folders are not objects: created here, listed with List.
  Status CreateParent(const std::string& key) {
    fs::path dir = (root_ / key).parent_path();
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return LocalError("create folder", dir, ec);
    return Status::OK();
  }

  fs::path root_;
  StoreEnv env_;
};

class S3JobStore final : public JobStore {
 public:
  S3JobStore(std::shared_ptr<S3Client> c, std::string bucket, std::string prefix)
      : c_(std::move(c)), bucket_(std::move(bucket)), prefix_(std::move(prefix)) {
    if (!prefix_.empty() && prefix_.back() != '/') prefix_ += '/';
  }

  std::string Uri(const std::string& key) const override { return "s3://" + bucket_ + "/" + prefix_ + key; }
  std::string Describe() const override { return "s3://" + bucket_ + "/" + prefix_; }

  Result<std::vector<StoredObject>> List(const std::string& prefix) override {
    auto listed = c_->ListObjects(bucket_, prefix_ + prefix);
    if (!listed.ok()) return listed.status();
    std::vector<StoredObject> out;
    for (auto& o : *listed) {
      StoredObject stored;
      stored.key = o.key.substr(prefix_.size());
      stored.size = o.size;
      stored.etag = o.etag;
      out.push_back(std::move(stored));
    }
    return out;
  }

  Result<std::optional<StoredObject>> Head(const std::string& key) override {
    CM_RETURN_IF_ERROR(CheckKey(key));
    auto info = c_->HeadObject(Object(key));
    if (!info.ok()) {
      if (IsNotFound(info.status())) return std::optional<StoredObject>();
      return info.status();
    }
    return std::optional<StoredObject>(StoredObject{key, info->size, info->etag, "", info->last_modified});
  }

  Result<std::string> Get(const std::string& key) override {
    CM_RETURN_IF_ERROR(CheckKey(key));
    return c_->GetObject(Object(key));
  }

  Result<std::string> GetHead(const std::string& key, size_t max_bytes) override {
    CM_RETURN_IF_ERROR(CheckKey(key));
    auto info = c_->HeadObject(Object(key));
    if (!info.ok()) return info.status();
    std::string out;
    uint64_t n = std::min<uint64_t>(info->size, max_bytes);
    if (n == 0) return out;
    CM_RETURN_IF_ERROR(c_->GetObjectRange(Object(key), 0, n, info->etag, [&](std::string_view piece) {
      out.append(piece);
      return Status::OK();
    }));
    return out;
  }

  Status Put(const std::string& key, const std::string& body, const std::string& content_type) override {
    CM_RETURN_IF_ERROR(CheckKey(key));
    auto r = c_->PutObject(Object(key), body, content_type);
    return r.ok() ? Status::OK() : r.status();
  }

  Result<bool> CreateIfAbsent(const std::string& key, const std::string& body) override {
    CM_RETURN_IF_ERROR(CheckKey(key));
    return c_->PutObjectIfAbsent(Object(key), body);
  }

  Status Delete(const std::string& key) override {
    CM_RETURN_IF_ERROR(CheckKey(key));
    return c_->DeleteObject(Object(key));
  }

  Status AbortAbandonedWrites(const std::string& prefix) override {
    CM_RETURN_IF_ERROR(CheckKey(prefix));
    auto uploads = c_->ListMultipartUploads(bucket_, prefix_ + prefix);
    if (!uploads.ok()) return uploads.status();
    for (const auto& [key, upload_id] : *uploads) CM_RETURN_IF_ERROR(c_->AbortMultipartUpload(S3Uri{bucket_, key}, upload_id));
    return Status::OK();
  }

 private:
  S3Uri Object(const std::string& key) const { return S3Uri{bucket_, prefix_ + key}; }
  static bool IsNotFound(const Status& s) { return s.code() == Status::Code::kNotFound; }

  std::shared_ptr<S3Client> c_;
  std::string bucket_;
  std::string prefix_;
};

}  // namespace

std::unique_ptr<JobStore> NewLocalJobStore(std::string dir, Env* env) {
  return std::make_unique<LocalJobStore>(std::move(dir), env ? env : Env::Default());
}
std::unique_ptr<JobStore> NewS3JobStore(std::shared_ptr<S3Client> client, std::string bucket, std::string prefix) {
  return std::make_unique<S3JobStore>(std::move(client), std::move(bucket), std::move(prefix));
}

}  // namespace cloudmerge
