#include "tools/cluster_task_command.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <fmt/format.h>

#include "cloudmerge/aws/uri_env.h"
#include "cloudmerge/engine/merge.h"
#include "cloudmerge/engine/split_tasks.h"
#include "cloudmerge/engine/table_scan.h"
#include "tools/s3_flags.h"

namespace cloudmerge_cli {
namespace {

using cloudmerge::Env;
using cloudmerge::KeyMode;
using cloudmerge::Result;
using cloudmerge::Status;

constexpr uint32_t kSummaryTag = 0xffffffffu;
constexpr uint32_t kLabelledBlob = 0xfffffffeu;  // join input: a blob with the job's label (Join)

int Fail(const Status& st) {
  fmt::print(stderr, "Error [cloudmerge cluster-task]: {}\n", st.message());
  return st.ExitCode();
}

// argv after the step: positionals and --name value / --flag options.
struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> opt;
  std::string Get(const std::string& k, const std::string& dflt = "") const {
    auto it = opt.find(k);
    return it == opt.end() ? dflt : it->second;
  }
  uint64_t Num(const std::string& k, uint64_t dflt = 0) const {
    auto it = opt.find(k);
    return it == opt.end() ? dflt : std::stoull(it->second);
  }
  bool Has(const std::string& k) const { return opt.count(k) > 0; }
};

Args ParseArgs(int argc, char** argv, int first) {
  static const char* kFlags[] = {"--allow-numeric-header", "--drop-key", "--no-y-values"};
  Args a;
  for (int i = first; i < argc; ++i) {
    std::string s = argv[i];
    if (s.rfind("--", 0) != 0) {
      a.positional.push_back(s);
      continue;
    }
    bool flag = false;
    for (const char* f : kFlags) flag |= s == f;
    if (flag || i + 1 >= argc) a.opt[s] = "1";
    else if (s == "--split") {  // two values
      a.opt["--split-start"] = argv[++i];
      if (i + 1 < argc) a.opt["--split-end"] = argv[++i];
    } else {
      a.opt[s] = argv[++i];
    }
  }
  return a;
}

std::unique_ptr<Env> MakeEnv() {
  cloudmerge::UriEnvOptions env_options;
  env_options.make_s3_client = []() { return MakeS3Client(S3Flags{}); };
  return cloudmerge::NewUriEnv(Env::Default(), env_options);
}

// Frames read from a pipe, each straight into its own buffer (no growing buffer, no copy:
// a task's input is hundreds of MB).
struct InputFrames {
  std::vector<std::unique_ptr<char[]>> buffers;
  std::vector<cloudmerge::Frame> frames;
};

Status ReadExactly(int fd, char* p, size_t n, size_t* got) {
  *got = 0;
  while (*got < n) {
    ssize_t r = read(fd, p + *got, n - *got);
    if (r == 0) return Status::OK();
    if (r < 0) {
      if (errno == EINTR) continue;
      return Status::IOError(fmt::format("cluster task: reading standard input failed: {}", strerror(errno)));
    }
    *got += static_cast<size_t>(r);
  }
  return Status::OK();
}

Status ReadFrames(int fd, const char* what, InputFrames* out) {
  for (;;) {
    char head[12];
    size_t got;
    CM_RETURN_IF_ERROR(ReadExactly(fd, head, sizeof head, &got));
    if (got == 0) return Status::OK();
    uint32_t tag;
    uint64_t n;
    std::memcpy(&tag, head, 4);
    std::memcpy(&n, head + 4, 8);
    if (got < sizeof head || n > (uint64_t{1} << 40))
      return Status::Internal(fmt::format("cluster task: damaged {} frames", what));
    auto buf = std::unique_ptr<char[]>(new (std::nothrow) char[n ? n : 1]);  // uninitialised: read() fills it
    if (!buf)  // a damaged length must not abort the task with bad_alloc
      return Status::Internal(fmt::format("cluster task: {} frame of {} bytes: out of memory", what, n));
    CM_RETURN_IF_ERROR(ReadExactly(fd, buf.get(), n, &got));
    if (got < n) return Status::Internal(fmt::format("cluster task: damaged {} frames (cut short)", what));
    out->frames.push_back(cloudmerge::Frame{tag, std::string_view(buf.get(), n)});
    out->buffers.push_back(std::move(buf));
  }
}

Status WriteAll(std::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(1, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IOError(fmt::format("cluster task: writing standard output failed: {}", strerror(errno)));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::OK();
}

// A frame on standard output: its header, then the bytes as they are (no framed copy).
Status WriteFrame(uint32_t tag, std::string_view bytes) {
  char head[12];
  uint64_t n = bytes.size();
  std::memcpy(head, &tag, 4);
  std::memcpy(head + 4, &n, 8);
  CM_RETURN_IF_ERROR(WriteAll(std::string_view(head, sizeof head)));
  return WriteAll(bytes);
}

std::string JsonString(std::string_view s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      o.push_back('\\');
      o.push_back(static_cast<char>(c));
    } else if (c < 0x20) {
      o += fmt::format("\\u{:04x}", c);
    } else {
      o.push_back(static_cast<char>(c));
    }
  }
  return o + "\"";
}

