// BigArray<T>: a large, fixed-size array of trivially copyable T backed by an
// anonymous mapping with transparent huge pages requested. The join's hash
// tables and row arrays are hundreds of MiB and accessed at random; huge pages
// cut TLB misses and page faults, and the kernel hands the memory out zeroed,
// so no initialisation pass is needed (all-zero bytes must be a valid T).
// Thread safety: distinct elements may be written by distinct threads;
// PrefaultForWrite races with nothing but itself on another array.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace cloudmerge {

template <class T>
class BigArray {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  static constexpr size_t kPageBytes = 4096;  // the smallest page: every one is written

  BigArray() = default;
  explicit BigArray(size_t n) : size_(n) {
    if (n == 0) return;
    bytes_ = n * sizeof(T);
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    madvise(p, bytes_, MADV_HUGEPAGE);
    data_ = static_cast<T*>(p);
  }
  BigArray(BigArray&& o) noexcept { *this = std::move(o); }
  BigArray& operator=(BigArray&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }
  BigArray(const BigArray&) = delete;
  BigArray& operator=(const BigArray&) = delete;
  ~BigArray() {
    if (data_) munmap(data_, bytes_);
  }

  // Faults every page in by writing a zero to it (contents unchanged: all zero).
  // Memory whose first touch is a read (a hash table's inserts look before they
  // write) is mapped to the shared zero page, then copied on the first write: a
  // second fault, and with huge pages a TLB shootdown across cores each time.
  // Written first, a page faults once. Call it from the thread that will use
  // the array (the pages are zeroed by that thread's core).
  void PrefaultForWrite() {
    volatile char* p = reinterpret_cast<volatile char*>(data_);
    for (size_t i = 0; i < bytes_; i += kPageBytes) p[i] = 0;
  }
  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }

 private:
  T* data_ = nullptr;
  size_t size_ = 0;
  size_t bytes_ = 0;
};

}  // namespace cloudmerge
