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

void Table::restore(const std::string& basename) {
  // Stage: read, CRC-check and parse everything; the table is not touched.
  const Staged st = ShardCodec(cfg_, *pool_).read(basename);
  const int T = pool_->size();
  const int64_t D = cfg_.dim, W = cfg_.state_words, stride = D + W;

  // Commit.
  std::unique_lock<std::shared_mutex> lk(mu_);
  const int64_t n = st.size();
  BigVector<uint64_t> h = hash_all(st.ids.data(), n);
  std::vector<int64_t> per_part(kPartitions, 0);
  for (int64_t i = 0; i < n; ++i) ++per_part[part_of(h[i])];
  pool_->run([&](int t) {  // allocate first: a bad_alloc here leaves the table as it was
    for (int p = t; p < kPartitions; p += T) parts_[p]->reserve_total(per_part[p]);
  });
  for (auto& p : parts_) p->clear();
  std::vector<BigVector<int64_t>> own(static_cast<size_t>(T));
  pool_->run([&](int t) {
    own_positions(h.data(), n, t, &own[t]);
    const BigVector<int64_t>& mine = own[t];
    const int64_t m = static_cast<int64_t>(mine.size());
    constexpr int64_t kAhead = 16;  // prefetch home slots this many records ahead
    for (int64_t j = 0; j < std::min(m, kAhead); ++j)
      parts_[part_of(h[mine[j]])]->prefetch(h[mine[j]]);
    for (int64_t j = 0; j < m; ++j) {
      if (j + kAhead < m) {
        const uint64_t ha = h[mine[j + kAhead]];
        parts_[part_of(ha)]->prefetch(ha);
      }
      const int64_t i = mine[j];
      const int64_t id = st.ids[i];
      Partition& part = *parts_[part_of(h[i])];
      uint32_t r = part.find(id, h[i]);
      if (r == Partition::kEmpty) r = part.insert_new(id, h[i]);
      float* row = part.row_ptr(r);
      // A later record of an id replaces the earlier one entirely. State words and the
      // timestamp are overwritten below, so only a short embedding needs the initializer.
      if (st.num_count[i] < D) init_row(row, id);
      const float* src = st.row(i, stride);
      memcpy(row, src, static_cast<size_t>(st.num_count[i]) * 4);
      memcpy(row + D, src + D, static_cast<size_t>(W) * 4);
      set_ts(row, st.ts[i]);
    }
  });
  for (int64_t i = 0; i < n; ++i) max_ts_ = std::max(max_ts_, st.ts[i]);
}

}  // namespace hashlab
