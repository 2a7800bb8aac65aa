#include "cloudmerge/io/posix_io.h"

#include <unistd.h>

#include <cerrno>

namespace cloudmerge {

int PreadFully(int fd, uint64_t offset, size_t n, std::string* out) {
  size_t old = out->size();
  out->resize(old + n);
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd, out->data() + old + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      int err = r < 0 ? errno : -1;
      out->resize(old);
      return err;
    }
    got += static_cast<size_t>(r);
  }
  return 0;
}

}  // namespace cloudmerge
