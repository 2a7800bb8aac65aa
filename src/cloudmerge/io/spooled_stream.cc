#include "cloudmerge/io/spooled_stream.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "cloudmerge/io/posix_io.h"
#include "cloudmerge/io/spill_directory.h"

namespace cloudmerge {

SpooledStream::SpooledStream(std::unique_ptr<InputStream> raw, std::string name, std::string temp_parent)
    : raw_(std::move(raw)), name_(std::move(name)), temp_parent_(std::move(temp_parent)) {}

SpooledStream::~SpooledStream() {
  if (fd_ >= 0) ::close(fd_);
}

void SpooledStream::Keep(std::string_view bytes, uint64_t at) {
  while (spooling_ && !bytes.empty()) {
    ssize_t n = ::pwrite(fd_, bytes.data(), bytes.size(), static_cast<off_t>(at));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : EIO;
      spool_status_ = (err == ENOSPC || err == EDQUOT)
                          ? Status::NoSpace("no space left on device in the temporary directory. Free space "
                                            "there, choose a temporary directory on a larger disk, or give the input "
                                            "as a file.").WithSetting(Setting::kTempDir)
                          : Status::IOError(fmt::format("cannot write it ({}). Choose another temporary directory, "
                                                        "or give the input as a file.",
                                                        std::strerror(err))).WithSetting(Setting::kTempDir);
      spooling_ = false;
      return;
    }
    bytes.remove_prefix(static_cast<size_t>(n));
    at += static_cast<uint64_t>(n);
  }
}

Status SpooledStream::Read(size_t max_bytes, std::string* out) {
  if (pos_ < from_raw_) {  // replaying the copy
    size_t n = static_cast<size_t>(std::min<uint64_t>(max_bytes, from_raw_ - pos_));
    if (int err = PreadFully(fd_, pos_, n, out); err != 0) {
      return Status::IOError(fmt::format(
          "cannot read back the copy of {} kept in the temporary directory ({}). Check that file system, or give "
          "the input as a file.",
          name_, err > 0 ? std::strerror(err) : "it is shorter than written"));
    }
    pos_ += n;
    return Status::OK();
  }
  size_t old = out->size();
  CM_RETURN_IF_ERROR(raw_->Read(max_bytes, out));
  std::string_view fresh(out->data() + old, out->size() - old);
  Keep(fresh, from_raw_);
  from_raw_ += fresh.size();
  pos_ = from_raw_;
  return Status::OK();
}

void SpooledStream::StartSpool(std::initializer_list<std::string_view> already_read) {
  if (spooling_ || !spool_status_.ok() || fd_ >= 0) return;
  uint64_t total = 0;
  for (std::string_view b : already_read) total += b.size();
  if (total != from_raw_ || pos_ != from_raw_) {
    spool_status_ = Status::Internal("the bytes to keep do not match what was read");
    return;
  }
  auto fd = OpenAnonymousTempFile(temp_parent_, fmt::format("keep a copy of {}", name_));
  if (!fd.ok()) {
    spool_status_ = fd.status();
    return;
  }
  fd_ = *fd;
  spooling_ = true;
  uint64_t at = 0;
  for (std::string_view b : already_read) {
    Keep(b, at);
    at += b.size();
  }
}

Status SpooledStream::Rewind() {
  if (from_raw_ > 0 && (!spooling_ || fd_ < 0)) {
    std::string why = spool_status_.ok() ? std::string("no copy was kept. Give the input as a file.")
                                         : spool_status_.message();
    std::string msg = fmt::format(
        "{} can be read only once, and this merge reads it twice, the second time from a copy kept in the "
        "temporary directory; that copy could not be made: {}",
        name_, why);
    return (spool_status_.code() == Status::Code::kNoSpace ? Status::NoSpace(msg) : Status::IOError(msg))
        .WithSetting(spool_status_.setting());
  }
  pos_ = 0;
  return Status::OK();
}

}  // namespace cloudmerge
