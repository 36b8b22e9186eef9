#include "gpu_table.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <string>

#include "batch_groups.h"
#include "cuda_check.h"
#include "dev_buffer.h"
#include "device_scope.h"
#include "kernels.h"

namespace hashlab::gpu {
namespace {

constexpr cudaStream_t kStream = nullptr;  // legacy default stream: ordered with CuPy/torch
constexpr int64_t kMaxRows = int64_t{0xFFFFFFFF} - 1;  // kEmptyRow is reserved
constexpr int64_t kMaxBlockPages = 1024;                // row blocks grow to 1M rows

void sync(const char* what) { check_cuda(cudaStreamSynchronize(kStream), what); }

DevBuf upload(const void* host, size_t bytes) {
  DevBuf b(bytes, kStream);
  if (bytes) check_cuda(cudaMemcpyAsync(b.get(), host, bytes, cudaMemcpyHostToDevice, kStream),
                        "upload");
  return b;
}

template <typename T>
std::vector<T> download(const void* dev, size_t count) {
  std::vector<T> out(count);
  if (count)
    check_cuda(cudaMemcpyAsync(out.data(), dev, count * sizeof(T), cudaMemcpyDeviceToHost,
                               kStream), "download");
  return out;
}

// Per-element state arrays / beta powers / coupled ("whole") of each optimizer (config.py).
void layout_of(OptKind k, DevSegment* s) {
  switch (k) {
    case OptKind::kSgd: case OptKind::kMovingAverage: s->arrays = 0; break;
    case OptKind::kAdagrad: case OptKind::kMomentum: case OptKind::kRmsprop:
    case OptKind::kRmspropV2: s->arrays = 1; break;
    case OptKind::kFtrl: case OptKind::kAdadelta: s->arrays = 2; break;
    case OptKind::kAdam: s->arrays = 2; s->powers = 1; break;
    case OptKind::kAmsgrad: s->arrays = 3; s->powers = 1; break;
    case OptKind::kBatchSoftmax: case OptKind::kGroupAdagrad: s->whole = 1; break;
  }
}

// Per-call temporaries come from the device's default cudaMallocAsync pool. Its release
// threshold defaults to 0 (memory goes back to the driver at every sync, and the next call
// maps it again); keep up to 4 GiB cached instead. Raised only, never lowered.
void keep_pool_memory(int device) {
  cudaMemPool_t pool;
  if (cudaDeviceGetDefaultMemPool(&pool, device) != cudaSuccess) return;
  uint64_t threshold = 0;
  cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold);
  uint64_t want = uint64_t{4} << 30;
  if (threshold < want) cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &want);
  cudaGetLastError();
}

}  // namespace

// Entry timestamps are uint32 seconds (as on the CPU: table.cc).
static void check_req_time(int64_t req_time) {
  if (req_time < 0 || req_time > (int64_t{1} << 32) - 1)
    throw std::invalid_argument("req_time must be in [0, 4294967295] (seconds since the epoch; "
                                "entry timestamps are uint32), got " + std::to_string(req_time));
}

int device_count(std::string* error) {
  int n = 0;
  const cudaError_t rc = cudaGetDeviceCount(&n);
  if (rc != cudaSuccess) {
    cudaGetLastError();
    if (error) {
      // What a user should read: the common cases in plain words, the runtime's text otherwise.
      if (rc == cudaErrorNoDevice)
        *error = "no NVIDIA GPU found";
      else if (rc == cudaErrorInsufficientDriver)
        *error = "no NVIDIA driver is loaded (or it is older than this build's CUDA runtime)";
      else
        *error = cudaGetErrorString(rc);
    }
    return 0;
  }
  return n;
}

