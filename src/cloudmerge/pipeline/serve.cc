// The local polling loop, the SQS loop with its visibility heartbeat, and the
// event-to-jobs step shared with the Lambda handler.
#include "cloudmerge/pipeline/serve.h"

#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "cloudmerge/base/memory_info.h"
#include "cloudmerge/base/periodic_task.h"
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

// Runs jobs on `workers` threads, so that a small job never waits behind a
// big one; a job queued or running is not queued again. Thread-safe.
class JobPool {
 public:
  JobPool(JobRunner* runner, JsonLog* log, unsigned workers) : runner_(runner), log_(log) {
    for (unsigned i = 0; i < std::max(1u, workers); ++i) threads_.emplace_back([this] { Work(); });
  }
  ~JobPool() { Stop(); }
  // The running jobs finish, notifications included (a stop signal makes them
  // short); queued ones are dropped. Called before "serve.stopped" is logged,
  // so that nothing a job does is logged after it.
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      queue_.clear();
    }
    cv_.notify_all();
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  void Submit(const std::string& job) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!active_.insert(job).second) return;
      queue_.push_back(job);
    }
    cv_.notify_all();
  }
  // Waits until nothing is queued or running; the outcomes since the last call.
  std::map<std::string, Result<JobOutcome>> Drain() {
    std::unique_lock<std::mutex> lock(mu_);
    idle_.wait(lock, [&] { return active_.empty(); });
    return std::exchange(results_, {});
  }

 private:
  void Work() {
    for (;;) {
      std::string job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (stop_) return;
        job = queue_.front();
        queue_.pop_front();
      }
      auto outcome = runner_->Run(job);
      if (!outcome.ok()) log_->Error("job.error", job, outcome.status().message());
      {
        std::lock_guard<std::mutex> lock(mu_);
        results_.insert_or_assign(job, std::move(outcome));
        active_.erase(job);
      }
      idle_.notify_all();
    }
  }
  JobRunner* runner_;
  JsonLog* log_;
  std::mutex mu_;
  std::condition_variable cv_, idle_;
  std::deque<std::string> queue_;
  std::set<std::string> active_;  // queued or running
  std::map<std::string, Result<JobOutcome>> results_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace

unsigned DefaultWorkers(uint64_t memory_limit) {
  // One per core, and at least 512 MiB of the memory limit each (below that
  // every job spills): a 2-core 4 GiB machine runs 2 jobs at once.
  uint64_t memory = memory_limit ? memory_limit : DefaultMemoryLimit();
  unsigned by_memory = static_cast<unsigned>(std::max<uint64_t>(1, memory / (512ull << 20)));
  return std::max(1u, std::min({std::max(1u, std::thread::hardware_concurrency()), by_memory, 16u}));
}

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
  log->Info("serve.started", "",
            fmt::format("watching {} every {} ms, running up to {} job(s) at once", input->Describe(), o.poll_ms,
                        o.workers),
            {{"once", o.once}, {"workers", o.workers}});
  JobPool pool(runner, log, o.workers);
  std::map<std::string, std::string> last_seen;  // job -> identities at the previous scan
  for (;;) {
    auto listed = input->List("");
    if (!listed.ok()) return listed.status();
    std::map<std::string, std::string> seen;
    for (const auto& obj : *listed) {
      auto job = JobForUpload(obj.key, naming);
      if (job) seen[*job] += obj.key + "@" + obj.etag + ";";
    }
    size_t pending = 0, busy = 0;
    for (const auto& [job, ident] : seen) {
      if (g_stop.load()) break;
      // Wait for a second identical scan: a file still being written changes.
      if (!o.once && last_seen[job] != ident) continue;
      pool.Submit(job);  // not again while it is still queued or running
    }
    last_seen = std::move(seen);
    if (o.once) {
      for (auto& [job, outcome] : pool.Drain()) {
        if (!outcome.ok()) ++pending;
        else if (*outcome == JobOutcome::kBusy) ++busy;
      }
    }
    if (g_stop.load()) {
      pool.Stop();
      log->Info("serve.stopped", "", "stopped by a signal");
      return Status::OK();
    }
    if (o.once && busy > 0) {
      // Held by another worker: --once means "until what is ready has ended",
      // so look again after the poll interval (an expired claim is taken over).
      log->Info("serve.waiting", "", fmt::format("{} job(s) held by another worker: waiting for them to end", busy));
    } else if (o.once && pending == 0) {
      return Status::OK();
    } else if (o.once) {
      return Status::IOError(fmt::format("{} job(s) could not be finished now (a transient error: see the log); run "
                                         "again to retry them",
                                         pending));
    }
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
    auto job = JobForUpload(e.key.substr(input_prefix.size()), runner->options().naming);
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

namespace {

// One message: its jobs run; deleted when they have ended, kept (to come back) otherwise.
void HandleMessage(SqsClient* sqs, JobRunner* runner, const std::string& input_bucket, const std::string& input_prefix,
                   JsonLog* log, const ServeOptions& o, const SqsMessage& m) {
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
    return;
  }
  bool busy = false, incomplete = false;
  for (const auto& [job, outcome] : outcomes) {
    busy |= outcome == JobOutcome::kBusy;
    incomplete |= outcome == JobOutcome::kIncomplete;
  }
  if (busy) {
    // Another worker holds the run: look again later, when it has ended.
    (void)sqs->ChangeVisibility(m.receipt_handle, std::min(o.visibility_s, 30));
    return;
  }
  if (incomplete) {
    // An input is missing: the message comes back when the notice about it is
    // due (the job is then complete, and this is a duplicate, or it is not, and the notice goes out).
    int64_t wait_s = runner->options().incomplete_wait_ms / 1000 + 1;
    int visibility = static_cast<int>(std::min<int64_t>(wait_s, 12 * 3600));  // SQS's maximum
    (void)sqs->ChangeVisibility(m.receipt_handle, visibility);
    log->Info("queue.message_kept", "", fmt::format("an input is missing: looking at the job again in {} s", visibility),
              {{"message_id", m.message_id}});
    return;
  }
  Status del = sqs->Delete(m.receipt_handle);
  if (!del.ok()) log->Warn("queue.delete_failed", "", del.message(), {{"message_id", m.message_id}});
  else log->Info("queue.message_done", "", "message handled and deleted", {{"message_id", m.message_id}});
}

}  // namespace