// A test's way to kill a task mid-job (tests/e2e/test_spark_cluster.py): the
// first process of `step` that creates the marker file kills itself, as a
// lost executor or an OOM kill would; Spark must retry the task.
void MaybeKillForTest(const char* step) {
  const char* marker = std::getenv("CLOUDMERGE_TEST_KILL_TASK_ONCE");
  if (marker == nullptr) return;
  std::string m = marker;
  size_t colon = m.find(':');
  if (colon == std::string::npos || m.substr(0, colon) != step) return;
  int fd = open(m.c_str() + colon + 1, O_CREAT | O_EXCL | O_WRONLY, 0644);
  if (fd < 0) return;
  close(fd);
  raise(SIGKILL);
}

// ---- plan ---------------------------------------------------------------------

int Plan(const Args& a) {
  if (a.positional.size() != 2) return Fail(Status::InvalidArgument("cluster-task plan X Y: two inputs needed"));
  auto env = MakeEnv();
  bool allow = a.Has("--allow-numeric-header");
  cloudmerge::SegmentSizes small{size_t{1} << 20, size_t{1} << 20, size_t{2} << 30, ""};
  std::unique_ptr<cloudmerge::Table> t[2];
  std::string json = "{";
  // y first, as the native engine opens them (the first error reported is the same).
  for (int i : {1, 0}) {
    auto table = cloudmerge::Table::Open(env.get(), a.positional[i], a.Get(i ? "--y-key" : "--x-key", "1"), allow,
                                         size_t{1} << 20, small);
    if (!table.ok()) return Fail(table.status());
    t[i] = std::move(table.value());
  }
  for (int i : {0, 1}) {
    const auto& tb = *t[i];
    // Splittable when it can be read at any offset: a plain local file or S3 object (ranged GETs,
    // so each task reads its own split), not a stream or a compressed file. `version` pins the
    // scans to the bytes planned with.
    auto input = env->OpenRandomAccess(a.positional[i]);
    if (!input.ok()) return Fail(input.status());
    bool splittable = *input != nullptr;
    size_t body = tb.chunks().empty() ? tb.data().size() : tb.chunks().front().begin;
    json += fmt::format("{}\"{}\": {{\"splittable\": {}, \"size\": {}, \"version\": {}, \"body\": {}, "
                        "\"columns\": {}, \"key\": {}}}",
                        i ? ", " : "", i ? "y" : "x", splittable ? "true" : "false", splittable ? (*input)->size() : 0,
                        JsonString(splittable ? (*input)->version() : ""), body, tb.column_names().size(),
                        tb.key_index());
  }
  std::string header = cloudmerge::OutputHeader(*t[0], *t[1]);
  header.pop_back();
  json += ", \"header\": " + JsonString(header) + "}\n";
  return WriteAll(json).ok() ? 0 : 4;
}

// ---- scan ---------------------------------------------------------------------

// An input made of a file's header bytes followed by one split's bytes.
class SliceEnv final : public Env {
 public:
  explicit SliceEnv(std::string bytes) : bytes_(std::move(bytes)) {}
  Result<std::unique_ptr<cloudmerge::InputData>> ReadFile(const std::string&) override {
    struct Data final : cloudmerge::InputData {
      std::string_view b;
      std::string_view bytes() const override { return b; }
    };
    auto d = std::make_unique<Data>();
    d->b = bytes_;
    return std::unique_ptr<cloudmerge::InputData>(std::move(d));
  }
  Result<std::unique_ptr<cloudmerge::WritableFile>> NewWritableFile(const std::string&) override {
    return Status::Internal("SliceEnv is read-only");
  }
  Status RenameFile(const std::string&, const std::string&) override { return Status::Internal("read-only"); }
  Status RemoveFile(const std::string&) override { return Status::Internal("read-only"); }

 private:
  std::string bytes_;
};

