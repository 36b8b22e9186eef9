// A table sharded over parameter-server tasks, on disk: task i of N holds the ids with
// shard_of(id, N) == i (the hash that also picks an id's checkpoint shard), so with nshards a
// multiple of N, task i owns shards i, i+N, ... of a save. These are the two steps of such a
// save under the crash-safe shard-set protocol of docs/checkpoints.md, and the restore of a
// task's share of any checkpoint. Everything else about checkpoint files is the core's
// (checkpoint_files.h, shard_codec.h); a table that is not sharded uses Table::save/restore.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "checkpoint_files.h"
#include "table.h"

namespace hashlab_tf {

// Step 1, on every task: writes this task's shards {s : s % stride == first} of an
// nshards-shard save under the hidden temporary names a pending manifest names, fsynced, and
// returns one manifest line per shard: "<s> <final name> <size> <crc32c hex> <temp name>".
// The checkpoint on disk does not change yet. A table holding an id of a shard it does not own
// is an error (its ids were not routed by shard_of(id, stride)).
std::vector<std::string> write_part_shards(const hashlab::Table& table,
                                           const std::string& basename, int64_t nshards,
                                           int64_t first, int64_t stride);

// Step 2, once, after every task's step 1: the commit (pending manifest, renames, removal of an
// older set's shards, committed manifest). Returns the shard paths in order and what failed
// after the commit point, if anything (the save succeeded).
hashlab::SaveResult commit_part_shards(const std::string& basename, int64_t nshards,
                                       const std::vector<std::string>& lines);

// Stages (reads, checks, parses; the table does not change) the entries of the checkpoint at
// basename with shard_of(id, num_parts) == part (every entry for num_parts 1), whatever shard
// count it was written with. The task reads only its own shards when the count is a multiple
// of num_parts. Table::commit_restore applies the result.
std::unique_ptr<hashlab::Table::Restored> stage_part(const hashlab::Table& table,
                                                     const std::string& basename, int64_t part,
                                                     int64_t num_parts);

}  // namespace hashlab_tf
