// Stream-ordered device memory for per-call temporaries (cudaMallocAsync: a pool, so a batch's
// buffers cost no device-wide synchronisation). Tables' long-lived arrays use cudaMalloc.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <utility>

#include "cuda_check.h"

namespace hashlab::gpu {

class DevBuf {
 public:
  DevBuf() = default;
  DevBuf(size_t bytes, cudaStream_t s) : s_(s), bytes_(bytes) {
    if (bytes) check_cuda(cudaMallocAsync(&p_, bytes, s), "cudaMallocAsync");
  }
  DevBuf(DevBuf&& o) noexcept { swap(o); }
  DevBuf& operator=(DevBuf&& o) noexcept {
    DevBuf tmp(std::move(o));
    swap(tmp);
    return *this;
  }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  ~DevBuf() {
    if (p_) cudaFreeAsync(p_, s_);
  }

  template <typename T>
  T* as() const { return static_cast<T*>(p_); }
  void* get() const { return p_; }
  size_t bytes() const { return bytes_; }
  // Give up ownership (the caller frees with cudaFreeAsync on the same stream).
  void* release() { return std::exchange(p_, nullptr); }

 private:
  void swap(DevBuf& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(s_, o.s_);
    std::swap(bytes_, o.bytes_);
  }
  void* p_ = nullptr;
  cudaStream_t s_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace hashlab::gpu