// The header bytes and [start(S), start(E)) of an input read at random (a local
// file, an S3 object by ranged GETs: each task reads only its split), record
// starts per RecordStartAtOrAfter; the input must still be the one planned with.
Status ReadSplit(Env* env, const std::string& path, const std::string& version, uint64_t body, uint64_t s,
                 uint64_t e, uint64_t size, std::string* bytes, int64_t* shift) {
  auto opened = env->OpenRandomAccess(path, version);
  if (!opened.ok()) return opened.status();
  if (*opened == nullptr) {
    return Status::InvalidArgument(fmt::format("{} cannot be read in splits (a stream or a compressed file): "
                                               "scan it whole, without --split.", path));
  }
  cloudmerge::RandomAccessInput& input = **opened;
  if (input.size() != size) {
    return Status::IOError(fmt::format("{} has {} bytes, not the {} the merge was planned with: it changed. Run "
                                       "again once nothing writes it.", path, input.size(), size));
  }
  CM_RETURN_IF_ERROR(input.ReadAt(0, body, bytes));
  auto start_of = [&](uint64_t pos, uint64_t* start) -> Status {
    if (pos <= body) { *start = body; return Status::OK(); }
    if (pos >= size) { *start = size; return Status::OK(); }
    std::string window;
    uint64_t base = pos - 1;
    for (size_t want = 4096;; want *= 2) {
      uint64_t n = std::min<uint64_t>(want, size - base);
      window.clear();
      CM_RETURN_IF_ERROR(input.ReadAt(base, n, &window));
      if (cloudmerge::RecordStartAtOrAfter(window, base, size, pos, start)) return Status::OK();
    }
  };
  uint64_t from, to;
  CM_RETURN_IF_ERROR(start_of(s, &from));
  CM_RETURN_IF_ERROR(start_of(e, &to));
  *shift = static_cast<int64_t>(from) - static_cast<int64_t>(body);
  if (to > from) CM_RETURN_IF_ERROR(input.ReadAt(from, to - from, bytes));
  return Status::OK();
}

int Scan(const Args& a) {
  if (a.positional.size() != 1) return Fail(Status::InvalidArgument("cluster-task scan FILE: one input needed"));
  const std::string& path = a.positional[0];
  cloudmerge::ScanOptions o;
  o.partitions = static_cast<uint32_t>(a.Num("--partitions"));
  o.keep_key_column = !a.Has("--drop-key");
  if (a.Has("--hash-mode")) {
    o.hash_under_mode = true;
    o.mode = static_cast<KeyMode>(a.Num("--hash-mode"));
  }
  std::unique_ptr<Env> env = MakeEnv();
  std::string path_for_table = path;
  if (a.Has("--split-start")) {
    std::string bytes;
    int64_t shift = 0;
    Status st = ReadSplit(env.get(), path, a.Get("--version", ""), a.Num("--body"), a.Num("--split-start"),
                          a.Num("--split-end"), a.Num("--size"), &bytes, &shift);
    if (!st.ok()) return Fail(st);
    o.position_shift = shift;
    o.stop_at_quote = true;
    env = std::make_unique<SliceEnv>(std::move(bytes));
  }
  auto table = cloudmerge::Table::Open(env.get(), path_for_table, a.Get("--key", "1"),
                                       a.Has("--allow-numeric-header"), size_t{1} << 20);
  if (!table.ok()) return Fail(table.status());
  // Records go out as they are made, in frames of up to 8 MiB per partition (a partition's
  // frames in file order); the summary frame comes last, once the split is scanned.
  o.flush = [](uint32_t p, std::string_view blob) { return WriteFrame(p, blob); };
  o.flush_bytes = std::max<uint64_t>(a.Num("--piece-bytes", o.flush_bytes), 1);  // tests lower it
  cloudmerge::SplitScan result;
  Status st = cloudmerge::ScanTable(**table, o, &result);
  if (!st.ok()) return Fail(st);
  MaybeKillForTest("scan");
  std::string summary;
  uint64_t v[2] = {result.rows, result.end_position};
  summary.append(reinterpret_cast<const char*>(v), sizeof v);
  summary.push_back(result.has_quote ? 1 : 0);
  summary += cloudmerge::EncodeKeyScan(result.scan);
  return WriteFrame(kSummaryTag, summary).ok() ? 0 : 4;
}

// ---- combine --------------------------------------------------------------------

int Combine(const Args&) {
  InputFrames in;
  if (Status st = ReadFrames(0, "scan", &in); !st.ok()) return Fail(st);
  cloudmerge::KeyScan all;
  bool first = true;
  for (const auto& f : in.frames) {
    cloudmerge::KeyScan s;
    if (!cloudmerge::DecodeKeyScan(f.bytes, &s)) return Fail(Status::Internal("cluster task: damaged KeyScan"));
    if (first) all = s;
    else all.Append(s);
    first = false;
  }
  KeyMode m = all.Decide();
  return WriteAll(fmt::format("{} {} {} {}\n", static_cast<int>(m), all.lossy_int() ? 1 : 0, all.values(),
                              cloudmerge::KeyModeName(m)))
                 .ok()
             ? 0
             : 4;
}

// ---- join ---------------------------------------------------------------------

