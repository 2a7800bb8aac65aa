// `cloudmerge serve`: the long-running pipeline service, in two modes.
//
// Local (the embedded default, no cloud): DIR/input/<job>/{x_list.txt,
// y_list.txt[, job.json]} in, DIR/output/<job>/ out, notification emails
// written to DIR/outbox/ as .eml files (and sent by SMTP when configured).
// The input folder is scanned every poll interval; a job runs once its inputs
// have stopped changing between two scans (a file still being copied is not
// read), or at once with --once, which runs what is ready and exits when all
// of it has ended: a job held by another worker is looked at again every poll
// interval until that worker has finished it (or its claim expired and this
// worker took it over), so two --once workers sharing the jobs both exit 0.
//
// Queue: S3 event notifications from an SQS queue (long polling). While a
// message's jobs run, its visibility timeout is extended; it is deleted only
// after the result, its report, its done marker and its notification are
// durable. A message that cannot be processed (not an S3 event, or failing
// transiently) is left to reappear, and the queue's redrive policy moves it
// to the dead-letter queue after N receives.
//
// Both stop at SIGTERM/SIGINT between jobs. A signal during a job ends the
// process after removing its temporary output; the job's claim then expires
// and another worker (or the next start) runs it again; no partial result is
// visible, and the done marker makes the retry the only result. A
// command-engine job is ended at once instead and its claim released
// (command_engine.h): the next worker runs it without waiting for the lease.
//
// Several jobs run at once (--workers, ServeOptions::workers): each on its own
// thread, sharing the memory limit evenly; the exactly-once rules of
// job_runner.h hold between threads as between processes.
// A job folder missing an input (JobOutcome::kIncomplete) is looked at again:
// locally at each scan; from the queue, its message is kept and comes back
// when the notice about the missing input is due.
//
// Thread safety: each Serve* call runs on the calling thread and the worker threads it starts.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "cloudmerge/aws/sqs_client.h"
#include "cloudmerge/pipeline/job_runner.h"

namespace cloudmerge {

struct ServeOptions {
  int poll_ms = 1000;       // local: scan interval
  bool once = false;        // local: run what is ready, then return
  int visibility_s = 300;   // queue: visibility timeout while a message is being worked on
  int wait_s = 20;          // queue: long-poll wait
  int max_messages = 0;     // queue: return after this many messages (0: run until stopped)
  int idle_exit_s = 0;      // queue: return when no message came for this long (0: never); batch runs, tests
  // Jobs run at once (local: a pool of threads fed by the scans; queue: as
  // many receiving threads). The runner's PipelineOptions::concurrent_runs
  // should be the same, so that they share the memory limit.
  unsigned workers = 1;
};

// serve's default --workers: one per core, with at least 512 MiB of the
// memory limit (0: the machine's default limit) for each, at most 16.
unsigned DefaultWorkers(uint64_t memory_limit);

// Installs SIGTERM/SIGINT handlers that set the returned flag.
std::atomic<bool>* InstallStopFlag();

Status ServeLocal(JobRunner* runner, JobStore* input, JsonLog* log, const ServeOptions& options);

// The jobs an event names (keys under `input_prefix` of `input_bucket`), each
// run. Non-ok when the event is not an S3 notification or a job failed
// transiently: the message should come back.
Result<std::vector<std::pair<std::string, JobOutcome>>> HandleS3Event(const std::string& event_json, JobRunner* runner,
                                                                     const std::string& input_bucket,
                                                                     const std::string& input_prefix, JsonLog* log);

Status ServeQueue(SqsClient* sqs, JobRunner* runner, const std::string& input_bucket, const std::string& input_prefix,
                  JsonLog* log, const ServeOptions& options);

}  // namespace cloudmerge
