// The job runner's messages: notifications sent once per channel, their texts,
// report.json, and the answer to a folder whose inputs are incomplete. See
// job_runner.h; the run itself is job_runner.cc.
#include "cloudmerge/pipeline/job_runner.h"
#include "cloudmerge/pipeline/job_runner_internal.h"
#include <unistd.h>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include "cloudmerge/aws/sha256.h"
#include "cloudmerge/io/compression.h"
#include "cloudmerge/base/json_fields.h"
#include "cloudmerge/engine/merge.h"
#include "cloudmerge/base/memory_info.h"
#include "cloudmerge/report/merge_report.h"
#include "cloudmerge/base/periodic_task.h"
#include "cloudmerge/pipeline/engines/command_engine.h"
#include "cloudmerge/pipeline/cloudwatch_logs.h"
#include "cloudmerge/report/safe_text.h"
#include "cloudmerge/base/ascii.h"

namespace cloudmerge {
namespace {

using nlohmann::json;

// A local path as a file:// URL (percent-encoded: job names may hold spaces or '#').
std::string FileUrl(const std::string& path) { return "file://" + UriEncode(path, false); }

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::string Plural(int64_t n, const char* unit) { return fmt::format("{} {}{}", n, unit, n == 1 ? "" : "s"); }

std::string Expiry(int64_t s) {
  if (s % 86400 == 0) return Plural(s / 86400, "day");
  if (s % 3600 == 0) return Plural(s / 3600, "hour");
  return Plural(s, "second");
}

// A duration as a reader wants it, rounded down ("3 hours", not "10800 seconds").
std::string RoughDuration(int64_t s) {
  if (s >= 2 * 86400) return Plural(s / 86400, "day");
  if (s >= 2 * 3600) return Plural(s / 3600, "hour");
  if (s >= 2 * 60) return Plural(s / 60, "minute");
  return Plural(std::max<int64_t>(s, 0), "second");
}

// The first `rows` lines (after the header) of a TSV text, and the header.
std::vector<std::string> PreviewLines(const std::string& head, int rows) {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < head.size() && static_cast<int>(lines.size()) <= rows) {
    size_t nl = head.find('\n', pos);
    if (nl == std::string::npos) break;  // a cut line is not shown
    std::string line = head.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
    pos = nl + 1;
  }
  return lines;
}

}  // namespace

Result<JobOutcome> JobRunner::Incomplete(const std::string& job) {
  auto listed = in_->List(job + "/");
  if (!listed.ok()) return listed.status();
  const JobNaming& n = o_.naming;
  json present = json::array(), near = json::array();
  bool has_x = false, has_y = false;
  std::string ident;
  for (const StoredObject& o : *listed) {
    std::string base = o.key.substr(job.size() + 1);
    if (base.find('/') != std::string::npos) continue;  // a sub-folder's: another job
    auto meant = NearMissInputName(base, n);
    bool input = JobForKey(o.key, n).has_value();
    if (!input && !meant) continue;
    if (input && base != n.spec_name) (base.rfind(n.x_name, 0) == 0 ? has_x : has_y) = true;
    present.push_back({{"name", base}, {"size", o.size}});
    if (meant) near.push_back({{"name", base}, {"meant", *meant}});
    ident += o.key + "@" + o.etag + ";";
  }
  if (!has_x && !has_y && near.empty()) {
    log_->Info("job.waiting", job, "no input in the folder yet");
    return JobOutcome::kWaiting;
  }
  json missing = json::array();
  if (!has_x) missing.push_back(n.x_name);
  if (!has_y) missing.push_back(n.y_name);
  RunRecord r;
  r.job = job;
  r.run = "incomplete-" + Sha256Hex(ident).substr(0, 20);
  r.state_prefix = fmt::format("{}/_state/{}/", job, r.run);
  auto told = out_->Head(r.state_prefix + "notified-incomplete");
  if (!told.ok()) return told.status();
  if (told->has_value()) {
    log_->Info("job.waiting", job, "waiting for the other input (its owner has been told)", {{"run", r.run}});
    return JobOutcome::kWaiting;
  }
  int64_t waited_ms = 0;
  if (near.empty()) {
    // The wait runs from when a worker first saw the folder so: any worker, any process, any delivery.
    auto first = out_->CreateIfAbsent(r.state_prefix + "first-seen", std::to_string(NowMillis()));
    if (!first.ok()) return first.status();
    if (!*first) {
      auto since = out_->Get(r.state_prefix + "first-seen");
      if (!since.ok()) return since.status();
      waited_ms = NowMillis() - std::atoll(since->c_str());
    }
    if (waited_ms < o_.incomplete_wait_ms) {
      log_->Info("job.waiting", job,
                 fmt::format("waiting for {}; its owner is told if it has not come in {} s", JoinNames(missing),
                             (o_.incomplete_wait_ms - waited_ms + 999) / 1000),
                 {{"run", r.run}, {"notice_in_ms", o_.incomplete_wait_ms - waited_ms}});
      return JobOutcome::kIncomplete;
    }
  }
  if (RetryWaitMs(r.state_prefix + "incomplete") > 0) return JobOutcome::kIncomplete;
  auto claimed = Claim(r);
  if (!claimed.ok()) return claimed.status();
  if (*claimed == ClaimResult::kBusy) return JobOutcome::kBusy;
  if (auto spec = in_->Head(job + "/" + n.spec_name); spec.ok() && spec->has_value()) {
    r.inputs.spec = **spec;
    LoadSpecForRecipients(r);
  }
  json details = {{"folder", in_->Uri(job + "/")}, {"present", present}, {"missing", missing},
                  {"near_misses", near}, {"waited_s", waited_ms / 1000}};
  log_->Info("job.incomplete", job,
             near.empty() ? fmt::format("{} still missing: telling the owner", JoinNames(missing))
                          : "a file with a near-miss name: telling the owner",
             {{"run", r.run}, {"missing", missing}, {"near_misses", near}});
  auto unsent = NotifyOnce(r, "incomplete", details);
  ReleaseClaim(r);
  if (!unsent.empty()) return NotificationPending(r, "incomplete", unsent);
  return JobOutcome::kWaiting;
}

