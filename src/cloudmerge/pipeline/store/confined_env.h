// Reading files of a local input folder without leaving it: `serve --local`'s
// DIR/input is writable by whoever submits jobs, and a job folder holding
// `x_list.txt -> /etc/shadow` must not put root's hash into the result, the
// report and the dashboard (issue 15, finding 5).
//
// OpenBeneath opens ROOT/REL one component at a time from ROOT's descriptor
// (openat with O_NOFOLLOW; folders also O_DIRECTORY), so a symbolic link
// anywhere below ROOT, swapped in at any moment, is never followed; the file
// itself must be a regular file (a FIFO would block the worker, a device
// never ends), opened O_NONBLOCK so that checking it cannot block. A link or
// a special file is the job's failure (InvalidInput) naming what was found.
// ROOT itself may be a link (the operator's choice).
//
// NewConfinedEnv wraps an Env: every ReadFile of a path under ROOT goes
// through OpenBeneath and then reads the descriptor it opened (through
// /proc/self/fd, so the base Env's mapping and its truncation guard still
// apply); everything else passes through. Compressed inputs are read through
// ReadFile by the URI Env above it, so they are confined too.
//
// Thread safety: pure function; the Env is as thread-safe as its base.
#pragma once

#include <memory>
#include <string>

#include "cloudmerge/io/env.h"
#include "cloudmerge/base/status.h"

namespace cloudmerge {

// An open descriptor of the regular file ROOT/REL (the caller closes it).
// NotFound when a component is missing.
Result<int> OpenBeneath(const std::string& root, const std::string& rel);

std::unique_ptr<Env> NewConfinedEnv(Env* base, std::string root);

}  // namespace cloudmerge
