// Host-side launchers of the device kernels (one .cu file per job). All launches go to `stream`
// and are checked with check_launch; none of them synchronizes.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "dev_layout.h"

namespace hashlab::gpu {

// A batch grouped by id (batch_groups.cu). Arrays hold up to n entries; the true group count is
// the device scalar *num. perm lists positions grouped by id, in batch order inside a group.
struct Groups {
  const int32_t* num = nullptr;
  const int64_t* uniq = nullptr;     // id of group g
  const int32_t* offsets = nullptr;  // first index of group g in perm
  const int32_t* counts = nullptr;   // occurrences of group g
  const int32_t* perm = nullptr;     // positions
  uint32_t* rows = nullptr;          // row of group g; kEmptyRow: absent (or not admitted)
  int32_t* fresh = nullptr;          // 1: group g is inserted by this call (int32: scanned)
  int64_t capacity = 0;              // n
};

// ---- kernels_lookup.cu ----
void launch_lookup(const TableView& v, const int64_t* ids, int64_t n, float* out, int64_t ld,
                   cudaStream_t s);
// rows[i] = row of ids[i] (kEmptyRow when absent), i < n.
void launch_find_rows(const TableView& v, const int64_t* ids, int64_t n, uint32_t* rows,
                      cudaStream_t s);
// Groups: rows[g] and fresh[g] = (row absent) for g < *num; fresh = 0 beyond.
void launch_find_groups(const TableView& v, const Groups& g, cudaStream_t s);

// ---- kernels_rows.cu ----
// Insert the groups with fresh[g] as rows first_row + rank[g]; rows[g] is set.
void launch_insert_groups(const TableView& v, const Groups& g, const int32_t* rank,
                          uint32_t first_row, cudaStream_t s);
// Initialise (initialisers, optimizer Init, ts = 0) the rows of fresh groups.
void launch_init_groups(const TableView& v, const Groups& g, cudaStream_t s);
// Re-insert rows [0, n) into an empty slot array (growth).
void launch_rehash(const TableView& v, int64_t n, cudaStream_t s);
// Restore: rows [0, n) get ids[i], init, then num[0..num_count[i]), state, ts.
void launch_load_rows(const TableView& v, const int64_t* ids, const int64_t* ts,
                      const int32_t* num_count, const float* data, int64_t n, cudaStream_t s);
// Export rows r (rows[i], kEmptyRow -> skipped) as host records [emb D][state W][ts] to out.
void launch_export_rows(const TableView& v, const uint32_t* rows, int64_t n, float* out,
                        int64_t* ids_out, cudaStream_t s);
// Export rows [0, n) in row order.
void launch_export_all(const TableView& v, int64_t n, float* out, int64_t* ids_out,
                       cudaStream_t s);
// *first_bad = smallest row index (of `rows` rows of `width`) holding a NaN/Inf; must start at
// INT64_MAX.
void launch_find_nonfinite(const float* x, int64_t rows, int64_t width,
                           unsigned long long* first_bad, cudaStream_t s);

// ---- kernels_update.cu ----
// assign (add = false: last kept occurrence wins) / assign_add (sequential adds).
void launch_write_groups(const TableView& v, const Groups& g, const float* values,
                         const uint8_t* keep_pos, bool add, uint32_t ts, cudaStream_t s);
// One optimizer step per kept occurrence (dedup = false) or per group on the summed gradient.
void launch_apply_groups(const TableView& v, const Groups& g, const float* grads,
                         const uint8_t* keep_pos, bool dedup, int64_t global_step, uint32_t ts,
                         float* scratch, cudaStream_t s);

}  // namespace hashlab::gpu
