// The native embedding table: every op of docs/semantics.md §3 over P hash partitions.
//
// Threading: a write copies the caller's batch once and groups it by partition (batch.h); each
// partition's positions are applied in batch order by one thread, partitions being claimed
// dynamically by the engine's threads, so results are bit-identical for any thread count and a
// descheduled thread never stalls the call. Reads split the batch into dynamic ranges. Batches
// smaller than kMinParallel stay on the calling thread. Locking: a std::shared_mutex per table,
// shared for reads (lookup, lookup_entry, save, save_as_tensor), exclusive for updates, so a
// reader sees a whole update or none of it. Every op validates and allocates before it mutates,
// and a failed op changes nothing (max_update_ts included).
#pragma once

#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "batch.h"
#include "filters.h"
#include "hash_table.h"
#include "shard_codec.h"
#include "table_config.h"
#include "thread_pool.h"

namespace hashlab {

class Table {
 public:
  static constexpr int kPartitionBits = 6;
  static constexpr int kPartitions = 1 << kPartitionBits;

  Table(TableConfig cfg, std::shared_ptr<ThreadPool> pool, std::shared_ptr<HashFilter> filter);

  const TableConfig& config() const { return cfg_; }
  int64_t dim() const { return cfg_.dim; }

  // Below this many ids an op runs on the calling thread (waking a thread costs more).
  static constexpr int64_t kMinParallel = 8192;

  void write(const int64_t* ids, const float* values, int64_t n, int64_t req_time, bool add);
  void lookup(const int64_t* ids, int64_t n, float* out) const;
  std::vector<Blobs> lookup_entry(const int64_t* ids, int64_t n) const;
  void apply_gradients(const int64_t* ids, const float* grads, int64_t n, int64_t global_step,
                       bool dedup, int64_t req_time, const float* lrs, int64_t num_lrs);
  int64_t size() const;
  int64_t max_update_ts() const;
  int64_t memory_bytes() const;

  // table_checkpoint.cc (the files themselves are shard_codec.h's)
  SaveResult save(const std::string& basename, int64_t nshards) const;
  // Restore in two steps (a model restores many tables all-or-nothing): stage reads and parses
  // everything without touching the table; commit replaces the content (fails only on
  // out-of-memory, and then leaves the table as it was).
  struct Restored {  // a parsed checkpoint, grouped by partition, waiting for its commit
    Staged records;
    PartitionedBatch by_partition;  // ids and hashes of the records, grouped by partition
  };
  // part/num_parts: only the ids with shard_of(id, num_parts) == part (a sharded table's task).
  std::unique_ptr<Restored> stage_restore(const std::string& basename, int64_t part = 0,
                                          int64_t num_parts = 1) const;
  // This table's part of a set that several tables fill (shards s % stride == first), for
  // commit_shard_set (checkpoint_files.h).
  std::vector<ShardRecord> save_part(const std::string& basename, int64_t nshards,
                                     int64_t first, int64_t stride) const;
  void commit_restore(std::unique_ptr<Restored> content);
  Blobs save_as_tensor(int64_t shard_idx, int64_t num_shards, int64_t limit, int64_t offset,
                       int64_t* new_offset) const;

  static int part_of(uint64_t h) { return static_cast<int>(h >> (64 - kPartitionBits)); }

 private:
  struct Scratch;
  class Entries;  // the partitions as a ShardCodec EntrySource
  float* ts_word(float* row) const { return row + cfg_.dim + cfg_.state_words; }
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

  // The write pipeline (table.cc): copy + group the batch, find rows and reserve room,
  // admission in batch order, then apply per partition.
  struct Pending;
  void find_rows(PartitionedBatch& b, Pending& w, bool dedup);
  void admit(const PartitionedBatch& b, Pending& w);
  int64_t grain(int64_t n) const { return n < kMinParallel ? kPartitions : 1; }

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
