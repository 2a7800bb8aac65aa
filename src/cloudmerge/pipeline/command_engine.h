// The "command" engine: runs any executable on the job's inputs, so the
// scientist's next script rides the same pipeline (same notifications, logs,
// exactly-once rules). Inputs are fetched to a private temporary folder
// (decompressed), `{x}`, `{y}` and `{out}` in the command are replaced by the
// local paths, and the file the command wrote at `{out}` is published to the
// destination atomically. A non-zero exit is bad input (permanent), with the
// last lines of the command's stderr in the message.
//
// Thread safety: one call per job; calls for different jobs may run at once.
#pragma once

#include <string>
#include <vector>

#include "cloudmerge/env.h"
#include "cloudmerge/merge.h"
#include "cloudmerge/status.h"

namespace cloudmerge {

Status RunCommandEngine(Env* env, const std::string& x_uri, const std::string& y_uri, const std::string& out_uri,
                        const std::vector<std::string>& command, MergeStats* stats);

}  // namespace cloudmerge
