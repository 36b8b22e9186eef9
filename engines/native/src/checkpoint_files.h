// Checkpoint files on disk, for every native table (CPU, CUDA, TF ops): crash-safe writes,
// whole-file reads that fail with CheckpointFailure, and discovery of a shard set
// `basename-%05d-of-%05d` (docs/semantics.md §7; the Python engines do the same in
// engines/formats/shards.py).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "big_alloc.h"

namespace hashlab {

constexpr int64_t kMaxShards = 99999;  // the -%05d-of-%05d name cannot express more

std::string shard_name(const std::string& basename, int64_t i, int64_t n);

// A file written under a hidden temporary name in the target directory and renamed over the
// target by commit() after an fsync, so a reader sees the old file or the complete new one.
// Destroyed without commit() (an error, an exception): the temporary file is removed.
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const uint8_t* data, size_t n);
  // fsync, close, rename over the target, fsync the directory.
  void commit();

 private:
  std::string path_, tmp_, dir_;
  int fd_ = -1;
};

// The whole file; CheckpointFailure (naming the path) when it is missing or unreadable.
ByteBuffer read_file(const std::string& path);

// The paths of one complete shard set of basename, in shard order. CheckpointFailure when
// there is none, a shard is missing, counts disagree, or a `basename-*` file is not a shard.
std::vector<std::string> find_shard_set(const std::string& basename);

// Remove `basename-NNNNN-of-MMMMM` files whose MMMMM != keep_count (an older save's set).
void remove_stale_shards(const std::string& basename, int64_t keep_count);

}  // namespace hashlab
