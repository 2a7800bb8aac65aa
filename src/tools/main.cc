// cloudmerge command-line entry point. One tool, subcommands; `merge` is the
// engine. Errors print as "Error [cloudmerge merge]: ..." and exit non-zero.
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cloudmerge/aws/credentials.h"
#include "cloudmerge/aws/s3_client.h"
#include "cloudmerge/aws/uri_env.h"
#include "cloudmerge/base/memory_info.h"
#include "cloudmerge/base/setting_names.h"
#include "cloudmerge/engine/merge.h"
#include "cloudmerge/io/compression.h"
#include "cloudmerge/report/merge_report.h"
#include "cloudmerge/base/progress.h"
#include "tools/cluster_task_command.h"
#include "tools/lambda_command.h"
#include "tools/output_guard.h"
#include "tools/s3_flags.h"
#include "tools/serve_command.h"
#include "tools/spark_command.h"

namespace {

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

Memory: inputs that do not fit in --memory-limit are partitioned to spill files
in --temp-dir and joined piece by piece (same result, same order).
--max-output-rows refuses a result that would be too big before writing any of
it. Progress goes to standard error (a live bar on a terminal, JSON lines
otherwise); --stats (or a terminal) prints a summary at the end and --report
writes it as JSON (schema: docs/report.md).

Examples:
  cloudmerge merge x_list.txt y_list.txt -o merged.tsv
  cloudmerge merge s3://in/x_list.txt s3://in/y_list.txt.gz -o s3://out/merged.tsv
  cloudmerge merge --key gene x.tsv y.tsv > merged.tsv
  zcat big_x.tsv.gz | cloudmerge merge - y.tsv -o merged.tsv --any-order
  cloudmerge merge big_x.tsv big_y.tsv -o merged.tsv --memory-limit 4GiB --temp-dir /scratch \
      --max-output-rows 10000000000 --report report.json)";

constexpr const char* kCpHelp = R"(Copy a file or an S3 object to a file, an S3 object or a folder.

The bytes are copied as they are (a .gz stays the same .gz) unless --decompress
or --compress asks for a conversion. A destination that is a folder (an existing
directory, or a name ending in /) receives the source's file name. S3 sources
are read by parallel ranged GETs, S3 destinations written by a multipart upload
completed only when everything is written (no partial object on failure), local
destinations through a temporary renamed into place. A destination that is the
source itself is refused.

Examples:
  cloudmerge cp s3://in/x_list.txt x_list.txt
  cloudmerge cp s3://out/job1/merged.tsv data/        # data/merged.tsv
  cloudmerge cp big.tsv s3://in/big.tsv --s3-part-size 64
  cloudmerge cp s3://in/y_list.txt.gz y_list.txt --decompress)";

// The one-line summaries of the subcommands list in the top-level --help: the
// first line of each subcommand's description (its own --help shows all of it).
class OneLineSubcommands final : public CLI::Formatter {
 public:
  std::string make_subcommand(const CLI::App* sub) const override {
    std::string line = sub->get_description().substr(0, sub->get_description().find('\n'));
    std::ostringstream out;
    CLI::detail::format_help(out, sub->get_display_name(), line, get_column_width());
    return out.str();
  }
};

// Where a copy lands: DST itself, or SRC's file name inside DST when DST is a
// folder (`cp s3://out/job/merged.tsv data/` writes data/merged.tsv).
cloudmerge::Result<std::string> CopyDestination(const std::string& src, const std::string& dst) {
  bool s3 = cloudmerge::S3Uri::IsS3(dst);
  std::error_code ec;
  bool folder = !dst.empty() && dst.back() == '/';
  if (s3 && !folder) {
    auto uri = cloudmerge::S3Uri::Parse(dst);
    folder = uri.ok() && uri->key.empty();
  }
  if (!s3 && !folder && dst != "-") {
    folder = std::filesystem::is_directory(dst.rfind("file://", 0) == 0 ? dst.substr(7) : dst, ec);
  }
  if (!folder) return dst;
  std::string name = src.substr(src.find_last_of('/') + 1);
  if (src == "-" || name.empty() || name == "." || name == "..")
    return cloudmerge::Status::InvalidArgument(fmt::format(
        "DST {} is a folder and SRC {} has no file name to give the copy: name the destination file", dst,
        src == "-" ? "(standard input)" : src));
  return dst + (dst.back() == '/' ? "" : "/") + name;
}

