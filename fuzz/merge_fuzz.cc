// Fuzz harness: the whole merge (RunMerge) on two small inputs held in an
// in-memory Env. The input is "x<0xFF 0xFE>y" (no separator: x only, y empty).
// Properties: no crash, no hang, errors are Status values with a message; the
// ordered output does not depend on chunking or thread count (one chunk and one
// thread vs 64-byte chunks and two threads): the parallel scan/probe must give
// the sequential answer. Each run starts its own threads and joins them.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "cloudmerge/io/env.h"
#include "cloudmerge/engine/merge.h"

namespace {

using cloudmerge::Result;
using cloudmerge::Status;

// Files are strings in a map; a writable file appends to its entry on Close.
class MemEnv final : public cloudmerge::Env {
 public:
  std::map<std::string, std::string> files;

  Result<std::unique_ptr<cloudmerge::InputData>> ReadFile(const std::string& path) override {
    auto it = files.find(path);
    if (it == files.end()) return Status::IOError("cannot open input " + path + ": no such file (MemEnv)");
    return std::unique_ptr<cloudmerge::InputData>(new Input(it->second));
  }
  Result<std::unique_ptr<cloudmerge::WritableFile>> NewWritableFile(const std::string& path) override {
    files[path].clear();
    return std::unique_ptr<cloudmerge::WritableFile>(new Output(&files[path]));
  }
  Status RenameFile(const std::string& from, const std::string& to) override {
    auto it = files.find(from);
    if (it == files.end()) return Status::IOError("cannot rename " + from + ": no such file (MemEnv)");
    files[to] = std::move(it->second);
    files.erase(from);
    return Status::OK();
  }
  Status RemoveFile(const std::string& path) override {
    files.erase(path);
    return Status::OK();
  }

 private:
  class Input final : public cloudmerge::InputData {
   public:
    explicit Input(const std::string& s) : data_(s) {}
    std::string_view bytes() const override { return data_; }

   private:
    std::string data_;  // a copy of exact size: over-reads are ASan errors
  };
  class Output final : public cloudmerge::WritableFile {
   public:
    explicit Output(std::string* s) : s_(s) {}
    Status Append(std::string_view d) override {
      s_->append(d);
      return Status::OK();
    }
    Status Close() override { return Status::OK(); }

   private:
    std::string* s_;
  };
};

struct Outcome {
  Status status;
  std::string output;
};

Outcome Merge(const std::string& x, const std::string& y, unsigned threads, size_t chunk) {
  MemEnv env;
  env.files["x.tsv"] = x;
  env.files["y.tsv"] = y;
  cloudmerge::MergeOptions o;
  o.x_path = "x.tsv";
  o.y_path = "y.tsv";
  o.out_path = "out.tsv";
  o.threads = threads;
  o.chunk_bytes = chunk;
  cloudmerge::MergeStats stats;
  Outcome r{cloudmerge::RunMerge(&env, o, &stats), ""};
  if (r.status.ok()) r.output = env.files["out.tsv"];
  if (!r.status.ok() && env.files.count("out.tsv")) {
    std::fprintf(stderr, "merge_fuzz: a failed merge left an output\n");
    std::abort();
  }
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;  // small inputs: many runs per second; chunking is exercised at 64 bytes
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t sep = in.find("\xff\xfe");
  std::string x(in.substr(0, sep));
  std::string y(sep == std::string_view::npos ? std::string_view() : in.substr(sep + 2));
  Outcome one = Merge(x, y, 1, size_t{1} << 20);
  Outcome many = Merge(x, y, 2, 64);
  if (!one.status.ok() && one.status.message().empty()) {
    std::fprintf(stderr, "merge_fuzz: an error without a message\n");
    std::abort();
  }
  if (one.status.ok() != many.status.ok() || one.output != many.output) {
    std::fprintf(stderr, "merge_fuzz: chunked/parallel run differs from the sequential one:\n1 thread: %s\n2 threads: %s\n",
                 one.status.ok() ? "ok" : one.status.message().c_str(),
                 many.status.ok() ? "ok" : many.status.message().c_str());
    std::abort();
  }
  return 0;
}
