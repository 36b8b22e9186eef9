// The native embedding table: every op of docs/semantics.md §3 over P hash partitions.
//
// Threading: writes are split by partition (thread t owns partitions p with p % T == t), so
// each id's updates happen in batch order on one thread and results are bit-identical for any
// thread count; reads are split by batch range. Locking: a std::shared_mutex per table, shared
// for reads (lookup, lookup_entry, save, save_as_tensor), exclusive for updates, so a reader
// sees a whole update or none of it. Every op validates and allocates before it mutates.
#pragma once

#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "compress_math.h"
#include "filters.h"
#include "hash_table.h"
#include "init_math.h"
#include "opt_math.h"
#include "thread_pool.h"

namespace hashlab {

// A checkpoint that is missing, corrupt or does not fit the table (-> engines.api.CheckpointError).
struct CheckpointFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Segment {
  int64_t dim = 0, offset = 0, state_offset = 0, state_words = 0;
  InitParams init;
  OptParams opt;
  CompParams comp;
};

struct TableConfig {
  std::vector<Segment> segments;
  int64_t dim = 0, state_words = 0;
  uint64_t seed = 0;
  bool quirks = false;
  int fid_version = 2;
  std::vector<int64_t> expire_days;  // per TTL slot (32768 for fid v2, 1024 for v1 suffices)

  // Checks the layout (offsets contiguous, state sizes right, sizes bounded). Throws.
  void validate() const;
};

// Serialized byte strings: blob i is data[offsets[i] .. offsets[i+1]).
struct Blobs {
  std::vector<uint8_t> data;
  std::vector<int64_t> offsets{0};
  void push(const uint8_t* p, size_t n) {
    data.insert(data.end(), p, p + n);
    offsets.push_back(static_cast<int64_t>(data.size()));
  }
  int64_t count() const { return static_cast<int64_t>(offsets.size()) - 1; }
};

class Table {
 public:
  static constexpr int kPartitionBits = 6;
  static constexpr int kPartitions = 1 << kPartitionBits;
  static constexpr int64_t kMaxRowWords = int64_t{1} << 26;  // 256 MiB per entry

  Table(TableConfig cfg, std::shared_ptr<ThreadPool> pool, std::shared_ptr<HashFilter> filter);

  const TableConfig& config() const { return cfg_; }
  int64_t dim() const { return cfg_.dim; }

  void write(const int64_t* ids, const float* values, int64_t n, int64_t req_time, bool add);
  void lookup(const int64_t* ids, int64_t n, float* out) const;
  std::vector<Blobs> lookup_entry(const int64_t* ids, int64_t n) const;
  void apply_gradients(const int64_t* ids, const float* grads, int64_t n, int64_t global_step,
                       bool dedup, int64_t req_time, const float* lrs, int64_t num_lrs);
  int64_t size() const;
  int64_t max_update_ts() const;
  int64_t memory_bytes() const;

  // checkpoint.cc
  std::vector<std::string> save(const std::string& basename, int64_t nshards) const;
  void restore(const std::vector<std::string>& paths);
  Blobs save_as_tensor(int64_t shard_idx, int64_t num_shards, int64_t limit, int64_t offset,
                       int64_t* new_offset) const;

  static int part_of(uint64_t h) { return static_cast<int>(h >> (64 - kPartitionBits)); }

 private:
  struct Scratch;
  struct Entry {  // a live entry, for save / save_as_tensor
    int64_t id;
    const float* row;
  };
  float* ts_word(float* row) const { return row + cfg_.dim + cfg_.state_words; }
  uint32_t ts_of(const float* row) const {
    uint32_t ts;
    memcpy(&ts, row + cfg_.dim + cfg_.state_words, 4);
    return ts;
  }
  void set_ts(float* row, int64_t req_time) const {
    const uint32_t ts = static_cast<uint32_t>(static_cast<uint64_t>(req_time));
    memcpy(ts_word(row), &ts, 4);
  }
  void init_row(float* row, int64_t id) const;
  void retrieve(const float* row, float* out) const;
  void step_row(float* row, const float* grad, Scratch& s, int64_t global_step,
                const float* lrs, int64_t req_time) const;
  void update_scales(int64_t global_step);
  void note_time(int64_t req_time);

  // Positions of ids[0..n) owned by thread t (p % T == t), in batch order.
  void own_positions(const uint64_t* h, int64_t n, int t, BigVector<int64_t>* out) const;
  // rows[i] for own positions (kEmpty when absent), pipelined with slot prefetch.
  void probe_rows(const int64_t* ids, const uint64_t* h, const int64_t* own, int64_t m,
                  uint32_t* rows) const;
  BigVector<uint64_t> hash_all(const int64_t* ids, int64_t n) const;
  uint32_t upsert(Partition& part, int64_t id, uint64_t h);
  void sorted_entries(bool ttl, int64_t shard_idx, int64_t num_shards,
                                    std::vector<std::vector<Entry>>* by_shard) const;

  TableConfig cfg_;
  int64_t row_words_;
  uint64_t seed_mix_;
  bool has_retriever_ = false, has_one_bit_ = false, has_batch_softmax_ = false;
  std::shared_ptr<ThreadPool> pool_;
  std::shared_ptr<HashFilter> filter_;
  std::vector<std::unique_ptr<Partition>> parts_;
  std::vector<float> scales_;  // one_bit scale per segment
  int64_t max_ts_ = 0;
  mutable std::shared_mutex mu_;
};

}  // namespace hashlab
