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
#include "cloudmerge/io/env.h"
#include "cloudmerge/io/spill_file.h"

namespace cloudmerge::ooc {

// ---- Record layouts (docs/spill-format.md, "Records") ------------------------
// Partition record: u64 position | u32 key length | u32 text length | key | text
//   position: (unit << 40) | row within the unit — increasing in file order.
//   key: the ID as read (unquoted); text: x's whole row, or y's fields but the
//   ID, encoded for output.
// Output record: u64 x position | u64 y position | u32 line length | line ('\n' included)
constexpr size_t kPartHeader = 16;
constexpr size_t kOutHeader = 20;

inline void PutU32(std::string& s, uint32_t v) { s.append(reinterpret_cast<const char*>(&v), 4); }
inline void PutU64(std::string& s, uint64_t v) { s.append(reinterpret_cast<const char*>(&v), 8); }
inline uint32_t GetU32(const char* p) { uint32_t v; std::memcpy(&v, p, 4); return v; }
inline uint64_t GetU64(const char* p) { uint64_t v; std::memcpy(&v, p, 8); return v; }

inline void AppendPartRecord(std::string& s, uint64_t pos, std::string_view key, std::string_view text) {
  PutU64(s, pos);
  PutU32(s, static_cast<uint32_t>(key.size()));
  PutU32(s, static_cast<uint32_t>(text.size()));
  s.append(key);
  s.append(text);
}

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
    if (end_ - p_ < static_cast<ptrdiff_t>(kPartHeader)) return *bad = true, false;
    r->pos = GetU64(p_);
    uint32_t kl = GetU32(p_ + 8), tl = GetU32(p_ + 12);
    if (static_cast<size_t>(end_ - p_) < kPartHeader + kl + tl) return *bad = true, false;
    r->key = {p_ + kPartHeader, kl};
    r->text = {p_ + kPartHeader + kl, tl};
    p_ += kPartHeader + kl + tl;
    return true;
  }

 private:
  const char* p_;
  const char* end_;
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
