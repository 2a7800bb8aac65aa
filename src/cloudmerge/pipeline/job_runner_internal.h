// Internal to the job runner (job_runner.cc, job_runner_messages.cc): what one
// delivery knows of the run it handles. Not part of the pipeline's interface.
// Thread safety: a RunRecord belongs to the thread running its delivery.
#pragma once

#include <memory>
#include <string>

#include "cloudmerge/base/periodic_task.h"
#include "cloudmerge/pipeline/job.h"

namespace cloudmerge {

struct RunRecord {
  std::string job, run, state_prefix;
  JobInputs inputs;
  JobSpec spec;
  // This worker's claim of the run while it holds one, and the task renewing its lease.
  std::string claim_key;
  std::unique_ptr<PeriodicTask> keeper;
};

}  // namespace cloudmerge
