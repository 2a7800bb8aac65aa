// cloudmerge command-line entry point. One tool, subcommands; `merge` is the
// engine. Errors print as "Error [cloudmerge merge]: ..." and exit non-zero.
#include <malloc.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cloudmerge/merge.h"

namespace {

constexpr const char* kMergeHelp = R"(Merge two TSV files the way analysis.py does, fast.

Every (x row, y row) pair whose IDs are equal is written, in x's file order,
then y's file order within one x row. IDs are compared with the script's
(pandas') rules: if all IDs of a file are numbers, they compare by value
(007 = 7 = 7.0); otherwise as exact text; a number never equals a text;
missing IDs (empty, NA, NaN, null, ...) never match.
Output columns: all x columns (suffix _x), then y's non-key columns (suffix _y);
for two-column files exactly ID_x, value_x, value_y, as the script prints.

Examples:
  cloudmerge merge x_list.txt y_list.txt -o merged.tsv
  cloudmerge merge --key gene x.tsv y.tsv > merged.tsv
  zcat big_x.tsv.gz | cloudmerge merge - y.tsv -o merged.tsv --any-order)";

}  // namespace

int main(int argc, char** argv) {
  // Output buffers of a few MiB are allocated and freed per chunk: keep them in
  // the heap for reuse instead of fresh (zero-filled) mappings each time.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // the largest value glibc accepts
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
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

  CLI11_PARSE(app, argc, argv);

  if (*merge) {
    if (!key.empty()) {
      if (merge->count("--x-key") == 0) o.x_key = key;
      if (merge->count("--y-key") == 0) o.y_key = key;
    }
    o.chunk_bytes = chunk_kib * 1024;
    cloudmerge::MergeStats stats;
    cloudmerge::Status st = cloudmerge::RunMerge(cloudmerge::Env::Default(), o, &stats);
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
