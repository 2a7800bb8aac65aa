// The SIGBUS guard of mapped inputs. Another program may truncate a file
// while it is mapped here; touching a page beyond its new end raises SIGBUS,
// which would kill the process (and leave the output's temporary behind). The
// handler finds the guarded mapping the address belongs to, maps zero pages
// over the rest of it, so that the reader carries on seeing NULs, and marks it
// truncated; the mapped input (env_posix.cc) then reports an IOError from
// Intact() that RunMerge prefers to whatever the zeros made the scan say.
//
// Thread safety: all three functions may be called from any thread at once.
// The table is fixed-size (256 mappings; more go unguarded, a SIGBUS as
// before) and lock-free, because the handler may run on any thread at any
// time: it only reads atomics and calls mmap (a plain system call).
#pragma once

#include <cstddef>

namespace cloudmerge {

// Guards [begin, begin + size) (installing the handler on first use); returns
// its slot, or -1 when the table is full or the handler could not be installed.
int GuardMapping(const void* begin, size_t size);
// Stops guarding (before the range is unmapped). -1 is ignored.
void UnguardMapping(int slot);
// True when a read in the slot's range hit a page the file no longer has.
bool MappingTruncated(int slot);

}  // namespace cloudmerge
