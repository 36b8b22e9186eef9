// CUDA runtime error handling shared by the nvcc and g++ parts of _native_cuda: every runtime
// call is checked and a failure becomes a C++ exception naming the call (the binding maps it to
// RuntimeError), so a bad launch never passes silently.
#pragma once

#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace hashlab::gpu {

struct CudaError : std::runtime_error {
  cudaError_t code;
  CudaError(cudaError_t c, const std::string& what)
      : std::runtime_error(what + ": " + cudaGetErrorString(c)), code(c) {}
};

inline void check_cuda(cudaError_t rc, const char* what) {
  if (rc != cudaSuccess) {
    cudaGetLastError();  // clear a sticky-free error so the next call starts clean
    if (rc == cudaErrorMemoryAllocation) throw std::bad_alloc();
    throw CudaError(rc, what);
  }
}

// After a kernel launch: launch-configuration errors show here, execution errors at the next sync.
inline void check_launch(const char* kernel) { check_cuda(cudaGetLastError(), kernel); }

}  // namespace hashlab::gpu
