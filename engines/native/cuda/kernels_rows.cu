// Row lifecycle: insert (slots + ids), initialise, rehash on growth, restore, export, and the
// non-finite check for device inputs.
#include <type_traits>

#include "kernels.h"
#include "probe.cuh"
#include "tile_dispatch.cuh"

namespace hashlab::gpu {
namespace {

// Element c of a fresh entry: init_segment's value, evaluated per element so a tile's lanes
// share the row (random_uniform_at depends only on (seed, id, c), semantics §2).
__device__ float init_elem(const TableView& v, int c, uint64_t key) {
  for (int k = 0; k < v.num_segs; ++k) {
    const DevSegment& s = v.segs[k];
    if (c >= s.offset + s.dim) continue;
    switch (s.init.kind) {
      case InitKind::kZeros: return 0.f;
      case InitKind::kOnes: return 1.f;
      case InitKind::kConstants: return s.init.constant;
      case InitKind::kRandomUniform:
        return random_uniform_at(key, static_cast<uint64_t>(c), s.init.minval, s.init.maxval);
    }
  }
  return 0.f;
}

// Init-on-insert: initialisers, optimizer Init (one lane per segment), ts = 0, the id.
template <int T>
__device__ void init_row(const cg::thread_block_tile<T>& tile, const TableView& v, uint32_t r,
                         int64_t id) {
  const int lane = static_cast<int>(tile.thread_rank());
  float* w = v.rows.emb(r);
  float* st = v.rows.state(r);
  const uint64_t key = init_key(id, v.seed_mix);
  for (int c = lane; c < v.dim; c += T) w[c] = init_elem(v, c, key);
  for (int k = lane; k < v.num_segs; k += T) {
    const DevSegment& s = v.segs[k];
    opt_init(s.opt, st + s.state_offset, s.dim);
  }
  if (lane == 0) {
    *v.rows.ts(r) = 0;
    *v.rows.id(r) = id;
  }
}

__global__ void insert_groups_kernel(TableView v, Groups g, const int32_t* rank,
                                     uint32_t first_row) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= *g.num || !g.fresh[i]) return;
  const uint32_t r = first_row + static_cast<uint32_t>(rank[i]);
  insert_slot(v.slots, g.uniq[i], r);
  g.rows[i] = r;
}

template <int T>
__global__ void __launch_bounds__(kBlockThreads) init_groups_kernel(TableView v, Groups g) {
  const auto tile = cg::tiled_partition<T>(cg::this_thread_block());
  const int64_t i = tile_index<T>();
  if (i >= g.capacity || i >= *g.num || !g.fresh[i]) return;
  init_row<T>(tile, v, g.rows[i], g.uniq[i]);
}

__global__ void rehash_kernel(TableView v, int64_t n) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= n) return;
  insert_slot(v.slots, *v.rows.id(static_cast<uint32_t>(r)), static_cast<uint32_t>(r));
}

template <int T>
__global__ void __launch_bounds__(kBlockThreads) load_rows_kernel(
    TableView v, const int64_t* ids, const int64_t* ts, const int32_t* num_count,
    const float* data, int64_t n) {
  const auto tile = cg::tiled_partition<T>(cg::this_thread_block());
  const int64_t i = tile_index<T>();
  if (i >= n) return;
  const uint32_t r = static_cast<uint32_t>(i);
  const int lane = static_cast<int>(tile.thread_rank());
  if (lane == 0) insert_slot(v.slots, ids[i], r);
  init_row<T>(tile, v, r, ids[i]);
  tile.sync();  // init_row's writes before the restored values replace them
  int64_t W = 0;
  for (int k = 0; k < v.num_segs; ++k) W += v.segs[k].state_words;
  const float* src = data + i * (v.dim + W);
  float* w = v.rows.emb(r);
  float* st = v.rows.state(r);
  for (int c = lane; c < num_count[i]; c += T) w[c] = src[c];
  for (int64_t c = lane; c < W; c += T) st[c] = src[v.dim + c];
  if (lane == 0) *v.rows.ts(r) = static_cast<uint32_t>(static_cast<uint64_t>(ts[i]));
}

