// Fuzz harness: job.json (ParseJobSpec in pipeline/job.h) and the job name of
// an input key (JobForKey). Properties: no crash, no exception; an accepted
// spec has an engine we know and, for "command", the name of a command (never
// an argv); its output is never a name the pipeline writes itself; an error
// names the file and quotes the spec in part. Single-threaded.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "cloudmerge/pipeline/job.h"

namespace {
void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "job_spec_fuzz: property violated: %s\n", what);
    std::abort();
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cloudmerge;
  std::string text(reinterpret_cast<const char*>(data), size);
  Result<JobSpec> spec = ParseJobSpec(text, "job7/job.json");
  if (spec.ok()) {
    auto named = ParseEngineKind(EngineKindName(spec->engine));
    Check(named.ok() && *named == spec->engine, "an unknown engine was accepted");
    Check(spec->engine != EngineKind::kCommand || !spec->command.empty(), "a command engine without a command");
    Check(!IsReservedOutputName(spec->output), "a reserved output name was accepted");
  } else {
    Check(spec.status().message().find("job7/job.json") != std::string::npos, "the error does not name the file");
    Check(spec.status().message().size() < 2000, "the error quotes too much of the spec");
  }
  (void)JobForKey(text, JobNaming{});
  return 0;
}