std::vector<std::string> JobRunner::NotifyOnce(const RunRecord& r, const std::string& kind, const json& details,
                                               const std::string& marker_kind) {
  // One marker per channel, `notified-<kind>-<channel>`, created right after
  // that channel took the message; `notified-<kind>` once every channel has
  // its marker. So a channel that is slow or fails neither holds back the
  // markers of the others nor makes them send again when the run is seen
  // next; a worker that dies between a channel's send and its marker repeats
  // that one message on that one channel (at least once per channel: SMTP and
  // SNS cannot tell a repeat from a new message). `notified-<kind>` is also
  // what earlier versions wrote after all channels: a run that has it counts
  // as notified everywhere, so their runs are not notified again.
  const std::string retry_key = r.state_prefix + (marker_kind.empty() ? kind : marker_kind);
  const std::string all = r.state_prefix + "notified-" + (marker_kind.empty() ? kind : marker_kind);
  auto done = out_->Head(all);
  if (done.ok() && done->has_value()) return {};
  std::vector<std::string> unsent;
  bool all_marked = true;
  if (notifier_) {
    Notification n = Message(r, kind, details);
    for (const NotifierChannel& channel : notifier_->Channels()) {
      const std::string marker = all + "-" + channel.name;
      // A marker that cannot be read is taken as absent: a message sent twice beats one never sent.
      auto head = out_->Head(marker);
      if (head.ok() && head->has_value()) continue;
      Status st = SendOn(r, channel, n);
      // InvalidInput: it went out, to all but the unusable addresses (notifier.h): sending again cannot help them.
      if (!st.ok() && st.code() != Status::Code::kInvalidInput) {
        unsent.push_back(channel.name);
        all_marked = false;
        continue;
      }
      json body = {{"channel", channel.name}, {"target", channel.notifier->Describe()}, {"worker", o_.worker_id},
                   {"time", NowIso8601()}};
      if (!st.ok()) body["warning"] = st.message();
      auto marked = out_->CreateIfAbsent(marker, DumpJson(body));
      json fields = {{"run", r.run}, {"kind", kind}, {"channel", channel.name},
                     {"target", channel.notifier->Describe()}, {"marked", marked.ok()}};
      if (!marked.ok()) {
        all_marked = false;
        log_->Warn("notify.sent", r.job,
                   fmt::format("sent, but its marker {} could not be written ({}): the next delivery of this run "
                               "sends it again on this channel",
                               out_->Uri(marker), marked.status().message()),
                   fields);
      } else if (!st.ok()) {
        log_->Warn("notify.sent", r.job, st.message(), fields);
      } else {
        log_->Info("notify.sent", r.job, n.subject, fields);
      }
    }
  }
  if (all_marked) (void)out_->CreateIfAbsent(all, NowIso8601());
  std::lock_guard<std::mutex> lock(retry_mu_);
  if (unsent.empty()) {
    retry_.erase(retry_key);
  } else {
    // Retries of a failing channel back off (1 s, 2 s, ... 5 min) in this
    // process: a polling `serve --local` sees every ended run on each scan.
    if (retry_.size() > 10000) retry_.clear();  // bounded; forgetting only makes a retry come sooner
    auto& [next_ms, delay_ms] = retry_[retry_key];
    delay_ms = std::min<int64_t>(std::max<int64_t>(delay_ms * 2, o_.notify_retry_ms), 5 * 60 * 1000);
    next_ms = NowMillis() + delay_ms;
  }
  return unsent;
}