Status ServeQueue(SqsClient* sqs, JobRunner* runner, const std::string& input_bucket, const std::string& input_prefix,
                  JsonLog* log, const ServeOptions& o) {
  log->Info("serve.started", "", fmt::format("consuming {} with {} worker(s)", sqs->queue_url(), o.workers),
            {{"input", fmt::format("s3://{}/{}", input_bucket, input_prefix)}, {"workers", o.workers}});
  std::atomic<int> handled{0};
  std::atomic<int64_t> last_message_ms{NowMillis()};
  // A missing queue or a refusal does not pass by waiting: the first worker to
  // see one records it, the others stop at their next turn, and serve fails with it.
  std::mutex fatal_mu;
  Status fatal;
  std::atomic<bool> give_up{false};
  // Each worker receives and handles its own messages: a long job holds one worker, not the queue.
  auto work = [&] {
    int receive_failures = 0;
    while (!g_stop.load() && !give_up.load() && (o.max_messages == 0 || handled.load() < o.max_messages)) {
      if (o.idle_exit_s > 0 && NowMillis() - last_message_ms.load() > int64_t{o.idle_exit_s} * 1000) {
        log->Info("serve.idle", "", fmt::format("no message for {} s", o.idle_exit_s));
        break;
      }
      auto msgs = sqs->Receive(1, o.wait_s, o.visibility_s);
      if (msgs.ok() && !msgs->empty()) last_message_ms.store(NowMillis());
      if (!msgs.ok()) {
        if (msgs.status().code() != Status::Code::kIOError) {
          std::lock_guard<std::mutex> lock(fatal_mu);
          if (fatal.ok()) fatal = msgs.status();
          give_up.store(true);
          break;
        }
        log->Error("queue.receive_failed", "", msgs.status().message());
        SleepUnlessStopped(std::min(30000, 500 << std::min(receive_failures++, 6)));
        continue;
      }
      receive_failures = 0;
      for (const auto& m : *msgs) {
        ++handled;
        HandleMessage(sqs, runner, input_bucket, input_prefix, log, o, m);
      }
    }
  };
  std::vector<std::thread> workers;
  for (unsigned i = 1; i < std::max(1u, o.workers); ++i) workers.emplace_back(work);
  work();
  for (auto& t : workers) t.join();
  if (!fatal.ok()) return fatal;
  log->Info("serve.stopped", "", g_stop.load() ? "stopped by a signal" : "message limit reached or idle");
  return Status::OK();
}

}  // namespace cloudmerge
