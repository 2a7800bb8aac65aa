// report.html and the dashboard's pure parts: escaping, pandas-shaped
// previews (expected texts printed by pandas 1.5.3's print(df) for the same
// input), the cost arithmetic, the pages and /metrics, --http parsing.
// Single-threaded.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "cloudmerge/pipeline/dashboard.h"
#include "cloudmerge/pipeline/json_log.h"
#include "cloudmerge/report/report_html.h"

namespace cloudmerge {
namespace {

using nlohmann::json;

TEST(HtmlEscape, EscapesEverySpecialCharacter) {
  EXPECT_EQ(HtmlEscape("<script>a&b\"c'</script>"), "&lt;script&gt;a&amp;b&quot;c&#39;&lt;/script&gt;");
  EXPECT_EQ(HtmlEscape("plain"), "plain");
}

TEST(PandasPreview, MatchesPandasPrintOfSmallFrames) {
  // Each expected text is pandas 1.5.3's DataFrame.to_string() of read_csv(sep="\t").
  EXPECT_EQ(PandasPreview({"ID\tvalue", "007\ta b", "2\t1.5", "3\t&<x>"}),
            "   ID value\n0   7   a b\n1   2   1.5\n2   3  &<x>");
  EXPECT_EQ(PandasPreview({"ID\tv", "abc\t7"}), "    ID  v\n0  abc  7");
  EXPECT_EQ(PandasPreview({"I\tv", "-7\t-1.5"}), "   I    v\n0 -7 -1.5");
  EXPECT_EQ(PandasPreview({"ID\tvalue", "1\t1.5", "22\t2.25", "3\t", "1000\t3"}),
            "     ID  value\n0     1   1.50\n1    22   2.25\n2     3    NaN\n3  1000   3.00");
  EXPECT_EQ(PandasPreview({"ID\tvalue", "A\tTrue", "B\tFalse"}), "  ID  value\n0  A   True\n1  B  False");
  EXPECT_EQ(PandasPreview({"ID\tvalue", "1\t1.5", "22\t2.25", "3\t", "1000\t1e10"}),
            "     ID         value\n0     1  1.500000e+00\n1    22  2.250000e+00\n2     3           NaN\n"
            "3  1000  1.000000e+10");
}

TEST(PandasPreview, EmptyFrameAsPandasPrintsIt) {
  EXPECT_EQ(PandasPreview({"ID\tv"}), "Empty DataFrame\nColumns: [ID, v]\nIndex: []");
}

TEST(Cost, CountsRequestsAndPricesThem) {
  CostPrices p;
  p.lambda_memory_mb = 2048;
  RunUsage u;
  u.seconds = 10;
  u.x_bytes = 40.0 * 1024 * 1024;   // 3 parts of 16 MiB
  u.y_bytes = 1000;                 // 1
  u.result_bytes = 20.0 * 1024 * 1024;  // multipart: 2 parts + create + complete
  json c = EstimateCost(u, p);
  EXPECT_DOUBLE_EQ(c["lambda_gb_seconds"].get<double>(), 20.0);
  EXPECT_DOUBLE_EQ(c["s3_get_requests"].get<double>(), 3 + 1 + 5);
  EXPECT_DOUBLE_EQ(c["s3_put_requests"].get<double>(), 4 + 2 + 5 + 2);
  EXPECT_DOUBLE_EQ(c["usd"]["lambda_compute"].get<double>(), 20.0 * p.lambda_gb_second);
  double total = 0;
  for (const char* k : {"lambda_compute", "lambda_requests", "s3_get", "s3_put", "transfer"})
    total += c["usd"][k].get<double>();
  EXPECT_DOUBLE_EQ(c["usd"]["total"].get<double>(), total);
}

TEST(Cost, PricesComeFromTheEnvironment) {
  std::map<std::string, std::string> env = {{"CLOUDMERGE_PRICE_S3_PUT_PER_1000", "0.0055"},
                                            {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "3008"},
                                            {"CLOUDMERGE_PRICE_S3_GET_PER_1000", "nonsense"}};
  auto getenv = [&](const char* k) -> const char* {
    auto it = env.find(k);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  CostPrices p = CostPrices::FromEnvironment(getenv);
  EXPECT_DOUBLE_EQ(p.s3_put_per_1000, 0.0055);
  EXPECT_DOUBLE_EQ(p.lambda_memory_mb, 3008);
  EXPECT_DOUBLE_EQ(p.s3_get_per_1000, CostPrices().s3_get_per_1000);  // unparsable: the default stays
  env["CLOUDMERGE_LAMBDA_MEMORY_MB"] = "512";
  EXPECT_DOUBLE_EQ(CostPrices::FromEnvironment(getenv).lambda_memory_mb, 512);
}

json SampleReport(const std::string& value, int result_rows) {
  json rows = json::array({"ID_x\tvalue_x\tvalue_y"});
  for (int i = 0; i < result_rows; ++i) rows.push_back("1\t" + value + "\tq");
  return {{"job", "j<b>&"},
          {"status", "succeeded"},
          {"rows", {{"x", 2}, {"y", 4}, {"output", result_rows}}},
          {"y_distinct_keys", 2},
          {"inputs", {{"x", {{"uri", "/in/x"}, {"size", 10}, {"first_rows", {"ID\tvalue", "1\t" + value}}}}}},
          {"result_first_rows", rows},
          {"cost", EstimateCost(RunUsage{1, 10, 10, 10}, CostPrices())}};
}

TEST(ReportHtml, EscapesValuesAndSaysWhatIsNotMeasured) {
  std::string page = RenderReportHtml(SampleReport("<script>alert(1)</script>", 1));
  EXPECT_EQ(page.find("<script>"), std::string::npos);
  EXPECT_NE(page.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(page.find("j&lt;b&gt;&amp;"), std::string::npos);
  EXPECT_NE(page.find("not measured"), std::string::npos);
  EXPECT_NE(page.find("us-east-1"), std::string::npos);  // the price assumption is stated
  EXPECT_EQ(page.find("http://"), page.find("http://www.w3.org/2000/svg"));  // no external asset
  EXPECT_NE(page.find("result rows per x row (mean)</th><td>0.500"), std::string::npos);
}

TEST(ReportHtml, RendersAnEmptyResult) {
  std::string page = RenderReportHtml(SampleReport("v", 0));
  EXPECT_NE(page.find("Empty DataFrame"), std::string::npos);
}

// engine_stats as JobRunner embeds it (MergeReportJson's schema, docs/report.md).
json EngineStats() {
  return {{"matched_keys", 1180004},
          {"hottest_keys",
           {{{"key", "<script>alert(1)</script>"}, {"x_rows", 7}, {"y_rows", 1}, {"output_rows", 7}},
            {{"key", "2882342"}, {"x_rows", 3}, {"y_rows", 2}, {"output_rows", 6}}}},
          // Text order of the keys ("1", "1024", "2", ...) is not numeric order: the chart must sort.
          {"matches_per_key_log2", {{"1", 931310}, {"2", 223066}, {"4", 25591}, {"8", 37}, {"1024", 1}}},
          {"threads", 2},
          {"memory", {{"limit_bytes", 2147483648ull}, {"peak_rss_bytes", 175833088}}},
          {"out_of_core",
           {{"used", true}, {"partitions", 48}, {"spill_levels", 1}, {"nested_loop_keys", 0},
            {"spilled_bytes", 204682240}, {"spill_files", 144}, {"reclaimed_temp_bytes", 0}}},
          {"phases",
           {{{"name", "partition y"}, {"seconds", 0.889}, {"rows", 3000000}, {"bytes", 57058448}},
            {{"name", "join <&>"}, {"seconds", 2.46}, {"rows", 0}, {"bytes", 0}}}},
          {"seconds_total", 4.83},
          {"speculation_failed", false}};
}

json ReportWithEngineStats(json engine) {
  json r = SampleReport("v", 2);
  r["rows"] = {{"x", 3000000}, {"y", 3000000}, {"output", 1499919}};
  r["y_distinct_keys"] = 3000000;
  r["phases_seconds"] = {{"scan_y", 9.5}, {"total", 99}};
  r["engine_stats"] = std::move(engine);
  return r;
}

TEST(ReportHtml, KeysSectionFromEngineStats) {
  std::string page = RenderReportHtml(ReportWithEngineStats(EngineStats()));
  EXPECT_NE(page.find("IDs matched (in both files)</th><td>1,180,004 of 3,000,000 distinct IDs in y (39%)"),
            std::string::npos);
  EXPECT_NE(page.find("931,310 of 1,180,004 matched IDs (79%) produced exactly one"), std::string::npos);
  // The histogram: one bar per bucket, labelled by its range, in numeric order.
  ASSERT_NE(page.find("aria-label=\"matched IDs by result rows per ID\""), std::string::npos);
  size_t one = page.find(">1</text>"), two = page.find(">2\u20133</text>"), four = page.find(">4\u20137</text>"),
         eight = page.find(">8\u201315</text>"), big = page.find(">1,024\u20132,047</text>");
  ASSERT_NE(big, std::string::npos);
  EXPECT_LT(one, two);
  EXPECT_LT(two, four);
  EXPECT_LT(four, eight);
  EXPECT_LT(eight, big);
  EXPECT_NE(page.find(">931,310 IDs</text>"), std::string::npos);
  EXPECT_NE(page.find(">1 ID</text>"), std::string::npos);
  // Log-scaled: the biggest bucket spans the full 340, a bucket of one ID
  // log2(2)/log2(931311) of it (17.1), not the invisible 1/931310 of a linear scale.
  EXPECT_NE(page.find("width=\"340.0\" height=\"16\" fill=\"#7b3fa0\""), std::string::npos);
  EXPECT_NE(page.find("width=\"17.1\" height=\"16\" fill=\"#7b3fa0\""), std::string::npos);
  // The hottest keys, escaped, with their share of the result.
  EXPECT_EQ(page.find("<script>"), std::string::npos);
  EXPECT_NE(page.find("<td><code>&lt;script&gt;alert(1)&lt;/script&gt;</code></td><td class=\"n\">7</td>"
                      "<td class=\"n\">1</td><td class=\"n\">7</td><td class=\"n\">&lt;0.1%</td>"),
            std::string::npos);
  EXPECT_NE(page.find("<code>2882342</code>"), std::string::npos);
  // The run: memory against the limit, spilling, the engine's own phases (not the old fixed four).
  EXPECT_NE(page.find("peak memory</th><td>167.7 MiB of 2.0 GiB limit (8.2%)"), std::string::npos);
  EXPECT_NE(page.find("out of core</th><td>yes: 48 partitions, 1 spill level, 195.2 MiB spilled in 144 files"),
            std::string::npos);
  EXPECT_NE(page.find(">partition y</text>"), std::string::npos);
  EXPECT_NE(page.find(">join &lt;&amp;&gt;</text>"), std::string::npos);
  EXPECT_NE(page.find("0.889 s \u00b7 3,000,000 rows \u00b7 54.4 MiB"), std::string::npos);
  EXPECT_EQ(page.find(">scan_y</text>"), std::string::npos);
  EXPECT_NE(page.find("engine total 4.830 s"), std::string::npos);
  // Everything in the keys and run sections was measured (the sample's y input has no preview: not measured).
  size_t keys = page.find("<h2 id=\"keys\">"), cost = page.find("Estimated AWS cost");
  ASSERT_LT(keys, cost);
  EXPECT_EQ(page.substr(keys, cost - keys).find("not measured"), std::string::npos);
}

TEST(ReportHtml, NoMatchedKeysRendersWithoutTheChart) {
  json e = EngineStats();
  e["matched_keys"] = 0;
  e["matches_per_key_log2"] = json::object();
  e["hottest_keys"] = json::array();
  e["out_of_core"]["used"] = false;
  std::string page = RenderReportHtml(ReportWithEngineStats(e));
  EXPECT_NE(page.find("IDs matched (in both files)</th><td>0 of 3,000,000 distinct IDs in y (0%)"), std::string::npos);
  EXPECT_NE(page.find("nothing to chart"), std::string::npos);
  EXPECT_EQ(page.find("matched IDs by result rows per ID"), std::string::npos);
  EXPECT_EQ(page.find("Hottest IDs"), std::string::npos);
  EXPECT_NE(page.find("out of core</th><td>no "), std::string::npos);
  EXPECT_NE(page.find("time per phase"), std::string::npos);  // the rest of the page is still there
}

// An engine that counted matched keys but not y's distinct IDs: said, not shown as 0 (or as "0 of 0").
TEST(ReportHtml, UncountedDistinctIdsAreNotMeasuredNotZero) {
  json r = ReportWithEngineStats(EngineStats());
  r["y_distinct_keys"] = 0;
  r["engine_stats"]["phases"][1]["seconds"] = 0.00005;  // a tiny job's phase: in ms, not "0.000 s"
  std::string page = RenderReportHtml(r);
  EXPECT_NE(page.find("distinct IDs in y</th><td><span class=\"nm\">not measured"), std::string::npos);
  EXPECT_NE(page.find("IDs matched (in both files)</th><td>1,180,004</td>"), std::string::npos);
  EXPECT_NE(page.find(">0.05 ms</text>"), std::string::npos);
}

TEST(ReportHtml, OlderReportsFallBackToTheFixedPhases) {
  json r = SampleReport("v", 1);
  r["phases_seconds"] = {{"scan_y", 0.25}, {"build", 0.5}, {"scan_x", 0}, {"probe_and_write", 1}, {"total", 2}};
  std::string page = RenderReportHtml(r);
  EXPECT_NE(page.find(">probe_and_write</text>"), std::string::npos);
  EXPECT_NE(page.find("engine total 2.000 s"), std::string::npos);
  EXPECT_NE(page.find("peak memory</th><td><span class=\"nm\">not measured"), std::string::npos);
  EXPECT_NE(page.find("IDs matched (in both files)</th><td><span class=\"nm\">not measured"), std::string::npos);
}

TEST(ReportHtml, MalformedEngineStatsDoNotBreakThePage) {
  json e = {{"matched_keys", "many"},
            {"hottest_keys", {{{"key", std::string(10000, 'a')}, {"x_rows", -3}}, 5, {{"y_rows", "2"}}}},
            {"matches_per_key_log2", {{"abc", 1}, {"3", 5}, {"-1", 2}, {"0", 4}, {"2", -7}, {"4", "x"}}},
            {"memory", json::array()},
            {"out_of_core", {{"used", "yes"}}},
            {"phases", {{"name", "p"}}},
            {"speculation_failed", 1}};
  json r = ReportWithEngineStats(e);
  std::string page;
  ASSERT_NO_THROW(page = RenderReportHtml(r));
  EXPECT_NE(page.find("IDs matched (in both files)</th><td>0 of"), std::string::npos);
  EXPECT_EQ(page.find("matched IDs by result rows per ID"), std::string::npos);  // no valid bucket
  EXPECT_NE(page.find(std::string(80, 'a') + "\u2026</code>"), std::string::npos);  // a huge key is cut
  EXPECT_EQ(page.find(std::string(81, 'a')), std::string::npos);
  EXPECT_NE(page.find(">scan_y</text>"), std::string::npos);  // phases unusable: the old ones
  EXPECT_NE(page.find("out of core</th><td>no "), std::string::npos);
  r["engine_stats"] = "not an object";
  ASSERT_NO_THROW(page = RenderReportHtml(r));
  EXPECT_NE(page.find("IDs matched (in both files)</th><td><span class=\"nm\">not measured"), std::string::npos);
}

TEST(Dashboard, PageEscapesAndMetricsCountStates) {
  DashboardSnapshot s;
  s.jobs.push_back({"<img src=x onerror=alert(1)>", "failed", "bad <b>", -1, -1, -1, "", true});
  s.jobs.push_back({"ok", "done", "/out/ok/merged.tsv", -1, 1.5, 42, "2026-01-01T00:00:00.000Z", true});
  s.jobs.push_back({"late", "done", "", -1, 2.5, 8, "2026-01-02T00:00:00.000Z", true});
  s.failed_runs = 3;
  std::string page = RenderDashboardHtml(s, "?token=a%26b");
  EXPECT_EQ(page.find("<img"), std::string::npos);
  EXPECT_NE(page.find("&lt;img src=x onerror=alert(1)&gt;"), std::string::npos);
  EXPECT_NE(page.find("/jobs/ok/report.html?token=a%26b"), std::string::npos);
  std::string m = RenderMetrics(s);
  EXPECT_NE(m.find("cloudmerge_jobs{state=\"done\"} 2\n"), std::string::npos);
  EXPECT_NE(m.find("cloudmerge_jobs{state=\"failed\"} 1\n"), std::string::npos);
  EXPECT_NE(m.find("cloudmerge_rows_written 50\n"), std::string::npos);
  EXPECT_NE(m.find("cloudmerge_failures 3\n"), std::string::npos);
  EXPECT_NE(m.find("cloudmerge_last_run_seconds 2.5\n"), std::string::npos);
}

TEST(Dashboard, NonLoopbackNeedsAToken) {
  EXPECT_FALSE(ParseHttpAddress("0.0.0.0:8080", "").ok());
  auto ok = ParseHttpAddress("0.0.0.0:8080", "secret");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->port, 8080);
  auto local = ParseHttpAddress(":0", "");
  ASSERT_TRUE(local.ok());
  EXPECT_EQ(local->host, "127.0.0.1");
  EXPECT_FALSE(ParseHttpAddress("127.0.0.1:99999", "").ok());
  EXPECT_FALSE(ParseHttpAddress("127.0.0.1", "").ok());
}

// States from a real local store: the claim decides running vs. queued.
TEST(Dashboard, StatesFromTheStores) {
  namespace fs = std::filesystem;
  fs::path root = fs::temp_directory_path() / ("cm_dash_" + std::to_string(NowMillis()));
  auto write = [&](const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
  };
  write(root / "in/a/x_list.txt", "ID\tv\n1\ta\n");
  write(root / "in/a/y_list.txt", "ID\tv\n1\tb\n");
  write(root / "in/b/y_list.txt", "ID\tv\n1\tb\n");
  auto in = NewLocalJobStore((root / "in").string());
  auto out = NewLocalJobStore((root / "out").string());
  JobNaming naming;
  auto inputs = FindJobInputs(in.get(), "a", naming);
  ASSERT_TRUE(inputs.ok() && inputs->has_value());
  std::string prefix = "a/_state/" + (*inputs)->RunId() + "/";
  auto state_of = [&](const std::string& job) {
    auto s = CollectJobs(in.get(), out.get(), naming);
    EXPECT_TRUE(s.ok());
    for (const auto& j : s->jobs)
      if (j.job == job) return j;
    return JobView{};
  };
  EXPECT_EQ(state_of("a").state, "queued");
  EXPECT_EQ(state_of("b").state, "waiting");
  EXPECT_EQ(state_of("b").detail, "waiting for x_list.txt");
  ASSERT_TRUE(out->Put(prefix + "claim-1", json({{"worker", "w1"}, {"expires_ms", NowMillis() + 60000}}).dump(), "").ok());
  ASSERT_TRUE(out->Put(prefix + "received", NowIso8601(), "").ok());
  JobView running = state_of("a");
  EXPECT_EQ(running.state, "running");
  EXPECT_GE(running.elapsed_s, 0);
  EXPECT_LT(running.elapsed_s, 60);
  ASSERT_TRUE(out->Put(prefix + "claim-2", json({{"worker", "w2"}, {"expires_ms", NowMillis() - 1}}).dump(), "").ok());
  JobView expired = state_of("a");
  EXPECT_EQ(expired.state, "queued");
  EXPECT_NE(expired.detail.find("w2"), std::string::npos);
  ASSERT_TRUE(out->Put(prefix + "done.json", json({{"rows", {{"output", 1}}}, {"seconds", 0.5}}).dump(), "").ok());
  EXPECT_EQ(state_of("a").state, "done");
  EXPECT_EQ(state_of("a").rows, 1);
  fs::remove_all(root);
}

}  // namespace
}  // namespace cloudmerge