int64_t JobRunner::RetryWaitMs(const std::string& key) {
  std::lock_guard<std::mutex> lock(retry_mu_);
  auto it = retry_.find(key);
  return it == retry_.end() ? 0 : std::max<int64_t>(0, it->second.first - NowMillis());
}

Status JobRunner::NotificationPending(const RunRecord& r, const std::string& kind,
                                      const std::vector<std::string>& unsent) {
  return Status::IOError(fmt::format(
      "run {} of job {} has ended, but its {} notification did not go out on {} (see the notify.failed lines for "
      "why). It is sent again, on {} only, when the job is next seen (the queue message comes back); if it keeps "
      "failing, fix that channel's configuration or server.",
      r.run, r.job, kind, JoinNames(unsent), unsent.size() == 1 ? "that channel" : "those channels"));
}

Status JobRunner::SendOn(const RunRecord& r, const NotifierChannel& channel, const Notification& n) {
  json fields = {{"run", r.run}, {"kind", n.kind}, {"channel", channel.name}, {"target", channel.notifier->Describe()}};
  // Logged before the send: a worker killed after this line and before the
  // channel's notify.sent may have sent the message (the campaigns count it).
  log_->Info("notify.sending", r.job, n.subject, fields);
  Status st = channel.notifier->Send(n);
  if (!st.ok() && st.code() != Status::Code::kInvalidInput) log_->Error("notify.failed", r.job, st.message(), fields);
  return st;
}

void JobRunner::Notify(const RunRecord& r, const std::string& kind, const json& details) {
  if (!notifier_) return;
  Notification n = Message(r, kind, details);
  for (const NotifierChannel& channel : notifier_->Channels()) {
    Status st = SendOn(r, channel, n);
    if (st.ok() || st.code() == Status::Code::kInvalidInput)
      log_->Info("notify.sent", r.job, st.ok() ? n.subject : st.message(),
                 {{"run", r.run}, {"kind", kind}, {"channel", channel.name}, {"target", channel.notifier->Describe()}});
  }
}

