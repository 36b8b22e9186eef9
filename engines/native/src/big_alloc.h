// Large allocations backed by transparent huge pages where the kernel allows it (madvise mode).
//
// Why: on the VMs we run on a 4 KiB page fault costs several microseconds, so touching a fresh
// gigabyte (table growth, lookup outputs, checkpoint buffers) spends seconds in the kernel, and
// random row access misses the TLB on every id. 2 MiB pages cut both by 512x (numpy does the
// same for its large arrays).
#pragma once

#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

namespace hashlab {

constexpr size_t kHugePage = size_t{2} << 20;

inline void* alloc_big(size_t bytes) {
  if (bytes == 0) bytes = 1;
  void* p = nullptr;
  if (bytes >= kHugePage) {
    if (posix_memalign(&p, kHugePage, bytes) != 0) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
    madvise(p, (bytes + kHugePage - 1) & ~(kHugePage - 1), MADV_HUGEPAGE);
#endif
  } else {
    p = std::malloc(bytes);
    if (!p) throw std::bad_alloc();
  }
  return p;
}

inline void free_big(void* p) { std::free(p); }

struct BigDeleter {
  void operator()(void* p) const { free_big(p); }
};

// std::allocator on alloc_big, for large per-batch temporaries (hashes, row indices, sums).
template <typename T>
struct BigAllocator {
  using value_type = T;
  BigAllocator() = default;
  template <typename U>
  BigAllocator(const BigAllocator<U>&) {}
  T* allocate(size_t n) {
    if (n > SIZE_MAX / sizeof(T)) throw std::bad_alloc();
    return static_cast<T*>(alloc_big(n * sizeof(T)));
  }
  void deallocate(T* p, size_t) { free_big(p); }
  template <typename U>
  bool operator==(const BigAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const BigAllocator<U>&) const { return false; }
};

template <typename T>
using BigVector = std::vector<T, BigAllocator<T>>;

// A growable byte buffer on alloc_big (checkpoint encode/decode buffers).
class ByteBuffer {
 public:
  ByteBuffer() = default;
  ByteBuffer(const ByteBuffer&) = delete;
  ByteBuffer& operator=(const ByteBuffer&) = delete;
  ByteBuffer(ByteBuffer&& o) noexcept : p_(o.p_), size_(o.size_), cap_(o.cap_) {
    o.p_ = nullptr;
    o.size_ = o.cap_ = 0;
  }
  ByteBuffer& operator=(ByteBuffer&& o) noexcept {
    if (this != &o) {
      free_big(p_);
      p_ = o.p_;
      size_ = o.size_;
      cap_ = o.cap_;
      o.p_ = nullptr;
      o.size_ = o.cap_ = 0;
    }
    return *this;
  }
  ~ByteBuffer() { free_big(p_); }
  uint8_t* data() { return p_; }
  const uint8_t* data() const { return p_; }
  size_t size() const { return size_; }
  size_t capacity() const { return cap_; }
  void reserve(size_t cap) {
    if (cap <= cap_) return;
    uint8_t* fresh = static_cast<uint8_t*>(alloc_big(cap));
    if (size_) memcpy(fresh, p_, size_);
    free_big(p_);
    p_ = fresh;
    cap_ = cap;
  }
  void resize(size_t n) {  // grows without zeroing
    if (n > cap_) reserve(n > 2 * cap_ ? n : 2 * cap_);
    size_ = n;
  }

 private:
  uint8_t* p_ = nullptr;
  size_t size_ = 0, cap_ = 0;
};

}  // namespace hashlab
