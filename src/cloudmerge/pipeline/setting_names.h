// How the pipeline's operators set what an engine error names (Status::setting,
// base/setting_names.h): `serve` by its flags, the Lambda runtime by the
// function's configuration and environment. JobRunner names it in the failure
// it records and emails (PipelineOptions::setting_names).
// Thread safety: pure functions.
#pragma once

#include "cloudmerge/base/setting_names.h"

namespace cloudmerge {

// `cloudmerge serve`: its --memory-limit and --temp-dir (it has no flag for the others).
inline SettingNames ServeSettingNames() {
  SettingNames n;
  n.memory_limit = "serve's --memory-limit";
  n.temp_dir = "serve's --temp-dir";
  return n;
}

// The Lambda runtime: the engine's limits are the function's own (DefaultMemoryLimit
// reads AWS_LAMBDA_FUNCTION_MEMORY_SIZE; DefaultTempParent is $TMPDIR, else /tmp).
inline SettingNames LambdaSettingNames() {
  SettingNames n;
  n.memory_limit = "the function's memory size (MemorySize, which Lambda passes as AWS_LAMBDA_FUNCTION_MEMORY_SIZE)";
  n.temp_dir = "the function's environment variable TMPDIR (else /tmp, its ephemeral storage: EphemeralStorage)";
  return n;
}

}  // namespace cloudmerge
