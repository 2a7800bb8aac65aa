// The job runner: state markers, claims with leases, the engine call, the
// report and the notifications. See job_runner.h for the protocol.
#include "cloudmerge/pipeline/job_runner.h"

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

namespace cloudmerge {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// A local path as a file:// URL (percent-encoded: job names may hold spaces or '#').
std::string FileUrl(const std::string& path) {
  std::string out = "file://";
  for (unsigned char c : path) {
    if (std::isalnum(c) || c == '/' || c == '-' || c == '_' || c == '.' || c == '~') out += static_cast<char>(c);
    else out += fmt::format("%{:02X}", c);
  }
  return out;
}

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

// Names the upload of a run's inputs (their Last-Modified stamps), "" when the store gives none.
std::string UploadStamp(const JobInputs& in) {
  if (in.x.modified.empty() && in.y.modified.empty()) return "";
  std::string ident = in.x.modified + "\n" + in.y.modified + "\n" + (in.spec ? in.spec->modified : "");
  return Sha256Hex(ident).substr(0, 16);
}

// Bad input is the scientist's to fix: retrying cannot help.
bool IsPermanent(const Status& s) {
  return s.code() == Status::Code::kInvalidInput || s.code() == Status::Code::kInvalidArgument;
}

std::string DefaultWorkerId() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return fmt::format("{}:{}", host, getpid());
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

// Keeps a claim alive while the run goes on, by rewriting it with a later
// expiry every third of the lease; a missed renewal only shortens the lease.
std::unique_ptr<PeriodicTask> KeepLease(JobStore* store, const std::string& key, const std::string& worker,
                                        int64_t lease_ms) {
  return std::make_unique<PeriodicTask>(std::chrono::milliseconds(std::max<int64_t>(lease_ms / 3, 10)), [=] {
    json claim = {{"worker", worker}, {"expires_ms", NowMillis() + lease_ms}};
    (void)store->Put(key, DumpJson(claim), "application/json");
  });
}

}  // namespace

struct RunRecord {
  std::string job, run, state_prefix;
  JobInputs inputs;
  JobSpec spec;
  // This worker's claim of the run while it holds one, and the task renewing its lease.
  std::string claim_key;
  std::unique_ptr<PeriodicTask> keeper;
};

JobRunner::JobRunner(JobStore* input, JobStore* output, Env* env, Notifier* notifier, JsonLog* log,
                     PipelineOptions options)
    : in_(input), out_(output), env_(env), notifier_(notifier), log_(log), o_(std::move(options)) {
  if (o_.worker_id.empty()) o_.worker_id = DefaultWorkerId();
  engines_[EngineKind::kNative] =
      NewNativeEngine(env_, {o_.threads, o_.concurrent_runs, o_.memory_limit, o_.temp_dir});
  CommandEngineOptions commands = o_.commands;
  if (commands.temp_dir.empty()) commands.temp_dir = o_.temp_dir;
  engines_[EngineKind::kCommand] = NewCommandEngine(env_, commands, o_.stop);
  for (EngineKind k : {EngineKind::kSpark, EngineKind::kEmrServerless, EngineKind::kEmr})
    engines_[k] = NewClusterEngine(k, o_.spark, log_, o_.worker_id);
}

Status JobRunner::CheckNoSelfTrigger(const JobStore& input, const JobStore& output) {
  std::string in = input.Uri(""), out = output.Uri("");
  if (!in.empty() && in.back() != '/') in += '/';
  if (!out.empty() && out.back() != '/') out += '/';
  if (out.rfind(in, 0) == 0)
    return Status::InvalidArgument(fmt::format(
        "the output location {} is inside the input location {}: every result would start the pipeline again. "
        "Write results to another bucket, or to a prefix outside the input prefix.",
        output.Describe(), input.Describe()));
  return Status::OK();
}

Result<JobOutcome> JobRunner::Run(const std::string& job) {
  RunRecord r;
  try {
    return RunGuarded(job, r);
  } catch (const std::exception& e) {
    return Crashed(r, e.what());
  } catch (...) {
    return Crashed(r, "an unknown exception");
  }
}

Result<JobOutcome> JobRunner::Crashed(RunRecord& r, const std::string& what) {
  Status why = Status::Internal(fmt::format(
      "cloudmerge could not run this job: an internal error ({}). This is a bug in cloudmerge, not in your files; "
      "the run is not tried again. Report it with the job's files, or upload them again to start a new run.",
      Quote(what)));
  try {
    log_->Error("job.crashed", r.job, why.message(), {{"run", r.run}});
    if (!r.claim_key.empty()) return Fail(r, why);
  } catch (...) {
    ReleaseClaim(r);  // nothing else can be done: the lease ends, the next worker sees the run
  }
  return JobOutcome::kFailed;
}

