// Host side of GPU checkpoints: entries exported from the device are encoded with the CPU
// engine's EntryDump encoder and TFRecord framing (byte-identical files), and shard files are
// read, CRC-checked and parsed completely before the device table is touched.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "table.h"

namespace hashlab::gpu {

// Exported entries: ids[i] with record recs[i * (D + W + 1) ...] = [emb D][state W][ts].
struct HostEntries {
  std::vector<int64_t> ids;
  std::vector<float> recs;
};

// The bytes of every shard file (framed records, sorted by id), TTL-filtered against max_ts.
std::vector<std::string> encode_shards(const TableConfig& cfg, const HostEntries& e,
                                       int64_t max_ts, int64_t nshards);

// save_as_tensor: dumps (with id) of shard_idx, sorted by id, positions [offset, offset+limit).
std::vector<std::string> encode_slice(const TableConfig& cfg, const HostEntries& e,
                                      int64_t shard_idx, int64_t num_shards, int64_t limit,
                                      int64_t offset, int64_t* new_offset);

// lookup_entry: one dump (without id) per found record, "" for absent ones.
std::vector<std::string> encode_entries(const TableConfig& cfg, const std::vector<float>& recs,
                                        const std::vector<uint8_t>& found);

// Restore staging: distinct ids (a later record of an id replaces an earlier one), timestamps,
// how many num values each record had, and rows [num D][state W]. Throws CheckpointFailure.
struct Staged {
  std::vector<int64_t> ids, ts;
  std::vector<int32_t> num_count;
  std::vector<float> data;
};
Staged read_checkpoint(const TableConfig& cfg, const std::vector<std::string>& paths);

}  // namespace hashlab::gpu