GpuTable::GpuTable(TableConfig cfg, int device, int64_t initial_capacity)
    : cfg_(std::move(cfg)), device_(device) {
  cfg_.validate();
  std::string err;
  const int n = device_count(&err);
  if (n == 0) throw std::runtime_error("no CUDA device: " + (err.empty() ? "none found" : err));
  if (device < 0 || device >= n)
    throw std::invalid_argument("device " + std::to_string(device) + " is not in [0, " +
                                std::to_string(n) + ")");
  DeviceScope scope(device_);
  keep_pool_memory(device_);
  de_ = round4(cfg_.dim);
  ws_ = round4(cfg_.state_words);
  for (size_t k = 0; k < cfg_.segments.size(); ++k) {
    const Segment& src = cfg_.segments[k];
    DevSegment s;
    s.dim = static_cast<int32_t>(src.dim);
    s.offset = static_cast<int32_t>(src.offset);
    s.state_offset = static_cast<int32_t>(src.state_offset);
    s.state_words = static_cast<int32_t>(src.state_words);
    s.init = src.init;
    s.opt = src.opt;
    s.comp = src.comp;
    s.scale = src.comp.init_scale;
    layout_of(src.opt.kind, &s);
    if (s.whole) {
      items_.push_back(WorkItem{static_cast<int32_t>(k), 0, s.dim, 1});
      max_whole_dim_ = std::max(max_whole_dim_, s.dim);
    } else {
      for (int32_t c = 0; c < s.dim; c += kChunk)
        items_.push_back(WorkItem{static_cast<int32_t>(k), c, std::min(kChunk, s.dim - c), 0});
    }
    if (src.comp.kind == CompKind::kFixedR8 || src.comp.kind == CompKind::kOneBit)
      has_retriever_ = true;
    if (src.comp.kind == CompKind::kOneBit) has_one_bit_ = true;
    if (src.opt.kind == OptKind::kBatchSoftmax) has_batch_softmax_ = true;
    segs_.push_back(s);
  }
  check_cuda(cudaMalloc(&d_segs_, segs_.size() * sizeof(DevSegment)), "cudaMalloc segments");
  check_cuda(cudaMalloc(&d_items_, items_.size() * sizeof(WorkItem)), "cudaMalloc items");
  check_cuda(cudaMemcpy(d_items_, items_.data(), items_.size() * sizeof(WorkItem),
                        cudaMemcpyHostToDevice), "upload items");
  upload_segments();
  reserve(std::clamp<int64_t>(initial_capacity, 0, kMaxRows));
  sync("create table");
}

GpuTable::~GpuTable() {
  // Errors are ignored: the context may already be gone at interpreter exit.
  int prev = 0;
  cudaGetDevice(&prev);
  cudaSetDevice(device_);
  cudaFree(d_segs_);
  cudaFree(d_items_);
  cudaFree(slots_);
  cudaFree(d_pages_);
  for (const Block& b : blocks_) cudaFree(b.ptr);
  cudaSetDevice(prev);
}

void GpuTable::set_filter(FilterFn f) {
  std::lock_guard<std::mutex> lk(mu_);
  filter_ = std::move(f);
}

TableView GpuTable::view() const {
  TableView v;
  v.slots.slots = slots_;
  v.slots.mask = cap_ ? cap_ - 1 : 0;
  v.rows.pages = d_pages_;
  v.rows.emb_stride = de_;
  v.rows.state_stride = ws_;
  v.segs = d_segs_;
  v.items = d_items_;
  v.num_segs = static_cast<int32_t>(segs_.size());
  v.num_items = static_cast<int32_t>(items_.size());
  v.dim = static_cast<int32_t>(cfg_.dim);
  v.max_whole_dim = max_whole_dim_;
  v.has_retriever = has_retriever_;
  v.has_one_bit = has_one_bit_;
  v.quirks = cfg_.quirks;
  v.seed_mix = mix64(cfg_.seed);
  return v;
}

void GpuTable::upload_segments() {
  const size_t bytes = segs_.size() * sizeof(DevSegment);
  if (uploaded_.size() == segs_.size() && std::memcmp(uploaded_.data(), segs_.data(), bytes) == 0)
    return;
  check_cuda(cudaMemcpyAsync(d_segs_, segs_.data(), bytes, cudaMemcpyHostToDevice, kStream),
             "upload segments");
  sync("upload segments");  // segs_ may change again before the copy would have run
  uploaded_ = segs_;
}

// Room for `rows` entries: slots at load factor <= 0.5 (few probes; HKV measures at 0.5-1.0),
// row pages allocated ahead. Throws (bad_alloc, ...) leaving the table usable.
void GpuTable::reserve(int64_t rows) {
  if (rows > kMaxRows)
    throw std::length_error("a GPU table cannot hold more than 2^32-2 entries");
  uint64_t cap = cap_ ? cap_ : 16;
  while (static_cast<uint64_t>(rows) * 2 > cap) cap *= 2;
  const int64_t pages = (rows + kPageRows - 1) / kPageRows;
  if (pages > static_cast<int64_t>(pages_.size()))
    add_pages(pages - static_cast<int64_t>(pages_.size()));
  if (cap != cap_ || !slots_) grow_slots(cap);
}