Result<JobOutcome> JobRunner::RunGuarded(const std::string& job, RunRecord& r) {
  auto found = FindJobInputs(in_, job, o_.naming);
  if (!found.ok()) {
    if (IsPermanent(found.status())) {  // a hostile job name: nothing to run, nothing to retry
      log_->Error("job.rejected", "", found.status().message());
      return JobOutcome::kFailed;
    }
    return found.status();
  }
  if (!found->has_value()) return Incomplete(job);
  r.job = job;
  r.inputs = **found;
  r.run = r.inputs.RunId();
  r.state_prefix = fmt::format("{}/_state/{}/", job, r.run);

  for (const char* marker : {"done.json", "failed.json"}) {
    auto h = out_->Head(r.state_prefix + marker);
    if (!h.ok()) return h.status();
    if (h->has_value()) return Ended(r, marker);
  }
  if (o_.stop && o_.stop->load()) return Status::IOError("stopping: the job is left for another worker");

  auto claimed = Claim(r);
  if (!claimed.ok()) return claimed.status();
  if (*claimed == ClaimResult::kBusy) return JobOutcome::kBusy;
  // The upload this run answers: a later one of the same files is a re-upload (Ended).
  if (std::string stamp = UploadStamp(r.inputs); !stamp.empty())
    (void)out_->CreateIfAbsent(r.state_prefix + "upload-" + stamp, NowIso8601());
  if (*claimed == ClaimResult::kGaveUp)
    return Fail(r, Status::InvalidInput(fmt::format(
                       "this run was started {} times and each time its worker stopped without finishing (killed, "
                       "out of memory, or crashed), so it is not tried again. The log of the workers says more; "
                       "check the inputs' size against the worker's memory, then upload them again to start a new run.",
                       o_.max_attempts)));
  if (*claimed == ClaimResult::kTakenOver) {
    Status cleaned = out_->AbortAbandonedWrites(job + "/");
    if (!cleaned.ok()) log_->Warn("job.cleanup_failed", job, cleaned.message(), {{"run", r.run}});
  }
  auto release = [&] { ReleaseClaim(r); };

  // Inputs that are not regular files: a link out of the folder, a FIFO (confined_env.h).
  for (const StoredObject* o : {&r.inputs.x, &r.inputs.y, r.inputs.spec ? &*r.inputs.spec : nullptr}) {
    if (o && !o->kind.empty())
      return Fail(r, Status::InvalidInput(fmt::format(
                         "{} is {}: a job's files must be regular files inside the input folder (links are not "
                         "followed, so that a job can only read what was put in its folder). Copy the file itself "
                         "into the job's folder.",
                         Quote(in_->Uri(o->key)), o->kind)));
  }

  // The spec.
  if (r.inputs.spec) {
    auto text = in_->Get(r.inputs.spec->key);
    if (!text.ok()) {
      if (IsPermanent(text.status())) return Fail(r, text.status());
      release();
      return text.status();
    }
    auto spec = ParseJobSpec(*text, in_->Uri(r.inputs.spec->key));
    if (!spec.ok()) return Fail(r, spec.status());
    r.spec = *spec;
  }
  log_->Info("job.started", job, fmt::format("run {} started on {}", r.run, o_.worker_id),
             {{"run", r.run}, {"x", in_->Uri(r.inputs.x.key)}, {"y", in_->Uri(r.inputs.y.key)}});

  auto received = out_->CreateIfAbsent(r.state_prefix + "received", NowIso8601());
  if (received.ok() && *received) Notify(r, "received", {});  // best effort: marked before it is sent

  // The engine.
  auto t0 = Clock::now();
  std::string out_key = job + "/" + r.spec.output;
  EngineKind kind = r.spec.engine == EngineKind::kAuto ? ChooseEngine(r) : r.spec.engine;
  EngineJob ej;
  ej.job = job;
  ej.run = r.run;
  ej.x_uri = in_->Uri(r.inputs.x.key);
  ej.y_uri = in_->Uri(r.inputs.y.key);
  ej.out_uri = out_->Uri(out_key);
  ej.spec = r.spec;
  ej.output = out_;
  ej.out_key = out_key;
  ej.state_prefix = r.state_prefix;
  ej.deadline_ms = o_.deadline_ms;
  EngineResult result;
  Status st = engines_.at(kind)->Run(ej, &result);
  const MergeStats& stats = result.stats;
  double seconds = SecondsSince(t0);
  if (!st.ok()) {
    st = NameSetting(st, o_.setting_names);  // where this caller's operator changes it
    if (result.resumable) {  // a cluster run goes on; the next delivery resumes the wait
      release();
      return st;
    }
    if (result.stopped) {
      // Stopped, not failed: the next worker runs the job (its claim is released now, not left to expire).
      log_->Info("job.released", job, st.message(), {{"run", r.run}});
      release();
      return st;
    }
    if (IsPermanent(st) || result.final) return Fail(r, st);
    log_->Error("job.retry", job, st.message(), {{"run", r.run}});
    release();
    return st;
  }

  json report = Report(r, stats, seconds, out_key);
  report.update(result.report);
  report["engine"] = EngineKindName(kind);
  if (r.spec.engine == EngineKind::kAuto) report["engine_requested"] = EngineKindName(EngineKind::kAuto);
  Status put = out_->Put(job + "/report.json", DumpJson(report, 2), "application/json");
  if (put.ok()) put = out_->Put(job + "/report.html", RenderReportHtml(report), "text/html; charset=utf-8");
  if (!put.ok()) {
    release();
    return put;
  }
  auto done = out_->CreateIfAbsent(r.state_prefix + "done.json", DumpJson(report));
  if (!done.ok()) {
    release();
    return done.status();
  }
  log_->Info("job.succeeded", job,
             fmt::format("{} rows written to {} in {:.2f} s", stats.output_rows, out_->Uri(out_key), seconds),
             {{"run", r.run}, {"rows", stats.output_rows}, {"seconds", seconds}, {"result", out_->Uri(out_key)}});
  log_->Metrics(job, EngineKindName(kind),
                {{"RowsWritten", static_cast<double>(stats.output_rows), "Count"},
                 {"RowsRead", static_cast<double>(stats.x_rows + stats.y_rows), "Count"},
                 {"InputBytes", static_cast<double>(r.inputs.x.size + r.inputs.y.size), "Bytes"},
                 {"Duration", seconds, "Seconds"},
                 {"Failures", 0, "Count"}});
  auto unsent = NotifyOnce(r, "succeeded", report);
  // The run is over: a later delivery may take the claim to finish what is
  // left of the notification at once, rather than after the lease.
  release();
  if (!unsent.empty()) return NotificationPending(r, "succeeded", unsent);
  return JobOutcome::kSucceeded;
}

