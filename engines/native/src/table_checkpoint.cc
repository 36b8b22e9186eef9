// The CPU table's side of checkpoints: its partitions as an EntrySource for save and
// save_as_tensor, and the commit step of restore. Files, framing and parsing are the shared
// ShardCodec's (shard_codec.h).
#include <algorithm>
#include <cstring>

#include "table.h"

namespace hashlab {

class Table::Entries : public EntrySource {
 public:
  explicit Entries(const Table& t) : t_(t) {}
  int64_t parts() const override { return kPartitions; }
  void list(int64_t p, std::vector<EntryRef>* out) const override {
    const Partition& part = *t_.parts_[p];
    out->reserve(out->size() + static_cast<size_t>(part.size()));
    for (int64_t r = 0; r < part.size(); ++r) {
      const uint32_t row = static_cast<uint32_t>(r);
      out->push_back(EntryRef{part.id_of(row), part.row_ptr(row)});
    }
  }

 private:
  const Table& t_;
};

SaveResult Table::save(const std::string& basename, int64_t nshards) const {
  std::shared_lock<std::shared_mutex> lk(mu_);
  return ShardCodec(cfg_, *pool_).save(Entries(*this), max_ts_, basename, nshards);
}

std::vector<ShardRecord> Table::save_part(const std::string& basename, int64_t nshards,
                                          int64_t first, int64_t stride) const {
  std::shared_lock<std::shared_mutex> lk(mu_);
  return ShardCodec(cfg_, *pool_).save_part(Entries(*this), max_ts_, basename, nshards, first,
                                            stride);
}

Blobs Table::save_as_tensor(int64_t shard_idx, int64_t num_shards, int64_t limit,
                            int64_t offset, int64_t* new_offset) const {
  std::shared_lock<std::shared_mutex> lk(mu_);
  return ShardCodec(cfg_, *pool_).slice(Entries(*this), shard_idx, num_shards, limit, offset,
                                        new_offset);
}

// Stage parses and checks everything and groups the records by partition, without the lock.
// Commit reuses the table's own memory (a restore into a table of the same size allocates
// nothing new: fresh gigabytes would stall in page faults and huge-page compaction): it
// reserves room first, so an out-of-memory error leaves the table as it was, then clears and
// fills the partitions in place.
std::unique_ptr<Table::Restored> Table::stage_restore(const std::string& basename,
                                                      int64_t part, int64_t num_parts) const {
  auto out = std::make_unique<Restored>();
  out->records = ShardCodec(cfg_, *pool_).read(basename, part, num_parts);  // ids are unique
  build_batch(*pool_, out->records.ids.data(), nullptr, out->records.size(), 0, "",
              kPartitions, Partition::hash_of, part_of, &out->by_partition);
  return out;
}

void Table::commit_restore(std::unique_ptr<Restored> content) {
  const Staged& st = content->records;
  const PartitionedBatch& b = content->by_partition;
  const int64_t D = cfg_.dim, W = cfg_.state_words, stride = D + W;
  const int64_t n = st.size();
  const int64_t grain = n < kMinParallel ? kPartitions : 1;
  std::unique_lock<std::shared_mutex> lk(mu_);
  pool_->for_chunks(kPartitions, grain, [&](int64_t p0, int64_t p1, int) {
    for (int64_t p = p0; p < p1; ++p)
      parts_[p]->reserve_total(b.part_start[p + 1] - b.part_start[p]);
  });
  pool_->for_chunks(kPartitions, grain, [&](int64_t p0, int64_t p1, int) {
    for (int64_t p = p0; p < p1; ++p) {
      Partition& part = *parts_[p];
      part.clear();
      const int64_t s = b.part_start[p], e = b.part_start[p + 1];
      for (int64_t k = s; k < e; ++k) {
        if (k + 16 < e) part.prefetch(b.hashes[k + 16]);
        const int64_t i = b.order[k], id = b.ids[k];
        float* row = part.row_ptr(part.insert_new(id, b.hashes[k]));
        // A short embedding keeps its initializer tail (core §1.5); state words and the
        // timestamp come from the record.
        if (st.num_count[i] < D) init_row(row, id);
        const float* src = st.row(i, stride);
        memcpy(row, src, static_cast<size_t>(st.num_count[i]) * 4);
        memcpy(row + D, src + D, static_cast<size_t>(W) * 4);
        set_ts(row, st.ts[i]);
      }
    }
  });
  for (int64_t i = 0; i < n; ++i) max_ts_ = std::max(max_ts_, st.ts[i]);
}

}  // namespace hashlab
