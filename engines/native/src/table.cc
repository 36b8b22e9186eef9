#include "table.h"

#include <algorithm>
#include <cstring>
#include <mutex>

#include "entry_dump.h"

namespace hashlab {
namespace {

constexpr int kBlock = 16;  // ids per pipeline stage (hash+prefetch slot / probe+prefetch row)

// Prefetch the cache lines holding [row, row + bytes), at most four.
inline void prefetch_row(const float* row, int64_t bytes) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(row) & ~uintptr_t{63};
  const uintptr_t last = (reinterpret_cast<uintptr_t>(row) + bytes - 1) & ~uintptr_t{63};
  for (uintptr_t l = a; l <= last && l < a + 256; l += 64)
    __builtin_prefetch(reinterpret_cast<const void*>(l));
}

}  // namespace

struct Table::Scratch {
  std::vector<float> grad;    // the step's gradient copy (one_bit scales it)
  std::vector<float> group;   // group_adagrad work space
  explicit Scratch(const TableConfig& cfg) : grad(static_cast<size_t>(cfg.dim)) {
    int64_t mx = 0;
    for (const auto& s : cfg.segments) mx = std::max(mx, s.dim);
    group.resize(static_cast<size_t>(mx));
  }
};

Table::Table(TableConfig cfg, std::shared_ptr<ThreadPool> pool,
             std::shared_ptr<HashFilter> filter)
    : cfg_(std::move(cfg)), pool_(std::move(pool)), filter_(std::move(filter)) {
  cfg_.validate();
  if (!pool_) throw std::invalid_argument("pool: a thread pool is required");
  row_words_ = cfg_.dim + cfg_.state_words + 3;
  seed_mix_ = mix64(cfg_.seed);
  for (int p = 0; p < kPartitions; ++p) parts_.push_back(std::make_unique<Partition>(row_words_));
  for (const auto& s : cfg_.segments) {
    if (s.comp.kind == CompKind::kFixedR8 || s.comp.kind == CompKind::kOneBit)
      has_retriever_ = true;
    if (s.comp.kind == CompKind::kOneBit) has_one_bit_ = true;
    if (s.opt.kind == OptKind::kBatchSoftmax) has_batch_softmax_ = true;
    scales_.push_back(s.comp.init_scale);
  }
}

// ---- helpers -------------------------------------------------------------------------------

void Table::init_row(float* row, int64_t id) const {
  const uint64_t key = init_key(id, seed_mix_);
  for (const Segment& s : cfg_.segments) {
    init_segment(row, s.offset, s.dim, s.init, key);
    opt_init(s.opt, row + cfg_.dim + s.state_offset, s.dim);
  }
  set_ts(row, 0);
}

void Table::retrieve(const float* row, float* out) const {
  memcpy(out, row, static_cast<size_t>(cfg_.dim) * 4);
  if (!has_retriever_) return;
  for (size_t k = 0; k < cfg_.segments.size(); ++k) {
    const Segment& s = cfg_.segments[k];
    float* o = out + s.offset;
    if (s.comp.kind == CompKind::kFixedR8) {
      for (int64_t i = 0; i < s.dim; ++i) o[i] = fake_quantize(o[i], s.comp.r);
    } else if (s.comp.kind == CompKind::kOneBit) {
      for (int64_t i = 0; i < s.dim; ++i) o[i] = hashnet_forward(o[i], scales_[k], s.comp.amplitude);
    }
  }
}

void Table::step_row(float* row, const float* grad, Scratch& sc, int64_t global_step,
                     const float* lrs, int64_t req_time) const {
  set_ts(row, req_time);
  const float* g = grad;
  if (has_one_bit_) {  // backward scales a copy, never the caller's array
    memcpy(sc.grad.data(), grad, static_cast<size_t>(cfg_.dim) * 4);
    for (size_t k = 0; k < cfg_.segments.size(); ++k) {
      const Segment& s = cfg_.segments[k];
      if (s.comp.kind != CompKind::kOneBit) continue;
      float* gs = sc.grad.data() + s.offset;
      const float* w = row + s.offset;
      for (int64_t i = 0; i < s.dim; ++i)
        gs[i] = hashnet_backward(w[i], gs[i], scales_[k], s.comp.amplitude);
    }
    g = sc.grad.data();
  }
  for (size_t k = 0; k < cfg_.segments.size(); ++k) {
    const Segment& s = cfg_.segments[k];
    opt_step(s.opt, row + s.offset, g + s.offset, row + cfg_.dim + s.state_offset, s.dim, lrs[k],
             global_step, cfg_.quirks, sc.group.data());
  }
}

