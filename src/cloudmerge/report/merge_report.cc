#include "cloudmerge/report/merge_report.h"

#include <algorithm>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cloudmerge/engine/error_report.h"
#include "cloudmerge/base/memory_info.h"

namespace cloudmerge {

namespace {

// The phases as the engine recorded them; an engine that only filled the
// older per-step timings (seconds_scan_y, ...) gets them as phases, so the
// report always says where the time went.
std::vector<PhaseStats> PhasesOf(const MergeStats& s) {
  if (!s.phases.empty()) return s.phases;
  std::vector<PhaseStats> out;
  auto add = [&](const char* name, double seconds, uint64_t rows, uint64_t bytes) {
    if (seconds > 0) out.push_back(PhaseStats{name, seconds, rows, bytes});
  };
  add("scan y", s.seconds_scan_y, s.y_rows, s.y_bytes);
  add("build", s.seconds_build, s.y_rows, 0);
  add("scan x", s.seconds_scan_x, s.x_rows, s.x_bytes);
  add("probe+write", s.seconds_probe, s.x_rows, s.x_bytes);
  return out;
}

// A --max-output-rows refusal: the engine counted the rows and wrote none.
bool Refused(const MergeStats& s, const MergeOptions& o) {
  return o.max_output_rows != 0 && s.output_rows > o.max_output_rows;
}

std::string PathName(const std::string& path) { return path == "-" ? "standard output" : path; }

}  // namespace

std::string MergeSummaryText(const MergeStats& s, const MergeOptions& o) {
  // Label column 15 wide; counts right-aligned in 15 so that they line up.
  std::string out = "cloudmerge merge summary\n";
  auto line = [&](std::string_view label, const std::string& text) {
    out += fmt::format("  {:<15}{}\n", label, text);
  };
  line("x", fmt::format("{:>15} rows  {:>10}  IDs {}  ({})", Grouped(s.x_rows), FormatBytes(s.x_bytes),
                        KeyModeName(s.x_mode), o.x_path == "-" ? "standard input" : o.x_path));
  line("y", fmt::format("{:>15} rows  {:>10}  IDs {}, {} distinct  ({})", Grouped(s.y_rows), FormatBytes(s.y_bytes),
                        KeyModeName(s.y_mode), Grouped(s.y_distinct_keys),
                        o.y_path == "-" ? "standard input" : o.y_path));
  if (Refused(s, o)) {
    line("written", fmt::format("{:>15} rows  (refused: the result would have {} rows, over --max-output-rows {})",
                                0, Grouped(s.output_rows), Grouped(o.max_output_rows)));
  } else {
    line("written", fmt::format("{:>15} rows  to {}", Grouped(s.output_rows), PathName(o.out_path)));
  }
  line("matched keys", fmt::format("{:>15}", Grouped(s.matched_keys)));
  if (!s.hottest_keys.empty()) {
    std::string hot;
    size_t shown = std::min<size_t>(s.hottest_keys.size(), 3);
    for (size_t i = 0; i < shown; ++i) {
      const HotKey& k = s.hottest_keys[i];
      hot += fmt::format("{}\"{}\" {} x {} = {} rows", i ? "; " : "", Printable(k.key, 40), Grouped(k.x_rows),
                         Grouped(k.y_rows), Grouped(k.output_rows()));
    }
    line("hottest keys", hot);
  }
  if (s.out_of_core) {
    std::string ooc = fmt::format("{} partitions, {} spill level{}, {} spilled in {} files ({})",
                                  Grouped(s.partitions), s.spill_levels, s.spill_levels == 1 ? "" : "s",
                                  FormatBytes(s.spilled_bytes), Grouped(s.spill_files),
                                  s.spill_compressed ? "zstd" : "uncompressed");
    if (s.nested_loop_keys)
      ooc += fmt::format(", {} partition(s) joined block by block (a hot key, or the level cap)", Grouped(s.nested_loop_keys));
    if (s.merge_ranges) ooc += fmt::format(", merged in {} range{}", s.merge_ranges, s.merge_ranges == 1 ? "" : "s");
    line("out of core", ooc);
  } else {
    line("out of core", s.sparse_hash_tables ? "no (the join fit in memory, with room for sparse hash tables)"
                                             : "no (the join fit in memory)");
  }
  if (s.reclaimed_temp_bytes)
    line("reclaimed", fmt::format("{} of temporary files left by runs that died", FormatBytes(s.reclaimed_temp_bytes)));
  std::string mem = s.peak_rss_bytes ? FormatBytes(s.peak_rss_bytes) : std::string("not measured");
  if (s.memory_limit) mem += fmt::format(" of {} limit", FormatBytes(s.memory_limit));
  line("peak memory", mem);
  line("threads", std::to_string(s.threads));
  std::string time = fmt::format("{:.2f} s total", s.seconds_total);
  std::vector<PhaseStats> phases = PhasesOf(s);
  for (size_t i = 0; i < phases.size(); ++i)
    time += fmt::format("{} {} {:.2f} s", i ? "," : ":", phases[i].name, phases[i].seconds);
  line("time", time);
  if (s.speculation_failed)
    line("note", "x's IDs were not of the type assumed from y's: x was probed twice");
  if (s.damaged_transfer_retried)
    line("note", "an input arrived damaged (checksum mismatch) and was read again");
  return out;
}

std::string MergeReportJson(const MergeStats& s, const MergeOptions& o) {
  // ordered_json: keys in the documented order, which is the order people read.
  using Json = nlohmann::ordered_json;
  Json j;
  j["x"] = {{"path", o.x_path}, {"rows", s.x_rows}, {"bytes", s.x_bytes}, {"key_type", KeyModeName(s.x_mode)}};
  j["y"] = {{"path", o.y_path},
            {"rows", s.y_rows},
            {"bytes", s.y_bytes},
            {"key_type", KeyModeName(s.y_mode)},
            {"distinct_keys", s.y_distinct_keys}};
  j["output"] = {{"path", o.out_path},
                 {"rows", s.output_rows},
                 {"written", !Refused(s, o)},
                 {"max_rows", o.max_output_rows}};
  j["matched_keys"] = s.matched_keys;
  Json hot = Json::array();
  for (const HotKey& k : s.hottest_keys)
    hot.push_back({{"key", k.key}, {"x_rows", k.x_rows}, {"y_rows", k.y_rows}, {"output_rows", k.output_rows()}});
  j["hottest_keys"] = std::move(hot);
  // Bucket i holds keys with [2^i, 2^(i+1)) output rows; labelled by 2^i.
  Json buckets = Json::object();
  for (size_t i = 0; i < s.matches_per_key.size(); ++i)
    if (s.matches_per_key[i]) buckets[std::to_string(uint64_t{1} << i)] = s.matches_per_key[i];
  j["matches_per_key_log2"] = std::move(buckets);
  j["threads"] = s.threads;
  j["memory"] = {{"limit_bytes", s.memory_limit}, {"peak_rss_bytes", s.peak_rss_bytes}};
  j["out_of_core"] = {{"used", s.out_of_core},
                      {"partitions", s.partitions},
                      {"spill_levels", s.spill_levels},
                      {"merge_ranges", s.merge_ranges},
                      {"nested_loop_keys", s.nested_loop_keys},
                      {"spilled_bytes", s.spilled_bytes},
                      {"spill_files", s.spill_files},
                      {"spill_compressed", s.spill_compressed},
                      {"reclaimed_temp_bytes", s.reclaimed_temp_bytes}};
  Json phases = Json::array();
  for (const PhaseStats& p : PhasesOf(s))
    phases.push_back({{"name", p.name}, {"seconds", p.seconds}, {"rows", p.rows}, {"bytes", p.bytes}});
  j["phases"] = std::move(phases);
  j["seconds_total"] = s.seconds_total;
  j["speculation_failed"] = s.speculation_failed;
  // Keys come from validated UTF-8 input, but a report must never fail to be
  // written over an odd byte: replace invalid sequences instead of throwing.
  return j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

}  // namespace cloudmerge
