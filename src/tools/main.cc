// cloudmerge command-line entry point. One tool, subcommands; `merge` is the
// engine. Errors print as "Error [cloudmerge merge]: ..." and exit non-zero.
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cloudmerge/aws/credentials.h"
#include "cloudmerge/aws/s3_client.h"
#include "cloudmerge/aws/uri_env.h"
#include "cloudmerge/merge.h"
#include "tools/lambda_command.h"
#include "tools/s3_flags.h"
#include "tools/serve_command.h"
#include "tools/spark_command.h"

namespace {

// "512MiB", "2GiB", "1.5G", "100000" (bytes) -> bytes; 0 when malformed.
uint64_t ParseSize(const std::string& text) {
  size_t pos = 0;
  double v = 0;
  try {
    v = std::stod(text, &pos);
  } catch (...) {
    return 0;
  }
  std::string unit = text.substr(pos);
  while (!unit.empty() && unit.front() == ' ') unit.erase(unit.begin());
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (!unit.empty() && unit.back() == 'B') unit.pop_back();
  if (!unit.empty() && unit.back() == 'I') unit.pop_back();
  double mult = unit.empty() ? 1 : unit == "K" ? 1024.0 : unit == "M" ? 1048576.0 : unit == "G" ? 1073741824.0
                                                                   : unit == "T" ? 1099511627776.0 : -1;
  if (mult < 0 || v <= 0) return 0;
  return static_cast<uint64_t>(v * mult);
}

constexpr const char* kMergeHelp = R"(Merge two TSV files the way analysis.py does, fast.

Every (x row, y row) pair whose IDs are equal is written, in x's file order,
then y's file order within one x row. IDs are compared with the script's
(pandas') rules: if all IDs of a file are numbers, they compare by value
(007 = 7 = 7.0); otherwise as exact text; a number never equals a text;
missing IDs (empty, NA, NaN, null, ...) never match.
Output columns: all x columns (suffix _x), then y's non-key columns (suffix _y);
for two-column files exactly ID_x, value_x, value_y, as the script prints.

Inputs and output may be local paths, file:// URIs or s3://bucket/key objects
(credentials and region as the AWS CLI finds them: environment, ~/.aws profiles,
the container or instance role). Inputs ending in .gz or .zst are decompressed.
An S3 result is a multipart upload completed only when the whole result is
written: a failed run leaves no object behind.

Examples:
  cloudmerge merge x_list.txt y_list.txt -o merged.tsv
  cloudmerge merge s3://in/x_list.txt s3://in/y_list.txt.gz -o s3://out/merged.tsv
  cloudmerge merge --key gene x.tsv y.tsv > merged.tsv
  zcat big_x.tsv.gz | cloudmerge merge - y.tsv -o merged.tsv --any-order)";

constexpr const char* kCpHelp = R"(Copy one object or file to another place, the way cloudmerge reads inputs and
writes results: S3 sources by parallel ranged GETs, S3 destinations by a multipart
upload completed only when everything is written (no partial object on failure),
local destinations through a temporary renamed into place. .gz/.zst sources are
decompressed.

Examples:
  cloudmerge cp s3://in/x_list.txt x_list.txt
  cloudmerge cp big.tsv s3://in/big.tsv --s3-part-size 64)";

cloudmerge::Status Copy(cloudmerge::Env* env, const std::string& src, const std::string& dst) {
  auto out = cloudmerge::AtomicOutput::Open(env, dst);
  if (!out.ok()) return out.status();
  auto in = env->ReadFile(src);
  if (!in.ok()) return in.status();
  std::string_view bytes = (*in)->bytes();
  for (size_t off = 0; off < bytes.size(); off += 8 << 20) {
    size_t n = std::min<size_t>(8 << 20, bytes.size() - off);
    CM_RETURN_IF_ERROR((*out)->Append(bytes.substr(off, n)));
    (*in)->Release(off, off + n);
  }
  return (*out)->Commit();
}

}  // namespace

