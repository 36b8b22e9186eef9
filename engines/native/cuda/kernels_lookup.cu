// Reads: lookup (copy-out, retrievers applied) and row finding for ids and for groups.
#include <type_traits>

#include "kernels.h"
#include "probe.cuh"
#include "tile_dispatch.cuh"

namespace hashlab::gpu {
namespace {

// What lookup returns for element c of a stored row (core §4.4): fixed_r8 fake-quantised,
// one_bit amplitude * tanh(scale * w), otherwise the raw value.
__device__ float retrieve_elem(const TableView& v, int c, float x) {
  for (int k = 0; k < v.num_segs; ++k) {
    const DevSegment& s = v.segs[k];
    if (c >= s.offset + s.dim) continue;
    if (s.comp.kind == CompKind::kFixedR8) return fake_quantize(x, s.comp.r);
    if (s.comp.kind == CompKind::kOneBit) return hashnet_forward(x, s.scale, s.comp.amplitude);
    return x;
  }
  return x;
}

template <int T>
__global__ void __launch_bounds__(kBlockThreads) lookup_kernel(TableView v, const int64_t* ids,
                                                               int64_t n, float* out,
                                                               int64_t ld) {
  const auto tile = cg::tiled_partition<T>(cg::this_thread_block());
  const int64_t i = tile_index<T>();
  if (i >= n) return;  // uniform across the tile
  const uint32_t r = find_row<T>(tile, v.slots, ids[i]);
  const int lane = static_cast<int>(tile.thread_rank());
  const int D = v.dim;
  float* o = out + i * ld;
  if (r == kEmptyRow) {
    for (int c = lane; c < D; c += T) o[c] = 0.f;
    return;
  }
  const float* w = v.rows.emb(r);
  const bool vec = (D & 3) == 0 && (reinterpret_cast<uintptr_t>(o) & 15) == 0;
  if (vec && !v.has_retriever) {
    const float4* src = reinterpret_cast<const float4*>(w);
    float4* dst = reinterpret_cast<float4*>(o);
    for (int c = lane; c < D / 4; c += T) dst[c] = src[c];
  } else if (!v.has_retriever) {
    for (int c = lane; c < D; c += T) o[c] = w[c];
  } else {
    for (int c = lane; c < D; c += T) o[c] = retrieve_elem(v, c, w[c]);
  }
}

template <int T>
__global__ void __launch_bounds__(kBlockThreads) find_rows_kernel(TableView v,
                                                                  const int64_t* ids, int64_t n,
                                                                  uint32_t* rows) {
  const auto tile = cg::tiled_partition<T>(cg::this_thread_block());
  const int64_t i = tile_index<T>();
  if (i >= n) return;
  const uint32_t r = find_row<T>(tile, v.slots, ids[i]);
  if (tile.thread_rank() == 0) rows[i] = r;
}

template <int T>
__global__ void __launch_bounds__(kBlockThreads) find_groups_kernel(TableView v, Groups g) {
  const auto tile = cg::tiled_partition<T>(cg::this_thread_block());
  const int64_t i = tile_index<T>();
  if (i >= g.capacity) return;
  if (i >= *g.num) {
    if (tile.thread_rank() == 0) g.fresh[i] = 0;
    return;
  }
  const uint32_t r = find_row<T>(tile, v.slots, g.uniq[i]);
  if (tile.thread_rank() == 0) {
    g.rows[i] = r;
    g.fresh[i] = r == kEmptyRow ? 1 : 0;
  }
}

}  // namespace

void launch_lookup(const TableView& v, const int64_t* ids, int64_t n, float* out, int64_t ld,
                   cudaStream_t s) {
  if (n == 0) return;
  with_tile(tile_for_width(v.dim), [&](auto t) {
    constexpr int T = decltype(t)::value;
    lookup_kernel<T><<<blocks_for(n, T), kBlockThreads, 0, s>>>(v, ids, n, out, ld);
  });
  check_launch("lookup_kernel");
}

void launch_find_rows(const TableView& v, const int64_t* ids, int64_t n, uint32_t* rows,
                      cudaStream_t s) {
  if (n == 0) return;
  find_rows_kernel<8><<<blocks_for(n, 8), kBlockThreads, 0, s>>>(v, ids, n, rows);
  check_launch("find_rows_kernel");
}

void launch_find_groups(const TableView& v, const Groups& g, cudaStream_t s) {
  if (g.capacity == 0) return;
  find_groups_kernel<8><<<blocks_for(g.capacity, 8), kBlockThreads, 0, s>>>(v, g);
  check_launch("find_groups_kernel");
}

}  // namespace hashlab::gpu
