// Checkpoint files on disk, for every native table (CPU, CUDA, TF ops): the crash-safe shard-set
// protocol of docs/checkpoints.md (shards staged under hidden names, a manifest as the commit
// point), and strict reads (regular files only, sizes and CRC32C checked against the manifest).
// The Python engines implement the same protocol in engines/formats/shards.py, byte for byte.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "big_alloc.h"

namespace hashlab {

constexpr int64_t kMaxShards = 99999;  // the -%05d-of-%05d name cannot express more

std::string shard_name(const std::string& basename, int64_t i, int64_t n);

// std::invalid_argument when basename cannot name files (empty, a NUL byte, ends in '/').
void check_basename(const std::string& basename);

// One shard of a set being written: a hidden temporary file in the target directory whose
// bytes are counted and CRC'd as they are written. Removed on destruction unless the set
// writer took it over.
class TempShard {
 public:
  TempShard(const std::string& dir, const std::string& final_name);
  ~TempShard();
  TempShard(const TempShard&) = delete;
  TempShard& operator=(const TempShard&) = delete;

  void write(const uint8_t* data, size_t n);
  void finish();  // fsync + close

  const std::string& final_name() const { return final_name_; }
  const std::string& temp_name() const { return temp_name_; }
  uint64_t size() const { return size_; }
  uint32_t crc() const { return crc_; }
  void keep() { keep_ = true; }  // the set writer renamed it (or a manifest names it)

 private:
  std::string dir_, final_name_, temp_name_;
  int fd_ = -1;
  uint64_t size_ = 0;
  uint32_t crc_ = 0;
  bool keep_ = false;
};

// One shard of a set as a pending manifest line names it: "shard <i> <name> <size> <crc32c>
// <temporary name>". Several writers of one set (parameter-server tasks) hand these to the one
// that commits.
struct ShardRecord {
  int64_t index = 0;
  std::string name, temp;  // final file name; hidden temporary holding it until the commit
  uint64_t size = 0;
  uint32_t crc = 0;

  std::string line() const;
  // CheckpointFailure naming `where` when the line is not shard `index`-of-`n` of `prefix`.
  // with_temp false: a committed manifest's line, which ends after the crc32c.
  static ShardRecord parse(const std::string& line, const std::string& prefix, int64_t n,
                           const std::string& where, bool with_temp = true);
};

// Writes basename's shard set with the manifest protocol: shard(i) for the shards this writer
// owns (i % stride == first; all of them by default), then commit(), or records() for a set
// that several writers fill and one commits (commit_shard_set). Destroyed before either: every
// temporary file is removed and the previous checkpoint is untouched.
class ShardSetWriter {
 public:
  ShardSetWriter(const std::string& basename, int64_t nshards, int64_t first = 0,
                 int64_t stride = 1);
  ~ShardSetWriter();
  bool owns(int64_t i) const { return i % stride_ == first_; }
  TempShard& shard(int64_t i) { return *shards_[i]; }
  std::vector<ShardRecord> records();  // the written shards, kept for a later commit
  std::vector<std::string> commit();   // the final paths, in shard order

 private:
  std::string basename_, dir_;
  int64_t nshards_, first_, stride_;
  std::vector<std::unique_ptr<TempShard>> shards_;  // null for shards another writer owns
};

// The commit of a set whose shards all sit in their temporaries (docs/checkpoints.md steps
// 3-6): pending manifest, renames, stale-set removal, committed manifest. Returns the paths.
std::vector<std::string> commit_shard_set(const std::string& basename,
                                          std::vector<ShardRecord> records);

// Where to read one shard of a set, and what the manifest promises about it.
struct ShardToRead {
  std::string path;
  bool verified = false;  // size and crc come from a manifest and must match
  uint64_t size = 0;
  uint32_t crc = 0;
};

// basename's shard set, resolved from its manifest when there is one (`from_manifest`), else
// discovered from the names `basename-NNNNN-of-MMMMM` (other `basename-*` names are another
// table's and are ignored). CheckpointFailure when there is none, a shard is missing, counts
// disagree or the manifest is malformed.
struct ShardSet {
  bool from_manifest = false;
  std::vector<ShardToRead> shards;
};
ShardSet find_shard_set(const std::string& basename);

// A shard's bytes: a regular file (a FIFO, device or directory is refused without blocking)
// whose size matches the manifest's, when there is one. CheckpointFailure naming the path.
ByteBuffer read_shard(const ShardToRead& s);

// After the records parsed (so a damaged record is reported as that record): the whole
// file's CRC32C against the manifest's.
void verify_shard_crc(const ShardToRead& s, const ByteBuffer& bytes);

// Writes `data` to path crash-safely (hidden temp, fsync, rename, fsync dir).
void write_file_atomic(const std::string& path, const std::string& data);

}  // namespace hashlab
