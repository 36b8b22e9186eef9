// Device-side layout of a GPU table, shared by kernels (nvcc) and host code (g++/nvcc).
//
// Slots: open addressing with linear probing over 16-byte {key, row} slots; a slot is empty iff
// row == kEmptyRow, so every int64 id is storable (no key sentinel). Entries are never erased
// (TTL filters at save), so there are no tombstones, and rows are dense 0..size-1.
//
// Rows live in fixed pages of kPageRows rows, reached through a device page table, so the table
// grows without copying rows (a copy would need 2x the memory of a 70 GB table). Inside a page
// the fields are stored as separate arrays (embedding, optimizer state, timestamp, id): lookup
// reads only embeddings, each 16-byte aligned with the width rounded up to 4 floats.
#pragma once

#include <cstdint>

#include "common.h"
#include "compress_math.h"
#include "init_math.h"
#include "opt_math.h"

namespace hashlab::gpu {

constexpr uint32_t kEmptyRow = 0xFFFFFFFFu;
constexpr int kPageShift = 10;
constexpr int64_t kPageRows = int64_t{1} << kPageShift;

struct alignas(16) Slot {
  int64_t key;
  uint32_t row;
  uint32_t pad;
};

// Slot placement hash: independent of the checkpoint shard (mix64(id) % n).
HASHLAB_HD uint64_t slot_hash(int64_t id) {
  return mix64(static_cast<uint64_t>(id) ^ 0x5851F42D4C957F2DULL);
}

HASHLAB_HD int64_t round4(int64_t x) { return (x + 3) & ~int64_t{3}; }

struct RowStore {
  float* const* pages = nullptr;  // device array: page -> base
  int64_t emb_stride = 0;         // De = round4(D)
  int64_t state_stride = 0;       // Ws = round4(W)

  HASHLAB_HD static int64_t page_floats(int64_t de, int64_t ws) {
    return kPageRows * (de + ws + 3);  // + ts (1 word) + id (2 words)
  }
  HASHLAB_HD float* page(uint32_t r) const { return pages[r >> kPageShift]; }
  HASHLAB_HD static int64_t in_page(uint32_t r) { return r & (kPageRows - 1); }
  HASHLAB_HD float* emb(uint32_t r) const { return page(r) + in_page(r) * emb_stride; }
  HASHLAB_HD float* state(uint32_t r) const {
    return page(r) + kPageRows * emb_stride + in_page(r) * state_stride;
  }
  HASHLAB_HD uint32_t* ts(uint32_t r) const {
    return reinterpret_cast<uint32_t*>(page(r) + kPageRows * (emb_stride + state_stride)) +
           in_page(r);
  }
  HASHLAB_HD int64_t* id(uint32_t r) const {  // 8-byte aligned: kPageRows is even
    return reinterpret_cast<int64_t*>(page(r) + kPageRows * (emb_stride + state_stride + 1)) +
           in_page(r);
  }
};

// One segment as the kernels see it. `arrays`: per-element state arrays of a chunkable
// optimizer (adagrad 1, ftrl 2, adam 2, amsgrad 3, ...); `powers`: adam/amsgrad's two
// beta-power words after them; `whole`: the optimizer couples the elements of the segment
// (group_adagrad, batch_softmax) and runs on one thread over the whole segment.
struct DevSegment {
  int32_t dim = 0, offset = 0, state_offset = 0, state_words = 0;
  int32_t arrays = 0, powers = 0, whole = 0, pad = 0;
  float scale = 1.f;  // one_bit scale for this call (host-side update_scales)
  float lr = 0.f;     // this call's learning rate
  InitParams init;
  OptParams opt;
  CompParams comp;
};

// A unit of one row's optimizer work: up to kChunk elements of a chunkable segment, or a whole
// segment. Chunks start at multiples of kChunk inside their segment, which keeps Monolith's
// Adagrad quirk boundary (8 * floor(D/8)) on a chunk boundary.
constexpr int kChunk = 8;
struct WorkItem {
  int32_t seg, start, len, whole;
};

struct SlotView {
  Slot* slots = nullptr;
  uint64_t mask = 0;  // capacity - 1 (capacity: a power of two)
};

// Everything a kernel needs about the table, passed by value.
struct TableView {
  SlotView slots;
  RowStore rows;
  const DevSegment* segs = nullptr;
  const WorkItem* items = nullptr;
  int32_t num_segs = 0, num_items = 0;
  int32_t dim = 0;
  int32_t max_whole_dim = 0;  // widest whole-segment optimizer (scratch per group)
  bool has_retriever = false, has_one_bit = false, quirks = false;
  uint64_t seed_mix = 0;
};

}  // namespace hashlab::gpu
