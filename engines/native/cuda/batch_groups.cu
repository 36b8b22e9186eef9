#include "batch_groups.h"

#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_run_length_encode.cuh>
#include <cub/device/device_scan.cuh>

#include <algorithm>
#include <stdexcept>

namespace hashlab::gpu {
namespace {

__global__ void iota_kernel(int32_t* out, int32_t n) {
  const int32_t i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = i;
}

// info = {groups, fresh groups}: the last rank plus the last flag.
__global__ void counts_kernel(const int32_t* num, const int32_t* rank, const int32_t* fresh,
                              int32_t n, int32_t* info) {
  info[0] = *num;
  info[1] = n ? rank[n - 1] + fresh[n - 1] : 0;
}

unsigned blocks(int64_t n) { return static_cast<unsigned>((n + 255) / 256); }

void scan_fresh(GroupedBatch* b, cudaStream_t s) {
  const int32_t n = static_cast<int32_t>(b->view.capacity);
  size_t bytes = 0;
  check_cuda(cub::DeviceScan::ExclusiveSum(nullptr, bytes, b->fresh.as<int32_t>(),
                                           b->rank.as<int32_t>(), n, s), "scan size");
  DevBuf temp(bytes, s);
  check_cuda(cub::DeviceScan::ExclusiveSum(temp.get(), bytes, b->fresh.as<int32_t>(),
                                           b->rank.as<int32_t>(), n, s), "scan fresh");
  counts_kernel<<<1, 1, 0, s>>>(b->view.num, b->rank.as<int32_t>(), b->fresh.as<int32_t>(), n,
                                b->info.as<int32_t>());
  check_launch("counts_kernel");
  int32_t info[2];
  check_cuda(cudaMemcpyAsync(info, b->info.get(), sizeof info, cudaMemcpyDeviceToHost, s),
             "copy group counts");
  check_cuda(cudaStreamSynchronize(s), "group_batch");
  b->num_groups = info[0];
  b->num_fresh = info[1];
}

}  // namespace

void group_batch(const TableView& v, const int64_t* ids, int64_t n64, GroupedBatch* b,
                 cudaStream_t s) {
  if (n64 >= (int64_t{1} << 31))
    throw std::invalid_argument("batch too large: at most 2^31-1 ids per call on the GPU");
  const int32_t n = static_cast<int32_t>(n64);
  const size_t m = std::max<int32_t>(n, 1);
  b->positions = DevBuf(m * 4, s);
  b->sorted_ids = DevBuf(m * 8, s);
  b->perm = DevBuf(m * 4, s);
  b->uniq = DevBuf(m * 8, s);
  b->counts = DevBuf(m * 4, s);
  b->offsets = DevBuf(m * 4, s);
  b->rows = DevBuf(m * 4, s);
  b->fresh = DevBuf(m * 4, s);
  b->rank = DevBuf(m * 4, s);
  b->info = DevBuf(16, s);
  int32_t* num = b->info.as<int32_t>() + 2;  // RLE writes the group count here
  check_cuda(cudaMemsetAsync(b->info.get(), 0, 16, s), "memset info");
  check_cuda(cudaMemsetAsync(b->counts.get(), 0, m * 4, s), "memset counts");

  Groups& g = b->view;
  g = Groups{};
  g.num = num;
  g.uniq = b->uniq.as<int64_t>();
  g.offsets = b->offsets.as<int32_t>();
  g.counts = b->counts.as<int32_t>();
  g.perm = b->perm.as<int32_t>();
  g.rows = b->rows.as<uint32_t>();
  g.fresh = b->fresh.as<int32_t>();
  g.capacity = n;
  if (n == 0) {
    b->num_groups = b->num_fresh = 0;
    return;
  }

  iota_kernel<<<blocks(n), 256, 0, s>>>(b->positions.as<int32_t>(), n);
  check_launch("iota_kernel");
  size_t sort_bytes = 0, rle_bytes = 0, scan_bytes = 0;
  check_cuda(cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, ids, b->sorted_ids.as<int64_t>(),
                                             b->positions.as<int32_t>(), b->perm.as<int32_t>(),
                                             n, 0, 64, s), "sort size");
  check_cuda(cub::DeviceRunLengthEncode::Encode(nullptr, rle_bytes, b->sorted_ids.as<int64_t>(),
                                                b->uniq.as<int64_t>(), b->counts.as<int32_t>(),
                                                num, n, s), "rle size");
  check_cuda(cub::DeviceScan::ExclusiveSum(nullptr, scan_bytes, b->counts.as<int32_t>(),
                                           b->offsets.as<int32_t>(), n, s), "scan size");
  DevBuf temp(std::max({sort_bytes, rle_bytes, scan_bytes}), s);
  size_t bytes = temp.bytes();
  // LSD radix sort is stable: positions stay in batch order inside each id's run.
  check_cuda(cub::DeviceRadixSort::SortPairs(temp.get(), bytes, ids, b->sorted_ids.as<int64_t>(),
                                             b->positions.as<int32_t>(), b->perm.as<int32_t>(),
                                             n, 0, 64, s), "sort ids");
  bytes = temp.bytes();
  check_cuda(cub::DeviceRunLengthEncode::Encode(temp.get(), bytes, b->sorted_ids.as<int64_t>(),
                                                b->uniq.as<int64_t>(), b->counts.as<int32_t>(),
                                                num, n, s), "run-length encode");
  bytes = temp.bytes();
  check_cuda(cub::DeviceScan::ExclusiveSum(temp.get(), bytes, b->counts.as<int32_t>(),
                                           b->offsets.as<int32_t>(), n, s), "group offsets");
  launch_find_groups(v, g, s);
  scan_fresh(b, s);
}

void rank_fresh(GroupedBatch* b, cudaStream_t s) {
  if (b->view.capacity == 0) return;
  scan_fresh(b, s);
}

}  // namespace hashlab::gpu
