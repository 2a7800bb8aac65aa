// The "command" engine: runs a program the operator registered on the job's
// inputs, so the scientist's next script rides the same pipeline (same
// notifications, logs, exactly-once rules).
//
// Trust (docs/security.md): whoever may write to the input bucket or folder
// must not get to run code as the worker. So the engine is off unless the
// operator registers commands (serve --allow-command NAME=ARGV, the function's
// CLOUDMERGE_COMMANDS); a job.json only names one ("command": "NAME"), it never
// supplies a program or arguments. The child runs
//   - with a clean environment: PATH=/usr/local/bin:/usr/bin:/bin, HOME and
//     TMPDIR its private folder, LANG=C.UTF-8, and only the worker variables
//     the operator listed (pass_env): no AWS credentials, no SMTP password;
//   - in its own process group, with stdin and stdout on /dev/null and no
//     other descriptor of the worker open;
//   - under a time limit (timeout_s; the default is well under Lambda's
//     900 s, whose own watchdog ends an invocation that would outlive it),
//     after which its whole process group is killed (SIGKILL);
//     the group is killed too when the command exits, so nothing it started
//     in the background outlives the job;
//   - with its standard error read through a pipe, of which only the last
//     stderr_bytes are kept (escaped: control bytes and invalid UTF-8 shown
//     as \xNN) and quoted in the failure as the command's own output.
// Inputs are fetched to a private folder (mkdtemp, 0700, removed afterwards;
// decompressed), `{x}`, `{y}` and `{out}` in the registered argv are replaced
// by the local paths (fixed names, never the job's), and the regular file the
// command wrote at `{out}` is published to the destination atomically.
// A non-zero exit, a signal or the time limit is the job's failure (bad
// input: permanent). A stop of the worker (`stop` set, SIGTERM) kills the
// command and returns a transient error: the job is released for the next
// worker, not failed.
//
// Thread safety: one call per job; calls for different jobs may run at once.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "cloudmerge/io/env.h"
#include "cloudmerge/engine/merge.h"
#include "cloudmerge/base/status.h"

namespace cloudmerge {

inline constexpr double kDefaultCommandTimeoutS = 300;

struct CommandEngineOptions {
  // Registered commands: name -> argv with {x}, {y}, {out} placeholders; argv[0]
  // is an absolute path (AddCommand resolves a bare name on the worker's PATH
  // once, at registration). Empty: the engine is off.
  std::map<std::string, std::vector<std::string>> commands;
  // Names of worker environment variables passed on to the command.
  std::vector<std::string> pass_env;
  // The command's time limit; well under Lambda's 900 s.
  double timeout_s = kDefaultCommandTimeoutS;
  // Bytes of the command's standard error kept (its end) for the failure message.
  size_t stderr_bytes = 2000;
  // Where the private folder is made ("": $TMPDIR, else /tmp).
  std::string temp_dir;
};

// Registers "NAME=ARGV": ARGV a JSON array (["python3", "/opt/a.py", "{x}",
// "{y}", "{out}"]) or words separated by spaces (python3 /opt/a.py {x} {y} {out}).
// NAME: letters, digits, '.', '_', '-' (at most 64); ARGV must use {out}.
Status AddCommand(const std::string& spec, CommandEngineOptions* o);
// The function's CLOUDMERGE_COMMANDS: a JSON object {"NAME": [argv...], ...}.
Status AddCommandsJson(const std::string& json, CommandEngineOptions* o);

// What a run of the engine needs beyond the options.
struct CommandRun {
  std::string name;                   // the job's "command"
  std::atomic<bool>* stop = nullptr;  // set by SIGTERM: kill the command, release the job
};

Status RunCommandEngine(Env* env, const CommandEngineOptions& options, const CommandRun& run,
                        const std::string& x_uri, const std::string& y_uri, const std::string& out_uri,
                        MergeStats* stats);

}  // namespace cloudmerge
