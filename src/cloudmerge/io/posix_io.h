// Small POSIX read helpers shared by the local Env (env_posix.cc) and the
// spooled copy of a stream (spooled_stream.cc).
// Thread safety: pread(2) at explicit offsets; callers own their descriptors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace cloudmerge {

// Appends exactly n bytes read at `offset` of fd to *out (retrying EINTR and
// short reads). Returns 0, or the errno of a failed read, or -1 when the file
// ends first; on failure *out is as it was.
int PreadFully(int fd, uint64_t offset, size_t n, std::string* out);

}  // namespace cloudmerge
