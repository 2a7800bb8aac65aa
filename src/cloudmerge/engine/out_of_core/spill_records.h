// The out-of-core join's records inside spill blocks (docs/spill-format.md,
// "Records"): partition records (position, ID, output text) and output records
// (x position, y position, line); their encoding, a bounds-checked walker, and
// SpillPart, one partition file and what it holds.
// Thread safety: pure functions and plain data.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "cloudmerge/base/status.h"
#include "cloudmerge/base/varint.h"
#include "cloudmerge/io/env.h"
#include "cloudmerge/io/spill_file.h"

namespace cloudmerge::ooc {

// ---- Record layouts (docs/spill-format.md, "Records") ------------------------
// Numbers are varints (base/varint.h). A position is (unit << 40) | row within
// the unit, increasing in file order.
// Partition record: position difference | key reference | text length | [key] | text
//   position difference: from the previous record's position in the block (0
//   for the block's first: from 0), modulo 2^64. Consecutive records of one
//   partition are about `fanout` rows apart: one or two bytes, not four.
//   key reference: key length << 2 | where the key is: kKeyStored (its bytes
//   follow), kKeyLeadsText (the text's first K bytes: x's row with the ID
//   first), kKeyEndsText (the text's last K bytes: the ID last). x's text
//   holds its ID, so storing it again cost a third of an int-ID row of x.
//   key: the ID as read (unquoted); text: x's whole row, or y's fields but the
//   ID, encoded for output.
// Output record: x position as the difference from the previous record's in
//   the block (0 for the block's first: from 0) | y unit | y row | line length
//   | line ('\n' included). x positions do not decrease within a run; the
//   difference is taken modulo 2^64, so a block that broke that would still
//   decode to its positions.
constexpr int kRowBits = 40;
constexpr uint64_t kRowMask = (uint64_t{1} << kRowBits) - 1;

// A position as two varints, unit then row (~4 bytes instead of 8: units are
// few, rows within one under 2^21): the output records' y position, which has
// no order to take differences in.
inline char* EncodePosition(char* p, uint64_t pos) {
  p = EncodeVarint(p, pos >> kRowBits);
  return EncodeVarint(p, pos & kRowMask);
}
inline bool GetPosition(const char*& p, const char* end, uint64_t* pos) {
  uint64_t unit, row;
  if (!GetVarint(p, end, &unit) || !GetVarint(p, end, &row) || row > kRowMask) return false;
  *pos = (unit << kRowBits) | row;
  return true;
}

enum PartKeyPlace : uint64_t { kKeyStored = 0, kKeyLeadsText = 1, kKeyEndsText = 2 };

// Writes the partition records of one block, in order (PartRecords reads them).
// The partitioning loop's hottest write: a short record is put together on the
// stack and appended once (four varints and two appends to a string cost more
// in length checks than the bytes they copy).
class PartRecordWriter {
 public:
  // REQUIRES: block is the block being filled; Reset() when a new one starts.
  void Append(std::string& block, uint64_t pos, std::string_view key, std::string_view text) {
    char buf[256];
    constexpr size_t kHeader = 3 * kMaxVarintBytes;
    // By address, not by content: the partitioning loop passes views of the
    // input row (x's ID is a view into x's row), and a re-partition passes on
    // what PartRecords decoded (a view into the text). Comparing bytes would
    // cost every row of y two compares that almost never match.
    const bool fits = key.size() <= text.size();
    const uint64_t place = fits && key.data() == text.data()                                ? kKeyLeadsText
                           : fits && key.data() + key.size() == text.data() + text.size() ? kKeyEndsText
                                                                                           : kKeyStored;
    const std::string_view stored = place == kKeyStored ? key : std::string_view();
    char* p = EncodeVarint(buf, pos - last_pos_);
    last_pos_ = pos;
    p = EncodeVarint(p, key.size() << 2 | place);
    p = EncodeVarint(p, text.size());
    if (stored.size() + text.size() <= sizeof buf - kHeader) {
      if (!stored.empty()) std::memcpy(p, stored.data(), stored.size());
      p += stored.size();
      std::memcpy(p, text.data(), text.size());
      p += text.size();
      block.append(buf, static_cast<size_t>(p - buf));
      return;
    }
    block.append(buf, static_cast<size_t>(p - buf));
    block.append(stored);
    block.append(text);
  }
  void Reset() { last_pos_ = 0; }

