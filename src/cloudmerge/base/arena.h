// Arena: stable storage for the few bytes that cannot point into an input
// (re-encoded rows of files with quotes). Copies never move once made.
// Thread safety: one thread per Arena.
#pragma once

#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

namespace cloudmerge {

class Arena {
 public:
  std::string_view Copy(std::string_view s) {
    if (s.size() > left_) {
      size_t block = s.size() > kBlock / 4 ? s.size() : kBlock;
      blocks_.emplace_back(new char[block]);
      cur_ = blocks_.back().get();
      left_ = block;
    }
    char* dst = cur_;
    if (!s.empty()) std::memcpy(dst, s.data(), s.size());
    cur_ += s.size();
    left_ -= s.size();
    return {dst, s.size()};
  }

 private:
  static constexpr size_t kBlock = 1 << 20;
  std::vector<std::unique_ptr<char[]>> blocks_;
  char* cur_ = nullptr;
  size_t left_ = 0;
};

}  // namespace cloudmerge
