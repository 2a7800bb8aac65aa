// EngineKind: which engine runs a job (job.json "engine", `merge --engine`,
// serve --auto-engine), parsed and named in one place, so no other file
// spells an engine's name.
//
// Threading: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "cloudmerge/base/status.h"

namespace cloudmerge {

enum class EngineKind {
  kNative,         // this process (engine/merge.h)
  kCommand,        // a program the operator registered (command_engine.h)
  kSpark,          // spark-submit, local or --spark-master (spark_engine.h)
  kEmrServerless,  // an EMR Serverless job run
  kEmr,            // a step on an EMR cluster
  kAuto,           // native if the inputs fit the native time budget, else --auto-engine
};

// "native", "command", "spark", "emr-serverless", "emr", "auto".
const char* EngineKindName(EngineKind kind);
// The inverse of EngineKindName; an unknown name is kInvalidArgument listing the known ones.
Result<EngineKind> ParseEngineKind(std::string_view name);
// spark, emr-serverless, emr: the engines that run spark/merge_job.py.
bool IsClusterEngine(EngineKind kind);
// "\"native\", \"command\", ... or \"auto\"": for messages.
std::string EngineKindNames();

}  // namespace cloudmerge
