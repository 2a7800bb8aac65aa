// Progress: what each style writes (JSON lines, an in-place bar, nothing),
// when it writes it, and that concurrent Add calls lose nothing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cloudmerge/base/progress.h"

namespace cloudmerge {
namespace {

using std::chrono::milliseconds;
using Json = nlohmann::json;

// A temporary file for a Progress to write to, read back through its
// descriptor (pread), which does not disturb the writer's FILE* buffer: the
// writer flushes after every line.
class Sink {
 public:
  Sink() : f_(std::tmpfile()) {}
  ~Sink() { std::fclose(f_); }
  FILE* file() { return f_; }
  std::string Contents() const {
    std::string out;
    char buf[4096];
    for (off_t off = 0;;) {
      ssize_t n = pread(fileno(f_), buf, sizeof buf, off);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
      off += n;
    }
    return out;
  }
  std::vector<Json> JsonLines() const {
    std::vector<Json> lines;
    std::string text = Contents();
    size_t begin = 0;
    while (begin < text.size()) {
      size_t end = text.find('\n', begin);
      EXPECT_NE(end, std::string::npos) << "every line ends with a newline: " << text;
      if (end == std::string::npos) break;
      std::string line = text.substr(begin, end - begin);
      Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
      EXPECT_FALSE(j.is_discarded()) << "not JSON: " << line;
      if (!j.is_discarded()) lines.push_back(j);
      begin = end + 1;
    }
    return lines;
  }