Notification JobRunner::Message(const RunRecord& r, const std::string& kind, const json& details) {
  Notification n;
  n.kind = kind;
  n.job = r.job;
  n.extra_recipients = r.spec.recipients;
  // Names quoted (escaped, capped): a job name is whatever the uploader chose.
  std::string x = Quote(in_->Uri(r.inputs.x.key)), y = Quote(in_->Uri(r.inputs.y.key)), job = Quote(r.job);
  if (kind == "incomplete") {
    IncompleteMessage(r, details, &n);
  } else if (kind == "reupload") {
    if (details.value("ended", "") == "succeeded") {
      std::string result = details.value("result", "");
      n.subject = fmt::format("cloudmerge: job {} already done (same files uploaded again)", job);
      n.text = fmt::format("The files just uploaded for job {} are the same as those of a run that already finished, "
                           "so it was not run again.\n\nThe result: {}\n  {}\nThe report:\n  {}\n"
                           "(links valid for {})\n\nTo run it again anyway, change one of the files.\n",
                           job, result, Link(result), Link(out_->Uri(r.job + "/report.html")), LinkValidity(result));
    } else {
      n.subject = fmt::format("cloudmerge: job {} already failed with these files", job);
      n.text = fmt::format("The files just uploaded for job {} are the same as those of a run that failed, so it "
                           "was not run again: the same files fail the same way.\n\nWhat went wrong:\n  {}\n\n"
                           "What to do: fix the file named above and upload it again to the same folder.\n",
                           job, details.value("error", ""));
    }
  } else if (kind == "received") {
    n.subject = fmt::format("cloudmerge: inputs received for job {}", job);
    n.text = fmt::format("Your files for job {} have arrived and the merge has started.\n\n  x: {} ({} bytes)\n"
                         "  y: {} ({} bytes)\n\nYou will get another email when the result is ready.\n",
                         job, x, r.inputs.x.size, y, r.inputs.y.size);
  } else if (kind == "succeeded") {
    std::string result = details.value("result", "");
    std::string result_link = Link(result), report_link = Link(out_->Uri(r.job + "/report.html"));
    uint64_t rows = details.value("rows", json::object()).value("output", uint64_t{0});
    n.subject = fmt::format("cloudmerge: result ready for job {} ({} rows)", job, rows);
    n.text = fmt::format("The merge of job {} is done.\n\n  result: {}\n  rows:   {}\n  time:   {:.1f} s\n"
                         "  report: {}\n\nDownload the result:\n  {}\nOpen the report:\n  {}\n"
                         "(links valid for {})\n\nInputs: {} and {}.\n",
                         job, result, rows, details.value("seconds", 0.0), out_->Uri(r.job + "/report.json"),
                         result_link, report_link, LinkValidity(result), x, y);
    n.html = fmt::format("<p>The merge of job <b>{}</b> is done: {} rows in {:.1f} s.</p>"
                         "<p><a href=\"{}\">Open the report</a> &middot; <a href=\"{}\">Download the result</a> "
                         "(links valid for {})</p><pre>{}</pre>",
                         HtmlEscape(job), rows, details.value("seconds", 0.0), HtmlEscape(report_link),
                         HtmlEscape(result_link), LinkValidity(result), HtmlEscape(n.text));
  } else {
    n.subject = fmt::format("cloudmerge: job {} failed", job);
    n.text = fmt::format("The merge of job {} could not be done.\n\nWhat went wrong:\n  {}\n\nWhat to do: fix the "
                         "file named above and upload it again to the same folder; a new upload starts a new run.\n"
                         "If the message above does not tell you what to fix, forward this email to whoever runs "
                         "the pipeline for you.\n\nInputs: {} and {}.\n\nThe step-by-step record of this run "
                         "(for you or whoever runs the pipeline):\n  {}\n",
                         job, details.value("error", ""), x, y, details.value("logs", LogLocation(r.job)));
  }
  if (n.html.empty()) n.html = "<pre>" + HtmlEscape(n.text) + "</pre>";
  return n;
}

json JobRunner::Report(const RunRecord& r, const MergeStats& s, double seconds, const std::string& out_key) {
  auto input = [&](const StoredObject& o) {
    json j = {{"uri", in_->Uri(o.key)}, {"size", o.size}, {"etag", o.etag}};
    auto head = in_->GetHead(o.key, 64 << 10);
    if (head.ok() && CompressionForPath(o.key) == Compression::kNone) j["first_rows"] = PreviewLines(*head, o_.preview_rows);
    return j;
  };
  json report = {{"job", r.job},
                 {"run", r.run},
                 {"status", "succeeded"},
                 {"engine", EngineKindName(r.spec.engine)},
                 {"version", CLOUDMERGE_VERSION},
                 {"worker", o_.worker_id},
                 {"finished", NowIso8601()},
                 {"seconds", seconds},
                 {"result", out_->Uri(out_key)},
                 {"inputs", {{"x", input(r.inputs.x)}, {"y", input(r.inputs.y)}}},
                 {"rows", {{"x", s.x_rows}, {"y", s.y_rows}, {"output", s.output_rows}}},
                 {"y_distinct_keys", s.y_distinct_keys},
                 {"key_types", {{"x", KeyModeName(s.x_mode)}, {"y", KeyModeName(s.y_mode)}}},
                 {"threads", s.threads},
                 {"phases_seconds",
                  {{"scan_y", s.seconds_scan_y},
                   {"scan_x", s.seconds_scan_x},
                   {"build", s.seconds_build},
                   {"probe_and_write", s.seconds_probe},
                   {"total", s.seconds_total}}}};
  if (r.inputs.spec) report["inputs"]["job_spec"] = {{"uri", in_->Uri(r.inputs.spec->key)}, {"etag", r.inputs.spec->etag}};
  auto head = out_->GetHead(out_key, 64 << 10);
  if (head.ok()) report["result_first_rows"] = PreviewLines(*head, o_.preview_rows);
  auto written = out_->Head(out_key);
  RunUsage usage;
  usage.seconds = seconds;
  usage.x_bytes = static_cast<double>(r.inputs.x.size);
  usage.y_bytes = static_cast<double>(r.inputs.y.size);
  if (written.ok() && written->has_value()) {
    usage.result_bytes = static_cast<double>((*written)->size);
    report["result_size"] = (*written)->size;
  }
  report["cost"] = EstimateCost(usage, o_.prices ? *o_.prices : CostPrices::FromEnvironment(std::getenv));
  return report;
}