// Host record layout (entry_dump.h's row): [emb D][state W][ts], stride D + W + 1.
template <int T>
__device__ void export_row(const cg::thread_block_tile<T>& tile, const TableView& v,
                           uint32_t r, float* rec, int64_t W) {
  const int lane = static_cast<int>(tile.thread_rank());
  const float* w = v.rows.emb(r);
  const float* st = v.rows.state(r);
  for (int c = lane; c < v.dim; c += T) rec[c] = w[c];
  for (int64_t c = lane; c < W; c += T) rec[v.dim + c] = st[c];
  if (lane == 0) {
    const uint32_t ts = *v.rows.ts(r);
    memcpy(rec + v.dim + W, &ts, 4);
  }
}

__device__ int64_t state_words_of(const TableView& v) {
  int64_t W = 0;
  for (int k = 0; k < v.num_segs; ++k) W += v.segs[k].state_words;
  return W;
}

template <int T>
__global__ void __launch_bounds__(kBlockThreads) export_rows_kernel(
    TableView v, const uint32_t* rows, int64_t n, float* out, int64_t* ids_out) {
  const auto tile = cg::tiled_partition<T>(cg::this_thread_block());
  const int64_t i = tile_index<T>();
  if (i >= n) return;
  const uint32_t r = rows ? rows[i] : static_cast<uint32_t>(i);
  if (r == kEmptyRow) return;
  const int64_t W = state_words_of(v);
  export_row<T>(tile, v, r, out + i * (v.dim + W + 1), W);
  if (ids_out && tile.thread_rank() == 0) ids_out[i] = *v.rows.id(r);
}

__global__ void nonfinite_kernel(const float* x, int64_t total, int64_t width,
                                 unsigned long long* first_bad) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += stride) {
    const float f = x[e];
    if (!isfinite(f)) atomicMin(first_bad, static_cast<unsigned long long>(e / width));
  }
}

unsigned blocks(int64_t n) { return static_cast<unsigned>((n + kBlockThreads - 1) / kBlockThreads); }

}  // namespace

void launch_insert_groups(const TableView& v, const Groups& g, const int32_t* rank,
                          uint32_t first_row, cudaStream_t s) {
  if (g.capacity == 0) return;
  insert_groups_kernel<<<blocks(g.capacity), kBlockThreads, 0, s>>>(v, g, rank, first_row);
  check_launch("insert_groups_kernel");
}

void launch_init_groups(const TableView& v, const Groups& g, cudaStream_t s) {
  if (g.capacity == 0) return;
  with_tile(tile_for_width(v.dim), [&](auto t) {
    constexpr int T = decltype(t)::value;
    init_groups_kernel<T><<<blocks_for(g.capacity, T), kBlockThreads, 0, s>>>(v, g);
  });
  check_launch("init_groups_kernel");
}

void launch_rehash(const TableView& v, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  rehash_kernel<<<blocks(n), kBlockThreads, 0, s>>>(v, n);
  check_launch("rehash_kernel");
}

void launch_load_rows(const TableView& v, const int64_t* ids, const int64_t* ts,
                      const int32_t* num_count, const float* data, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  with_tile(tile_for_width(v.dim), [&](auto t) {
    constexpr int T = decltype(t)::value;
    load_rows_kernel<T><<<blocks_for(n, T), kBlockThreads, 0, s>>>(v, ids, ts, num_count, data,
                                                                    n);
  });
  check_launch("load_rows_kernel");
}

void launch_export_rows(const TableView& v, const uint32_t* rows, int64_t n, float* out,
                        int64_t* ids_out, cudaStream_t s) {
  if (n == 0) return;
  with_tile(tile_for_width(v.dim), [&](auto t) {
    constexpr int T = decltype(t)::value;
    export_rows_kernel<T><<<blocks_for(n, T), kBlockThreads, 0, s>>>(v, rows, n, out, ids_out);
  });
  check_launch("export_rows_kernel");
}

void launch_export_all(const TableView& v, int64_t n, float* out, int64_t* ids_out,
                       cudaStream_t s) {
  launch_export_rows(v, nullptr, n, out, ids_out, s);
}

void launch_find_nonfinite(const float* x, int64_t rows, int64_t width,
                           unsigned long long* first_bad, cudaStream_t s) {
  const int64_t total = rows * width;
  if (total == 0) return;
  const unsigned b = static_cast<unsigned>(std::min<int64_t>(blocks(total), 4096));
  nonfinite_kernel<<<b, kBlockThreads, 0, s>>>(x, total, width, first_bad);
  check_launch("nonfinite_kernel");
}

}  // namespace hashlab::gpu
