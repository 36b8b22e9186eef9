// The GPU table: host-side orchestration of one embedding table in device memory.
//
// Every op runs on the legacy default stream (so it is ordered with CuPy/PyTorch work on their
// default streams) and synchronizes before returning. Pointers named d_* are device pointers;
// the binding copies host (numpy) arrays in and out. A mutex serialises ops on one table.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "dev_layout.h"
#include "table_config.h"  // hashlab::TableConfig: one parser and layout for every build

namespace hashlab::gpu {

// Admission callback: ids offered to the hash filter in batch order (with their counts);
// returns 1 per id to admit. Called without any device work pending.
using FilterFn = std::function<std::vector<uint8_t>(const std::vector<int64_t>& ids,
                                                    const std::vector<int64_t>& counts)>;

struct GroupedBatch;
class DevBuf;

class GpuTable {
 public:
  GpuTable(TableConfig cfg, int device, int64_t initial_capacity);
  ~GpuTable();
  GpuTable(const GpuTable&) = delete;
  GpuTable& operator=(const GpuTable&) = delete;

  const TableConfig& config() const { return cfg_; }
  int device() const { return device_; }
  int64_t dim() const { return cfg_.dim; }
  int64_t state_words() const { return cfg_.state_words; }
  void set_filter(FilterFn f);

  void lookup(const int64_t* d_ids, int64_t n, float* d_out, int64_t ld);
  void write(const int64_t* d_ids, const float* d_values, int64_t n, int64_t req_time, bool add);
  void apply_gradients(const int64_t* d_ids, const float* d_grads, int64_t n,
                       int64_t global_step, bool dedup, int64_t req_time, const float* lrs,
                       int64_t num_lrs);
  int64_t size() const;
  int64_t max_update_ts() const;
  int64_t memory_bytes() const;

  // Host records [emb D][state W][ts] (stride D + W + 1) of host ids; found[i] = 0: absent.
  void export_ids(const int64_t* ids, int64_t n, std::vector<float>* recs,
                  std::vector<uint8_t>* found);
  // Every entry, in row order.
  void export_all(std::vector<int64_t>* ids, std::vector<float>* recs);
  // Restore: replace the contents by these distinct ids; data rows [num D][state W].
  void load(const std::vector<int64_t>& ids, const std::vector<int64_t>& ts,
            const std::vector<int32_t>& num_count, const std::vector<float>& data);

 private:
  struct Block {
    void* ptr;
    int64_t bytes;
  };
  TableView view() const;
  void reserve(int64_t rows);
  void grow_slots(uint64_t cap);
  void add_pages(int64_t pages);
  void upload_segments();
  void update_scales(int64_t global_step);
  void admit(GroupedBatch& b, int64_t n, bool dedup, DevBuf* keep_pos);
  void insert_fresh(GroupedBatch& b);

  TableConfig cfg_;
  int device_;
  int64_t de_, ws_;  // padded row widths (floats)
  std::vector<DevSegment> segs_, uploaded_;
  std::vector<WorkItem> items_;
  int32_t max_whole_dim_ = 0;
  bool has_retriever_ = false, has_one_bit_ = false, has_batch_softmax_ = false;
  DevSegment* d_segs_ = nullptr;
  WorkItem* d_items_ = nullptr;
  Slot* slots_ = nullptr;
  uint64_t cap_ = 0;
  std::vector<float*> pages_;
  float** d_pages_ = nullptr;
  int64_t d_pages_cap_ = 0;
  std::vector<Block> blocks_;
  int64_t size_ = 0;
  int64_t max_ts_ = 0;
  FilterFn filter_;
  mutable std::mutex mu_;
};

// Number of CUDA devices; on failure 0 and *error = cudaGetErrorString.
int device_count(std::string* error);

}  // namespace hashlab::gpu