int main(int argc, char** argv) {
  // Output buffers of a few MiB are allocated and freed per chunk: keep them in
  // the heap for reuse instead of fresh (zero-filled) mappings each time.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // the largest value glibc accepts
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  // Lambda runs a custom runtime's executable as `bootstrap`.
  std::string self = argv[0];
  if (self.substr(self.rfind('/') + 1) == "bootstrap") return cloudmerge_cli::RunLambda();
  CLI::App app{"cloudmerge: the merge of analysis.py as a fast, exact C++ engine."};
  app.set_version_flag("--version", std::string("cloudmerge ") + CLOUDMERGE_VERSION);
  app.require_subcommand(1);

  cloudmerge::MergeOptions o;
  std::string key;
  bool stats_flag = false;
  size_t chunk_kib = 1024;
  auto* merge = app.add_subcommand("merge", kMergeHelp);
  merge->add_option("X", o.x_path, "Left input (TSV with a header); - for standard input")->required();
  merge->add_option("Y", o.y_path, "Right input (TSV with a header); - for standard input")->required();
  merge->add_option("-o,--output", o.out_path,
                    "Output file (default: standard output). Written to a temporary next to it and renamed "
                    "into place only when complete")
      ->default_str("-");
  merge->add_option("-k,--key", key, "Key column of both files: a 1-based position or a header name (default: 1)");
  merge->add_option("--x-key", o.x_key, "Key column of X only (overrides --key)");
  merge->add_option("--y-key", o.y_key, "Key column of Y only (overrides --key)");
  merge->add_flag("--any-order", o.any_order,
                  "Rows in any order (chunks written as they finish) instead of the script's order");
  merge->add_option("-t,--threads", o.threads, "Worker threads (default: one per CPU)")->check(CLI::Range(1u, 256u));
  merge->add_flag("--allow-numeric-header", o.allow_numeric_header,
                  "Accept a header line made only of numbers (normally a sign that the header is missing)");
  merge->add_option("--chunk-kib", chunk_kib, "Size of the parallel work unit in KiB (default: 1024)")
      ->check(CLI::Range(size_t{1}, size_t{1} << 20));
  merge->add_flag("--stats", stats_flag, "Print a summary (rows, key types, time per phase) to standard error");

  cloudmerge_cli::S3Flags s3_flags;
  cloudmerge_cli::AddS3Options(merge, &s3_flags);
  cloudmerge_cli::SparkFlags spark_flags;
  cloudmerge_cli::AddSparkOptions(merge, &spark_flags);

  std::string max_decompressed = "64GiB";
  merge->add_option("--max-decompressed-size", max_decompressed,
                    "Largest size a .gz/.zst input may decompress to, a guard against decompression bombs "
                    "(default: 64GiB)")
      ->check([](const std::string& v) { return ParseSize(v) ? std::string() : "expected a size such as 512MiB or 2GiB"; });

  auto* cp = app.add_subcommand("cp", kCpHelp);
  std::string cp_src, cp_dst;
  cp->add_option("SRC", cp_src, "Source: local path, file:// or s3:// URI; - for standard input")->required();
  cp->add_option("DST", cp_dst, "Destination: local path, file:// or s3:// URI; - for standard output")->required();
  cloudmerge_cli::AddS3Options(cp, &s3_flags);

  cloudmerge_cli::ServeFlags serve_flags;
  auto* serve = cloudmerge_cli::AddServeCommand(&app, &serve_flags, &s3_flags);

  auto* lambda = app.add_subcommand("lambda", "Run as an AWS Lambda custom runtime (what `bootstrap` does); "
                                              "configured by CLOUDMERGE_OUTPUT and the function's environment");

  CLI11_PARSE(app, argc, argv);
  if (*lambda) return cloudmerge_cli::RunLambda();
  if (*serve) return cloudmerge_cli::RunServe(serve_flags, s3_flags);

  cloudmerge::UriEnvOptions env_options;
  env_options.make_s3_client = [&]() { return cloudmerge_cli::MakeS3Client(s3_flags); };
  env_options.max_decompressed_bytes = ParseSize(max_decompressed);
  auto env = cloudmerge::NewUriEnv(cloudmerge::Env::Default(), env_options);

  if (*cp) {
    cloudmerge::Status st = Copy(env.get(), cp_src, cp_dst);
    if (!st.ok()) {
      fmt::print(stderr, "Error [cloudmerge cp]: {}\n", st.message());
      return st.ExitCode();
    }
  }
  if (*merge) {
    if (!key.empty()) {
      if (merge->count("--x-key") == 0) o.x_key = key;
      if (merge->count("--y-key") == 0) o.y_key = key;
    }
    o.chunk_bytes = chunk_kib * 1024;
    if (spark_flags.engine != "native") return cloudmerge_cli::RunSparkMerge(spark_flags, o, s3_flags);
    cloudmerge::MergeStats stats;
    cloudmerge::Status st = cloudmerge::RunMerge(env.get(), o, &stats);
    if (!st.ok()) {
      fmt::print(stderr, "Error [cloudmerge merge]: {}\n", st.message());
      return st.ExitCode();
    }
    if (stats_flag) {
      fmt::print(stderr,
                 "cloudmerge: x {} rows (IDs {}), y {} rows (IDs {}, {} distinct), {} rows written to {}; "
                 "{} threads; scan y {:.3f}s, scan x {:.3f}s, build {:.3f}s, probe+write {:.3f}s, total {:.3f}s\n",
                 stats.x_rows, cloudmerge::KeyModeName(stats.x_mode), stats.y_rows,
                 cloudmerge::KeyModeName(stats.y_mode), stats.y_distinct_keys, stats.output_rows,
                 o.out_path == "-" ? "standard output" : o.out_path, stats.threads, stats.seconds_scan_y,
                 stats.seconds_scan_x, stats.seconds_build, stats.seconds_probe, stats.seconds_total);
    }
  }
  return 0;
}
