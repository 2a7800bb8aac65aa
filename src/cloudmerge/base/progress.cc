#include "cloudmerge/base/progress.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "cloudmerge/base/memory_info.h"

namespace cloudmerge {

namespace {

using Clock = std::chrono::steady_clock;

// 1234567 -> "1.2 M" (SI prefixes, for row counts and rates).
std::string SiCount(double v) {
  static constexpr const char* kPrefixes[] = {"", "k", "M", "G", "T", "P"};
  size_t p = 0;
  while (p + 1 < std::size(kPrefixes) && v >= 999.95) {
    v /= 1000;
    ++p;
  }
  return p == 0 ? fmt::format("{:.0f} ", v) : fmt::format("{:.1f} {}", v, kPrefixes[p]);
}

// 0.62 -> "0.6s", 75 -> "1m15s", 3700 -> "1h01m".
std::string Duration(double seconds) {
  seconds = std::max(0.0, seconds);
  if (seconds < 9.95) return fmt::format("{:.1f}s", seconds);
  auto s = static_cast<uint64_t>(std::round(seconds));
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, s / 60 % 60);
}

// JSON string body for a phase name (names are the engine's own words, but a
// quote or a control character must still not break the line).
std::string JsonEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20) {
      out += fmt::format("\\u{:04x}", u);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

class NullProgress final : public Progress {
 public:
  void BeginPhase(std::string_view, uint64_t, uint64_t) override {}
  void Add(uint64_t, uint64_t) override {}
  void EndPhase() override {}
};

// The live implementation. Workers only touch rows_/bytes_ (relaxed atomics:
// the renderer needs a recent value, not a consistent pair). Everything else —
// the phase's name and totals, the FILE*, the renderer's schedule — is guarded
// by mu_; the renderer thread sleeps on cv_ until its next deadline, and
// BeginPhase/EndPhase/the destructor wake it so that it re-plans at once.
class ThreadedProgress final : public Progress {
 public:
  // quiet_start: write nothing during the first interval (see Create).
  ThreadedProgress(Style style, FILE* out, double interval_seconds, bool quiet_start)
      : style_(style),
        out_(out),
        interval_(std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double>(std::max(interval_seconds, 0.01)))),
        quiet_until_(quiet_start ? Clock::now() + interval_ : Clock::time_point::min()) {
    thread_ = std::thread([this] { Run(); });
  }

  ~ThreadedProgress() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      // A phase still open here was cut short (an error): leave its last state
      // on screen, on a line of its own so that the error message that follows
      // starts at column 0. Machine readers get no "done" line for it.
      if (active_ && style_ == Style::kBar) Render(/*final=*/false, Clock::now(), /*newline=*/true);
      active_ = false;
    }
    cv_.notify_all();
    thread_.join();
  }

  void BeginPhase(std::string_view name, uint64_t total_bytes, uint64_t total_rows) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (active_) EndLocked();
      name_.assign(name);
      total_bytes_ = total_bytes;
      total_rows_ = total_rows;
      rows_.store(0, std::memory_order_relaxed);
      bytes_.store(0, std::memory_order_relaxed);
      start_ = Clock::now();
      active_ = true;
      ++generation_;
    }
    cv_.notify_all();
  }

  void Add(uint64_t rows, uint64_t bytes) override {
    rows_.fetch_add(rows, std::memory_order_relaxed);
    bytes_.fetch_add(bytes, std::memory_order_relaxed);
  }

  void EndPhase() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!active_) return;
      EndLocked();
    }
    cv_.notify_all();
  }

 private:
  void EndLocked() {
    Render(/*final=*/true, Clock::now(), /*newline=*/style_ == Style::kBar);
    active_ = false;
    ++generation_;
  }

  // The renderer: one line every interval while a phase is open. A phase's
  // first periodic line comes one interval after it begins (short phases show
  // only their final line).
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    uint64_t seen = generation_;
    Clock::time_point deadline = Clock::now() + interval_;
    while (!stop_) {
      cv_.wait_until(lock, deadline, [&] { return stop_ || generation_ != seen; });
      if (stop_) break;
      Clock::time_point now = Clock::now();
      if (generation_ != seen) {
        seen = generation_;
        deadline = now + interval_;
        continue;
      }
      if (now < deadline) continue;  // spurious wake-up
      if (active_) Render(/*final=*/false, now, /*newline=*/false);
      deadline = now + interval_;
    }
  }

  // REQUIRES: mu_ held, a phase open.
  void Render(bool final, Clock::time_point now, bool newline) {
    if (now < quiet_until_) return;
    uint64_t rows = rows_.load(std::memory_order_relaxed);
    uint64_t bytes = bytes_.load(std::memory_order_relaxed);
    double elapsed = std::chrono::duration<double>(now - start_).count();
    double rows_per_s = elapsed > 0 ? static_cast<double>(rows) / elapsed : 0;
    double bytes_per_s = elapsed > 0 ? static_cast<double>(bytes) / elapsed : 0;
    // Fraction and ETA from bytes when their total is known (bytes track the
    // work best: rows vary in width), else from rows, else none. The totals
    // are estimates (a compressed input's decoded size is a guess), so the
    // fraction is clamped and a finished phase is 100% by definition.
    bool known = total_bytes_ > 0 || total_rows_ > 0;
    double fraction = 0, eta = 0;
    if (known) {
      fraction = total_bytes_ > 0 ? static_cast<double>(bytes) / static_cast<double>(total_bytes_)
                                  : static_cast<double>(rows) / static_cast<double>(total_rows_);
      fraction = final ? 1.0 : std::clamp(fraction, 0.0, 1.0);
      double rate = total_bytes_ > 0 ? bytes_per_s : rows_per_s;
      double left = total_bytes_ > 0 ? static_cast<double>(total_bytes_ - std::min(bytes, total_bytes_))
                                     : static_cast<double>(total_rows_ - std::min(rows, total_rows_));
      eta = final ? 0 : rate > 0 ? left / rate : -1;  // -1: no rate yet
    }
    std::string line;
    if (style_ == Style::kLines) {
      line = fmt::format(
          "{{\"progress\":\"{}\",\"rows\":{},\"bytes\":{},\"total_rows\":{},\"total_bytes\":{},\"fraction\":{},"
          "\"rows_per_s\":{:.0f},\"bytes_per_s\":{:.0f},\"eta_s\":{},\"elapsed_s\":{:.3f},\"done\":{}}}\n",
          JsonEscape(name_), rows, bytes, total_rows_, total_bytes_, known ? fmt::format("{:.4f}", fraction) : "null",
          rows_per_s, bytes_per_s, known && eta >= 0 ? fmt::format("{:.1f}", eta) : "null", elapsed,
          final ? "true" : "false");
    } else {
      // "\r" + clear-line redraws the phase's line in place.
      line = fmt::format("\r\x1b[2K{:<12}", name_);
      if (known) {
        constexpr int kWidth = 20;
        int filled = static_cast<int>(fraction * kWidth);
        line += fmt::format(" [{}{}] {:3.0f}%", std::string(filled, '#'), std::string(kWidth - filled, '.'),
                            std::floor(fraction * 100));
      }
      line += fmt::format("  {}rows  {}  {}rows/s  {}/s", SiCount(static_cast<double>(rows)), FormatBytes(bytes),
                          SiCount(rows_per_s), FormatBytes(static_cast<uint64_t>(bytes_per_s)));
      if (final) line += fmt::format("  done in {}", Duration(elapsed));
      else if (known && eta >= 0) line += fmt::format("  ETA {}", Duration(eta));
      else line += fmt::format("  {}", Duration(elapsed));
      if (newline) line += "\n";
    }
    std::fwrite(line.data(), 1, line.size(), out_);
    std::fflush(out_);
  }

  const Style style_;
  FILE* const out_;
  const Clock::duration interval_;
  const Clock::time_point quiet_until_;
  std::atomic<uint64_t> rows_{0}, bytes_{0};

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;         // guarded by mu_
  bool active_ = false;       // guarded by mu_: a phase is open
  uint64_t generation_ = 0;   // guarded by mu_: bumped by BeginPhase/EndPhase
  std::string name_;          // guarded by mu_
  uint64_t total_bytes_ = 0, total_rows_ = 0;  // guarded by mu_
  Clock::time_point start_;   // guarded by mu_
  std::thread thread_;        // last: started once everything above exists
};

}  // namespace

std::unique_ptr<Progress> Progress::Create(Style style, FILE* out, double interval_seconds) {
  // kAuto's JSON lines are the default whenever stderr is not a terminal: in
  // scripts, CI logs, and every test that reads a merge's stderr. A run that
  // ends within one interval says nothing there (not even its "done" lines),
  // so that short merges keep a quiet stderr — just an error message when
  // there is one. Asking for kLines explicitly gets every line.
  bool quiet_start = false;
  if (style == Style::kAuto) {
    bool terminal = out != nullptr && isatty(fileno(out));
    style = terminal ? Style::kBar : Style::kLines;
    quiet_start = !terminal;
  }
  if (style == Style::kNone || out == nullptr) return std::make_unique<NullProgress>();
  return std::make_unique<ThreadedProgress>(style, out, interval_seconds, quiet_start);
}

}  // namespace cloudmerge
