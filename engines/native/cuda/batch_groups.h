// Grouping a batch by id on the device (CUB): the dedup/ordering step of every write.
#pragma once

#include <cstdint>

#include "dev_buffer.h"
#include "kernels.h"

namespace hashlab::gpu {

struct GroupedBatch {
  DevBuf positions, sorted_ids, perm, uniq, counts, offsets, rows, fresh, rank, info;
  Groups view;
  int32_t num_groups = 0;  // host copies, valid after group_batch / rank_fresh
  int32_t num_fresh = 0;
};

// Stable radix sort of (id, position) pairs, run-length encoding into groups (first-occurrence
// order is not needed on the device: ids are independent), group offsets, the row of each
// group, and the ranks of the absent ones. Synchronizes once to read the two counts.
void group_batch(const TableView& v, const int64_t* ids, int64_t n, GroupedBatch* b,
                 cudaStream_t s);

// Recompute ranks and num_fresh after the host changed `fresh` (filter admission). Syncs.
void rank_fresh(GroupedBatch* b, cudaStream_t s);

}  // namespace hashlab::gpu