 private:
  FILE* f_;
};

// Every key of a kLines object, with its JSON type.
void ExpectProgressLineSchema(const Json& j) {
  ASSERT_TRUE(j.is_object()) << j;
  EXPECT_TRUE(j["progress"].is_string()) << j;
  for (const char* k : {"rows", "bytes", "total_rows", "total_bytes"}) EXPECT_TRUE(j[k].is_number_unsigned()) << k << j;
  for (const char* k : {"rows_per_s", "bytes_per_s", "elapsed_s"}) {
    EXPECT_TRUE(j[k].is_number()) << k << j;
    EXPECT_GE(j[k].get<double>(), 0) << k << j;
  }
  EXPECT_TRUE(j["fraction"].is_number() || j["fraction"].is_null()) << j;
  EXPECT_TRUE(j["eta_s"].is_number() || j["eta_s"].is_null()) << j;
  EXPECT_TRUE(j["done"].is_boolean()) << j;
  EXPECT_EQ(j.size(), 11u) << "no unexpected keys: " << j;
}

TEST(Progress, LinesAreJsonWithTheDocumentedFields) {
  Sink sink;
  {
    auto p = Progress::Create(Progress::Style::kLines, sink.file(), 0.05);
    p->BeginPhase("read y", /*total_bytes=*/1000, /*total_rows=*/100);
    p->Add(50, 500);
    std::this_thread::sleep_for(milliseconds(400));
    p->EndPhase();
    p->BeginPhase("join", 0, 0);  // totals unknown
    p->Add(7, 70);
    p->EndPhase();
  }
  std::vector<Json> lines = sink.JsonLines();
  ASSERT_GE(lines.size(), 3u) << sink.Contents();
  for (const Json& j : lines) ExpectProgressLineSchema(j);

  // Periodic lines of "read y": half done by bytes, with an ETA.
  const Json& first = lines.front();
  EXPECT_EQ(first["progress"], "read y");
  EXPECT_EQ(first["done"], false);
  EXPECT_EQ(first["rows"], 50);
  EXPECT_EQ(first["bytes"], 500);
  EXPECT_EQ(first["total_bytes"], 1000);
  EXPECT_EQ(first["total_rows"], 100);
  EXPECT_DOUBLE_EQ(first["fraction"].get<double>(), 0.5);
  EXPECT_GT(first["rows_per_s"].get<double>(), 0);
  EXPECT_GT(first["bytes_per_s"].get<double>(), 0);
  ASSERT_TRUE(first["eta_s"].is_number());
  EXPECT_GT(first["eta_s"].get<double>(), 0);
  EXPECT_GT(first["elapsed_s"].get<double>(), 0.03);

  // Exactly one final line per phase, the last of the phase.
  std::vector<Json> done;
  for (const Json& j : lines)
    if (j["done"] == true) done.push_back(j);
  ASSERT_EQ(done.size(), 2u) << sink.Contents();
  EXPECT_EQ(done[0]["progress"], "read y");
  EXPECT_DOUBLE_EQ(done[0]["fraction"].get<double>(), 1.0);
  EXPECT_EQ(done[0]["eta_s"], 0);
  EXPECT_GE(done[0]["elapsed_s"].get<double>(), 0.35);
  EXPECT_EQ(done[1]["progress"], "join");
  EXPECT_EQ(done[1]["rows"], 7);
  EXPECT_EQ(done[1]["bytes"], 70);
  EXPECT_TRUE(done[1]["fraction"].is_null()) << "no fraction without totals";
  EXPECT_TRUE(done[1]["eta_s"].is_null()) << "no ETA without totals";
  EXPECT_EQ(lines.back(), done[1]);
}

TEST(Progress, FractionFromRowsWhenOnlyRowsAreKnown) {
  Sink sink;
  {
    auto p = Progress::Create(Progress::Style::kLines, sink.file(), 0.05);
    p->BeginPhase("merge runs", 0, 400);
    p->Add(100, 12345);
    std::this_thread::sleep_for(milliseconds(200));
  }
  std::vector<Json> lines = sink.JsonLines();
  ASSERT_FALSE(lines.empty());
  EXPECT_DOUBLE_EQ(lines[0]["fraction"].get<double>(), 0.25);
  // A phase cut short (destroyed while open, an error) gets no "done" line.
  for (const Json& j : lines) EXPECT_EQ(j["done"], false) << j;
}

TEST(Progress, PeriodicLinesFollowTheInterval) {
  Sink sink;
  auto p = Progress::Create(Progress::Style::kLines, sink.file(), 0.1);
  p->BeginPhase("probe", 0, 0);
  std::this_thread::sleep_for(milliseconds(1050));
  size_t n = sink.JsonLines().size();
  p.reset();
  EXPECT_GE(n, 2u) << "about one line per 0.1 s";
  EXPECT_LE(n, 11u) << "no more than one line per interval";
}

TEST(Progress, AutoOnAFileThatIsNotATerminalWritesLinesAfterTheFirstInterval) {
  Sink sink;
  {
    auto p = Progress::Create(Progress::Style::kAuto, sink.file(), 0.3);
    p->BeginPhase("read y", 10, 0);
    p->Add(1, 10);
    p->EndPhase();  // within the first interval: a short run stays quiet
    EXPECT_EQ(sink.Contents(), "");
    std::this_thread::sleep_for(milliseconds(400));
    p->BeginPhase("read x", 10, 0);
    p->Add(1, 10);
    p->EndPhase();
  }
  std::vector<Json> lines = sink.JsonLines();
  ASSERT_EQ(lines.size(), 1u) << sink.Contents();
  EXPECT_EQ(lines[0]["progress"], "read x");
  EXPECT_EQ(lines[0]["done"], true);
}

TEST(Progress, ExplicitLinesReportEvenAShortRun) {
  Sink sink;
  {
    auto p = Progress::Create(Progress::Style::kLines, sink.file(), 10);
    p->BeginPhase("read y", 10, 0);
    p->EndPhase();
  }
  EXPECT_EQ(sink.JsonLines().size(), 1u) << sink.Contents();
}

TEST(Progress, NoneWritesNothing) {
  Sink sink;
  {
    auto p = Progress::Create(Progress::Style::kNone, sink.file(), 0.01);
    p->BeginPhase("join", 100, 10);
    p->Add(5, 50);
    std::this_thread::sleep_for(milliseconds(100));
    p->EndPhase();
  }
  EXPECT_EQ(sink.Contents(), "");
}

TEST(Progress, BarRedrawsInPlaceWithNameAndPercentage) {
  Sink sink;
  auto p = Progress::Create(Progress::Style::kBar, sink.file(), 0.05);
  p->BeginPhase("partition x", 1000, 0);
  p->Add(10, 250);
  std::this_thread::sleep_for(milliseconds(300));
  std::string live = sink.Contents();
  EXPECT_NE(live.find("\r\x1b[2K"), std::string::npos) << "redrawn in place";
  EXPECT_NE(live.find("partition x"), std::string::npos) << live;
  EXPECT_NE(live.find(" 25%"), std::string::npos) << live;
  EXPECT_NE(live.find("[#####...............]"), std::string::npos) << live;
  EXPECT_NE(live.find("ETA "), std::string::npos) << live;
  EXPECT_EQ(live.find('\n'), std::string::npos) << "a live line is not ended: " << live;
  p->EndPhase();
  std::string done = sink.Contents();
  size_t last = done.rfind('\r');
  ASSERT_NE(last, std::string::npos);
  std::string final_line = done.substr(last);
  EXPECT_NE(final_line.find("partition x"), std::string::npos) << final_line;
  EXPECT_NE(final_line.find("100%"), std::string::npos) << final_line;
  EXPECT_NE(final_line.find("done in"), std::string::npos) << final_line;
  EXPECT_EQ(final_line.back(), '\n') << "a finished phase stays on screen";
  p.reset();
  EXPECT_EQ(sink.Contents(), done) << "nothing after the last phase ended";
}

TEST(Progress, BarWithoutTotalsShowsNoPercentage) {
  Sink sink;
  {
    auto p = Progress::Create(Progress::Style::kBar, sink.file(), 10);
    p->BeginPhase("join", 0, 0);
    p->Add(2000000, 3 << 20);
    p->EndPhase();
  }
  std::string text = sink.Contents();
  EXPECT_NE(text.find("join"), std::string::npos) << text;
  EXPECT_NE(text.find("2.0 Mrows"), std::string::npos) << text;
  EXPECT_NE(text.find("3.0 MiB"), std::string::npos) << text;
  EXPECT_EQ(text.find('%'), std::string::npos) << text;
}

TEST(Progress, BarCutShortEndsItsLine) {
  Sink sink;
  {
    auto p = Progress::Create(Progress::Style::kBar, sink.file(), 10);
    p->BeginPhase("join", 100, 0);
    p->Add(1, 40);
  }
  std::string text = sink.Contents();
  EXPECT_NE(text.find(" 40%"), std::string::npos) << text;
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n') << "an error message that follows starts on its own line";
}

TEST(Progress, BeginWhileOpenEndsThePreviousPhase) {
  Sink sink;
  {
    auto p = Progress::Create(Progress::Style::kLines, sink.file(), 10);
    p->BeginPhase("one", 0, 0);
    p->Add(3, 0);
    p->BeginPhase("two", 0, 0);
    p->Add(4, 0);
    p->EndPhase();
    p->EndPhase();  // a second EndPhase is harmless
  }
  std::vector<Json> lines = sink.JsonLines();
  ASSERT_EQ(lines.size(), 2u) << sink.Contents();
  EXPECT_EQ(lines[0]["progress"], "one");
  EXPECT_EQ(lines[0]["rows"], 3);
  EXPECT_EQ(lines[1]["progress"], "two");
  EXPECT_EQ(lines[1]["rows"], 4) << "counters restart with each phase";
}

TEST(Progress, ConcurrentAddsSumExactly) {
  Sink sink;
  constexpr int kThreads = 8, kAdds = 200000;
  {
    // A short interval so that the renderer reads while the workers add.
    auto p = Progress::Create(Progress::Style::kLines, sink.file(), 0.01);
    p->BeginPhase("probe", uint64_t{kThreads} * kAdds * 3, 0);
    std::vector<std::thread> workers;
    for (int t = 0; t < kThreads; ++t)
      workers.emplace_back([&] {
        for (int i = 0; i < kAdds; ++i) p->Add(1, 3);
      });
    for (auto& w : workers) w.join();
    p->EndPhase();
  }
  std::vector<Json> lines = sink.JsonLines();
  ASSERT_FALSE(lines.empty());
  const Json& done = lines.back();
  EXPECT_EQ(done["done"], true);
  EXPECT_EQ(done["rows"], uint64_t{kThreads} * kAdds);
  EXPECT_EQ(done["bytes"], uint64_t{kThreads} * kAdds * 3);
  uint64_t previous = 0;
  for (const Json& j : lines) {
    EXPECT_GE(j["rows"].get<uint64_t>(), previous) << "counts only grow within a phase";
    previous = j["rows"].get<uint64_t>();
  }
}

TEST(Progress, EndAndDestructionDoNotWaitForTheInterval) {
  Sink sink;
  auto start = std::chrono::steady_clock::now();
  {
    auto p = Progress::Create(Progress::Style::kLines, sink.file(), 3600);
    p->BeginPhase("join", 0, 0);
    p->EndPhase();
    p->BeginPhase("write", 0, 0);
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 1.0) << "the renderer is woken, not waited for";
  EXPECT_EQ(sink.JsonLines().size(), 1u) << sink.Contents();
}

TEST(Progress, PhaseNamesAreEscapedInJson) {
  Sink sink;
  {
    auto p = Progress::Create(Progress::Style::kLines, sink.file(), 10);
    p->BeginPhase("odd \"name\"\t\\", 0, 0);
    p->EndPhase();
  }
  std::vector<Json> lines = sink.JsonLines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["progress"], "odd \"name\"\t\\");
}

}  // namespace
}  // namespace cloudmerge
