// S3ObjectWriter: one object written as a multipart upload whose parts are
// sent by the writer's own worker threads while the caller keeps appending.
//
// Threading: one caller thread runs Append/Commit/Abort (and the destructor).
// Up to parallel_requests worker threads run UploadPart. They share the part
// queue, the completed parts and the first error under mu_; the caller waits
// on `space_` for a free upload slot (that bound is what keeps memory at about
// (parallel_requests + 1) * part_size), workers wait on `work_` for parts.
// Workers are joined before the upload is completed or aborted, so no part can
// land after an abort and leave an orphaned upload behind.
#include "cloudmerge/aws/s3_object_writer.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

namespace cloudmerge {
namespace {

// S3's limit on the number of parts of one upload.
constexpr int kMaxParts = 10000;

struct PendingPart {
  int number;
  std::string data;
};

class MultipartWriter final : public S3ObjectWriter {
 public:
  MultipartWriter(std::shared_ptr<S3Client> client, S3Uri object)
      : client_(std::move(client)),
        object_(std::move(object)),
        part_size_(std::max<uint64_t>(1, client_->config().part_size)),
        max_in_flight_(std::max(1u, client_->config().parallel_requests)) {}

  ~MultipartWriter() override {
    if (state_ != State::kCommitted) (void)AbortUpload();
  }

  Status Append(std::string_view data) override {
    CM_RETURN_IF_ERROR(CheckUsable("append to"));
    // A part that failed in the background fails the next call.
    if (!upload_id_.empty()) CM_RETURN_IF_ERROR(FailIfError(FirstError()));
    bytes_appended_ += data.size();
    while (!data.empty()) {
      // A full buffer is sent only once more data arrives, so that an object
      // of exactly one part still goes out as a single PutObject.
      if (buffer_.size() == part_size_) CM_RETURN_IF_ERROR(FailIfError(SubmitBuffer()));
      size_t n = std::min<size_t>(data.size(), part_size_ - buffer_.size());
      Reserve(buffer_.size() + n);
      buffer_.append(data.data(), n);
      data.remove_prefix(n);
    }
    return Status::OK();
  }

  Result<ObjectInfo> Commit() override {
    CM_RETURN_IF_ERROR(CheckUsable("commit"));
    if (upload_id_.empty()) return CommitSinglePut();
    CM_RETURN_IF_ERROR(FailIfError(SubmitBuffer()));
    StopWorkers(/*drain=*/true);
    CM_RETURN_IF_ERROR(FailIfError(FirstError()));
    std::sort(completed_.begin(), completed_.end(),
              [](const CompletedPart& a, const CompletedPart& b) { return a.part_number < b.part_number; });
    auto info = client_->CompleteMultipartUpload(object_, upload_id_, completed_);
    if (!info.ok()) return FailIfError(info.status());
    state_ = State::kCommitted;
    upload_id_.clear();
    if (info->size == 0) info->size = bytes_appended_;
    return info;
  }

  Status Abort() override {
    if (state_ == State::kCommitted) return Status::OK();
    if (state_ == State::kOpen) state_ = State::kAborted;  // a failed writer keeps reporting its error
    return AbortUpload();
  }

  uint64_t bytes_appended() const override { return bytes_appended_; }

 private:
  enum class State { kOpen, kFailed, kCommitted, kAborted };

  Status CheckUsable(const char* what) const {
    if (state_ == State::kOpen) return Status::OK();
    if (state_ == State::kFailed) return failure_;
    return Status::Internal(fmt::format("cannot {} {}: the writer was already {}.", what, object_.ToString(),
                                        state_ == State::kCommitted ? "committed" : "aborted"));
  }

  // After any failure the upload is aborted at once (nothing is left behind),
  // and every later call returns the same error.
  Status FailIfError(Status st) {
    if (st.ok()) return st;
    if (failure_.ok()) failure_ = st;
    state_ = State::kFailed;
    (void)AbortUpload();
    return st;
  }

  // Stops the workers (in-flight parts finish first: a part that lands after
  // the abort would leave the upload half alive) and aborts the upload.
  // Idempotent.
  Status AbortUpload() {
    StopWorkers(/*drain=*/false);
    buffer_ = std::string();
    if (upload_id_.empty()) return Status::OK();
    std::string id = std::move(upload_id_);
    upload_id_.clear();
    return client_->AbortMultipartUpload(object_, id);
  }

