// BackgroundQuoteCheck (engine/quote_check.h): what a reader waiting for the
// check is told, before and after the first '"', and that every window checked
// is given back to the input.
#include <gtest/gtest.h>

#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "cloudmerge/engine/quote_check.h"

namespace cloudmerge {
namespace {

// An input that records what was given back.
class RecordingInput : public InputData {
 public:
  explicit RecordingInput(std::string bytes) : bytes_(std::move(bytes)) {}
  std::string_view bytes() const override { return bytes_; }
  void Release(size_t begin, size_t end) override {
    std::lock_guard<std::mutex> lock(mu_);
    released_.emplace_back(begin, end);
  }
  size_t ReleasedBytes() {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (auto [b, e] : released_) n += e - b;
    return n;
  }

 private:
  std::string bytes_;
  std::mutex mu_;
  std::vector<std::pair<size_t, size_t>> released_;
};

TEST(BackgroundQuoteCheck, QuoteFreeBodyPassesEveryWaitAndIsGivenBack) {
  std::string body(size_t{20} << 20, 'a');  // several windows
  RecordingInput input("ID\n" + body);
  BackgroundQuoteCheck check(&input, input.bytes(), 3, size_t{1} << 20);
  EXPECT_TRUE(check.WaitQuoteFree(4));
  EXPECT_TRUE(check.WaitQuoteFree(input.bytes().size() / 2));
  EXPECT_TRUE(check.WaitQuoteFree(input.bytes().size()));
  EXPECT_EQ(check.Finish(), BackgroundQuoteCheck::kNone);
  EXPECT_EQ(input.ReleasedBytes(), body.size());
}

TEST(BackgroundQuoteCheck, AQuoteFailsEveryWaitFromWhenItIsFound) {
  std::string bytes(size_t{30} << 20, 'a');
  const size_t quote_at = (size_t{25} << 20) + 7;
  bytes[quote_at] = '"';
  RecordingInput input(bytes);
  BackgroundQuoteCheck check(&input, input.bytes(), 0, size_t{1} << 20);
  // Before the quote's window the body is known to be quote-free...
  EXPECT_TRUE(check.WaitQuoteFree(size_t{4} << 20));
  // ...a wait past it cannot be answered yes, and no later wait is.
  EXPECT_FALSE(check.WaitQuoteFree(quote_at + 1));
  EXPECT_FALSE(check.WaitQuoteFree(size_t{1} << 20));
  EXPECT_EQ(check.Finish(), quote_at);
}

TEST(BackgroundQuoteCheck, FinishChecksPastTheLookaheadWithoutAReader) {
  std::string bytes(size_t{40} << 20, 'a');
  bytes.back() = '"';
  RecordingInput input(bytes);
  BackgroundQuoteCheck check(&input, input.bytes(), 0, 1);  // would stop at once without Finish
  EXPECT_EQ(check.Finish(), bytes.size() - 1);
}

TEST(BackgroundQuoteCheck, DestroyedWhileWaitingForAReaderStops) {
  std::string bytes(size_t{40} << 20, 'a');
  RecordingInput input(bytes);
  { BackgroundQuoteCheck check(&input, input.bytes(), 0, 1); }  // must join, not hang
  EXPECT_LT(input.ReleasedBytes(), bytes.size());
}

TEST(BackgroundQuoteCheck, EmptyBodyIsQuoteFree) {
  RecordingInput input("ID\n");
  BackgroundQuoteCheck check(&input, input.bytes(), 3, 1);
  EXPECT_TRUE(check.WaitQuoteFree(3));
  EXPECT_EQ(check.Finish(), BackgroundQuoteCheck::kNone);
}

}  // namespace
}  // namespace cloudmerge