 private:
  uint64_t last_pos_ = 0;
};

struct PartRecord {
  uint64_t pos;
  std::string_view key, text;
};

// Walks the records of one decoded block. Lengths were covered by the block's
// checksum; they are still bounds-checked so that no input can read past it.
class PartRecords {
 public:
  explicit PartRecords(std::string_view block) : p_(block.data()), end_(block.data() + block.size()) {}
  // false at the end; *bad set when a record overruns the block.
  bool Next(PartRecord* r, bool* bad) {
    if (p_ == end_) return false;
    uint64_t dpos, ref, tl;
    if (!GetVarint(p_, end_, &dpos) || !GetVarint(p_, end_, &ref) || !GetVarint(p_, end_, &tl))
      return *bad = true, false;
    const uint64_t kl = ref >> 2, place = ref & 3;
    const uint64_t stored = place == kKeyStored ? kl : 0;
    const uint64_t left = static_cast<uint64_t>(end_ - p_);
    if (place > kKeyEndsText || left < stored || left - stored < tl || (place != kKeyStored && kl > tl))
      return *bad = true, false;
    pos_ += dpos;
    r->pos = pos_;
    r->text = {p_ + stored, tl};
    r->key = place == kKeyStored     ? std::string_view(p_, kl)
             : place == kKeyLeadsText ? r->text.substr(0, kl)
                                      : r->text.substr(tl - kl);
    p_ += stored + tl;
    return true;
  }

 private:
  const char* p_;
  const char* end_;
  uint64_t pos_ = 0;
};

// Output records of one block, written in order (the writer's side of
// OutRecords): the x position's difference is from the block's previous record.
class OutRecordWriter {
 public:
  // REQUIRES: block is the block being filled; Reset() when a new one starts.
  void Append(std::string& block, uint64_t x_pos, uint64_t y_pos, size_t line_len) {
    char buf[kMaxHeaderBytes];
    block.append(buf, static_cast<size_t>(Encode(buf, x_pos, y_pos, line_len) - buf));
  }
  // Append's bytes written at p (at most kMaxHeaderBytes); returns their end.
  static constexpr size_t kMaxHeaderBytes = 4 * kMaxVarintBytes;
  char* Encode(char* p, uint64_t x_pos, uint64_t y_pos, size_t line_len) {
    p = EncodeVarint(p, x_pos - last_x_);
    last_x_ = x_pos;
    p = EncodePosition(p, y_pos);
    return EncodeVarint(p, line_len);
  }
  void Reset() { last_x_ = 0; }

 private:
  uint64_t last_x_ = 0;
};

// Walks the output records of one decoded block.
class OutRecords {
 public:
  explicit OutRecords(std::string_view block) : p_(block.data()), end_(block.data() + block.size()) {}
  bool done() const { return p_ == end_; }
  // REQUIRES: !done(). false when a record overruns the block.
  bool Next(uint64_t* x, uint64_t* y, std::string_view* line) {
    uint64_t dx, len;
    if (!GetVarint(p_, end_, &dx) || !GetPosition(p_, end_, y) || !GetVarint(p_, end_, &len) ||
        static_cast<uint64_t>(end_ - p_) < len)
      return false;
    x_ += dx;
    *x = x_;
    *line = {p_, len};
    p_ += len;
    return true;
  }

 private:
  const char* p_;
  const char* end_;
  uint64_t x_ = 0;
};

inline Status BadRecord(const std::string& path) {
  return Status::IOError(fmt::format("spill file {} holds a malformed record although its checksums are right: "
                                     "this is a bug in cloudmerge; please report it with the inputs.", path));
}

// Reads a partition file block by block: on_record(const PartRecord&) per record,
// then end_block() (which may fail) after each block.
template <class OnRecord, class EndBlock>
Status ForEachPartRecord(Env* env, const std::string& path, OnRecord&& on_record, EndBlock&& end_block) {
  return ForEachSpillBlock(env, path, [&](std::string_view block, uint32_t) -> Status {
    PartRecords recs(block);
    PartRecord r;
    bool bad = false;
    while (recs.Next(&r, &bad)) on_record(r);
    if (bad) return BadRecord(path);
    return end_block();
  });
}

// One spill file of partition records and what it holds.
struct SpillPart {
  std::string path;
  uint64_t records = 0, raw_bytes = 0;
};


}  // namespace cloudmerge::ooc
