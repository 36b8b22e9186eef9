#include "shard_files.h"

#include <filesystem>
#include <stdexcept>

#include "checkpoint_files.h"

namespace hashlab_tf {

// Every step is the core's (shard_codec.h, checkpoint_files.h): a task writes its shards to
// their temporaries and reports them as pending-manifest lines; one task commits the set.

std::vector<std::string> write_part_shards(const hashlab::Table& table,
                                           const std::string& basename, int64_t nshards,
                                           int64_t first, int64_t stride) {
  std::vector<std::string> lines;
  for (const hashlab::ShardRecord& r : table.save_part(basename, nshards, first, stride))
    lines.push_back(r.line());
  return lines;
}

hashlab::SaveResult commit_part_shards(const std::string& basename, int64_t nshards,
                                       const std::vector<std::string>& lines) {
  hashlab::check_basename(basename);
  if (nshards < 1 || nshards > hashlab::kMaxShards)
    throw std::invalid_argument("nshards must be in [1, 99999], got " + std::to_string(nshards));
  const std::string prefix = std::filesystem::path(basename).filename().string();
  std::vector<hashlab::ShardRecord> records;
  for (const std::string& line : lines)
    records.push_back(hashlab::ShardRecord::parse(line, prefix, nshards, "shard lines"));
  return hashlab::commit_shard_set(basename, std::move(records));
}

std::unique_ptr<hashlab::Table::Restored> stage_part(const hashlab::Table& table,
                                                     const std::string& basename, int64_t part,
                                                     int64_t num_parts) {
  return table.stage_restore(basename, part, num_parts);
}

}  // namespace hashlab_tf