EngineKind JobRunner::ChooseEngine(const RunRecord& r) {
  auto weighted = [](const StoredObject& o) {
    double size = static_cast<double>(o.size);
    return CompressionForPath(o.key) == Compression::kNone ? size : size * kCompressedInputFactor;
  };
  double bytes = weighted(r.inputs.x) + weighted(r.inputs.y);
  double estimate_s = bytes / std::max(o_.native_bytes_per_second, 1.0);
  double budget_s = o_.native_time_budget_s;
  std::string limit = "the native time budget";
  if (o_.deadline_ms > 0) {
    double left_s = static_cast<double>(o_.deadline_ms - NowMillis()) / 1000 - o_.auto_margin_s;
    if (left_s < budget_s) {
      budget_s = left_s;
      limit = "the time left in this invocation less the margin";
    }
  }
  EngineKind chosen = estimate_s <= budget_s ? EngineKind::kNative : o_.auto_engine;
  const char* native = EngineKindName(EngineKind::kNative);
  std::string why = fmt::format("estimated native time {:.1f} s ({:.0f} input bytes at {:.0f} bytes/s) {} {} "
                                "({:.1f} s)",
                                estimate_s, bytes, o_.native_bytes_per_second,
                                chosen == EngineKind::kNative ? "fits" : "exceeds", limit, budget_s);
  if (chosen != EngineKind::kNative && !engines_.at(chosen)->Configured() && o_.deadline_ms == 0) {
    // Without a hard deadline the native engine still finishes, only later than the budget.
    log_->Warn("engine.auto", r.job,
               fmt::format("{}, but the {} engine is not configured: running natively", why, EngineKindName(chosen)),
               {{"run", r.run}, {"engine", native}, {"estimate_s", estimate_s}, {"budget_s", budget_s}});
    return EngineKind::kNative;
  }
  log_->Info("engine.auto", r.job, fmt::format("{}: running on {}", why, EngineKindName(chosen)),
             {{"run", r.run},
              {"engine", EngineKindName(chosen)},
              {"input_bytes", bytes},
              {"native_bytes_per_second", o_.native_bytes_per_second},
              {"estimate_s", estimate_s},
              {"budget_s", budget_s}});
  return chosen;
}

