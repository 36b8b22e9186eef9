// A caller's batch for a write (assign, assign_add, apply_gradients), copied once and grouped
// by table partition.
//
// Why a copy: the bindings release the GIL, so another Python thread may rewrite the caller's
// arrays while an op runs. Every id and row is read from the caller exactly once, here; the
// op then works on this copy only, so a concurrent rewrite can change what is written but can
// never put an id in the wrong partition or slip a NaN past the check (issue: an id read once
// to hash and again to insert made entries unfindable).
//
// Why grouped: writes are owned by partition (every id's updates run in batch order on one
// thread, so results are bit-identical for any thread count); with positions listed per
// partition, a thread handles whole partitions and reads its rows sequentially.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "big_alloc.h"
#include "thread_pool.h"

namespace hashlab {

// Index k runs over the batch grouped by partition (batch order inside a partition); the op
// works in k order, reading these arrays sequentially.
struct PartitionedBatch {
  int64_t n = 0, width = 0;     // positions; floats per row (0: ids only)
  BigVector<int64_t> ids;       // by k
  BigVector<uint64_t> hashes;   // by k
  BigVector<int64_t> index_of;  // batch position -> k (admission walks the batch in order)
  BigVector<int64_t> order;     // k -> batch position
  std::vector<int64_t> part_start;  // partition p holds k in [part_start[p], part_start[p+1])
  BigVector<float> rows;        // row k (width floats): the caller's row of that position

  float* row(int64_t k) { return rows.data() + k * width; }
};

// Builds `out` from the caller's arrays. hash(id) -> uint64, part(hash) -> [0, parts).
// rows may be null (width ignored). Throws std::invalid_argument naming `rows_name` and the
// first row (by position) that holds a NaN or Inf.
template <typename Hash, typename Part>
void build_batch(ThreadPool& pool, const int64_t* ids, const float* rows, int64_t n,
                 int64_t width, const char* rows_name, int parts, Hash hash, Part part,
                 PartitionedBatch* out) {
  constexpr int64_t kChunk = 16384;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  out->n = n;
  out->width = rows ? width : 0;
  BigVector<int64_t> by_position(static_cast<size_t>(n));  // the caller's ids, copied
  out->ids.resize(static_cast<size_t>(n));
  out->hashes.resize(static_cast<size_t>(n));
  out->index_of.resize(static_cast<size_t>(n));
  out->order.resize(static_cast<size_t>(n));
  out->rows.resize(static_cast<size_t>(n * out->width));
  std::vector<int64_t> counts(static_cast<size_t>(chunks * parts), 0);
  pool.for_chunks(chunks, 1, [&](int64_t c, int64_t, int) {
    const int64_t b = c * kChunk, e = b + kChunk < n ? b + kChunk : n;
    int64_t* cnt = counts.data() + c * parts;
    for (int64_t i = b; i < e; ++i) {
      const int64_t id = ids[i];  // the one read of the caller's id
      by_position[i] = id;
      ++cnt[part(hash(id))];
    }
  });
  // Exclusive prefix over (partition, chunk): chunk c's first slot in each partition.
  out->part_start.assign(static_cast<size_t>(parts) + 1, 0);
  int64_t at = 0;
  for (int p = 0; p < parts; ++p) {
    out->part_start[p] = at;
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t k = counts[c * parts + p];
      counts[c * parts + p] = at;
      at += k;
    }
  }
  out->part_start[parts] = at;
  std::vector<int64_t> bad(static_cast<size_t>(chunks), -1);
  const int64_t w = out->width;
  pool.for_chunks(chunks, 1, [&](int64_t c, int64_t, int) {
    const int64_t b = c * kChunk, e = b + kChunk < n ? b + kChunk : n;
    int64_t* next = counts.data() + c * parts;
    for (int64_t i = b; i < e; ++i) {
      const int64_t id = by_position[i];
      const uint64_t h = hash(id);
      const int64_t k = next[part(h)]++;
      out->ids[k] = id;
      out->hashes[k] = h;
      out->index_of[i] = k;
      out->order[k] = i;
      if (!w) continue;
      float* dst = out->rows.data() + k * w;
      memcpy(dst, rows + i * w, static_cast<size_t>(w) * 4);  // the one read of the row
      uint32_t nonfinite = 0;  // exponent all ones = NaN or Inf (checked on the copy)
      for (int64_t j = 0; j < w; ++j) {
        uint32_t bits;
        memcpy(&bits, dst + j, 4);
        nonfinite |= static_cast<uint32_t>((bits & 0x7F800000u) == 0x7F800000u);
      }
      if (nonfinite && bad[c] < 0) bad[c] = i;
    }
  });
  for (int64_t c = 0; c < chunks; ++c)
    if (bad[c] >= 0)
      throw std::invalid_argument(std::string(rows_name) + " contains a non-finite value (NaN " +
                                  "or Inf) at row " + std::to_string(bad[c]) +
                                  "; values and gradients must be finite");
}

}  // namespace hashlab