void Table::update_scales(int64_t global_step) {
  for (size_t k = 0; k < cfg_.segments.size(); ++k) {
    const Segment& s = cfg_.segments[k];
    if (s.comp.kind == CompKind::kOneBit && global_step % s.comp.step_size == 0)
      scales_[k] = hashnet_scale(s.comp.init_scale, s.comp.max_scale, global_step);
  }
}

void Table::note_time(int64_t req_time) { max_ts_ = std::max(max_ts_, req_time); }

BigVector<uint64_t> Table::hash_all(const int64_t* ids, int64_t n) const {
  BigVector<uint64_t> h(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) h[i] = Partition::hash_of(ids[i]);
  return h;
}

void Table::own_positions(const uint64_t* h, int64_t n, int t, BigVector<int64_t>* out) const {
  const int T = pool_->size();
  out->clear();
  if (T == 1) {
    out->resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) (*out)[i] = i;
    return;
  }
  out->reserve(static_cast<size_t>(n / T + 16));
  for (int64_t i = 0; i < n; ++i)
    if (part_of(h[i]) % T == t) out->push_back(i);
}

void Table::probe_rows(const int64_t* ids, const uint64_t* h, const int64_t* own, int64_t m,
                       uint32_t* rows) const {
  constexpr int64_t kAhead = 16;
  for (int64_t j = 0; j < std::min(m, kAhead); ++j) parts_[part_of(h[own[j]])]->prefetch(h[own[j]]);
  for (int64_t j = 0; j < m; ++j) {
    if (j + kAhead < m) {
      const uint64_t ha = h[own[j + kAhead]];
      parts_[part_of(ha)]->prefetch(ha);
    }
    const int64_t i = own[j];
    rows[i] = parts_[part_of(h[i])]->find(ids[i], h[i]);
  }
}

uint32_t Table::upsert(Partition& part, int64_t id, uint64_t h) {
  uint32_t r = part.find(id, h);
  if (r == Partition::kEmpty) {
    r = part.insert_new(id, h);
    init_row(part.row_ptr(r), id);
  }
  return r;
}

// ---- reads ---------------------------------------------------------------------------------

void Table::lookup(const int64_t* ids, int64_t n, float* out) const {
  std::shared_lock<std::shared_mutex> lk(mu_);
  const int64_t D = cfg_.dim;
  const int64_t row_bytes = D * 4;
  pool_->run([&](int t) {
    int64_t b, e;
    ThreadPool::range(n, pool_->size(), t, &b, &e);
    // Three-stage software pipeline over blocks of kBlock ids: (1) hash + prefetch the home
    // slot, (2) probe + prefetch the row, (3) copy the row. Stages run two blocks apart so each
    // memory access has had a block's worth of time to arrive.
    uint64_t hs[3][kBlock];
    const float* rp[3][kBlock];
    const int64_t nblocks = (e - b + kBlock - 1) / kBlock;
    auto block_len = [&](int64_t k) { return std::min<int64_t>(kBlock, e - (b + k * kBlock)); };
    for (int64_t k = -2; k < nblocks; ++k) {
      const int64_t k1 = k + 2, k2 = k + 1;
      if (k1 < nblocks) {
        uint64_t* hh = hs[k1 % 3];
        const int64_t s = b + k1 * kBlock, len = block_len(k1);
        for (int64_t j = 0; j < len; ++j) {
          hh[j] = Partition::hash_of(ids[s + j]);
          parts_[part_of(hh[j])]->prefetch(hh[j]);
        }
      }
      if (k2 >= 0 && k2 < nblocks) {
        const uint64_t* hh = hs[k2 % 3];
        const float** rr = rp[k2 % 3];
        const int64_t s = b + k2 * kBlock, len = block_len(k2);
        for (int64_t j = 0; j < len; ++j) {
          const Partition& part = *parts_[part_of(hh[j])];
          const uint32_t r = part.find(ids[s + j], hh[j]);
          rr[j] = r == Partition::kEmpty ? nullptr : part.row_ptr(r);
          if (rr[j]) prefetch_row(rr[j], row_bytes);
        }
      }
      if (k >= 0) {
        const float** rr = rp[k % 3];
        const int64_t s = b + k * kBlock, len = block_len(k);
        for (int64_t j = 0; j < len; ++j) {
          float* o = out + (s + j) * D;
          if (rr[j])
            retrieve(rr[j], o);
          else
            memset(o, 0, static_cast<size_t>(row_bytes));
        }
      }
    }
  });
}