void GpuTable::grow_slots(uint64_t cap) {
  Slot* fresh = nullptr;
  check_cuda(cudaMalloc(&fresh, cap * sizeof(Slot)), "cudaMalloc slots");
  cudaError_t rc = cudaMemsetAsync(fresh, 0xFF, cap * sizeof(Slot), kStream);  // row = kEmptyRow
  if (rc != cudaSuccess) {
    cudaFree(fresh);
    check_cuda(rc, "memset slots");
  }
  Slot* old = slots_;
  slots_ = fresh;
  cap_ = cap;
  launch_rehash(view(), size_, kStream);  // every row re-inserted from its stored id
  sync("rehash");
  cudaFree(old);
}

void GpuTable::add_pages(int64_t want) {
  const int64_t have = static_cast<int64_t>(pages_.size());
  const int64_t block = std::max(want, std::min(std::max<int64_t>(have, 1), kMaxBlockPages));
  const int64_t page_bytes = RowStore::page_floats(de_, ws_) * 4;
  void* ptr = nullptr;
  check_cuda(cudaMalloc(&ptr, static_cast<size_t>(block * page_bytes)), "cudaMalloc rows");
  if (have + block > d_pages_cap_) {
    const int64_t pcap = std::max<int64_t>(2 * d_pages_cap_, have + block);
    float** table = nullptr;
    cudaError_t rc = cudaMalloc(&table, pcap * sizeof(float*));
    if (rc != cudaSuccess) {
      cudaFree(ptr);
      check_cuda(rc, "cudaMalloc page table");
    }
    cudaFree(d_pages_);
    d_pages_ = table;
    d_pages_cap_ = pcap;
  }
  blocks_.push_back(Block{ptr, block * page_bytes});
  for (int64_t p = 0; p < block; ++p)
    pages_.push_back(reinterpret_cast<float*>(static_cast<char*>(ptr) + p * page_bytes));
  check_cuda(cudaMemcpy(d_pages_, pages_.data(), pages_.size() * sizeof(float*),
                        cudaMemcpyHostToDevice), "upload page table");
}

void GpuTable::update_scales(int64_t global_step) {
  for (DevSegment& s : segs_)
    if (s.comp.kind == CompKind::kOneBit && global_step % s.comp.step_size == 0)
      s.scale = hashnet_scale(s.comp.init_scale, s.comp.max_scale, global_step);
}

// ---- reads ---------------------------------------------------------------------------------

void GpuTable::lookup(const int64_t* d_ids, int64_t n, float* d_out, int64_t ld) {
  std::lock_guard<std::mutex> lk(mu_);
  DeviceScope scope(device_);
  launch_lookup(view(), d_ids, n, d_out, ld, kStream);
  sync("lookup");
}

int64_t GpuTable::size() const {
  std::lock_guard<std::mutex> lk(mu_);
  return size_;
}

int64_t GpuTable::max_update_ts() const {
  std::lock_guard<std::mutex> lk(mu_);
  return max_ts_;
}

int64_t GpuTable::memory_bytes() const {
  std::lock_guard<std::mutex> lk(mu_);
  int64_t n = static_cast<int64_t>(cap_ * sizeof(Slot)) + d_pages_cap_ * 8;
  for (const Block& b : blocks_) n += b.bytes;
  return n;
}

// ---- writes --------------------------------------------------------------------------------

