// The job runner: state markers, claims with leases, the engine call and the
// end of a run. Its messages (notifications, report.json, incomplete folders)
// are job_runner_messages.cc. See job_runner.h for the protocol.
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

namespace cloudmerge {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }






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
  double cluster_s =
      o_.cluster_startup_s + bytes / std::max(o_.cluster_cpus * o_.cluster_bytes_per_cpu_second, 1.0);
  double budget_s = o_.native_time_budget_s;
  std::string limit = "the native time budget";
  const bool deadline = o_.deadline_ms > 0;
  if (deadline) {
    double left_s = static_cast<double>(o_.deadline_ms - NowMillis()) / 1000 - o_.auto_margin_s;
    if (left_s < budget_s) {
      budget_s = left_s;
      limit = "the time left in this invocation less the margin";
    }
  }
  const bool fits = estimate_s <= budget_s;
  // Over the budget but the cluster no sooner: without a deadline, native still finishes first.
  const bool cluster_slower = !fits && !deadline && cluster_s >= estimate_s;
  EngineKind chosen = fits || cluster_slower ? EngineKind::kNative : o_.auto_engine;
  const char* native = EngineKindName(EngineKind::kNative);
  std::string why = fmt::format("estimated native time {:.1f} s ({:.0f} input bytes at {:.0f} bytes/s) {} {} "
                                "({:.1f} s)",
                                estimate_s, bytes, o_.native_bytes_per_second, fits ? "fits" : "exceeds", limit,
                                budget_s);
  if (!fits)
    why += fmt::format("; estimated cluster time {:.1f} s ({:.0f} s to start, {:g} vCPUs at {:.0f} bytes/s each){}",
                       cluster_s, o_.cluster_startup_s, o_.cluster_cpus, o_.cluster_bytes_per_cpu_second,
                       cluster_slower ? ", no sooner than native" : "");
  json fields = {{"run", r.run},
                 {"input_bytes", bytes},
                 {"native_bytes_per_second", o_.native_bytes_per_second},
                 {"estimate_s", estimate_s},
                 {"cluster_estimate_s", cluster_s},
                 {"budget_s", budget_s}};
  if (chosen != EngineKind::kNative && !engines_.at(chosen)->Configured() && !deadline) {
    // Without a hard deadline the native engine still finishes, only later than the budget.
    fields["engine"] = native;
    log_->Warn("engine.auto", r.job,
               fmt::format("{}, but the {} engine is not configured: running natively", why, EngineKindName(chosen)),
               fields);
    return EngineKind::kNative;
  }
  fields["engine"] = EngineKindName(chosen);
  log_->Info("engine.auto", r.job, fmt::format("{}: running on {}", why, EngineKindName(chosen)), fields);
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

}  // namespace cloudmerge