std::vector<Blobs> Table::lookup_entry(const int64_t* ids, int64_t n) const {
  std::shared_lock<std::shared_mutex> lk(mu_);
  std::vector<Blobs> out(static_cast<size_t>(pool_->size()));
  pool_->run([&](int t) {
    int64_t b, e;
    ThreadPool::range(n, pool_->size(), t, &b, &e);
    Blobs& bl = out[t];
    bl.offsets.reserve(static_cast<size_t>(e - b + 1));
    for (int64_t i = b; i < e; ++i) {
      const uint64_t h = Partition::hash_of(ids[i]);
      const Partition& part = *parts_[part_of(h)];
      const uint32_t r = part.find(ids[i], h);
      if (r == Partition::kEmpty) {
        bl.offsets.push_back(static_cast<int64_t>(bl.data.size()));
        continue;
      }
      const float* row = part.row_ptr(r);
      const size_t sz = entry_dump_size(cfg_, row, false);
      const size_t at = bl.data.size();
      bl.data.resize(at + sz);
      encode_entry_dump(cfg_, row, false, 0, bl.data.data() + at);
      bl.offsets.push_back(static_cast<int64_t>(bl.data.size()));
    }
  });
  return out;
}

int64_t Table::size() const {
  std::shared_lock<std::shared_mutex> lk(mu_);
  int64_t n = 0;
  for (const auto& p : parts_) n += p->size();
  return n;
}

int64_t Table::max_update_ts() const {
  std::shared_lock<std::shared_mutex> lk(mu_);
  return max_ts_;
}

int64_t Table::memory_bytes() const {
  std::shared_lock<std::shared_mutex> lk(mu_);
  int64_t n = 0;
  for (const auto& p : parts_) n += p->bytes();
  return n;
}

// ---- writes --------------------------------------------------------------------------------

void Table::write(const int64_t* ids, const float* values, int64_t n, int64_t req_time,
                  bool add) {
  std::unique_lock<std::shared_mutex> lk(mu_);
  note_time(req_time);
  if (n == 0) return;
  const int T = pool_->size();
  const int64_t D = cfg_.dim;
  BigVector<uint64_t> h = hash_all(ids, n);
  BigVector<uint32_t> rows(static_cast<size_t>(n));
  std::vector<BigVector<int64_t>> own(static_cast<size_t>(T));

  // Phase A: find rows (the table as it was before the call) and make room for new ids.
  pool_->run([&](int t) {
    own_positions(h.data(), n, t, &own[t]);
    probe_rows(ids, h.data(), own[t].data(), static_cast<int64_t>(own[t].size()), rows.data());
    int64_t missing[kPartitions] = {0};
    for (int64_t i : own[t])
      if (rows[i] == Partition::kEmpty) ++missing[part_of(h[i])];
    for (int p = t; p < kPartitions; p += T)
      if (missing[p]) parts_[p]->reserve(missing[p]);
  });

  // Filter pass: sequential, in batch order, for ids the table lacks.
  BigVector<uint8_t> keep;
  if (filter_) {
    keep.assign(static_cast<size_t>(n), 1);
    std::lock_guard<std::mutex> fl(filter_->mutex());
    for (int64_t i = 0; i < n; ++i)
      if (rows[i] == Partition::kEmpty) keep[i] = !filter_->should_be_filtered(ids[i], 1, 0);
  }

  // Phase B: apply, per partition in batch order. Nothing here allocates or throws.
  pool_->run([&](int t) {
    const BigVector<int64_t>& mine = own[t];
    const int64_t m = static_cast<int64_t>(mine.size());
    for (int64_t j = 0; j < m; ++j) {
      if (j + 8 < m) {
        const int64_t a = mine[j + 8];
        if (rows[a] != Partition::kEmpty)
          prefetch_row(parts_[part_of(h[a])]->row_ptr(rows[a]), D * 4);
        else
          parts_[part_of(h[a])]->prefetch(h[a]);  // upsert probes the home slot again
      }
      const int64_t i = mine[j];
      if (!keep.empty() && !keep[i]) continue;
      Partition& part = *parts_[part_of(h[i])];
      uint32_t r = rows[i];
      if (r == Partition::kEmpty) r = upsert(part, ids[i], h[i]);
      float* row = part.row_ptr(r);
      const float* v = values + i * D;
      if (add) {
        for (int64_t c = 0; c < D; ++c) row[c] = row[c] + v[c];
      } else {
        memcpy(row, v, static_cast<size_t>(D) * 4);
      }
      set_ts(row, req_time);
    }
  });
}