// Hash-filter admission (semantics §3): the sliding filter is sequential in batch order, so
// it runs on the host over the absent ids only: in batch order per occurrence (no dedup) or
// in first-occurrence order per group with the group's count (dedup). Rejected groups lose
// their `fresh` flag (and stay at kEmptyRow, so no kernel touches them); without dedup, rejected
// occurrences of an admitted id are skipped through keep_pos.
void GpuTable::admit(GroupedBatch& b, int64_t n, bool dedup, DevBuf* keep_pos) {
  if (!filter_ || b.num_fresh == 0) return;
  const int32_t G = b.num_groups;
  const auto uniq = download<int64_t>(b.view.uniq, G);
  const auto offsets = download<int32_t>(b.view.offsets, G);
  const auto counts = download<int32_t>(b.view.counts, G);
  auto fresh = download<int32_t>(b.view.fresh, G);
  const auto perm = download<int32_t>(b.view.perm, static_cast<size_t>(n));
  sync("admission copy");
  std::vector<std::pair<int32_t, int32_t>> order;  // (batch position, group)
  for (int32_t g = 0; g < G; ++g) {
    if (!fresh[g]) continue;
    if (dedup) {
      order.emplace_back(perm[offsets[g]], g);  // stable sort: the first position
    } else {
      for (int32_t k = 0; k < counts[g]; ++k) order.emplace_back(perm[offsets[g] + k], g);
    }
  }
  std::sort(order.begin(), order.end());
  std::vector<int64_t> ids(order.size()), cnt(order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    ids[i] = uniq[order[i].second];
    cnt[i] = dedup ? counts[order[i].second] : 1;
  }
  const std::vector<uint8_t> keep = filter_(ids, cnt);
  if (keep.size() != ids.size())
    throw std::runtime_error("hash filter callback returned " + std::to_string(keep.size()) +
                             " flags for " + std::to_string(ids.size()) + " ids");
  for (const auto& pg : order) fresh[pg.second] = 0;
  std::vector<uint8_t> kp;
  if (!dedup) kp.assign(static_cast<size_t>(n), 1);
  for (size_t i = 0; i < order.size(); ++i) {
    if (keep[i]) fresh[order[i].second] = 1;
    else if (!dedup) kp[order[i].first] = 0;
  }
  check_cuda(cudaMemcpyAsync(b.view.fresh, fresh.data(), fresh.size() * 4,
                             cudaMemcpyHostToDevice, kStream), "upload admission");
  if (!dedup) *keep_pos = upload(kp.data(), kp.size());
  rank_fresh(&b, kStream);  // syncs: the host vectors above outlive the copies
}

void GpuTable::insert_fresh(GroupedBatch& b) {
  if (b.num_fresh == 0) return;
  reserve(size_ + b.num_fresh);
  const TableView v = view();
  launch_insert_groups(v, b.view, b.rank.as<int32_t>(), static_cast<uint32_t>(size_), kStream);
  launch_init_groups(v, b.view, kStream);
  size_ += b.num_fresh;
}

void GpuTable::write(const int64_t* d_ids, const float* d_values, int64_t n, int64_t req_time,
                     bool add) {
  check_req_time(req_time);
  std::lock_guard<std::mutex> lk(mu_);
  DeviceScope scope(device_);
  if (n == 0) {
    max_ts_ = std::max(max_ts_, req_time);
    return;
  }
  GroupedBatch b;
  group_batch(view(), d_ids, n, &b, kStream);
  DevBuf keep_pos;
  admit(b, n, false, &keep_pos);
  insert_fresh(b);
  launch_write_groups(view(), b.view, d_values, keep_pos.as<uint8_t>(), add,
                      static_cast<uint32_t>(static_cast<uint64_t>(req_time)), kStream);
  sync("assign");
  max_ts_ = std::max(max_ts_, req_time);  // only a call that succeeded moves the TTL clock
}

