// BackgroundQuoteCheck: looks for a '"' in a mapped input's body on its own
// thread, just ahead of the threads that scan it.
//
// Why: a body with no '"' at all can be split at line ends and scanned in
// parallel (table_scan.h), and knowing that takes reading the whole body. For a
// file bigger than the page cache, checking before the scan meant reading it
// from disk twice (with the line-end search at open, 41-55 s at 10^9 rows per
// side: docs/benchmarks.md, fourteenth session). Checked here, a little ahead
// of the scanners, the file comes from disk once, and the check warms the pages
// the scan reads next.
//
// The check runs at most `lookahead` bytes past the furthest point a reader has
// waited for (so that its pages are still cached when the scan gets there),
// unless Finish() asks for the whole body. Each window checked is given back
// (InputData::Release), so checking does not make the file resident.
//
// Thread safety: every method may be called from any thread. The input and the
// bytes must outlive the object; the destructor stops and joins the thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <string_view>
#include <thread>

#include "cloudmerge/io/env.h"

namespace cloudmerge {

class BackgroundQuoteCheck {
 public:
  static constexpr size_t kNone = static_cast<size_t>(-1);

  // Checks data[begin, data.size()). input (may be null) gets each checked window back.
  BackgroundQuoteCheck(InputData* input, std::string_view data, size_t begin, size_t lookahead);
  ~BackgroundQuoteCheck();
  BackgroundQuoteCheck(const BackgroundQuoteCheck&) = delete;
  BackgroundQuoteCheck& operator=(const BackgroundQuoteCheck&) = delete;

  // Blocks until [begin, upto) is checked. True when no '"' has been found so
  // far (so none in [begin, upto)); false once one has been found anywhere.
  bool WaitQuoteFree(size_t upto);
  // Checks to the end: the offset of the first '"', or kNone.
  size_t Finish();

 private:
  void Run();

  InputData* const input_;
  const std::string_view data_;
  const size_t lookahead_;
  std::mutex mu_;
  std::condition_variable cv_;
  size_t checked_;      // [begin, checked_) holds no '"' (data_.size() once one is found)
  size_t wanted_;       // the furthest offset a reader has waited for
  size_t quote_ = kNone;
  bool all_ = false;    // Finish(): check to the end, however far ahead of the readers
  bool stop_ = false;   // destructor
  std::thread thread_;  // last: started once the state above is set
};

}  // namespace cloudmerge
