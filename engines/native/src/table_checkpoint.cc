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

std::vector<std::string> Table::save(const std::string& basename, int64_t nshards) const {
  std::shared_lock<std::shared_mutex> lk(mu_);
  return ShardCodec(cfg_, *pool_).save(Entries(*this), max_ts_, basename, nshards);
}

Blobs Table::save_as_tensor(int64_t shard_idx, int64_t num_shards, int64_t limit,
                            int64_t offset, int64_t* new_offset) const {
  std::shared_lock<std::shared_mutex> lk(mu_);
  return ShardCodec(cfg_, *pool_).slice(Entries(*this), shard_idx, num_shards, limit, offset,
                                        new_offset);
}

// The new content is built beside the live one (fresh partitions, sized exactly), so the
// commit is a swap that cannot fail, and a table being restored stays readable until then.
// The price: old and new content are both in memory for a moment.
std::unique_ptr<Table::Restored> Table::stage_restore(const std::string& basename) const {
  const Staged st = ShardCodec(cfg_, *pool_).read(basename);  // ids are unique
  const int64_t D = cfg_.dim, W = cfg_.state_words, stride = D + W;
  const int64_t n = st.size();
  PartitionedBatch b;  // the records grouped by partition
  build_batch(*pool_, st.ids.data(), nullptr, n, 0, "", kPartitions, Partition::hash_of,
              part_of, &b);
  auto out = std::make_unique<Restored>();
  for (int p = 0; p < kPartitions; ++p) out->parts.push_back(std::make_unique<Partition>(row_words_));
  pool_->for_chunks(kPartitions, n < kMinParallel ? kPartitions : 1,
                    [&](int64_t p0, int64_t p1, int) {
    for (int64_t p = p0; p < p1; ++p) {
      Partition& part = *out->parts[p];
      const int64_t s = b.part_start[p], e = b.part_start[p + 1];
      part.reserve(e - s);
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
  for (int64_t i = 0; i < n; ++i) out->max_ts = std::max(out->max_ts, st.ts[i]);
  return out;
}

void Table::commit_restore(std::unique_ptr<Restored> content) {
  std::unique_lock<std::shared_mutex> lk(mu_);
  parts_.swap(content->parts);
  max_ts_ = std::max(max_ts_, content->max_ts);
}

}  // namespace hashlab