int Join(const Args& a) {
  InputFrames in;
  if (Status st = ReadFrames(0, "join", &in); !st.ok()) return Fail(st);
  MaybeKillForTest("join");
  // A side arrives as several blobs, each either tagged with its side (0 x, 1 y: in file
  // order, as given) or labelled (kLabelledBlob: the job's 12-byte label, side, split and
  // piece, before the records), in the order the shuffle delivers them. Labelled blobs are
  // put in file order here, so that the job streams them through instead of holding a
  // whole partition in Python to sort it first.
  struct Labelled {
    uint32_t side, split, piece;
    std::string_view records;
  };
  std::vector<Labelled> labelled;
  std::vector<std::string_view> side[2];
  for (const auto& f : in.frames) {
    if (f.tag == kLabelledBlob) {
      Labelled l;
      if (f.bytes.size() < 12) return Fail(Status::Internal("cluster task: damaged join frames (a label cut short)"));
      std::memcpy(&l.side, f.bytes.data(), 4);
      std::memcpy(&l.split, f.bytes.data() + 4, 4);
      std::memcpy(&l.piece, f.bytes.data() + 8, 4);
      if (l.side > 1) return Fail(Status::Internal("cluster task: damaged join frames (a label of no side)"));
      l.records = f.bytes.substr(12);
      labelled.push_back(l);
      continue;
    }
    if (f.tag > 1) return Fail(Status::Internal("cluster task: damaged join frames (a tag other than x or y)"));
    side[f.tag].push_back(f.bytes);
  }
  std::stable_sort(labelled.begin(), labelled.end(), [](const Labelled& a, const Labelled& b) {
    return std::tie(a.side, a.split, a.piece) < std::tie(b.side, b.split, b.piece);
  });
  for (const Labelled& l : labelled) side[l.side].push_back(l.records);
  cloudmerge::JoinOptions o;
  o.x_mode = static_cast<KeyMode>(a.Num("--x-mode"));
  o.y_mode = static_cast<KeyMode>(a.Num("--y-mode"));
  o.y_has_values = !a.Has("--no-y-values");
  o.ranges = static_cast<uint32_t>(a.Num("--ranges", 1));
  o.x_end = a.Num("--x-end", 1);
  std::vector<std::string> ranges;
  auto matches = cloudmerge::JoinPartition(side[0], side[1], o, &ranges);
  if (!matches.ok()) return Fail(matches.status());
  in = InputFrames();  // the records' memory back before the output is written
  for (uint32_t r = 0; r < ranges.size(); ++r) {
    if (ranges[r].empty()) continue;
    if (!WriteFrame(r, ranges[r]).ok()) return 4;
    std::string().swap(ranges[r]);
  }
  return 0;
}

// ---- write --------------------------------------------------------------------

int Write(const Args& a) {
  if (a.positional.size() != 1) return Fail(Status::InvalidArgument("cluster-task write OUT: one output needed"));
  InputFrames in;
  if (Status st = ReadFrames(0, "match", &in); !st.ok()) return Fail(st);
  auto env = MakeEnv();
  auto out = cloudmerge::AtomicOutput::Open(env.get(), a.positional[0], /*compress_by_name=*/false);
  if (!out.ok()) return Fail(out.status());
  if (a.Has("--header")) {
    if (Status st = (*out)->Append(a.Get("--header") + "\n"); !st.ok()) return Fail(st);
  }
  std::vector<std::string_view> blobs;
  for (const auto& f : in.frames) blobs.push_back(f.bytes);
  auto lines = cloudmerge::MergeMatches(blobs, [&](std::string_view b) { return (*out)->Append(b); });
  if (!lines.ok()) return Fail(lines.status());
  if (Status st = (*out)->Commit(); !st.ok()) return Fail(st);
  return WriteAll(fmt::format("{}\n", *lines)).ok() ? 0 : 4;
}

}  // namespace

int RunClusterTask(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(stderr, "Error [cloudmerge cluster-task]: a step is needed: plan, scan, combine, join or write "
                       "(an internal command of the Spark job, spark/merge_job.py)\n");
    return 2;
  }
  std::string step = argv[1];
  Args a = ParseArgs(argc, argv, 2);
  try {
    if (step == "plan") return Plan(a);
    if (step == "scan") return Scan(a);
    if (step == "combine") return Combine(a);
    if (step == "join") return Join(a);
    if (step == "write") return Write(a);
  } catch (const std::exception& e) {  // std::stoull on a bad number
    return Fail(Status::InvalidArgument(fmt::format("cluster-task {}: bad arguments ({})", step, e.what())));
  }
  return Fail(Status::InvalidArgument(fmt::format("cluster-task: unknown step '{}'", step)));
}

}  // namespace cloudmerge_cli
