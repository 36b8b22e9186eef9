// Monolith's table checkpoints for every native table (CPU, CUDA, TF ops), written once:
// TTL at save, the id -> shard split, records sorted by id, EntryDump encoding with TFRecord
// framing, crash-safe shard files, save_as_tensor slicing, and restore's read-parse-stage.
//
// A table feeds it through EntrySource; a restore gets every record parsed into Staged
// before the table changes (docs/semantics.md §3, §7).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "big_alloc.h"
#include "checkpoint_files.h"
#include "table_config.h"
#include "thread_pool.h"

namespace hashlab {

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

// One live entry: its id and its record, TableConfig::record_words() words laid out as
// [embedding D][optimizer state W][timestamp (uint32 bits)].
struct EntryRef {
  int64_t id;
  const float* rec;
};

// A table's live entries, listed in independent parts (CPU: hash partitions, listed by the
// pool's threads in parallel; GPU: one host copy of the device rows).
class EntrySource {
 public:
  virtual ~EntrySource() = default;
  virtual int64_t parts() const = 0;
  virtual void list(int64_t part, std::vector<EntryRef>* out) const = 0;  // appends
};

// Every record of a checkpoint, parsed and checked, in file order; every id appears once.
struct Staged {
  BigVector<int64_t> ids, ts, num_count;
  std::vector<std::string> files;      // the shard files read, in order
  std::vector<int64_t> file_starts;    // index of each file's first record
  ByteBuffer rows;  // record i: num[D] then state[W] floats, D + W words per record
  int64_t size() const { return static_cast<int64_t>(ids.size()); }
  const float* row(int64_t i, int64_t stride) const {
    return reinterpret_cast<const float*>(rows.data()) + i * stride;
  }
};

// Monolith's automatic shard count: min(4, max(1, live_entries / 1e6)).
int64_t auto_nshards(int64_t live_entries);

// TTL at save (semantics §3): an entry is dropped when max_ts - ts >= expire_days * 86400.
bool expired(const TableConfig& cfg, int64_t id, uint32_t ts, int64_t max_ts);

class ShardCodec {
 public:
  ShardCodec(const TableConfig& cfg, ThreadPool& pool) : cfg_(cfg), pool_(pool) {}

  // Writes the live, unexpired entries as basename-%05d-of-%05d (nshards = -1: automatic)
  // with the shard-set protocol (checkpoint_files.h): one file open at a time; an error before
  // the commit point is thrown and leaves nothing new on disk, one after it is the result's
  // warning. Returns the paths, in shard order.
  SaveResult save(const EntrySource& src, int64_t max_ts, const std::string& basename,
                  int64_t nshards) const;

  // One writer's part of a set that several writers fill (a table sharded over parameter-server
  // tasks): the shards s with s % stride == first, written to their temporaries and returned
  // for commit_shard_set. The entries must all belong to those shards (ids routed by
  // shard_of(id, stride)); std::invalid_argument otherwise.
  std::vector<ShardRecord> save_part(const EntrySource& src, int64_t max_ts,
                                     const std::string& basename, int64_t nshards,
                                     int64_t first, int64_t stride) const;

  // save_as_tensor: dumps (with id) of shard_idx of num_shards, sorted by id, positions
  // [offset, offset + limit); no TTL. *new_offset = offset + the number returned.
  Blobs slice(const EntrySource& src, int64_t shard_idx, int64_t num_shards, int64_t limit,
              int64_t offset, int64_t* new_offset) const;

  // Finds basename's shard set (docs/checkpoints.md), reads, CRC-checks and parses every
  // record, and checks that no id appears twice and (for a set with a manifest, which we
  // wrote) that each id sits in the shard its fixed hash names. Throws CheckpointFailure
  // naming the file and record. Files are opened (kOpenBatch at a time) before they are
  // read; when anything fails and the manifest is no longer the one the set came from, a save
  // by another process replaced the checkpoint meanwhile, and the read starts over (at most
  // kReadAttempts times), so the result is always one whole committed version.
  // part/num_parts: stage only the ids with shard_of(id, num_parts) == part (a parameter-server
  // task restoring its share of any checkpoint). Every file read is fully checked; with a
  // manifest and a shard count the parts divide, a part reads only the files that hold it.
  Staged read(const std::string& basename, int64_t part = 0, int64_t num_parts = 1) const;

 private:
  // Live entries bucketed by shard, each bucket sorted by id; shard_idx >= 0 keeps only
  // that shard (bucket 0). ttl: drop expired entries.
  std::vector<std::vector<EntryRef>> sorted_buckets(const EntrySource& src, bool ttl,
                                                    int64_t max_ts, int64_t shard_idx,
                                                    int64_t num_shards) const;
  void write_shard(const std::vector<EntryRef>& entries, TempShard* file) const;
  // placement: the shard index every id must hash to (-1: not checked).
  Staged read_set(const ShardSet& set, const std::string& basename, int64_t part,
                  int64_t num_parts) const;
  void parse_file(const ShardToRead& shard, OpenShard& file, int64_t placement,
                  int64_t num_shards, int64_t part, int64_t num_parts, Staged* out,
                  size_t* presize_bytes) const;
  void check_unique_ids(const Staged& st) const;

  const TableConfig& cfg_;
  ThreadPool& pool_;
};

}  // namespace hashlab
