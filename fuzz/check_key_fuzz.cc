// Fuzz harness: CheckKey (pipeline/store/job_store.h), the guard between object
// names from events/uploads and paths in the local store. Property: an
// accepted key never has a ".." segment, never starts with '/', never holds a
// control character or a backslash, and is at most 1024 bytes. Single-threaded.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "cloudmerge/pipeline/store/job_store.h"

namespace {
void Check(bool ok, const char* what, const std::string& key) {
  if (!ok) {
    std::fprintf(stderr, "check_key_fuzz: accepted a key that %s (%zu bytes)\n", what, key.size());
    std::abort();
  }
}

bool HasDotDotSegment(const std::string& key) {
  size_t pos = 0;
  for (;;) {
    size_t next = key.find('/', pos);
    std::string seg = key.substr(pos, next == std::string::npos ? std::string::npos : next - pos);
    if (seg == "..") return true;
    if (next == std::string::npos) return false;
    pos = next + 1;
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string key(reinterpret_cast<const char*>(data), size);
  if (!cloudmerge::CheckKey(key).ok()) return 0;
  Check(!HasDotDotSegment(key), "has a \"..\" segment", key);
  Check(key.empty() || key.front() != '/', "starts with '/'", key);
  Check(key.size() <= 1024, "is longer than 1024 bytes", key);
  for (unsigned char c : key) {
    Check(c >= 0x20 && c != 0x7f, "holds a control character", key);
    Check(c != '\\', "holds a backslash", key);
  }
  return 0;
}
