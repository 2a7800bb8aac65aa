#include "cloudmerge/engine/quote_check.h"

#include <algorithm>
#include <cstring>

namespace cloudmerge {
namespace {

// A window: big enough that its lock and page release cost nothing, small
// enough that a reader waiting for the check waits little, and a fraction of
// the lookahead so that the check keeps to it.
size_t WindowFor(size_t lookahead) { return std::clamp<size_t>(lookahead / 4, 4096, size_t{8} << 20); }

}  // namespace

BackgroundQuoteCheck::BackgroundQuoteCheck(InputData* input, std::string_view data, size_t begin, size_t lookahead)
    : input_(input), data_(data), lookahead_(lookahead), checked_(std::min(begin, data.size())), wanted_(checked_) {
  if (checked_ < data_.size()) thread_ = std::thread([this] { Run(); });
}

BackgroundQuoteCheck::~BackgroundQuoteCheck() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void BackgroundQuoteCheck::Run() {
  const size_t n = data_.size();
  size_t pos;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pos = checked_;
  }
  while (pos < n) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || all_ || pos < wanted_ + lookahead_; });
      if (stop_) return;
    }
    const size_t end = std::min(n, pos + WindowFor(lookahead_));
    const void* quote = std::memchr(data_.data() + pos, '"', end - pos);
    if (input_) input_->Release(pos, end);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (quote) {
        quote_ = static_cast<size_t>(static_cast<const char*>(quote) - data_.data());
        checked_ = n;  // the answer is known: not quote-free
      } else {
        checked_ = end;
      }
    }
    cv_.notify_all();
    if (quote) return;
    pos = end;
  }
}

bool BackgroundQuoteCheck::WaitQuoteFree(size_t upto) {
  std::unique_lock<std::mutex> lock(mu_);
  if (upto > wanted_) {
    wanted_ = upto;
    cv_.notify_all();
  }
  cv_.wait(lock, [&] { return quote_ != kNone || checked_ >= std::min(upto, data_.size()); });
  return quote_ == kNone;
}

size_t BackgroundQuoteCheck::Finish() {
  std::unique_lock<std::mutex> lock(mu_);
  all_ = true;
  cv_.notify_all();
  cv_.wait(lock, [&] { return checked_ >= data_.size(); });
  return quote_;
}

}  // namespace cloudmerge
