// Work done when the process is interrupted: the fatal-signal handler
// (SIGINT, SIGTERM, SIGHUP, SIGPIPE, installed only where their disposition
// is the default, so a program handling a signal itself keeps its handler)
// removes the temporary of EVERY open output (`merge --report` has two: the
// report's, opened first, and OUT's) and calls the hooks of other modules
// (the spill directories of out-of-core runs, spill_directory.h) before the
// signal ends the process.
//
// Thread safety: every function may be called from any thread at any time.
// The tables are fixed-size and lock-free, because the handler may run on any
// thread at any time and may only use async-signal-safe calls: a path sits
// in a fixed buffer published with an atomic state.
#pragma once

#include <string>

namespace cloudmerge {

// Removes `path` if the process dies of a fatal signal before
// DisarmFileCleanup(slot). Returns the slot, or -1 when the path is too long
// (PATH_MAX) or 64 outputs are already armed (that one is then left behind
// by a signal, as before this registry).
int ArmFileCleanup(const std::string& path);
void DisarmFileCleanup(int slot);  // -1 is ignored

// A hook may run on any thread at any time and must use only
// async-signal-safe calls. At most 8 hooks; false when the table is full.
// Adding the same hook twice adds it once.
using FatalSignalHook = void (*)();
bool AddFatalSignalHook(FatalSignalHook hook);

// Once the handler has started, the process is ending, but its other threads
// keep running while it cleans up. A thread about to create a temporary file
// calls this first: it then blocks for good (the signal ends the process)
// instead of creating a file the cleanup would have to chase. Returns at once
// otherwise.
void WaitIfProcessIsEnding();

}  // namespace cloudmerge