void Table::apply_gradients(const int64_t* ids, const float* grads, int64_t n,
                            int64_t global_step, bool dedup, int64_t req_time, const float* lrs,
                            int64_t num_lrs) {
  if (num_lrs != static_cast<int64_t>(cfg_.segments.size()))
    throw std::invalid_argument("learning_rates must have one value per segment (" +
                                std::to_string(cfg_.segments.size()) + "), got " +
                                std::to_string(num_lrs));
  if (global_step < 0 && has_batch_softmax_)
    throw std::invalid_argument("global_step must be >= 0 for batch_softmax, got " +
                                std::to_string(global_step));
  std::unique_lock<std::shared_mutex> lk(mu_);
  note_time(req_time);
  if (n == 0) return;
  const int T = pool_->size();
  const int64_t D = cfg_.dim;
  BigVector<uint64_t> h = hash_all(ids, n);
  BigVector<uint32_t> rows(static_cast<size_t>(n));
  std::vector<BigVector<int64_t>> own(static_cast<size_t>(T));

  // Dedup groups, per thread in first-occurrence order: first position, count, summed grad.
  struct Groups {
    BigVector<int64_t> first;
    BigVector<int64_t> count;
    BigVector<float> sum;
  };
  std::vector<Groups> groups(dedup ? static_cast<size_t>(T) : 0);
  BigVector<uint8_t> keep;  // per position (no dedup) or per first position (dedup)

  pool_->run([&](int t) {
    own_positions(h.data(), n, t, &own[t]);
    const BigVector<int64_t>& mine = own[t];
    int64_t missing[kPartitions] = {0};
    if (!dedup) {
      probe_rows(ids, h.data(), mine.data(), static_cast<int64_t>(mine.size()), rows.data());
      for (int64_t i : mine)
        if (rows[i] == Partition::kEmpty) ++missing[part_of(h[i])];
    } else {
      // Pass 1: group positions by id (a local open-addressing map id -> group), so only group
      // heads are probed in the table. Pass 2: sum each group's rows in occurrence order.
      Groups& g = groups[t];
      if (mine.size() >= (size_t{1} << 31))
        throw std::invalid_argument("dedup batch too large (>= 2^31 ids per thread)");
      uint64_t cap = 16;
      while (cap < 2 * mine.size()) cap *= 2;
      BigVector<int32_t> map(cap, -1);
      BigVector<int32_t> group_of(mine.size());
      for (size_t j = 0; j < mine.size(); ++j) {
        const int64_t i = mine[j];
        uint64_t s = (h[i] * 0x9E3779B97F4A7C15ULL) >> 20 & (cap - 1);
        int32_t gi;
        for (;;) {
          gi = map[s];
          if (gi < 0 || ids[g.first[gi]] == ids[i]) break;
          s = (s + 1) & (cap - 1);
        }
        if (gi < 0) {
          gi = static_cast<int32_t>(g.first.size());
          map[s] = gi;
          g.first.push_back(i);
          g.count.push_back(0);
        }
        ++g.count[gi];
        group_of[j] = gi;
      }
      BigVector<int32_t>().swap(map);
      const int64_t ng = static_cast<int64_t>(g.first.size());
      g.sum.resize(static_cast<size_t>(ng * D));
      BigVector<uint8_t> started(static_cast<size_t>(ng), 0);
      for (size_t j = 0; j < mine.size(); ++j) {
        const float* gr = grads + mine[j] * D;
        float* acc = g.sum.data() + static_cast<int64_t>(group_of[j]) * D;
        if (!started[group_of[j]]) {
          started[group_of[j]] = 1;
          memcpy(acc, gr, static_cast<size_t>(D) * 4);
        } else {
          for (int64_t c = 0; c < D; ++c) acc[c] = acc[c] + gr[c];
        }
      }
      probe_rows(ids, h.data(), g.first.data(), ng, rows.data());
      for (int64_t i : g.first)
        if (rows[i] == Partition::kEmpty) ++missing[part_of(h[i])];
    }
    for (int p = t; p < kPartitions; p += T)
      if (missing[p]) parts_[p]->reserve(missing[p]);
  });

  bool any = true;
  if (filter_) {
    keep.assign(static_cast<size_t>(n), 1);
    std::lock_guard<std::mutex> fl(filter_->mutex());
    if (!dedup) {
      any = false;
      for (int64_t i = 0; i < n; ++i) {
        if (rows[i] == Partition::kEmpty) keep[i] = !filter_->should_be_filtered(ids[i], 1, 0);
        any = any || keep[i];
      }
    } else {
      // Groups in global first-occurrence order = positions in order that start a group.
      BigVector<int64_t> count_at(static_cast<size_t>(n), 0);
      for (const Groups& g : groups)
        for (size_t k = 0; k < g.first.size(); ++k) count_at[g.first[k]] = g.count[k];
      any = false;
      for (int64_t i = 0; i < n; ++i) {
        if (!count_at[i]) continue;
        if (rows[i] == Partition::kEmpty)
          keep[i] = !filter_->should_be_filtered(ids[i], count_at[i], 0);
        any = any || keep[i];
      }
    }
  }
  if (!any) return;
  std::vector<Scratch> scratch;  // allocated before anything changes
  scratch.reserve(static_cast<size_t>(T));
  for (int t = 0; t < T; ++t) scratch.emplace_back(cfg_);
  update_scales(global_step);

  pool_->run([&](int t) {
    Scratch& sc = scratch[t];
    if (!dedup) {
      const BigVector<int64_t>& mine = own[t];
      const int64_t m = static_cast<int64_t>(mine.size());
      for (int64_t j = 0; j < m; ++j) {
        if (j + 8 < m) {
          const int64_t a = mine[j + 8];
          if (rows[a] != Partition::kEmpty)
            prefetch_row(parts_[part_of(h[a])]->row_ptr(rows[a]), row_words_ * 4);
          else
            parts_[part_of(h[a])]->prefetch(h[a]);  // upsert probes the home slot again
        }
        const int64_t i = mine[j];
        if (!keep.empty() && !keep[i]) continue;
        Partition& part = *parts_[part_of(h[i])];
        uint32_t r = rows[i];
        if (r == Partition::kEmpty) r = upsert(part, ids[i], h[i]);
        step_row(part.row_ptr(r), grads + i * D, sc, global_step, lrs, req_time);
      }
    } else {
      const Groups& g = groups[t];
      const int64_t m = static_cast<int64_t>(g.first.size());
      for (int64_t k = 0; k < m; ++k) {
        if (k + 8 < m) {
          const int64_t a = g.first[k + 8];
          if (rows[a] != Partition::kEmpty)
            prefetch_row(parts_[part_of(h[a])]->row_ptr(rows[a]), row_words_ * 4);
          else
            parts_[part_of(h[a])]->prefetch(h[a]);  // upsert probes the home slot again
        }
        const int64_t i = g.first[k];
        if (!keep.empty() && !keep[i]) continue;
        Partition& part = *parts_[part_of(h[i])];
        uint32_t r = rows[i];
        if (r == Partition::kEmpty) r = upsert(part, ids[i], h[i]);
        step_row(part.row_ptr(r), g.sum.data() + k * D, sc, global_step, lrs, req_time);
      }
    }
  });
}

}  // namespace hashlab
