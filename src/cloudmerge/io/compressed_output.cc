// Compressed output (compressed_output.h).
#include "cloudmerge/io/compressed_output.h"

#include <string>
#include <string_view>

namespace cloudmerge {
namespace {

// An AtomicFile whose bytes are compressed on their way to `base`. Compressed
// output is collected into ~1 MiB appends: the base may be an S3 multipart
// upload or a file, both happier with large writes. Everything up to Commit
// is discarded with `base` when the object is destroyed uncommitted.
class CompressingAtomicFile final : public AtomicFile {
 public:
  CompressingAtomicFile(std::unique_ptr<AtomicFile> base, std::unique_ptr<Encoder> encoder)
      : base_(std::move(base)), encoder_(std::move(encoder)) {}
  Status Append(std::string_view data) override {
    CM_RETURN_IF_ERROR(encoder_->Feed(data, &pending_));
    if (pending_.size() < kFlushBytes) return Status::OK();
    Status st = base_->Append(pending_);
    pending_.clear();
    return st;
  }
  Status Commit() override {
    CM_RETURN_IF_ERROR(encoder_->Finish(&pending_));
    CM_RETURN_IF_ERROR(base_->Append(pending_));
    pending_.clear();
    return base_->Commit();
  }
  bool atomic() const override { return base_->atomic(); }

 private:
  static constexpr size_t kFlushBytes = 1 << 20;
  std::unique_ptr<AtomicFile> base_;
  std::unique_ptr<Encoder> encoder_;
  std::string pending_;
};

}  // namespace

std::unique_ptr<AtomicFile> NewCompressedAtomicFile(std::unique_ptr<AtomicFile> base, Compression c, int level) {
  if (c == Compression::kNone) return base;
  return std::unique_ptr<AtomicFile>(new CompressingAtomicFile(std::move(base), NewEncoder(c, level)));
}

}  // namespace cloudmerge
