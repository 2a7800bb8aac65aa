// The dashboard's pages: each job's state read from the stores (inputs,
// _state markers, claims), the jobs page and the Prometheus metrics. See
// dashboard.h; the HTTP server that serves them is dashboard.cc.
#include "cloudmerge/pipeline/dashboard.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cloudmerge/base/ascii.h"
#include "cloudmerge/base/json_fields.h"
#include "cloudmerge/report/report_html.h"

namespace cloudmerge {
namespace {

using nlohmann::json;

// "2026-11-24T23:25:26.123Z" -> seconds since the epoch (-1 if unparsable).
double ParseIso8601(const std::string& s) {
  std::tm tm{};
  int ms = 0;
  if (std::sscanf(s.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                  &tm.tm_sec, &ms) < 6)
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<double>(timegm(&tm)) + ms / 1000.0;
}

// The job a key in the output store belongs to ("a/b/_state/r/done.json" -> "a/b").
std::string JobOfStateKey(const std::string& key) {
  size_t at = key.find("/_state/");
  return at == std::string::npos ? "" : key.substr(0, at);
}

// The run's newest claim (claim-<n> with the highest n), or null.
json LatestClaim(JobStore* out, const std::string& prefix, const std::set<std::string>& out_keys) {
  int highest = 0;
  for (auto it = out_keys.lower_bound(prefix + "claim-"); it != out_keys.end() && it->rfind(prefix + "claim-", 0) == 0;
       ++it)
    highest = std::max(highest, std::atoi(it->c_str() + prefix.size() + 6));
  if (highest == 0) return json();
  auto text = out->Get(fmt::format("{}claim-{}", prefix, highest));
  json claim = text.ok() ? json::parse(*text, nullptr, false) : json();
  return claim.is_object() ? claim : json::object({{"expires_ms", INT64_MAX}});  // unreadable: assume alive
}

JobView ViewOf(JobStore* in, JobStore* out, const std::string& job, const JobNaming& naming,
               const std::set<std::string>& out_keys) {
  JobView v;
  v.job = job;
  v.has_report = out_keys.count(job + "/report.html") > 0;
  auto found = FindJobInputs(in, job, naming);
  if (!found.ok()) {
    v.state = "failed";
    v.detail = found.status().message();
    return v;
  }
  if (!found->has_value()) {
    bool has_x = false, has_y = false;
    auto listed = in->List(job + "/");
    if (listed.ok())
      for (const auto& o : *listed) {
        has_x |= JobForKey(o.key, naming) && o.key.find("/" + naming.x_name) != std::string::npos;
        has_y |= JobForKey(o.key, naming) && o.key.find("/" + naming.y_name) != std::string::npos;
      }
    v.state = "waiting";
    v.detail = fmt::format("waiting for {}", !has_x && !has_y ? naming.x_name + " and " + naming.y_name
                                             : !has_x          ? naming.x_name
                                                               : naming.y_name);
    return v;
  }
  std::string prefix = fmt::format("{}/_state/{}/", job, (*found)->RunId());
  if (out_keys.count(prefix + "done.json")) {
    v.state = "done";
    auto text = out->Get(prefix + "done.json");
    json d = text.ok() ? json::parse(*text, nullptr, false) : json();
    if (d.is_object()) {
      v.rows = JsonNumber(JsonMember(d, "rows"), "output", -1.0);
      v.seconds = JsonNumber(d, "seconds", -1.0);
      v.finished = JsonString(d, "finished");
      v.detail = JsonString(d, "result");
    }
  } else if (out_keys.count(prefix + "failed.json")) {
    v.state = "failed";
    auto text = out->Get(prefix + "failed.json");
    json f = text.ok() ? json::parse(*text, nullptr, false) : json();
    if (f.is_object()) {
      v.detail = JsonString(f, "error");
      v.finished = JsonString(f, "time");
    }
  } else if (auto claim = LatestClaim(out, prefix, out_keys); claim.is_object()) {
    if (JsonInt(claim, "expires_ms", 0) < NowMillis()) {  // its worker died: the run will be taken over
      v.state = "queued";
      v.detail = fmt::format("the claim of {} expired: waiting for another worker", JsonString(claim, "worker", "?"));
      return v;
    }
    v.state = "running";
    auto started = out->Get(prefix + "received");
    double t0 = started.ok() ? ParseIso8601(*started) : -1;
    if (t0 > 0) v.elapsed_s = std::max(0.0, NowMillis() / 1000.0 - t0);
    v.detail = "merging on " + JsonString(claim, "worker", "?");
  } else {
    v.state = "queued";
    v.detail = "inputs complete, waiting for a worker";
  }
  return v;
}

}  // namespace

Result<DashboardSnapshot> CollectJobs(JobStore* in, JobStore* out, const JobNaming& naming) {
  auto inputs = in->List("");
  if (!inputs.ok()) return inputs.status();
  auto outputs = out->List("");
  if (!outputs.ok()) return outputs.status();
  std::set<std::string> jobs, out_keys;
  for (const auto& o : *inputs)
    if (auto job = JobForKey(o.key, naming)) jobs.insert(*job);
  DashboardSnapshot s;
  for (const auto& o : *outputs) {
    out_keys.insert(o.key);
    if (o.key.size() > 12 && o.key.compare(o.key.size() - 12, 12, "/failed.json") == 0 && !JobOfStateKey(o.key).empty())
      ++s.failed_runs;
  }
  for (const auto& job : jobs) s.jobs.push_back(ViewOf(in, out, job, naming, out_keys));
  return s;
}

std::string RenderDashboardHtml(const DashboardSnapshot& s, const std::string& q) {
  std::map<std::string, int> counts;
  for (const auto& j : s.jobs) ++counts[j.state];
  std::string h =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"5\">"
      "<title>cloudmerge jobs</title><style>"
      "body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:75em;padding:0 1em;color:#1d2330}"
      "table{border-collapse:collapse;width:100%}td,th{padding:.35em .7em;text-align:left;border-bottom:1px solid #e3e5ea;"
      "vertical-align:top}.badge{display:inline-block;padding:.1em .6em;border-radius:.8em;color:#fff;font-weight:600}"
      ".done{background:#2e7d32}.failed{background:#c62828}.running{background:#1565c0}.queued{background:#6a1b9a}"
      ".waiting{background:#8d8f94}.muted{color:#667}td.n{text-align:right;white-space:nowrap}code{font-size:.92em}"
      ".detail{max-width:40em;white-space:pre-wrap;word-break:break-word}"
      "</style></head><body>\n<h1>cloudmerge jobs</h1>\n<p class=\"muted\">";
  for (const char* st : {"waiting", "queued", "running", "done", "failed"})
    h += fmt::format("<span class=\"badge {0}\">{0}: {1}</span> ", st, counts[st]);
  h += "&middot; <a href=\"/metrics" + HtmlEscape(q) + "\">metrics</a> &middot; refreshes every 5 s</p>\n";
  if (s.jobs.empty()) h += "<p>No jobs yet: drop x_list.txt and y_list.txt into a folder of the input location.</p>\n";
  h += "<table><thead><tr><th>job</th><th>state</th><th>details</th><th>rows</th><th>time</th><th>report</th></tr>"
       "</thead><tbody>\n";
  for (const auto& j : s.jobs) {
    std::string time = j.state == "running" && j.elapsed_s >= 0 ? fmt::format("{:.0f} s so far", j.elapsed_s)
                       : j.seconds >= 0                         ? fmt::format("{:.2f} s", j.seconds)
                                                                : "";
    std::string links;
    if (j.has_report) {
      std::string base = "/jobs/" + UriEncode(j.job, false) + "/report.";
      links = "<a href=\"" + HtmlEscape(base + "html" + q) + "\">report.html</a>";
      if (j.state == "done") links += " <a href=\"" + HtmlEscape(base + "json" + q) + "\">report.json</a>";
    }
    h += "<tr class=\"job\"><td><code>" + HtmlEscape(j.job) + "</code></td><td><span class=\"badge " + j.state + "\">" +
         j.state + "</span></td><td class=\"detail\">" + HtmlEscape(j.detail) + "</td><td class=\"n\">" +
         (j.rows >= 0 ? fmt::format("{:.0f}", j.rows) : "") + "</td><td class=\"n\">" + time + "</td><td>" + links +
         "</td></tr>\n";
  }
  return h + "</tbody></table>\n</body></html>\n";
}

std::string RenderMetrics(const DashboardSnapshot& s) {
  std::map<std::string, int> counts;
  double rows = 0, last_seconds = -1;
  std::string last_finished;
  for (const auto& j : s.jobs) {
    ++counts[j.state];
    if (j.state != "done") continue;
    rows += std::max(0.0, j.rows);
    if (j.finished >= last_finished) last_finished = j.finished, last_seconds = j.seconds;
  }
  std::string m = "# HELP cloudmerge_jobs Jobs by the state of the run of their current inputs.\n"
                  "# TYPE cloudmerge_jobs gauge\n";
  for (const char* st : {"waiting", "queued", "running", "done", "failed"})
    m += fmt::format("cloudmerge_jobs{{state=\"{}\"}} {}\n", st, counts[st]);
  m += "# HELP cloudmerge_rows_written Result rows of the jobs that are done.\n# TYPE cloudmerge_rows_written gauge\n";
  m += fmt::format("cloudmerge_rows_written {:.0f}\n", rows);
  m += "# HELP cloudmerge_failures Failed runs recorded in the output (every run, current or not).\n"
       "# TYPE cloudmerge_failures gauge\n";
  m += fmt::format("cloudmerge_failures {:.0f}\n", s.failed_runs);
  if (last_seconds >= 0) {
    m += "# HELP cloudmerge_last_run_seconds Duration of the most recently finished run.\n"
         "# TYPE cloudmerge_last_run_seconds gauge\n";
    m += fmt::format("cloudmerge_last_run_seconds {}\n", last_seconds);
  }
  return m;
}

}  // namespace cloudmerge
