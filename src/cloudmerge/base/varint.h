// Varints (LEB128: 7 bits a byte, low bits first) for the engine's own record
// formats: the out-of-core spill records (engine/out_of_core/spill_records.h)
// and the cluster path's shuffle blobs (engine/split_tasks.cc). Small numbers
// (lengths of short fields, rows within a scan unit) take one to three bytes
// instead of a fixed four or eight, which on short rows is a quarter of what is
// written, shuffled and read back.
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace cloudmerge {

// Writes v at p (at most kMaxVarintBytes bytes); returns the end.
inline constexpr size_t kMaxVarintBytes = 10;
inline char* EncodeVarint(char* p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>(static_cast<uint8_t>(v) | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}

inline void PutVarint(std::string& out, uint64_t v) {
  char buf[kMaxVarintBytes];
  out.append(buf, static_cast<size_t>(EncodeVarint(buf, v) - buf));
}

// Reads one varint at p (advancing it), never past end; false when the bytes
// end first or the number runs beyond 64 bits (damaged input).
inline bool GetVarint(const char*& p, const char* end, uint64_t* v) {
  uint64_t r = 0;
  for (int shift = 0; shift < 64 && p < end; shift += 7) {
    uint8_t b = static_cast<uint8_t>(*p++);
    r |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (b < 0x80) {
      *v = r;
      return true;
    }
  }
  return false;
}

}  // namespace cloudmerge
