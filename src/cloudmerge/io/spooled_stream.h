// SpooledStream: a one-pass input (standard input, a FIFO, a device; see
// InputStream::reopenable) made readable again. Once told to (StartSpool, when
// the reader learns that the input is bigger than what it holds in memory),
// it copies every byte it hands out to an unnamed file in the temp dir
// (OpenAnonymousTempFile: it vanishes with the process, whatever kills it);
// Rewind() then replays the copy from the first byte and reads on from the
// input where the copy ends. An input that is read once costs no disk at all;
// one that is read twice costs its size in the temp dir, never its size in
// memory.
//
// A failure to make or write the copy does not stop the first pass: it is
// remembered and reported by Rewind(), the only thing that needs the copy.
//
// Thread safety: as InputStream (one thread at a time).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

#include "cloudmerge/io/env.h"
#include "cloudmerge/base/status.h"

namespace cloudmerge {

class SpooledStream final : public InputStream {
 public:
  // `name` is the input as shown in messages; `temp_parent` is --temp-dir ("": the default).
  SpooledStream(std::unique_ptr<InputStream> raw, std::string name, std::string temp_parent);
  ~SpooledStream() override;

  Status Read(size_t max_bytes, std::string* out) override;
  uint64_t size_hint() const override { return raw_->size_hint(); }

  // From now on keep a copy of everything read, starting with `already_read`:
  // every byte handed out so far, in order.
  void StartSpool(std::initializer_list<std::string_view> already_read);
  // Reads start over from the first byte. An error when the copy was never
  // started or could not be made (it says why and what to do).
  Status Rewind();

 private:
  void Keep(std::string_view bytes, uint64_t at);  // at: the bytes' offset in the input

  std::unique_ptr<InputStream> raw_;
  std::string name_, temp_parent_;
  int fd_ = -1;               // the copy
  bool spooling_ = false;
  Status spool_status_;       // the first failure to make or write the copy
  uint64_t from_raw_ = 0;     // bytes read from the input so far
  uint64_t pos_ = 0;          // the reader's position
};

}  // namespace cloudmerge