  // Grows the buffer by doubling but never past one part: std::string's own
  // doubling could reserve up to twice part_size.
  void Reserve(size_t needed) {
    if (needed <= buffer_.capacity()) return;
    buffer_.reserve(std::min<uint64_t>(part_size_, std::max<size_t>(needed, 2 * buffer_.capacity())));
  }

  Result<ObjectInfo> CommitSinglePut() {
    auto info = client_->PutObject(object_, buffer_);
    if (!info.ok()) return FailIfError(info.status());
    state_ = State::kCommitted;
    buffer_.clear();
    buffer_.shrink_to_fit();
    return info;
  }

  // Hands the buffer to the workers as the next part, waiting for a free slot.
  Status SubmitBuffer() {
    if (buffer_.empty()) return Status::OK();
    if (upload_id_.empty()) {
      auto id = client_->CreateMultipartUpload(object_);
      if (!id.ok()) return id.status();
      upload_id_ = std::move(id.value());
      StartWorkers();
    }
    if (next_part_ > kMaxParts)
      return Status::InvalidArgument(fmt::format(
          "S3 upload {}: more than {} parts of {} bytes; S3 allows no more. Raise the part size.",
          object_.ToString(), kMaxParts, part_size_));
    std::unique_lock<std::mutex> lock(mu_);
    space_.wait(lock, [&] { return in_flight_ < max_in_flight_ || !error_.ok(); });
    if (!error_.ok()) return error_;
    queue_.push_back(PendingPart{next_part_++, std::move(buffer_)});
    ++in_flight_;
    lock.unlock();
    work_.notify_one();
    buffer_ = std::string();
    return Status::OK();
  }

  Status FirstError() {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }

  void StartWorkers() {
    for (unsigned i = 0; i < max_in_flight_; ++i) workers_.emplace_back([this] { WorkerLoop(); });
  }

  // drain: finish the queued parts first (Commit); otherwise drop them (Abort).
  void StopWorkers(bool drain) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!drain) {
        in_flight_ -= static_cast<unsigned>(queue_.size());
        queue_.clear();
      }
      stopping_ = true;
    }
    work_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  void WorkerLoop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      work_.wait(lock, [&] { return !queue_.empty() || stopping_; });
      if (queue_.empty()) return;  // stopping, nothing left
      PendingPart part = std::move(queue_.front());
      queue_.pop_front();
      if (!error_.ok()) {  // after a failure, the remaining parts are moot
        --in_flight_;
        space_.notify_all();
        continue;
      }
      lock.unlock();
      auto etag = client_->UploadPart(object_, upload_id_, part.number, part.data);
      part.data = std::string();  // free the memory before waking the producer
      lock.lock();
      if (etag.ok()) {
        completed_.push_back(CompletedPart{part.number, etag.value()});
      } else if (error_.ok()) {
        error_ = etag.status();
        in_flight_ -= static_cast<unsigned>(queue_.size());
        queue_.clear();
      }
      --in_flight_;
      space_.notify_all();
    }
  }

  std::shared_ptr<S3Client> client_;
  S3Uri object_;
  const uint64_t part_size_;
  const unsigned max_in_flight_;

  // Caller thread only.
  State state_ = State::kOpen;
  Status failure_;
  std::string buffer_;
  // Also read by the workers: set before they start, changed only after they were joined.
  std::string upload_id_;
  int next_part_ = 1;
  uint64_t bytes_appended_ = 0;
  std::vector<std::thread> workers_;

  // Shared with the workers, under mu_. completed_ is read by the caller only
  // after the workers were joined.
  std::mutex mu_;
  std::condition_variable work_;
  std::condition_variable space_;
  std::deque<PendingPart> queue_;
  unsigned in_flight_ = 0;  // queued + being uploaded
  bool stopping_ = false;
  Status error_;
  std::vector<CompletedPart> completed_;
};

}  // namespace

std::unique_ptr<S3ObjectWriter> S3ObjectWriter::Open(std::shared_ptr<S3Client> client, S3Uri object) {
  return std::make_unique<MultipartWriter>(std::move(client), std::move(object));
}

}  // namespace cloudmerge