Result<JobOutcome> JobRunner::Fail(RunRecord& r, const Status& why_in) {
  // Capped: a message quoting input must not grow the email, the log and the page without bound.
  Status why = NameSetting(why_in, o_.setting_names);  // (once: a named status names nothing more)
  if (why.message().size() > kMaxErrorBytes) {
    size_t cut = kMaxErrorBytes;
    while (cut > 0 && (static_cast<unsigned char>(why.message()[cut]) & 0xC0) == 0x80) --cut;  // not inside a character
    why = Status::InvalidInput(why.message().substr(0, cut) + "… (message cut)");
  }
  json failure = {{"job", r.job},     {"run", r.run},           {"error", why.message()},
                  {"worker", o_.worker_id}, {"time", NowIso8601()}, {"version", CLOUDMERGE_VERSION},
                  {"logs", LogLocation(r.job)}};
  (void)out_->CreateIfAbsent(r.state_prefix + "failed.json", DumpJson(failure, 2));
  // Best effort: the email and failed.json carry the same error.
  Status page = out_->Put(r.job + "/report.html", RenderFailureHtml(failure), "text/html; charset=utf-8");
  if (!page.ok()) log_->Warn("job.report_failed", r.job, page.message(), {{"run", r.run}});
  log_->Error("job.failed", r.job, why.message(), {{"run", r.run}});
  log_->Metrics(r.job, EngineKindName(r.spec.engine), {{"Failures", 1, "Count"}});
  auto unsent = NotifyOnce(r, "failed", failure);
  ReleaseClaim(r);
  if (!unsent.empty()) return NotificationPending(r, "failed", unsent);
  return JobOutcome::kFailed;
}

Result<ClaimResult> JobRunner::Claim(RunRecord& r) {
  auto claims = out_->List(r.state_prefix + "claim-");
  if (!claims.ok()) return claims.status();
  int highest = 0;
  for (const auto& c : *claims) highest = std::max(highest, std::atoi(c.key.substr(c.key.rfind('-') + 1).c_str()));
  if (highest > 0) {
    auto text = out_->Get(fmt::format("{}claim-{}", r.state_prefix, highest));
    json claim = text.ok() ? json::parse(*text, nullptr, false) : json();
    int64_t expires = JsonInt(claim, "expires_ms", 0);
    if (expires > NowMillis()) {
      log_->Info("job.busy", r.job,
                 fmt::format("run {} is being processed by {}", r.run, JsonString(claim, "worker", "?")),
                 {{"run", r.run}});
      return ClaimResult::kBusy;
    }
    log_->Warn("job.takeover", r.job,
               fmt::format("the claim of {} expired: taking the run over", JsonString(claim, "worker", "?")),
               {{"run", r.run}});
  }
  bool give_up = o_.max_attempts > 0 && highest >= o_.max_attempts;
  std::string key = fmt::format("{}claim-{}", r.state_prefix, highest + 1);
  json claim = {{"worker", o_.worker_id}, {"expires_ms", NowMillis() + o_.lease_ms}};
  auto won = out_->CreateIfAbsent(key, DumpJson(claim));
  if (!won.ok()) return won.status();
  if (!*won) {
    log_->Info("job.busy", r.job, "another worker claimed the run first", {{"run", r.run}});
    return ClaimResult::kBusy;
  }
  r.claim_key = key;
  r.keeper = KeepLease(out_, key, o_.worker_id, o_.lease_ms);
  if (give_up) return ClaimResult::kGaveUp;
  return highest > 0 ? ClaimResult::kTakenOver : ClaimResult::kClaimed;
}

void JobRunner::ReleaseClaim(RunRecord& r) {
  // The renewal stops first: a renewal after the delete would bring the claim back.
  r.keeper.reset();
  if (!r.claim_key.empty()) (void)out_->Delete(r.claim_key);
  r.claim_key.clear();
}

