// Checkpoint files on disk, for every native table (CPU, CUDA, TF ops): the crash-safe shard-set
// protocol of docs/checkpoints.md (shards staged under hidden names, a manifest as the commit
// point), and strict reads (regular files only, sizes and CRC32C checked against the manifest,
// files held open while a set is read, and a fresh start when a save replaced the manifest
// meanwhile). The Python engines implement the same protocol in engines/formats/shards.py and
// manifest.py, byte for byte.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "big_alloc.h"

namespace hashlab {

constexpr int64_t kMaxShards = 99999;  // the -%05d-of-%05d name cannot express more
// A reader holds at most this many shard files open at once (Python: shards.OPEN_BATCH).
constexpr int64_t kOpenBatch = 64;
// A read that finds the manifest replaced under it starts over, at most this many times
// (Python: shards.READ_ATTEMPTS).
constexpr int kReadAttempts = 20;

std::string shard_name(const std::string& basename, int64_t i, int64_t n);

// std::invalid_argument when basename cannot name files (empty, a NUL byte, ends in '/').
void check_basename(const std::string& basename);

// One shard of a set being written: a hidden temporary file in the target directory whose
// bytes are counted and CRC'd as they are written. Its file is open from construction to
// finish() only. Removed on destruction unless the set writer handed it to a commit.
class TempShard {
 public:
  TempShard(const std::string& dir, const std::string& final_name);
  ~TempShard();
  TempShard(const TempShard&) = delete;
  TempShard& operator=(const TempShard&) = delete;

  void write(const uint8_t* data, size_t n);
  void finish();  // fsync + close
  bool finished() const { return fd_ < 0; }

  const std::string& final_name() const { return final_name_; }
  const std::string& temp_name() const { return temp_name_; }
  uint64_t size() const { return size_; }
  uint32_t crc() const { return crc_; }
  void keep() { keep_ = true; }  // a commit owns the file now

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

// What a save did: the shard paths, in order, and, when a step after the commit point failed
// (the save still succeeded), what failed: callers report it as a warning (Python:
// engines.errors.CheckpointWarning; TensorFlow ops: the log).
struct SaveResult {
  std::vector<std::string> paths;
  std::string warning;  // empty: every step succeeded
};

// Writes basename's shard set with the manifest protocol: shard(i) for the shards this writer
// owns (i % stride == first; all of them by default), each opened when it is first asked for
// and closed by its finish(), so a save holds one shard file open at a time; then commit(), or
// records() for a set that several writers fill and one commits (commit_shard_set).
// Destroyed before either: every temporary file is removed and the previous checkpoint is
// untouched. The constructor lists the directory (std::system_error when it cannot: a save
// must be able to remove an older save's files) and removes leftovers of killed saves.
class ShardSetWriter {
 public:
  ShardSetWriter(const std::string& basename, int64_t nshards, int64_t first = 0,
                 int64_t stride = 1);
  ~ShardSetWriter();
  bool owns(int64_t i) const { return i % stride_ == first_; }
  TempShard& shard(int64_t i);
  std::vector<ShardRecord> records();  // the written shards, handed to a later commit
  SaveResult commit();

 private:
  std::string basename_, dir_, prefix_;
  int64_t nshards_, first_, stride_;
  std::vector<std::unique_ptr<TempShard>> shards_;  // created by shard(i)
};

// The commit of a set whose shards all sit in their temporaries (docs/checkpoints.md steps
// 3-7). It owns those temporaries: an error before the commit point (the rename of the
// pending manifest) removes them and is thrown, the previous checkpoint untouched; after it,
// the save has succeeded and failures are collected in SaveResult::warning.
SaveResult commit_shard_set(const std::string& basename, std::vector<ShardRecord> records);

// Where to read one shard of a set, and what the manifest promises about it.
struct ShardToRead {
  std::string path;
  std::string fallback;   // the final name, when path is a pending manifest's temporary
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
// The same from manifest bytes read earlier (manifest_snapshot; nothing: no manifest).
ShardSet find_shard_set(const std::string& basename, const std::optional<std::string>& snapshot);

// basename's manifest bytes, or nothing when there is none; CheckpointFailure when it cannot
// be read.
std::optional<std::string> manifest_snapshot(const std::string& basename);

// Whether basename's manifest is still `snapshot` (false when it cannot be read now).
bool same_manifest(const std::string& basename, const std::optional<std::string>& snapshot);

// A shard file opened for reading (its bytes are fixed from the open on, whatever is renamed
// over its name): a regular file (a FIFO, device or directory is refused without blocking)
// whose size matches the manifest's, when there is one; a pending temporary that a save
// renamed meanwhile is opened under its final name. CheckpointFailure naming the path.
class OpenShard {
 public:
  explicit OpenShard(const ShardToRead& s);
  ~OpenShard();
  OpenShard(OpenShard&& o) noexcept;
  OpenShard(const OpenShard&) = delete;
  OpenShard& operator=(const OpenShard&) = delete;
  OpenShard& operator=(OpenShard&&) = delete;
  const std::string& path() const { return path_; }
  ByteBuffer read();  // every byte, then the file is closed

 private:
  int fd_ = -1;
  uint64_t size_ = 0;
  std::string path_;
};

// After the records parsed (so a damaged record is reported as that record): the whole
// file's CRC32C against the manifest's.
void verify_shard_crc(const ShardToRead& s, const std::string& path, const ByteBuffer& bytes);

// CheckpointFailure when a manifest appeared at basename: a reader of a set without one
// (discovered from its names) must start over, since a save renames files only after it
// wrote its manifest.
void check_still_without_manifest(const std::string& basename);

// Writes `data` to path crash-safely (hidden temp, fsync, rename, fsync dir).
void write_file_atomic(const std::string& path, const std::string& data);

}  // namespace hashlab
