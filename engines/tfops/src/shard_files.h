// A parameter-server task's part of a checkpoint, for the sharded tables: the shards it writes
// and the entries it restores, when ids are routed to tasks by shard_of(id, num_parts) (the
// hash that also picks an id's checkpoint shard). Everything else about checkpoint files
// (framing, discovery, crash-safe writes, stale cleanup) is the core's shard codec.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "table.h"

namespace hashlab_tf {

// Saves shards {s : s % stride == first} of an nshards-shard save (every shard for stride 1,
// where nshards = -1 picks the count automatically) and returns their paths. A table that
// holds an id of a shard it does not own is an error (its ids were routed elsewhere).
std::vector<std::string> save_part(const hashlab::Table& table, const std::string& basename,
                                   int64_t nshards, int64_t first, int64_t stride);

// Restores the entries of the checkpoint at basename whose id has shard_of(id, num_parts) ==
// part (every entry for num_parts 1), whatever shard count the checkpoint was written with.
void restore_part(hashlab::Table& table, const std::string& basename, int64_t part,
                  int64_t num_parts);

}  // namespace hashlab_tf