void GpuTable::apply_gradients(const int64_t* d_ids, const float* d_grads, int64_t n,
                               int64_t global_step, bool dedup, int64_t req_time,
                               const float* lrs, int64_t num_lrs) {
  if (num_lrs != static_cast<int64_t>(segs_.size()))
    throw std::invalid_argument("learning_rates must have one value per segment (" +
                                std::to_string(segs_.size()) + "), got " +
                                std::to_string(num_lrs));
  if (global_step < 0 && has_batch_softmax_)
    throw std::invalid_argument("global_step must be >= 0 for batch_softmax, got " +
                                std::to_string(global_step));
  check_req_time(req_time);
  std::lock_guard<std::mutex> lk(mu_);
  DeviceScope scope(device_);
  if (n == 0) {
    max_ts_ = std::max(max_ts_, req_time);
    return;
  }
  GroupedBatch b;
  group_batch(view(), d_ids, n, &b, kStream);
  const int32_t present = b.num_groups - b.num_fresh;
  DevBuf keep_pos;
  admit(b, n, dedup, &keep_pos);
  if (present == 0 && b.num_fresh == 0) {  // every id filtered: nothing changes but the clock
    max_ts_ = std::max(max_ts_, req_time);
    return;
  }
  update_scales(global_step);
  for (size_t k = 0; k < segs_.size(); ++k) segs_[k].lr = lrs[k];
  upload_segments();
  insert_fresh(b);
  DevBuf scratch;
  if (max_whole_dim_)
    scratch = DevBuf(static_cast<size_t>(b.view.capacity) * items_.size() * 2 * max_whole_dim_ *
                     4, kStream);
  launch_apply_groups(view(), b.view, d_grads, keep_pos.as<uint8_t>(), dedup, global_step,
                      static_cast<uint32_t>(static_cast<uint64_t>(req_time)),
                      scratch.as<float>(), kStream);
  sync("apply_gradients");
  max_ts_ = std::max(max_ts_, req_time);  // only a call that succeeded moves the TTL clock
}

// ---- export / restore ----------------------------------------------------------------------

void GpuTable::export_ids(const int64_t* ids, int64_t n, std::vector<float>* recs,
                          std::vector<uint8_t>* found) {
  std::lock_guard<std::mutex> lk(mu_);
  DeviceScope scope(device_);
  const int64_t stride = cfg_.dim + cfg_.state_words + 1;
  DevBuf d_ids = upload(ids, static_cast<size_t>(n) * 8);
  DevBuf rows(static_cast<size_t>(std::max<int64_t>(n, 1)) * 4, kStream);
  DevBuf out(static_cast<size_t>(std::max<int64_t>(n * stride, 1)) * 4, kStream);
  launch_find_rows(view(), d_ids.as<int64_t>(), n, rows.as<uint32_t>(), kStream);
  launch_export_rows(view(), rows.as<uint32_t>(), n, out.as<float>(), nullptr, kStream);
  *recs = download<float>(out.get(), static_cast<size_t>(n * stride));
  const auto r = download<uint32_t>(rows.get(), static_cast<size_t>(n));
  sync("export");
  found->resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) (*found)[i] = r[i] != kEmptyRow;
}

void GpuTable::export_all(std::vector<int64_t>* ids, std::vector<float>* recs) {
  std::lock_guard<std::mutex> lk(mu_);
  DeviceScope scope(device_);
  const int64_t stride = cfg_.dim + cfg_.state_words + 1;
  const int64_t n = size_;
  DevBuf out(static_cast<size_t>(std::max<int64_t>(n * stride, 1)) * 4, kStream);
  DevBuf d_ids(static_cast<size_t>(std::max<int64_t>(n, 1)) * 8, kStream);
  launch_export_all(view(), n, out.as<float>(), d_ids.as<int64_t>(), kStream);
  *recs = download<float>(out.get(), static_cast<size_t>(n * stride));
  *ids = download<int64_t>(d_ids.get(), static_cast<size_t>(n));
  sync("export");
}

void GpuTable::load(const std::vector<int64_t>& ids, const std::vector<int64_t>& ts,
                    const std::vector<int32_t>& num_count, const std::vector<float>& data) {
  std::lock_guard<std::mutex> lk(mu_);
  DeviceScope scope(device_);
  const int64_t n = static_cast<int64_t>(ids.size());
  reserve(std::max(size_, n));  // allocate first: a failure leaves the table as it was
  DevBuf d_ids = upload(ids.data(), ids.size() * 8);
  DevBuf d_ts = upload(ts.data(), ts.size() * 8);
  DevBuf d_cnt = upload(num_count.data(), num_count.size() * 4);
  DevBuf d_data = upload(data.data(), data.size() * 4);
  sync("restore upload");
  check_cuda(cudaMemsetAsync(slots_, 0xFF, cap_ * sizeof(Slot), kStream), "clear slots");
  size_ = 0;
  launch_load_rows(view(), d_ids.as<int64_t>(), d_ts.as<int64_t>(), d_cnt.as<int32_t>(),
                   d_data.as<float>(), n, kStream);
  size_ = n;
  for (int64_t t : ts) max_ts_ = std::max(max_ts_, t);
  sync("restore");
}

}  // namespace hashlab::gpu
