// The local polling loop, the SQS loop with its visibility heartbeat, and the
// event-to-jobs step shared with the Lambda handler.
#include "cloudmerge/pipeline/serve.h"

#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "cloudmerge/periodic_task.h"
#include "cloudmerge/pipeline/events.h"

namespace cloudmerge {
namespace {

std::atomic<bool> g_stop{false};

void OnStop(int) { g_stop.store(true); }

void SleepUnlessStopped(int ms) {
  for (int waited = 0; waited < ms && !g_stop.load(); waited += 50)
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(50, ms - waited)));
}

// Extends a message's visibility while its jobs run, every half timeout.
std::unique_ptr<PeriodicTask> KeepInvisible(SqsClient* sqs, const std::string& receipt, int visibility_s, JsonLog* log) {
  return std::make_unique<PeriodicTask>(std::chrono::milliseconds(std::max(1000, visibility_s * 1000 / 2)), [=] {
    Status st = sqs->ChangeVisibility(receipt, visibility_s);
    if (!st.ok()) log->Warn("queue.heartbeat_failed", "", st.message());
  });
}

}  // namespace

std::atomic<bool>* InstallStopFlag() {
  struct sigaction sa {};
  sa.sa_handler = OnStop;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  return &g_stop;
}

Status ServeLocal(JobRunner* runner, JobStore* input, JsonLog* log, const ServeOptions& o) {
  const JobNaming& naming = runner->options().naming;
  log->Info("serve.started", "", fmt::format("watching {} every {} ms", input->Describe(), o.poll_ms),
            {{"once", o.once}});
  std::map<std::string, std::string> last_seen;  // job -> identities at the previous scan
  for (;;) {
    auto listed = input->List("");
    if (!listed.ok()) return listed.status();
    std::map<std::string, std::string> seen;
    for (const auto& obj : *listed) {
      auto job = JobForKey(obj.key, naming);
      if (job) seen[*job] += obj.key + "@" + obj.etag + ";";
    }
    size_t pending = 0;
    for (const auto& [job, ident] : seen) {
      if (g_stop.load()) break;
      // Wait for a second identical scan: a file still being written changes.
      if (!o.once && last_seen[job] != ident) {
        ++pending;
        continue;
      }
      auto outcome = runner->Run(job);
      if (!outcome.ok()) {
        log->Error("job.error", job, outcome.status().message());
        ++pending;
      } else if (*outcome == JobOutcome::kBusy) {
        ++pending;
      }
    }
    last_seen = std::move(seen);
    if (g_stop.load()) {
      log->Info("serve.stopped", "", "stopped by a signal");
      return Status::OK();
    }
    if (o.once && pending == 0) return Status::OK();
    if (o.once)
      return Status::IOError(fmt::format("{} job(s) could not be finished now (held by another worker, or a transient "
                                         "error: see the log); run again to retry them",
                                         pending));
    SleepUnlessStopped(o.poll_ms);
  }
}

Result<std::vector<std::pair<std::string, JobOutcome>>> HandleS3Event(const std::string& event_json, JobRunner* runner,
                                                                     const std::string& input_bucket,
                                                                     const std::string& input_prefix, JsonLog* log) {
  auto parsed = ParseS3Events(event_json);
  if (!parsed.ok()) return parsed.status();
  std::set<std::string> jobs;
  for (const auto& e : parsed->created) {
    if (e.bucket != input_bucket || e.key.rfind(input_prefix, 0) != 0) {
      log->Warn("event.ignored", "", fmt::format("s3://{}/{} is not under the input location", e.bucket, e.key));
      continue;
    }
    auto job = JobForKey(e.key.substr(input_prefix.size()), runner->options().naming);
    if (!job) {
      log->Info("event.ignored", "", fmt::format("s3://{}/{} is not a job input", e.bucket, e.key));
      continue;
    }
    log->Info("event.received", *job, fmt::format("{} for s3://{}/{}", e.event_name, e.bucket, e.key),
              {{"size", e.size}, {"etag", e.etag}});
    jobs.insert(*job);
  }
  std::vector<std::pair<std::string, JobOutcome>> outcomes;
  for (const auto& job : jobs) {
    auto outcome = runner->Run(job);
    if (!outcome.ok()) return outcome.status();
    outcomes.emplace_back(job, *outcome);
  }
  return outcomes;
}

Status ServeQueue(SqsClient* sqs, JobRunner* runner, const std::string& input_bucket, const std::string& input_prefix,
                  JsonLog* log, const ServeOptions& o) {
  log->Info("serve.started", "", fmt::format("consuming {}", sqs->queue_url()),
            {{"input", fmt::format("s3://{}/{}", input_bucket, input_prefix)}});
  int handled = 0, receive_failures = 0;
  auto last_message = std::chrono::steady_clock::now();
  while (!g_stop.load() && (o.max_messages == 0 || handled < o.max_messages)) {
    if (o.idle_exit_s > 0 && std::chrono::steady_clock::now() - last_message > std::chrono::seconds(o.idle_exit_s)) {
      log->Info("serve.idle", "", fmt::format("no message for {} s", o.idle_exit_s));
      break;
    }
    auto msgs = sqs->Receive(1, o.wait_s, o.visibility_s);
    if (msgs.ok() && !msgs->empty()) last_message = std::chrono::steady_clock::now();
    if (!msgs.ok()) {
      // A missing queue or a refusal does not pass by waiting: stop with it.
      if (msgs.status().code() != Status::Code::kIOError) return msgs.status();
      log->Error("queue.receive_failed", "", msgs.status().message());
      SleepUnlessStopped(std::min(30000, 500 << std::min(receive_failures++, 6)));
      continue;
    }
    receive_failures = 0;
    for (const auto& m : *msgs) {
      ++handled;
      std::vector<std::pair<std::string, JobOutcome>> outcomes;
      Status st;
      {
        auto heartbeat = KeepInvisible(sqs, m.receipt_handle, o.visibility_s, log);
        auto r = HandleS3Event(m.body, runner, input_bucket, input_prefix, log);
        if (r.ok()) outcomes = std::move(*r);
        else st = r.status();
      }
      if (!st.ok()) {
        // Left undeleted: it comes back after the visibility timeout; the
        // queue's redrive policy moves it to the dead-letter queue after N receives.
        log->Error("queue.message_failed", "", st.message(),
                   {{"message_id", m.message_id}, {"receive_count", m.receive_count}});
        continue;
      }
      bool busy = false;
      for (const auto& [job, outcome] : outcomes) busy |= outcome == JobOutcome::kBusy;
      if (busy) {
        // Another worker holds the run: look again later, when it has ended.
        (void)sqs->ChangeVisibility(m.receipt_handle, std::min(o.visibility_s, 30));
        continue;
      }
      Status del = sqs->Delete(m.receipt_handle);
      if (!del.ok()) log->Warn("queue.delete_failed", "", del.message(), {{"message_id", m.message_id}});
      else log->Info("queue.message_done", "", "message handled and deleted", {{"message_id", m.message_id}});
    }
  }
  log->Info("serve.stopped", "", g_stop.load() ? "stopped by a signal" : "message limit reached or idle");
  return Status::OK();
}

}  // namespace cloudmerge
