// MergeReport: the JSON of --report (schema of docs/report.md) and the
// summary text, from hand-filled MergeStats.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cloudmerge/report/merge_report.h"

namespace cloudmerge {
namespace {

using Json = nlohmann::json;

MergeOptions Options() {
  MergeOptions o;
  o.x_path = "x.tsv";
  o.y_path = "y.tsv";
  o.out_path = "out.tsv";
  return o;
}

// An out-of-core run with a skewed key.
MergeStats FilledStats() {
  MergeStats s;
  s.x_rows = 1234567;
  s.y_rows = 2000000;
  s.output_rows = 3000123;
  s.y_distinct_keys = 1999000;
  s.x_mode = KeyMode::kInt64;
  s.y_mode = KeyMode::kText;
  s.threads = 2;
  s.speculation_failed = true;
  s.x_bytes = 45ull << 20;
  s.y_bytes = 91ull << 20;
  s.matched_keys = 800000;
  s.hottest_keys = {{"42", 1000, 20}, {"a\tb", 30, 3}, {"7", 2, 2}, {"9", 1, 2}};
  s.matches_per_key[0] = 700000;  // 1 output row
  s.matches_per_key[1] = 99990;   // 2-3
  s.matches_per_key[4] = 9;       // 16-31
  s.matches_per_key[14] = 1;      // 16384-32767 (the key "42": 20000)
  s.phases = {{"read y", 0.5, 2000000, 91ull << 20}, {"partition x", 1.25, 1234567, 45ull << 20}, {"join", 2.0, 0, 0}};
  s.seconds_total = 3.75;
  s.out_of_core = true;
  s.memory_limit = 2ull << 30;
  s.partitions = 64;
  s.spill_levels = 2;
  s.merge_ranges = 2;
  s.nested_loop_keys = 1;
  s.spilled_bytes = 3ull << 29;
  s.spill_files = 130;
  s.reclaimed_temp_bytes = 5 << 20;
  s.peak_rss_bytes = (6ull << 30) / 5;  // 1.2 GiB
  return s;
}

TEST(MergeReportJson, HasTheDocumentedSchema) {
  Json j = Json::parse(MergeReportJson(FilledStats(), Options()));
  EXPECT_EQ(j["x"], (Json{{"path", "x.tsv"}, {"rows", 1234567}, {"bytes", 45ull << 20}, {"key_type", "int64"}}));
  EXPECT_EQ(j["y"], (Json{{"path", "y.tsv"},
                          {"rows", 2000000},
                          {"bytes", 91ull << 20},
                          {"key_type", "text"},
                          {"distinct_keys", 1999000}}));
  EXPECT_EQ(j["output"], (Json{{"path", "out.tsv"}, {"rows", 3000123}, {"written", true}, {"max_rows", 0}}));
  EXPECT_EQ(j["matched_keys"], 800000);
  ASSERT_EQ(j["hottest_keys"].size(), 4u);
  EXPECT_EQ(j["hottest_keys"][0], (Json{{"key", "42"}, {"x_rows", 1000}, {"y_rows", 20}, {"output_rows", 20000}}));
  EXPECT_EQ(j["hottest_keys"][1]["key"], "a\tb");
  EXPECT_EQ(j["hottest_keys"][1]["output_rows"], 90);
  // Only non-empty buckets, labelled by their lower bound.
  EXPECT_EQ(j["matches_per_key_log2"], (Json{{"1", 700000}, {"2", 99990}, {"16", 9}, {"16384", 1}}));
  EXPECT_EQ(j["threads"], 2);
  EXPECT_EQ(j["memory"], (Json{{"limit_bytes", 2ull << 30}, {"peak_rss_bytes", (6ull << 30) / 5}}));
  EXPECT_EQ(j["out_of_core"], (Json{{"used", true},
                                    {"partitions", 64},
                                    {"spill_levels", 2},
                                    {"merge_ranges", 2},
                                    {"nested_loop_keys", 1},
                                    {"spilled_bytes", 3ull << 29},
                                    {"spill_files", 130},
                                    {"spill_compressed", false},
                                    {"reclaimed_temp_bytes", 5 << 20}}));
  ASSERT_EQ(j["phases"].size(), 3u);
  EXPECT_EQ(j["phases"][1],
            (Json{{"name", "partition x"}, {"seconds", 1.25}, {"rows", 1234567}, {"bytes", 45ull << 20}}));
  EXPECT_EQ(j["seconds_total"], 3.75);
  EXPECT_EQ(j["speculation_failed"], true);
  EXPECT_EQ(j.size(), 12u) << "no undocumented top-level keys: " << j.dump();
}

TEST(MergeReportJson, KeysInDocumentedOrderAndOneObject) {
  std::string text = MergeReportJson(FilledStats(), Options());
  EXPECT_EQ(text.back(), '\n');
  size_t x = text.find("\"x\""), y = text.find("\"y\""), out = text.find("\"output\""),
         sec = text.find("\"seconds_total\"");
  EXPECT_LT(x, y);
  EXPECT_LT(y, out);
  EXPECT_LT(out, sec);
}

TEST(MergeReportJson, EmptyRunHasEmptyCollections) {
  MergeStats s;
  Json j = Json::parse(MergeReportJson(s, Options()));
  EXPECT_TRUE(j["hottest_keys"].is_array());
  EXPECT_TRUE(j["hottest_keys"].empty());
  EXPECT_TRUE(j["matches_per_key_log2"].is_object());
  EXPECT_TRUE(j["matches_per_key_log2"].empty());
  EXPECT_TRUE(j["phases"].is_array());
  EXPECT_EQ(j["out_of_core"]["used"], false);
  EXPECT_EQ(j["output"]["rows"], 0);
}

TEST(MergeReportJson, TopBucketAndInvalidUtf8DoNotBreakIt) {
  MergeStats s;
  s.matches_per_key[63] = 1;
  s.hottest_keys = {{std::string("\xff\xfe", 2), 1, 1}};
  Json j = Json::parse(MergeReportJson(s, Options()));
  EXPECT_EQ(j["matches_per_key_log2"]["9223372036854775808"], 1);
  EXPECT_EQ(j["hottest_keys"][0]["key"], "\xEF\xBF\xBD\xEF\xBF\xBD") << "replaced with U+FFFD";
}

TEST(MergeReportJson, OlderTimingsBecomePhases) {
  MergeStats s;
  s.y_rows = 10;
  s.x_rows = 20;
  s.seconds_scan_y = 0.25;
  s.seconds_build = 0.5;
  s.seconds_probe = 1.0;  // seconds_scan_x 0: x was not scanned apart
  Json j = Json::parse(MergeReportJson(s, Options()));
  ASSERT_EQ(j["phases"].size(), 3u) << j["phases"];
  EXPECT_EQ(j["phases"][0]["name"], "scan y");
  EXPECT_EQ(j["phases"][0]["rows"], 10);
  EXPECT_EQ(j["phases"][1]["name"], "build");
  EXPECT_EQ(j["phases"][2]["name"], "probe+write");
  EXPECT_EQ(j["phases"][2]["seconds"], 1.0);
}

TEST(MergeReportJson, RefusalByMaxOutputRowsSaysNothingWasWritten) {
  MergeOptions o = Options();
  o.max_output_rows = 1000;
  Json j = Json::parse(MergeReportJson(FilledStats(), o));
  EXPECT_EQ(j["output"]["rows"], 3000123) << "the count is reported either way";
  EXPECT_EQ(j["output"]["written"], false);
  EXPECT_EQ(j["output"]["max_rows"], 1000);
  o.max_output_rows = 3000123;  // exactly at the limit: allowed
  EXPECT_EQ(Json::parse(MergeReportJson(FilledStats(), o))["output"]["written"], true);
}

TEST(MergeSummaryText, HumanLinesWithTheKeyFacts) {
  std::string text = MergeSummaryText(FilledStats(), Options());
  for (const char* fragment : {"1,234,567 rows",
                               "2,000,000 rows",
                               "IDs int64",
                               "IDs text, 1,999,000 distinct",
                               "3,000,123 rows  to out.tsv",
                               "800,000",
                               "\"42\" 1,000 x 20 = 20,000 rows",
                               "\"a<TAB>b\" 30 x 3 = 90 rows",
                               "64 partitions, 2 spill levels, 1.5 GiB spilled in 130 files",
                               "1 partition(s) joined block by block",
                               "5.0 MiB of temporary files",
                               "peak memory    1.2 GiB of 2.0 GiB limit",
                               "3.75 s total: read y 0.50 s, partition x 1.25 s, join 2.00 s",
                               "probed twice"}) {
    EXPECT_NE(text.find(fragment), std::string::npos) << "missing \"" << fragment << "\" in:\n" << text;
  }
  EXPECT_EQ(text.find("\"9\""), std::string::npos) << "only the three hottest keys:\n" << text;
  // Aligned: after the title, two spaces, a label padded to 15, the value;
  // the row counts of x, y and written end in the same column.
  size_t begin = text.find('\n') + 1;
  int lines = 0;
  std::vector<size_t> rows_columns;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    ASSERT_NE(end, std::string::npos);
    std::string line = text.substr(begin, end - begin);
    ASSERT_GT(line.size(), 17u) << line;
    EXPECT_EQ(line.substr(0, 2), "  ") << line;
    EXPECT_NE(line[2], ' ') << line;
    EXPECT_EQ(line[16], ' ') << "the label fits its column: " << line;
    size_t rows = line.find(" rows");
    if (line.compare(2, 2, "x ") == 0 || line.compare(2, 2, "y ") == 0 || line.compare(2, 8, "written ") == 0)
      rows_columns.push_back(rows);
    begin = end + 1;
    ++lines;
  }
  ASSERT_EQ(rows_columns.size(), 3u) << text;
  EXPECT_EQ(rows_columns[0], rows_columns[1]) << text;
  EXPECT_EQ(rows_columns[1], rows_columns[2]) << text;
  EXPECT_GE(lines, 9);
  EXPECT_LE(lines, 12) << "a few lines";
}

TEST(MergeSummaryText, InMemoryRunToStandardOutput) {
  MergeOptions o = Options();
  o.out_path = "-";
  MergeStats s;
  s.output_rows = 5;
  s.peak_rss_bytes = 10 << 20;
  std::string text = MergeSummaryText(s, o);
  EXPECT_NE(text.find("5 rows  to standard output"), std::string::npos) << text;
  EXPECT_NE(text.find("no (the join fit in memory)"), std::string::npos) << text;
  EXPECT_NE(text.find("peak memory    10.0 MiB\n"), std::string::npos) << "no limit known, none shown:\n" << text;
  s.sparse_hash_tables = true;
  EXPECT_NE(MergeSummaryText(s, o).find("no (the join fit in memory, with room for sparse hash tables)"),
            std::string::npos);
  EXPECT_EQ(text.find("hottest"), std::string::npos) << text;
  EXPECT_EQ(text.find("reclaimed"), std::string::npos) << text;
}

TEST(MergeSummaryText, Refusal) {
  MergeOptions o = Options();
  o.max_output_rows = 1000;
  std::string text = MergeSummaryText(FilledStats(), o);
  EXPECT_NE(text.find("refused: the result would have 3,000,123 rows, over --max-output-rows 1,000"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace cloudmerge
