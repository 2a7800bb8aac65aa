// Output guard: no destination of a command may be one of its inputs or
// another of its destinations. `merge xa.tsv ya.tsv -o xa.tsv` would replace
// X by the result, `--report xa.tsv` X by JSON, `--report o.tsv -o o.tsv` the
// result by its report: each is refused before any work (exit 2) with a
// message naming both paths.
//
// Two names are the same file when, after file:// is dropped and the last
// component's links are followed (Env::ResolveOutput), they have the same
// device and inode (hard links, ./a vs a, a link to an input), or, for an
// output that does not exist yet, the same directory (realpath) and name; two
// s3:// names when they have the same bucket and key. Standard output ("-",
// /dev/stdout) counts as the file it is redirected to. Devices, FIFOs and
// pipes are written in place, never replaced, so they collide with nothing.
//
// Thread safety: a pure function of the file system's state.
#pragma once

#include <string>
#include <vector>

#include "cloudmerge/io/env.h"
#include "cloudmerge/base/status.h"

namespace cloudmerge_cli {

// A path the command reads or writes, and how the message calls it: "input X",
// "-o", "--report", "SRC", "DST".
struct NamedPath {
  std::string role;
  std::string path;
};

// InvalidArgument naming the first output that is an input or an earlier output.
cloudmerge::Status CheckOutputsAreDistinct(cloudmerge::Env* env, const std::vector<NamedPath>& inputs,
                                           const std::vector<NamedPath>& outputs);

}  // namespace cloudmerge_cli
