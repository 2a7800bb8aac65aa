// report.html: what the scientist sees of a run — the job, its inputs with a
// preview shaped like the script's print(df), the result, the keys (IDs
// matched, a chart of result rows per matched ID, the hottest IDs), the run
// (peak memory against the limit, spilling, time per phase), and an estimate
// of what the run costs on AWS — as one self-contained page (inline CSS and
// SVG, no external asset, no script).
//
// Everything is rendered from the report JSON the job runner writes (so the
// page and report.json never disagree); the keys and the run come from its
// "engine_stats" (MergeReportJson, docs/report.md), and a report without it
// (the command engine, older versions) or with odd values still renders, what
// it lacks marked "not measured". Every string that came from a file, a job
// name, an ID or an error is HTML-escaped.
//
// Pure functions of their arguments (plus FromEnvironment's getenv): thread-safe.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace cloudmerge {

// &, <, >, " and ' as entities: safe in element text and quoted attributes.
std::string HtmlEscape(std::string_view s);

// The first rows of a TSV as pandas 1.5 prints the DataFrame the script reads
// (`print(pd.read_csv(f, sep="\t"))`): an index column, right-aligned columns,
// ints/floats/bools/NaN formatted as pandas formats the values it parsed.
// `lines` is the header then the rows (raw TSV lines). Approximate: types are
// inferred from these rows only, and quoted fields spanning lines are not
// joined. An empty frame prints as pandas does ("Empty DataFrame ...").
std::string PandasPreview(const std::vector<std::string>& lines);

// Prices for the cost estimate, in USD. Defaults: AWS list prices for
// us-east-1 (x86 Lambda, S3 Standard) as published in 2025; in-region
// transfer between S3 and Lambda is free.
struct CostPrices {
  double lambda_gb_second = 0.0000166667;
  double lambda_per_million_requests = 0.20;
  double s3_get_per_1000 = 0.0004;
  double s3_put_per_1000 = 0.005;   // also LIST requests (same tier)
  double transfer_per_gb = 0.0;     // set e.g. 0.09 to price egress to the internet
  double lambda_memory_mb = 10240;  // deploy/template.yaml's default MemorySize
  double s3_part_bytes = 16.0 * 1024 * 1024;  // ranged GET / multipart part size (S3Config::part_size)
  std::string assumption = "AWS list prices, us-east-1, 2025 (Lambda x86, S3 Standard); same-region transfer free";

  // Defaults overridden by CLOUDMERGE_PRICE_LAMBDA_GB_SECOND,
  // CLOUDMERGE_PRICE_LAMBDA_PER_MILLION_REQUESTS, CLOUDMERGE_PRICE_S3_GET_PER_1000,
  // CLOUDMERGE_PRICE_S3_PUT_PER_1000, CLOUDMERGE_PRICE_TRANSFER_PER_GB,
  // CLOUDMERGE_LAMBDA_MEMORY_MB (else AWS_LAMBDA_FUNCTION_MEMORY_SIZE, which
  // Lambda sets), CLOUDMERGE_PRICE_ASSUMPTION. Unparsable values are ignored.
  static CostPrices FromEnvironment(const std::function<const char*(const char*)>& getenv);
};

// What a run used, for the estimate (sizes in bytes, seconds of the run).
struct RunUsage {
  double seconds = 0;
  double x_bytes = 0, y_bytes = 0, result_bytes = 0;
};

// The estimate as a JSON object: the prices used, the counted requests and
// GB-seconds (each with how it was counted), and USD per item and in total.
nlohmann::json EstimateCost(const RunUsage& usage, const CostPrices& prices);

// The page for a succeeded run's report JSON (see JobRunner::Report).
std::string RenderReportHtml(const nlohmann::json& report);
// The page for a failed run: the error, what to do, where the logs are.
std::string RenderFailureHtml(const nlohmann::json& failure);

}  // namespace cloudmerge
