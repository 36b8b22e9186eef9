// Slot probing (device code). Reads are tile-cooperative: the first W lanes of a tile load W
// consecutive slots (one aligned 64/128-byte window) and vote; inserts are one thread per key.
#pragma once

#include <cooperative_groups.h>

#include "dev_layout.h"

namespace hashlab::gpu {

namespace cg = cooperative_groups;

// Row of `id`, or kEmptyRow. Linear probing from the home slot, scanned in aligned windows; the
// first window ignores slots before home. Ids are never erased, so an empty slot before the
// key proves the key absent. Terminates because the load factor stays <= 0.5.
template <int T>
__device__ __forceinline__ uint32_t find_row(const cg::thread_block_tile<T>& tile, SlotView sv,
                                             int64_t id) {
  constexpr int W = T < 8 ? T : 8;
  const uint64_t home = slot_hash(id) & sv.mask;
  const int lane = static_cast<int>(tile.thread_rank());
  uint64_t base = home & ~static_cast<uint64_t>(W - 1);
  bool first = true;
  for (;;) {
    bool hit = false, empty = false;
    uint32_t row = kEmptyRow;
    if (lane < W) {
      const uint64_t s = base + lane;
      if (!first || s >= home) {
        const Slot sl = sv.slots[s];
        empty = sl.row == kEmptyRow;
        hit = !empty && sl.key == id;
        row = sl.row;
      }
    }
    const unsigned mh = tile.ballot(hit), me = tile.ballot(empty);
    if (mh | me) {
      const int lh = mh ? __ffs(mh) - 1 : 32, le = me ? __ffs(me) - 1 : 32;
      const uint32_t r = tile.shfl(row, lh < 32 ? lh : 0);
      return lh < le ? r : kEmptyRow;
    }
    base = (base + W) & sv.mask;
    first = false;
  }
}

// Insert an id known to be absent and distinct from every other id inserted by this launch:
// claim the first empty slot with a CAS on its row word, then store the key. No key
// comparison is needed, and readers only run in later launches.
__device__ __forceinline__ void insert_slot(SlotView sv, int64_t id, uint32_t row) {
  uint64_t s = slot_hash(id) & sv.mask;
  for (;;) {
    Slot* sl = sv.slots + s;
    if (*reinterpret_cast<volatile uint32_t*>(&sl->row) == kEmptyRow &&
        atomicCAS(&sl->row, kEmptyRow, row) == kEmptyRow) {
      sl->key = id;
      return;
    }
    s = (s + 1) & sv.mask;
  }
}

}  // namespace hashlab::gpu