Result<JobOutcome> JobRunner::Ended(RunRecord& r, const std::string& end_marker) {
  const std::string kind = end_marker == "done.json" ? "succeeded" : "failed";
  auto notified = out_->Head(r.state_prefix + "notified-" + kind);
  if (!notified.ok()) return notified.status();
  if (notified->has_value()) {
    if (std::string stamp = UploadStamp(r.inputs); !stamp.empty()) {
      const std::string upload = r.state_prefix + "upload-" + stamp;
      auto seen = out_->Head(upload);
      if (seen.ok() && !seen->has_value()) {
        auto earlier = out_->List(r.state_prefix + "upload-");
        // None at all: a run of an earlier version, which recorded no upload; this is its own.
        if (earlier.ok() && earlier->empty()) (void)out_->CreateIfAbsent(upload, NowIso8601());
        else if (earlier.ok()) return Reuploaded(r, kind, upload);
      }
    }
    log_->Info("job.duplicate", r.job, fmt::format("run {} already ended ({}): nothing to do", r.run, end_marker),
               {{"run", r.run}});
    return JobOutcome::kAlreadyDone;
  }
  // The run ended but its notification is not marked complete: its worker
  // died between the end marker and the last channel's marker, is still
  // sending, or a channel failed. Whoever sees the run again finishes the
  // notification from the end marker (it holds what the message needs), on
  // the channels not marked yet, under a claim of the run: two workers seeing
  // it at once must not both send, nor one send while the run's own worker
  // is still at it (its claim is live until it has sent and released it).
  if (RetryWaitMs(r.state_prefix + kind) > 0) return JobOutcome::kBusy;  // a channel failed moments ago
  auto claimed = Claim(r);
  if (!claimed.ok()) return claimed.status();
  if (*claimed == ClaimResult::kBusy) return JobOutcome::kBusy;
  auto body = out_->Get(r.state_prefix + end_marker);
  if (!body.ok()) {
    ReleaseClaim(r);
    return body.status();
  }
  json details = json::parse(*body, nullptr, false);
  if (!details.is_object()) {  // never written so by this code: nothing to send from
    ReleaseClaim(r);
    log_->Error("notify.unreadable", r.job,
                fmt::format("{} is not a JSON object: the {} notification of run {} cannot be sent. Delete the "
                            "run's state ({}) to run the job again.",
                            out_->Uri(r.state_prefix + end_marker), kind, r.run, out_->Uri(r.state_prefix)),
                {{"run", r.run}, {"kind", kind}});
    return JobOutcome::kAlreadyDone;
  }
  LoadSpecForRecipients(r);
  log_->Info("notify.resumed", r.job,
             fmt::format("run {} ended without its {} notification on every channel: sending what is left", r.run,
                         kind),
             {{"run", r.run}, {"kind", kind}});
  auto unsent = NotifyOnce(r, kind, details);
  ReleaseClaim(r);
  if (!unsent.empty()) return NotificationPending(r, kind, unsent);
  return JobOutcome::kAlreadyDone;
}

void JobRunner::LoadSpecForRecipients(RunRecord& r) {
  if (!r.inputs.spec) return;  // best effort: the job's extra recipients
  auto text = in_->Get(r.inputs.spec->key);
  if (!text.ok()) return;
  auto spec = ParseJobSpec(*text, in_->Uri(r.inputs.spec->key));
  if (spec.ok()) r.spec = *spec;
}

Result<JobOutcome> JobRunner::Reuploaded(RunRecord& r, const std::string& kind, const std::string& upload) {
  const std::string marker = "reupload-" + upload.substr(upload.rfind('-') + 1);
  if (RetryWaitMs(r.state_prefix + marker) > 0) return JobOutcome::kBusy;
  auto claimed = Claim(r);
  if (!claimed.ok()) return claimed.status();
  if (*claimed == ClaimResult::kBusy) return JobOutcome::kBusy;
  auto body = out_->Get(r.state_prefix + (kind == "succeeded" ? "done.json" : "failed.json"));
  json details = body.ok() ? json::parse(*body, nullptr, false) : json::object();
  if (!details.is_object()) details = json::object();
  details["ended"] = kind;
  LoadSpecForRecipients(r);
  log_->Info("job.reupload", r.job,
             fmt::format("the same files were uploaded again; run {} already {}: telling the owner", r.run, kind),
             {{"run", r.run}});
  auto unsent = NotifyOnce(r, "reupload", details, marker);
  // Marked once told: a duplicate event of this upload finds it and stays silent.
  if (unsent.empty()) (void)out_->CreateIfAbsent(upload, NowIso8601());
  ReleaseClaim(r);
  if (!unsent.empty()) return NotificationPending(r, "reupload", unsent);
  return JobOutcome::kAlreadyDone;
}

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