std::string JobRunner::Link(const std::string& uri) {
  if (!uri.empty() && uri[0] == '/') return FileUrl(uri);
  if (o_.share_link) {
    auto link = o_.share_link(uri, o_.link_expiry_s);
    if (link.ok()) return *link;
    log_->Warn("notify.link_failed", "", link.status().message(), {{"uri", uri}});
  }
  return uri;
}

std::string JobRunner::LinkValidity(const std::string& uri) {
  const std::string requested = Expiry(o_.link_expiry_s);
  // Only presigned links expire with credentials (local files are file:// links): no credential lookup otherwise.
  if (!o_.share_link || !o_.signing_credentials_expiry || uri.rfind("s3://", 0) != 0) return requested;
  int64_t expires = o_.signing_credentials_expiry();
  if (expires < 0)
    return fmt::format("at most {}: they were signed with temporary credentials whose end is not known here (as "
                       "under Lambda), and stop working when those expire, possibly within hours; for longer-lived "
                       "links see \"Long-lived links\" in the pipeline's documentation",
                       requested);
  int64_t left = expires - NowMillis() / 1000;
  if (expires <= 0 || left >= o_.link_expiry_s) return requested;
  // Temporary credentials (Lambda's role, SSO, an assumed role): the links die with them.
  return fmt::format("{}, until {} UTC, when the temporary credentials that signed them expire; for longer-lived "
                     "links see \"Long-lived links\" in the pipeline's documentation",
                     RoughDuration(left), IsoSeconds(expires));
}

void JobRunner::IncompleteMessage(const RunRecord& r, const json& d, Notification* n) {
  const std::string job = Quote(r.job);
  const json& near = d.contains("near_misses") ? d["near_misses"] : json::array();
  std::vector<std::string> missing;
  for (const auto& m : d.value("missing", json::array())) missing.push_back(m.get<std::string>());
  std::string files;
  for (const auto& p : d.value("present", json::array())) {
    std::string name = p.value("name", "");
    files += fmt::format("  {} ({} bytes)", Quote(name), p.value("size", uint64_t{0}));
    for (const auto& m : near)
      if (m.value("name", "") == name)
        files += fmt::format("  <- not used: the name must be exactly {}", m.value("meant", ""));
    files += "\n";
  }
  const JobNaming& nm = o_.naming;
  std::string what = near.empty() ? fmt::format("{} has not arrived after {}", JoinNames(missing),
                                                RoughDuration(d.value("waited_s", int64_t{0})))
                                  : fmt::format("a file is named almost, but not exactly, as expected, so {} "
                                                "is missing",
                                                JoinNames(missing));
  n->subject = fmt::format("cloudmerge: job {} cannot start: {} missing", job, JoinNames(missing));
  n->text = fmt::format(
      "Job {} cannot start: {}.\n\nIn the folder {}:\n{}\nMissing: {}\n\nThe names expected, exactly (upper "
      "and lower case count): {} and {} (either may also end in .gz or .zst), and optionally {}.\n\n"
      "What to do: upload the missing file{} under {} into the same folder; the merge starts as soon as both are "
      "there. This is the only email about these files.\n",
      job, what, Quote(d.value("folder", "")), files, JoinNames(missing), nm.x_name, nm.y_name, nm.spec_name,
      near.empty() ? "" : " (or the misnamed one again)", missing.size() == 1 ? "that exact name" : "those exact names");
}

// Where this run's log lines are, in words for the scientist and whoever runs
// the pipeline for them: CloudWatch (with a console link) under Lambda or
// when serve sends its log there, else the file serve's output goes to.
std::string JobRunner::LogLocation(const std::string& job) const {
  std::string search = fmt::format("look for the lines mentioning \"{}\"", Quote(job));
  if (!o_.log_location.empty()) return fmt::format("{}; {}", o_.log_location, search);
  const char* group = std::getenv("AWS_LAMBDA_LOG_GROUP_NAME");
  const char* stream = std::getenv("AWS_LAMBDA_LOG_STREAM_NAME");
  if (group && *group && stream && *stream) {
    const char* region = std::getenv("AWS_REGION");
    return fmt::format("{}; {}", DescribeCloudWatchStream(region ? region : "us-east-1", group, stream), search);
  }
  return fmt::format("{}; {}", DescribeLocalLog(), search);
}

}  // namespace cloudmerge
