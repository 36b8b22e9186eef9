#include "table.h"

#include <algorithm>
#include <cstring>
#include <mutex>

#include "entry_dump.h"

namespace hashlab {
namespace {

constexpr int kAhead = 16;        // ids between issuing a prefetch and using its line
constexpr int kBlock = 16;        // ids per lookup pipeline stage
constexpr int64_t kReadGrain = 4096;  // ids per dynamically claimed chunk of a read
constexpr int64_t kMaxTime = (int64_t{1} << 32) - 1;

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

namespace {

// Entry timestamps are uint32 seconds (Monolith's last_update_ts_sec).
void check_req_time(int64_t req_time) {
  if (req_time < 0 || req_time > kMaxTime)
    throw std::invalid_argument("req_time must be in [0, 4294967295] (seconds since the epoch; "
                                "entry timestamps are uint32), got " + std::to_string(req_time));
}

}  // namespace

// ---- reads ---------------------------------------------------------------------------------

// Lookup runs a software pipeline over each chunk (below), so the two DRAM misses of an id (its
// slot, then its row) overlap with other ids' work. Measured: loops over whole blocks of
// independent ids are about twice as fast as one id per iteration through all three stages
// (the out-of-order core overlaps a block's misses); block sizes 16..64 perform alike.
void Table::lookup(const int64_t* ids, int64_t n, float* out) const {
  std::shared_lock<std::shared_mutex> lk(mu_);
  const int64_t D = cfg_.dim;
  const int64_t row_bytes = D * 4;
  const int64_t grain = n < kMinParallel ? n : kReadGrain;
  pool_->for_chunks(n, grain, [&](int64_t b, int64_t e, int) {
    // Blocks of kBlock ids move through three stages, one block apart: (1) read the id once,
    // hash it, prefetch its home slot; (2) probe, prefetch the row; (3) copy the row. Each
    // stage loops over a whole block of independent ids, so their misses overlap.
    int64_t bid[3][kBlock];
    uint64_t bh[3][kBlock];
    const float* brow[3][kBlock];
    const int64_t nblocks = (e - b + kBlock - 1) / kBlock;
    auto len_of = [&](int64_t k) { return std::min<int64_t>(kBlock, e - (b + k * kBlock)); };
    for (int64_t k = -2; k < nblocks; ++k) {
      if (k + 2 < nblocks) {
        const int64_t s = b + (k + 2) * kBlock, len = len_of(k + 2);
        int64_t* ids_k = bid[(k + 2) % 3];
        uint64_t* h_k = bh[(k + 2) % 3];
        for (int64_t j = 0; j < len; ++j) {
          ids_k[j] = ids[s + j];
          h_k[j] = Partition::hash_of(ids_k[j]);
          parts_[part_of(h_k[j])]->prefetch(h_k[j]);
        }
      }
      if (k + 1 >= 0 && k + 1 < nblocks) {
        const int64_t len = len_of(k + 1);
        const int64_t* ids_k = bid[(k + 1) % 3];
        const uint64_t* h_k = bh[(k + 1) % 3];
        const float** rows_k = brow[(k + 1) % 3];
        for (int64_t j = 0; j < len; ++j) {
          const Partition& part = *parts_[part_of(h_k[j])];
          const uint32_t r = part.find(ids_k[j], h_k[j]);
          rows_k[j] = r == Partition::kEmpty ? nullptr : part.row_ptr(r);
          if (rows_k[j]) prefetch_row(rows_k[j], row_bytes);
        }
      }
      if (k >= 0) {
        const int64_t s = b + k * kBlock, len = len_of(k);
        const float** rows_k = brow[k % 3];
        for (int64_t j = 0; j < len; ++j) {
          float* o = out + (s + j) * D;
          if (rows_k[j])
            retrieve(rows_k[j], o);
          else
            memset(o, 0, static_cast<size_t>(row_bytes));
        }
      }
    }
  });
}

std::vector<Blobs> Table::lookup_entry(const int64_t* ids, int64_t n) const {
  std::shared_lock<std::shared_mutex> lk(mu_);
  const int64_t grain = n < kMinParallel ? std::max<int64_t>(n, 1) : kReadGrain;
  std::vector<Blobs> out(static_cast<size_t>((n + grain - 1) / grain));  // per chunk, in order
  pool_->for_chunks(n, grain, [&](int64_t b, int64_t e, int) {
    Blobs& bl = out[b / grain];
    bl.offsets.reserve(static_cast<size_t>(e - b + 1));
    for (int64_t i = b; i < e; ++i) {
      const int64_t id = ids[i];
      const uint64_t h = Partition::hash_of(id);
      const Partition& part = *parts_[part_of(h)];
      const uint32_t r = part.find(id, h);
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

// The per-call state of a write, indexed by the batch's k (partition-grouped order).
struct Table::Pending {
  BigVector<uint32_t> rows;    // the id's row before the call, or kEmpty
  BigVector<uint8_t> head;     // 1: the first occurrence of its id in the batch (dedup), or
                               //    every position (no dedup): the positions that are applied
  BigVector<int64_t> count;    // dedup: occurrences of the head's id in the batch
  BigVector<uint8_t> keep;     // admission (empty: no filter, keep all)
  bool any = true;             // something is admitted
};

// Phase A, per partition (dynamically claimed): with dedup, group each partition's positions
// by id (first occurrence = head; the gradients of later occurrences are summed into the
// head's row in occurrence order), then probe the heads' rows against the table as it was
// before the call, and reserve room for the missing ones. Nothing visible changes here: reserve
// may rehash and add row chunks, but content stays; a bad_alloc leaves the table as it was.
void Table::find_rows(PartitionedBatch& b, Pending& w, bool dedup) {
  const int64_t n = b.n, D = cfg_.dim;
  w.rows.resize(static_cast<size_t>(n));
  w.head.assign(static_cast<size_t>(n), 1);
  if (dedup) w.count.assign(static_cast<size_t>(n), 0);
  std::vector<BigVector<int64_t>> maps(static_cast<size_t>(pool_->size()));
  pool_->for_chunks(kPartitions, grain(n), [&](int64_t p0, int64_t p1, int worker) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t s = b.part_start[p], e = b.part_start[p + 1];
      if (s == e) continue;
      Partition& part = *parts_[p];
      if (dedup) {
        BigVector<int64_t>& map = maps[worker];  // id -> head k, open addressing
        uint64_t cap = 16;
        while (cap < 2 * static_cast<uint64_t>(e - s)) cap *= 2;
        map.assign(cap, -1);
        for (int64_t k = s; k < e; ++k) {
          const int64_t id = b.ids[k];
          uint64_t slot = (b.hashes[k] * 0x9E3779B97F4A7C15ULL) >> 20 & (cap - 1);
          while (map[slot] >= 0 && b.ids[map[slot]] != id) slot = (slot + 1) & (cap - 1);
          if (map[slot] < 0) {
            map[slot] = k;
            w.count[k] = 1;
            continue;
          }
          const int64_t h = map[slot];
          w.head[k] = 0;
          ++w.count[h];
          if (b.width) {
            float* acc = b.row(h);
            const float* g = b.row(k);
            for (int64_t c = 0; c < D; ++c) acc[c] = acc[c] + g[c];
          }
        }
      }
      int64_t missing = 0;
      for (int64_t k = s; k < e; ++k) {
        if (k + kAhead < e) part.prefetch(b.hashes[k + kAhead]);
        if (!w.head[k]) continue;
        w.rows[k] = part.find(b.ids[k], b.hashes[k]);
        missing += w.rows[k] == Partition::kEmpty;
      }
      if (missing) part.reserve(missing);
    }
  });
}

// Admission: sequential, in batch order (the sliding filter's state depends on it), for the ids
// the table lacks: every position without dedup (count 1), every head with dedup (its count).
void Table::admit(const PartitionedBatch& b, Pending& w) {
  if (!filter_) return;
  w.keep.assign(static_cast<size_t>(b.n), 1);
  w.any = false;
  std::lock_guard<std::mutex> fl(filter_->mutex());
  const bool dedup = !w.count.empty();
  for (int64_t i = 0; i < b.n; ++i) {
    const int64_t k = b.index_of[i];
    if (!w.head[k]) continue;
    if (w.rows[k] == Partition::kEmpty)
      w.keep[k] = !filter_->should_be_filtered(b.ids[k], dedup ? w.count[k] : 1, 0);
    w.any = w.any || w.keep[k];
  }
}

void Table::write(const int64_t* ids, const float* values, int64_t n, int64_t req_time,
                  bool add) {
  check_req_time(req_time);
  const int64_t D = cfg_.dim;
  PartitionedBatch b;  // the caller's arrays are read here, once, before any lock is taken
  build_batch(*pool_, ids, values, n, D, "values", kPartitions, Partition::hash_of, part_of,
              &b);
  std::unique_lock<std::shared_mutex> lk(mu_);
  Pending w;
  find_rows(b, w, false);
  admit(b, w);
  // Phase B, per partition in batch order. Nothing here allocates or throws.
  if (w.any)
    pool_->for_chunks(kPartitions, grain(n), [&](int64_t p0, int64_t p1, int) {
      for (int64_t p = p0; p < p1; ++p) {
        Partition& part = *parts_[p];
        const int64_t s = b.part_start[p], e = b.part_start[p + 1];
        for (int64_t k = s; k < e; ++k) {
          if (k + 8 < e) {
            if (w.rows[k + 8] != Partition::kEmpty)
              prefetch_row(part.row_ptr(w.rows[k + 8]), D * 4);
            else
              part.prefetch(b.hashes[k + 8]);
          }
          if (!w.keep.empty() && !w.keep[k]) continue;
          uint32_t r = w.rows[k];
          if (r == Partition::kEmpty) {  // absent before the call; maybe inserted by now
            bool inserted;
            r = part.find_or_insert(b.ids[k], b.hashes[k], &inserted);
            if (inserted) init_row(part.row_ptr(r), b.ids[k]);
          }
          float* row = part.row_ptr(r);
          const float* v = b.row(k);
          if (add) {
            for (int64_t c = 0; c < D; ++c) row[c] = row[c] + v[c];
          } else {
            memcpy(row, v, static_cast<size_t>(D) * 4);
          }
          set_ts(row, req_time);
        }
      }
    });
  note_time(req_time);  // only a call that succeeded moves the TTL clock
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
  check_req_time(req_time);
  const int64_t D = cfg_.dim;
  PartitionedBatch b;  // the caller's arrays are read here, once, before any lock is taken
  build_batch(*pool_, ids, grads, n, D, "grads", kPartitions, Partition::hash_of, part_of, &b);
  std::vector<Scratch> scratch;  // allocated before anything changes
  scratch.reserve(static_cast<size_t>(pool_->size()));
  for (int t = 0; t < pool_->size(); ++t) scratch.emplace_back(cfg_);
  std::unique_lock<std::shared_mutex> lk(mu_);
  Pending w;
  find_rows(b, w, dedup);
  admit(b, w);
  if (w.any && n > 0) {
    update_scales(global_step);
    pool_->for_chunks(kPartitions, grain(n), [&](int64_t p0, int64_t p1, int worker) {
      Scratch& sc = scratch[worker];
      for (int64_t p = p0; p < p1; ++p) {
        Partition& part = *parts_[p];
        const int64_t s = b.part_start[p], e = b.part_start[p + 1];
        for (int64_t k = s; k < e; ++k) {
          if (k + 8 < e && w.head[k + 8]) {
            if (w.rows[k + 8] != Partition::kEmpty)
              prefetch_row(part.row_ptr(w.rows[k + 8]), row_words_ * 4);
            else
              part.prefetch(b.hashes[k + 8]);
          }
          if (!w.head[k] || (!w.keep.empty() && !w.keep[k])) continue;
          uint32_t r = w.rows[k];
          if (r == Partition::kEmpty) {  // absent before the call; maybe inserted by now
            bool inserted;
            r = part.find_or_insert(b.ids[k], b.hashes[k], &inserted);
            if (inserted) init_row(part.row_ptr(r), b.ids[k]);
          }
          step_row(part.row_ptr(r), b.row(k), sc, global_step, lrs, req_time);
        }
      }
    });
  }
  note_time(req_time);  // only a call that succeeded moves the TTL clock
}

}  // namespace hashlab
