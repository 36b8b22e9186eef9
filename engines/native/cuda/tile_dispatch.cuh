// Launch helpers: a kernel templated on its tile width T (threads cooperating on one row) is
// launched with T picked from the row width, so a dim-32 row is one 128-byte transaction of 8
// lanes x float4 and a dim-64 row 16 lanes x float4.
#pragma once

#include <cstdint>

#include "cuda_check.h"
#include "dev_layout.h"

namespace hashlab::gpu {

constexpr int kBlockThreads = 256;

// Lanes per row for rows of `width` floats handled as float4: 4..32, a power of two.
inline int tile_for_width(int64_t width) {
  int t = 4;
  while (t < 32 && t * 4 < width) t *= 2;
  return t;
}

inline unsigned blocks_for(int64_t items, int tile) {
  const int64_t per_block = kBlockThreads / tile;
  return static_cast<unsigned>((items + per_block - 1) / per_block);
}

// Calls f(std::integral_constant<int, T>{}) for T = t.
template <typename F>
void with_tile(int t, F&& f) {
  switch (t) {
    case 4: f(std::integral_constant<int, 4>{}); break;
    case 8: f(std::integral_constant<int, 8>{}); break;
    case 16: f(std::integral_constant<int, 16>{}); break;
    default: f(std::integral_constant<int, 32>{}); break;
  }
}

// Index of the row (batch item, group) this tile works on.
template <int T>
__device__ __forceinline__ int64_t tile_index() {
  return (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / T;
}

}  // namespace hashlab::gpu
