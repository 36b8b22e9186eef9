// Checkpoint shard sets on disk, for the save / restore kernels: discovery of one complete
// `basename-NNNNN-of-MMMMM` set, removal of an older set with another count, and the part of a
// set that one parameter-server task owns (ids routed by shard_of(id, num_parts)).
//
// Adapter until the core's shard codec lands: discovery and its messages follow
// engines/formats/shards.py find_shards word for word, so every engine reports the same error.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "table.h"

namespace hashlab_tf {

std::string shard_name(const std::string& basename, int64_t i, int64_t n);

// The paths of one complete shard set, in shard order; CheckpointFailure otherwise.
std::vector<std::string> find_shards(const std::string& basename);

// Deletes basename-*-of-K files with K != nshards (an older save's set).
void remove_stale_shards(const std::string& basename, int64_t nshards);

// Saves shards {s : s % stride == first} of an nshards-shard save (all of them for stride 1,
// where nshards = -1 picks the count automatically) and returns their paths. A table that
// holds an id of a shard it does not own is an error (its ids were routed elsewhere).
std::vector<std::string> save_part(const hashlab::Table& table, const std::string& basename,
                                   int64_t nshards, int64_t first, int64_t stride);

// Restores the entries of the checkpoint at basename whose id has shard_of(id, num_parts) ==
// part (every entry for num_parts 1), whatever shard count the checkpoint was written with.
void restore_part(hashlab::Table& table, const std::string& basename, int64_t part,
                  int64_t num_parts);

}  // namespace hashlab_tf
