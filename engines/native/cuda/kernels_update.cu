// Writes: assign / assign_add and apply_gradients, one tile per group of a grouped batch.
//
// Steps of one id keep batch order and different ids are independent (semantics §3), so a tile
// owns one id and walks its occurrences in order, with the row in registers: no-dedup = one step
// per kept occurrence, dedup = one step on the group's gradient summed in occurrence order.
// The optimizer math is opt_math.h's, called on chunks of kChunk elements (see run_chunk).
#include <type_traits>

#include "kernels.h"
#include "probe.cuh"
#include "tile_dispatch.cuh"

namespace hashlab::gpu {
namespace {

constexpr int kMaxLocalState = 3 * kChunk + 2;  // amsgrad: m, v, vhat + two beta powers

// n floats (n <= kChunk) from global memory; two float4 loads when a full chunk is aligned.
template <int N>
__device__ __forceinline__ void load_chunk(float* dst, const float* src, int n) {
  if (N == kChunk && (reinterpret_cast<uintptr_t>(src) & 15) == 0) {
    const float4 a = reinterpret_cast<const float4*>(src)[0];
    const float4 b = reinterpret_cast<const float4*>(src)[1];
    dst[0] = a.x; dst[1] = a.y; dst[2] = a.z; dst[3] = a.w;
    dst[4] = b.x; dst[5] = b.y; dst[6] = b.z; dst[7] = b.w;
    return;
  }
#pragma unroll
  for (int j = 0; j < (N ? N : kChunk); ++j)
    if (N || j < n) dst[j] = src[j];
}

template <int N>
__device__ __forceinline__ void store_chunk(float* dst, const float* src, int n) {
  if (N == kChunk && (reinterpret_cast<uintptr_t>(dst) & 15) == 0) {
    reinterpret_cast<float4*>(dst)[0] = make_float4(src[0], src[1], src[2], src[3]);
    reinterpret_cast<float4*>(dst)[1] = make_float4(src[4], src[5], src[6], src[7]);
    return;
  }
#pragma unroll
  for (int j = 0; j < (N ? N : kChunk); ++j)
    if (N || j < n) dst[j] = src[j];
}

struct GroupRef {
  int32_t off, cnt;
};

// One chunk of a chunkable segment: the chunk's weights and state words are copied into a
// local array laid out as the segment's state with d = len (array a at [a*len, (a+1)*len),
// then the beta powers), so opt_step sees exactly the layout it expects. Elements are
// independent in these optimizers, so a chunk computes the same bits as the whole segment.
// The beta powers are only read here; the tile's lane 0 advances them after the sync.
// N = kChunk for full chunks (compile-time trip counts keep the arrays in registers), 0 else.
template <int N>
__device__ __forceinline__ void run_chunk(const TableView& v, const DevSegment& s,
                                          const WorkItem& it, float* w_row, float* st_row,
                                          const Groups& g, GroupRef gr, const float* grads,
                                          const uint8_t* keep, bool dedup, int64_t gstep) {
  const int len = N ? N : it.len;
  float w[kChunk], gv[kChunk], st[kMaxLocalState];
  float* wp = w_row + s.offset + it.start;
  float* sp = st_row + s.state_offset;
  // Loops over the (at most 3) state arrays are unrolled with constant indices so that, for
  // full chunks, `st` stays in registers.
  load_chunk<N>(w, wp, len);
#pragma unroll
  for (int a = 0; a < 3; ++a)
    if (a < s.arrays) load_chunk<N>(st + a * len, sp + a * s.dim + it.start, len);
  if (s.powers) {
    const float* pw = sp + s.arrays * s.dim;
    if (s.arrays == 2) {
      st[2 * len] = pw[0];
      st[2 * len + 1] = pw[1];
    } else {
      st[3 * len] = pw[0];
      st[3 * len + 1] = pw[1];
    }
  }
  const int64_t D = v.dim;
  const int64_t col = s.offset + it.start;
  auto step = [&]() {
    if (s.comp.kind == CompKind::kOneBit) {
#pragma unroll
      for (int j = 0; j < (N ? N : kChunk); ++j)
        if (N || j < len) gv[j] = hashnet_backward(w[j], gv[j], s.scale, s.comp.amplitude);
    }
    opt_step(s.opt, w, gv, st, len, s.lr, gstep, v.quirks, nullptr);
  };
  if (dedup) {  // the group's gradient: a copy of the first row, then += in occurrence order
    load_chunk<N>(gv, grads + g.perm[gr.off] * D + col, len);
    for (int k = 1; k < gr.cnt; ++k) {
      float x[kChunk];
      load_chunk<N>(x, grads + g.perm[gr.off + k] * D + col, len);
#pragma unroll
      for (int j = 0; j < (N ? N : kChunk); ++j)
        if (N || j < len) gv[j] = gv[j] + x[j];
    }
    step();
  } else {
    for (int k = 0; k < gr.cnt; ++k) {
      const int32_t pos = g.perm[gr.off + k];
      if (keep && !keep[pos]) continue;
      load_chunk<N>(gv, grads + pos * D + col, len);
      step();
    }
  }
  store_chunk<N>(wp, w, len);
#pragma unroll
  for (int a = 0; a < 3; ++a)
    if (a < s.arrays) store_chunk<N>(sp + a * s.dim + it.start, st + a * len, len);
}

// A segment whose optimizer couples its elements (group_adagrad, batch_softmax): one lane, the
// header's function on the row in place; the gradient is staged in `scratch` (2 * max dim).
__device__ void run_whole(const TableView& v, const DevSegment& s, float* w_row, float* st_row,
                          const Groups& g, GroupRef gr, const float* grads, const uint8_t* keep,
                          bool dedup, int64_t gstep, float* scratch) {
  float* gb = scratch;
  float* work = scratch + v.max_whole_dim;
  float* w = w_row + s.offset;
  float* st = st_row + s.state_offset;
  const int64_t D = v.dim, d = s.dim;
  auto step = [&]() {
    if (s.comp.kind == CompKind::kOneBit)
      for (int64_t j = 0; j < d; ++j) gb[j] = hashnet_backward(w[j], gb[j], s.scale,
                                                               s.comp.amplitude);
    opt_step(s.opt, w, gb, st, d, s.lr, gstep, v.quirks, work);
  };
  if (dedup) {
    const float* g0 = grads + g.perm[gr.off] * D + s.offset;
    for (int64_t j = 0; j < d; ++j) gb[j] = g0[j];
    for (int k = 1; k < gr.cnt; ++k) {
      const float* gk = grads + g.perm[gr.off + k] * D + s.offset;
      for (int64_t j = 0; j < d; ++j) gb[j] = gb[j] + gk[j];
    }
    step();
  } else {
    for (int k = 0; k < gr.cnt; ++k) {
      const int32_t pos = g.perm[gr.off + k];
      if (keep && !keep[pos]) continue;
      const float* gk = grads + pos * D + s.offset;
      for (int64_t j = 0; j < d; ++j) gb[j] = gk[j];
      step();
    }
  }
}

// T (lanes per group, a power of two <= 32) is a run-time value: one instantiation keeps
// nvcc's time down, and the only collective needed is a sync of the T lanes.
__global__ void __launch_bounds__(kBlockThreads) apply_groups_kernel(
    TableView v, Groups g, const float* grads, const uint8_t* keep, bool dedup, int64_t gstep,
    uint32_t ts, float* scratch, int T) {
  const int64_t gi = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / T;
  const int lane = static_cast<int>(threadIdx.x) & (T - 1);
  const unsigned group_mask =
      (T == 32 ? 0xFFFFFFFFu : ((1u << T) - 1)) << ((threadIdx.x & 31) & ~(T - 1));
  if (gi >= g.capacity || gi >= *g.num) return;
  const uint32_t r = g.rows[gi];
  if (r == kEmptyRow) return;  // absent and not admitted by the filter
  const GroupRef gr{g.offsets[gi], g.counts[gi]};
  float* w_row = v.rows.emb(r);
  float* st_row = v.rows.state(r);
  for (int i = lane; i < v.num_items; i += T) {
    const WorkItem it = v.items[i];
    const DevSegment& s = v.segs[it.seg];
    if (it.whole) {
      float* sc = scratch + (gi * v.num_items + i) * 2 * static_cast<int64_t>(v.max_whole_dim);
      run_whole(v, s, w_row, st_row, g, gr, grads, keep, dedup, gstep, sc);
    } else if (it.len == kChunk) {
      run_chunk<kChunk>(v, s, it, w_row, st_row, g, gr, grads, keep, dedup, gstep);
    } else {
      run_chunk<0>(v, s, it, w_row, st_row, g, gr, grads, keep, dedup, gstep);
    }
  }
  __syncwarp(group_mask);  // every chunk has read the beta powers before lane 0 advances them
  if (lane != 0) return;
  int steps = 1;
  if (!dedup) {
    steps = 0;
    for (int k = 0; k < gr.cnt; ++k) steps += !keep || keep[g.perm[gr.off + k]];
  }
  for (int k = 0; k < v.num_segs; ++k) {
    const DevSegment& s = v.segs[k];
    if (!s.powers) continue;
    float* pw = st_row + s.state_offset + s.arrays * s.dim;
    for (int t = 0; t < steps; ++t) {  // adam_step's pw[0] *= b1; pw[1] *= b2, once per step
      pw[0] = pw[0] * s.opt.beta1;
      pw[1] = pw[1] * s.opt.beta2;
    }
  }
  if (steps) *v.rows.ts(r) = ts;
}

// assign: the last kept occurrence's value; assign_add: row += value per kept occurrence, in
// order. Element-parallel (lanes over columns), occurrences sequential.
template <int T>
__global__ void __launch_bounds__(kBlockThreads) write_groups_kernel(
    TableView v, Groups g, const float* values, const uint8_t* keep, bool add, uint32_t ts) {
  const auto tile = cg::tiled_partition<T>(cg::this_thread_block());
  const int64_t gi = tile_index<T>();
  if (gi >= g.capacity || gi >= *g.num) return;
  const uint32_t r = g.rows[gi];
  if (r == kEmptyRow) return;
  const int32_t off = g.offsets[gi], cnt = g.counts[gi];
  float* w = v.rows.emb(r);
  const int64_t D = v.dim;
  const int lane = static_cast<int>(tile.thread_rank());
  for (int64_t c = lane; c < D; c += T) {
    float acc = w[c];
    for (int k = 0; k < cnt; ++k) {
      const int32_t pos = g.perm[off + k];
      if (keep && !keep[pos]) continue;
      const float x = values[pos * D + c];
      acc = add ? acc + x : x;
    }
    w[c] = acc;
  }
  if (lane == 0) *v.rows.ts(r) = ts;  // a present row had at least one kept occurrence
}

int tile_for_items(int items) {
  int t = 4;
  while (t < 32 && t < items) t *= 2;
  return t;
}

}  // namespace

void launch_write_groups(const TableView& v, const Groups& g, const float* values,
                         const uint8_t* keep_pos, bool add, uint32_t ts, cudaStream_t s) {
  if (g.capacity == 0) return;
  with_tile(tile_for_width(v.dim), [&](auto t) {
    constexpr int T = decltype(t)::value;
    write_groups_kernel<T><<<blocks_for(g.capacity, T), kBlockThreads, 0, s>>>(
        v, g, values, keep_pos, add, ts);
  });
  check_launch("write_groups_kernel");
}

void launch_apply_groups(const TableView& v, const Groups& g, const float* grads,
                         const uint8_t* keep_pos, bool dedup, int64_t global_step, uint32_t ts,
                         float* scratch, cudaStream_t s) {
  if (g.capacity == 0) return;
  const int T = tile_for_items(v.num_items);
  apply_groups_kernel<<<blocks_for(g.capacity, T), kBlockThreads, 0, s>>>(
      v, g, grads, keep_pos, dedup, global_step, ts, scratch, T);
  check_launch("apply_groups_kernel");
}

}  // namespace hashlab::gpu