// SRC's bytes to DST: decoded when `env` decodes inputs (--decompress),
// compressed by DST's name when `compress` (--compress), else as they are.
cloudmerge::Status Copy(cloudmerge::Env* env, const std::string& src, const std::string& dst, bool compress) {
  auto out = cloudmerge::AtomicOutput::Open(env, dst, compress);
  if (!out.ok()) return out.status();
  // S3 objects, compressed files, standard input, FIFOs stream through in pieces; local files are mapped.
  auto stream = env->OpenStream(src);
  if (!stream.ok()) return stream.status();
  if (*stream) {
    CM_RETURN_IF_ERROR(cloudmerge::ForEachPiece(stream->get(), 8 << 20,
                                                [&](std::string_view piece) { return (*out)->Append(piece); }));
    return (*out)->Commit();
  }
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

// Parses the command line. --help and --version print and return 0; every
// usage error is one line, "Error [cloudmerge SUB]: ...", and exit 2 (the
// documented code, not CLI11's 105-114), naming an unknown option rather than
// whatever else CLI11 met first.
std::optional<int> ParseOrExplain(CLI::App* app, int argc, char** argv) {
  std::string error;
  try {
    app->parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app->exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app->exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app->exit(e);
  } catch (const CLI::ParseError& e) {
    error = e.what();
  }
  std::vector<std::string> extra = app->remaining(true);
  if (!extra.empty()) {
    const std::string& first = extra.front();
    error = first.size() > 1 && first[0] == '-'
                ? fmt::format("unknown option {}", first.substr(0, first.find('=')))
                : fmt::format("unexpected argument {}", first);
  }
  if (error.empty()) return std::nullopt;
  std::string name = "cloudmerge";
  for (const CLI::App* sub = app; !sub->get_subcommands().empty();) {
    sub = sub->get_subcommands().front();
    name += " " + sub->get_name();
  }
  while (!error.empty() && error.back() == '.') error.pop_back();
  fmt::print(stderr, "Error [{}]: {}. Run `{} --help` for the options.\n", name, error, name);
  return 2;
}

// --max-output-rows: a whole number of rows, at least 1. Read by CLI11 into a
// uint64_t, -1 became 2^64-1 and 0 meant "no limit", both without a word.
cloudmerge::Result<uint64_t> ParseRowCount(const std::string& text) {
  bool ok = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
  uint64_t rows = 0;
  for (size_t i = 0; ok && i < text.size(); ++i) {
    unsigned digit = static_cast<unsigned>(text[i] - '0');
    ok = rows <= (UINT64_MAX - digit) / 10;
    rows = rows * 10 + digit;
  }
  if (ok && rows > 0) return rows;
  return cloudmerge::Status::InvalidArgument(fmt::format(
      "\"{}\" is not a number of rows: give a whole number from 1 to {}, such as 1000000 (or leave the option "
      "out for no limit)",
      text, UINT64_MAX));
}

cloudmerge::Progress::Style ProgressStyle(const std::string& name) {
  using Style = cloudmerge::Progress::Style;
  return name == "bar" ? Style::kBar : name == "lines" ? Style::kLines : name == "none" ? Style::kNone : Style::kAuto;
}

// How the CLI's user sets what an engine error names (base/setting_names.h).
std::string ErrorText(const cloudmerge::Status& st) {
  cloudmerge::SettingNames names;
  names.memory_limit = "--memory-limit";
  names.temp_dir = "--temp-dir";
  names.max_output_rows = "--max-output-rows";
  names.max_decompressed_size = "--max-decompressed-size";
  names.allow_numeric_header = "--allow-numeric-header";
  return cloudmerge::NameSetting(st, names).message();
}

// `merge` with the native engine: progress while it runs, then the report and
// the summary. Returns the exit code.
int RunNativeMerge(cloudmerge::Env* env, cloudmerge::MergeOptions o, const std::string& progress_style,
                   double progress_interval, const std::string& report_path, bool stats_flag) {
  auto fail = [](const cloudmerge::Status& st) {
    fmt::print(stderr, "Error [cloudmerge merge]: {}\n", ErrorText(st));
    return st.ExitCode();
  };
  if (report_path == "-" && o.out_path == "-") {
    return fail(cloudmerge::Status::InvalidArgument(
        "--report - and the merged rows would both go to standard output; give --report a file name or -o a file"));
  }
  // The report's destination is opened before the merge, so that a bad path
  // fails in a second rather than after an hour's merge; it is written only
  // at the end (a temporary renamed into place, or an S3 upload completed).
  std::unique_ptr<cloudmerge::AtomicOutput> report;
  if (!report_path.empty()) {
    auto r = cloudmerge::AtomicOutput::Open(env, report_path);
    if (!r.ok()) {
      fmt::print(stderr, "Error [cloudmerge merge]: --report {}: {}\n", report_path, r.status().message());
      return r.status().ExitCode();
    }
    report = std::move(r.value());
  }
  bool summary = stats_flag || isatty(STDERR_FILENO);
  // Matched and hottest keys cost the in-memory engine a counter per y row:
  // only when something will show them.
  o.key_stats = o.key_stats || summary || report || o.max_output_rows != 0;
  std::unique_ptr<cloudmerge::Progress> progress =
      cloudmerge::Progress::Create(ProgressStyle(progress_style), stderr, progress_interval);
  o.progress = progress.get();
  cloudmerge::MergeStats stats;
  cloudmerge::Status st = cloudmerge::RunMerge(env, o, &stats);
  // Stop the renderer before anything else is printed to stderr.
  o.progress = nullptr;
  progress.reset();
  // The engine fills these when it plans with them; the summary needs them anyway.
  if (stats.memory_limit == 0) stats.memory_limit = o.memory_limit ? o.memory_limit : cloudmerge::DefaultMemoryLimit();
  if (stats.peak_rss_bytes == 0) stats.peak_rss_bytes = cloudmerge::PeakRssBytes();
  // A --max-output-rows refusal still counted the rows and found the hottest
  // keys: the report is how a program learns them.
  bool refused = !st.ok() && st.code() == cloudmerge::Status::Code::kInvalidInput && o.max_output_rows != 0 &&
                 stats.output_rows > o.max_output_rows;
  if (report && (st.ok() || refused)) {
    cloudmerge::Status written = report->Append(cloudmerge::MergeReportJson(stats, o));
    if (written.ok()) written = report->Commit();
    if (!written.ok()) {
      if (!st.ok()) fail(st);  // the refusal first, then why its report is missing
      // Named by its flag: the fix is another --report, never another -o.
      std::string what = fmt::format("--report {}: could not write the report: {}", report_path, written.message());
      if (st.ok()) {
        while (!what.empty() && what.back() == '.') what.pop_back();
        what += fmt::format(". The merge itself succeeded: {} is complete.",
                            o.out_path == "-" ? "standard output" : o.out_path);
      }
      fmt::print(stderr, "Error [cloudmerge merge]: {}\n", what);
      return st.ok() ? written.ExitCode() : st.ExitCode();
    }
  }
  if (!st.ok()) return fail(st);
  if (summary) fmt::print(stderr, "{}", cloudmerge::MergeSummaryText(stats, o));
  return 0;
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
  // Hidden: the steps Spark tasks run (spark/merge_job.py); an internal protocol, not in --help.
  if (argc > 1 && std::string(argv[1]) == "cluster-task") return cloudmerge_cli::RunClusterTask(argc - 1, argv + 1);
  CLI::App app{"cloudmerge: the merge of analysis.py as a fast, exact C++ engine."};
  app.set_version_flag("--version", std::string("cloudmerge ") + CLOUDMERGE_VERSION);
  app.require_subcommand(1);
  app.formatter(std::make_shared<OneLineSubcommands>());
  // Inherited by the subcommands: an unknown option is collected instead of
  // thrown, so that ParseOrExplain names it even when CLI11 would first
  // complain about a missing positional ("Y is required").
  app.allow_extras();

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
  merge->add_option("--compression-level", o.output_level,
                    "Level of an output named .zst (1-19, default 1) or .gz (1-9, default 1): higher levels make "
                    "a smaller file, slower")
      ->check(CLI::Range(1, 19));
  merge->add_option("-k,--key", key, "Key column of both files: a 1-based position or a header name (default: 1)");
  merge->add_option("--x-key", o.x_key, "Key column of X only (overrides --key)");
  merge->add_option("--y-key", o.y_key, "Key column of Y only (overrides --key)");
  merge->add_flag("--any-order", o.any_order,
                  "Rows in any order (chunks written as they finish) instead of the script's order");
  merge->add_option("-t,--threads", o.threads, "Worker threads (default: one per CPU)")->check(CLI::Range(1u, 256u));
  merge->add_flag("--allow-numeric-header", o.allow_numeric_header,
                  "Accept a header line made only of numbers (normally a sign that the header is missing)");
  size_t segment_kib = 0;
  merge->add_option("--segment-kib", segment_kib,
                    "Streamed inputs (s3://, .gz, .zst) are read in segments of about this many KiB, never whole "
                    "(default: a sixteenth of --memory-limit, 1024 to 65536)")
      ->check(CLI::Range(size_t{1}, size_t{1} << 22));
  merge->add_option("--chunk-kib", chunk_kib, "Size of the parallel work unit in KiB (default: 1024)")
      ->check(CLI::Range(size_t{1}, size_t{1} << 20));
  merge->add_flag("--stats", stats_flag,
                  "Print a summary (rows per side and written, key types, matched and hottest keys, spilling, peak "
                  "memory, time per phase) to standard error; printed anyway when standard error is a terminal");
  std::string memory_limit_text, progress_style = "auto", report_path;
  double progress_interval = 10;
  merge->add_option("--memory-limit", memory_limit_text,
                    fmt::format("Memory the join may use, such as 2GiB or 800MB (default: 60% of the memory available "
                                "— physical, cgroup or Lambda limit — here {}). Bigger inputs are partitioned to "
                                "--temp-dir and joined piece by piece",
                                cloudmerge::FormatBytes(cloudmerge::DefaultMemoryLimit())))
      ->type_name("SIZE");
  merge->add_option("--temp-dir", o.temp_dir,
                    "Where a run bigger than --memory-limit spills (default: $TMPDIR, else /tmp); needs free space "
                    "for about both inputs' size. Its spill files are removed at the end, also after an error or "
                    "SIGINT/SIGTERM")
      ->type_name("DIR");
  // A name checked by CLI11, mapped below: a CheckedTransformer would show
  // its mapping ("value in {auto->0,none->2,zstd->1}") in --help and errors.
  std::string spill_compression = "auto";
  merge->add_option("--spill-compression", spill_compression,
                    "Compress spill files with zstd: auto (when the temp dir's free space is under 4x the inputs), "
                    "zstd, none (default: auto)")
      ->check(CLI::IsMember({"auto", "none", "zstd"}, CLI::ignore_case).description(""))
      ->type_name("auto|none|zstd");
  merge->add_option("--spill-fanout", o.spill_fanout,
                    "Partitions per level of spilling (default: chosen from the sizes); small values force deep "
                    "recursion, for tests and experiments")
      ->check(CLI::Range(2u, 4096u));
  std::string max_output_rows_text;
  merge->add_option("--max-output-rows", max_output_rows_text,
                    "Refuse (exit 3, nothing written) a result of more rows than this; the count is known before "
                    "anything is written and the message names the hottest keys (default: no limit)")
      ->type_name("ROWS");
  merge->add_option("--progress", progress_style,
                    "Progress on standard error: bar (one live line per phase), lines (a JSON object every "
                    "--progress-interval, and one when a phase ends), none; auto: bar on a terminal, else lines "
                    "after the first interval (default: auto)")
      ->check(CLI::IsMember({"auto", "bar", "lines", "none"}).description(""))
      ->type_name("auto|bar|lines|none");
  merge->add_option("--progress-interval", progress_interval, "Seconds between progress updates (default: 10)")
      ->check(CLI::PositiveNumber);
  merge->add_option("--report", report_path,
                    "Write the summary as one JSON object to this file (local or s3://; schema in docs/report.md), "
                    "atomically, when the merge succeeds or is refused by --max-output-rows")
      ->type_name("FILE");

  cloudmerge_cli::S3Flags s3_flags;
  cloudmerge_cli::AddS3Options(merge, &s3_flags);
  cloudmerge_cli::SparkFlags spark_flags;
  cloudmerge_cli::AddSparkOptions(merge, &spark_flags);

  std::string pandas_version = "1.5";
  merge->add_option("--pandas-version", pandas_version,
                    "Give the answer analysis.py gives under this pandas: 1.5 (the reference, same as 2.2 except "
                    "`None` IDs), 2.2, 3.0, 3.1; 1, 2, 3 mean 1.5, 2.2, 3.1. The rules that differ are in "
                    "docs/pandas-versions.md; under 3.x an ID that is an integer beyond 64 bits is refused "
                    "(exit 3) (default: 1.5)")
      ->check(CLI::IsMember({"1", "1.5", "2", "2.2", "3", "3.0", "3.1"}).description(""))
      ->type_name("1.5|2.2|3.0|3.1");

  std::string max_decompressed = "64GiB";
  merge->add_option("--max-decompressed-size", max_decompressed,
                    "Largest size a .gz/.zst input may decompress to, a guard against decompression bombs "
                    "(default: 64GiB)")
      ->type_name("SIZE");

  auto* cp = app.add_subcommand("cp", kCpHelp);
  std::string cp_src, cp_dst;
  bool cp_decompress = false, cp_compress = false;
  cp->add_option("SRC", cp_src, "Source: local path, file:// or s3:// URI; - for standard input")->required();
  cp->add_option("DST", cp_dst,
                 "Destination: local path, file:// or s3:// URI, or a folder (keeps SRC's file name); - for "
                 "standard output")
      ->required();
  cp->add_flag("--decompress", cp_decompress,
               "Decompress a .gz/.zst SRC (by its name) instead of copying its bytes as they are");
  cp->add_flag("--compress", cp_compress,
               "Compress into a .gz/.zst DST (by its name) instead of copying the bytes as they are");
  cloudmerge_cli::AddS3Options(cp, &s3_flags);

  cloudmerge_cli::ServeFlags serve_flags;
  auto* serve = cloudmerge_cli::AddServeCommand(&app, &serve_flags, &s3_flags);

  auto* lambda = app.add_subcommand("lambda", "Run as an AWS Lambda custom runtime (what `bootstrap` does).\n\n"
                                              "Configured by CLOUDMERGE_OUTPUT and the function's environment.");

  app.footer("Run `cloudmerge SUBCOMMAND --help` for a subcommand's options and examples.");
  if (std::optional<int> rc = ParseOrExplain(&app, argc, argv)) return *rc;
  if (*lambda) return cloudmerge_cli::RunLambda();
  if (*serve) return cloudmerge_cli::RunServe(serve_flags, s3_flags);

  // Sizes are parsed here rather than by CLI11 validators so that a bad one is
  // a usage error like the others the engine reports (exit 2, one paragraph).
  auto size_option = [](const char* flag, const std::string& text, uint64_t* bytes) -> int {
    auto r = cloudmerge::ParseByteSize(text);
    if (r.ok() && r.value() == 0) {
      r = cloudmerge::Status::InvalidArgument(
          fmt::format("invalid size \"{}\": it must be more than 0 bytes, such as 2GiB (or leave the option "
                      "out for the default)",
                      text));
    }
    if (!r.ok()) {
      fmt::print(stderr, "Error [cloudmerge merge]: {}: {}\n", flag, r.status().message());
      return r.status().ExitCode();
    }
    *bytes = r.value();
    return 0;
  };
  cloudmerge::UriEnvOptions env_options;
  env_options.make_s3_client = [&]() { return cloudmerge_cli::MakeS3Client(s3_flags); };
  if (int rc = size_option("--max-decompressed-size", max_decompressed, &env_options.max_decompressed_bytes)) return rc;
  // Given means given: --memory-limit "" is an error, not the default.
  if (*merge && merge->count("--memory-limit") > 0) {
    if (int rc = size_option("--memory-limit", memory_limit_text, &o.memory_limit)) return rc;
  }
  if (*merge && merge->count("--max-output-rows") > 0) {
    auto rows = ParseRowCount(max_output_rows_text);
    if (!rows.ok()) {
      fmt::print(stderr, "Error [cloudmerge merge]: --max-output-rows: {}\n", rows.status().message());
      return rows.status().ExitCode();
    }
    o.max_output_rows = *rows;
  }
  // cp copies bytes as they are unless --decompress: its Env then reads
  // .gz/.zst sources as stored.
  env_options.decode_inputs = !*cp || cp_decompress;
  auto env = cloudmerge::NewUriEnv(cloudmerge::Env::Default(), env_options);

  if (*cp) {
    auto fail = [](const cloudmerge::Status& st) {
      fmt::print(stderr, "Error [cloudmerge cp]: {}\n", ErrorText(st));
      return st.ExitCode();
    };
    auto dst = CopyDestination(cp_src, cp_dst);
    if (!dst.ok()) return fail(dst.status());
    cloudmerge::Status st = cloudmerge_cli::CheckOutputsAreDistinct(env.get(), {{"SRC", cp_src}}, {{"DST", *dst}});
    if (st.ok()) st = Copy(env.get(), cp_src, *dst, cp_compress);
    if (!st.ok()) return fail(st);
  }
  if (*merge) {
    // Before any work, for every engine: no output may destroy an input or the other output.
    std::vector<cloudmerge_cli::NamedPath> outputs{{"-o", o.out_path}};
    // (--report - with -o - has its own message in RunNativeMerge.)
    if (!report_path.empty() && !(report_path == "-" && o.out_path == "-")) outputs.push_back({"--report", report_path});
    cloudmerge::Status distinct = cloudmerge_cli::CheckOutputsAreDistinct(
        env.get(), {{"input X", o.x_path}, {"input Y", o.y_path}}, outputs);
    if (!distinct.ok()) {
      fmt::print(stderr, "Error [cloudmerge merge]: {}\n", distinct.message());
      return distinct.ExitCode();
    }
    if (!key.empty()) {
      if (merge->count("--x-key") == 0) o.x_key = key;
      if (merge->count("--y-key") == 0) o.y_key = key;
    }
    if (merge->count("--compression-level")) {
      const cloudmerge::Compression c = cloudmerge::CompressionForPath(o.out_path);
      std::string why = o.out_path == "-" || c == cloudmerge::Compression::kNone
                            ? fmt::format("the output {} is not compressed: name it .zst or .gz, or leave the "
                                          "option out", o.out_path == "-" ? "(standard output)" : o.out_path)
                        : c == cloudmerge::Compression::kGzip && o.output_level > 9
                            ? "gzip's levels are 1 to 9: give 9 or less, or name the output .zst"
                            : "";
      if (!why.empty()) {
        fmt::print(stderr, "Error [cloudmerge merge]: --compression-level {}: {}.\n", o.output_level, why);
        return 2;
      }
    }
    using SpillCompression = cloudmerge::MergeOptions::SpillCompression;
    o.spill_compression = spill_compression == "zstd"   ? SpillCompression::kZstd
                          : spill_compression == "none" ? SpillCompression::kNone
                                                        : SpillCompression::kAuto;
    o.chunk_bytes = chunk_kib * 1024;
    o.segment_bytes = segment_kib * 1024;
    cloudmerge::ParsePandasVersion(pandas_version, &o.pandas.version);  // checked by CLI11 above
    if (spark_flags.engine != cloudmerge::EngineKind::kNative && o.pandas.version != cloudmerge::PandasVersion::k1_5) {
      fmt::print(stderr,
                 "Error [cloudmerge merge]: --pandas-version {}: the Spark engine reproduces pandas 1.5 only. Use "
                 "--engine native (the default) for another pandas version, or leave --pandas-version out.\n",
                 pandas_version);
      return 2;
    }
    if (spark_flags.engine != cloudmerge::EngineKind::kNative && merge->count("--compression-level")) {
      fmt::print(stderr,
                 "Error [cloudmerge merge]: --compression-level: the Spark engine writes its output at the default "
                 "level. Use --engine native (the default), or leave --compression-level out.\n");
      return 2;
    }
    if (spark_flags.engine != cloudmerge::EngineKind::kNative) return cloudmerge_cli::RunSparkMerge(spark_flags, o, s3_flags);
    return RunNativeMerge(env.get(), o, progress_style, progress_interval, report_path, stats_flag);
  }
  return 0;
}
