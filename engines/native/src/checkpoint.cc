// save / restore / save_as_tensor (semantics §3, fsf Part B): TFRecord shards of EntryDump,
// written crash-safely (hidden temp file, fsync, rename, fsync dir) and read back with every
// CRC checked and every record parsed into a staging area before the table is touched.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <random>
#include <system_error>

#include "big_alloc.h"
#include "crc32c.h"
#include "entry_dump.h"
#include "table.h"

namespace hashlab {
namespace {

constexpr int64_t kSecondsPerDay = 86400;
constexpr int64_t kMaxShards = 99999;

std::string shard_name(const std::string& base, int64_t i, int64_t n) {
  char suffix[32];
  snprintf(suffix, sizeof suffix, "-%05lld-of-%05lld", static_cast<long long>(i),
           static_cast<long long>(n));
  return base + suffix;
}

[[noreturn]] void throw_errno(const std::string& what, int err) {
  throw std::system_error(err, std::generic_category(), what);
}

std::string random_hex() {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t seed = [] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }();
  const uint64_t t = static_cast<uint64_t>(
      std::chrono::steady_clock::now().time_since_epoch().count());
  const uint64_t r = mix64(seed ^ mix64(++counter) ^ (t * 0x9E3779B97F4A7C15ULL));
  char buf[17];
  snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(r));
  return buf;
}

void write_all(int fd, const uint8_t* p, size_t n, const std::string& path) {
  while (n) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot write " + path, errno);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_errno("cannot open directory " + dir, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw_errno("cannot fsync directory " + dir, err);
}

// The file's new content becomes visible under `path` all at once, or not at all.
void write_file_atomic(const std::string& path, const std::vector<ByteBuffer>& parts) {
  namespace fs = std::filesystem;
  const fs::path abs = fs::absolute(fs::path(path));
  const std::string dir = abs.parent_path().string();
  std::error_code ec;
  fs::create_directories(abs.parent_path(), ec);
  if (ec) throw std::system_error(ec, "cannot create directory " + dir);
  const std::string tmp =
      (abs.parent_path() / ("." + abs.filename().string() + ".tmp-" + random_hex())).string();
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) throw_errno("cannot create " + tmp, errno);
  try {
    for (const auto& part : parts) write_all(fd, part.data(), part.size(), tmp);
    if (::fsync(fd) != 0) throw_errno("cannot fsync " + tmp, errno);
    if (::close(fd) != 0) {
      const int err = errno;
      ::unlink(tmp.c_str());
      throw_errno("cannot close " + tmp, err);
    }
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::rename(tmp.c_str(), abs.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw_errno("cannot rename " + tmp + " to " + abs.string(), err);
  }
  fsync_dir(dir);
}

inline uint8_t* put_u32(uint8_t* p, uint32_t v) {
  memcpy(p, &v, 4);
  return p + 4;
}

// One TFRecord frame around the dump of `row`.
uint8_t* frame_entry(const TableConfig& cfg, int64_t id, const float* row, size_t sz,
                     uint8_t* p) {
  const uint64_t len = sz;
  memcpy(p, &len, 8);
  p = put_u32(p + 8, masked_crc(p, 8));
  uint8_t* payload = p;
  p = encode_entry_dump(cfg, row, true, id, p);
  return put_u32(p, masked_crc(payload, sz));
}

ByteBuffer read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) throw CheckpointFailure(path + ": checkpoint file not found");
    throw CheckpointFailure(path + ": cannot read checkpoint file: " + strerror(errno));
  }
  ByteBuffer buf;
  struct stat st;
  const size_t expected =
      (fstat(fd, &st) == 0 && st.st_size > 0) ? static_cast<size_t>(st.st_size) : 0;
  buf.reserve(expected + 1);  // +1: the read that sees EOF needs room for one byte
  for (;;) {
    const size_t at = buf.size();
    if (at == buf.capacity()) buf.reserve(2 * at);
    const ssize_t r = ::read(fd, buf.data() + at, buf.capacity() - at);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      const int err = errno;
      ::close(fd);
      throw CheckpointFailure(path + ": cannot read checkpoint file: " + strerror(err));
    }
    if (r == 0) break;
    buf.resize(at + static_cast<size_t>(r));
  }
  ::close(fd);
  return buf;
}

struct Frame {
  size_t start, length;
};

}  // namespace

// Live entries (optionally TTL-filtered), bucketed by checkpoint shard, each bucket sorted by
// id. shard_idx >= 0 keeps only that shard (returned as bucket 0).
void Table::sorted_entries(bool ttl, int64_t shard_idx, int64_t num_shards,
                           std::vector<std::vector<Entry>>* by_shard) const {
  const int T = pool_->size();
  const int64_t buckets = shard_idx >= 0 ? 1 : num_shards;
  std::vector<std::vector<std::vector<Entry>>> local(static_cast<size_t>(T));
  pool_->run([&](int t) {
    auto& mine = local[t];
    mine.assign(static_cast<size_t>(buckets), {});
    for (int p = t; p < kPartitions; p += T) {
      const Partition& part = *parts_[p];
      for (int64_t r = 0; r < part.size(); ++r) {
        const float* row = part.row_ptr(static_cast<uint32_t>(r));
        const int64_t id = part.id_of(static_cast<uint32_t>(r));
        if (ttl) {
          const int64_t days = cfg_.expire_days[ttl_slot(id, cfg_.fid_version)];
          const int64_t expire = static_cast<int64_t>(static_cast<uint64_t>(days) *
                                                      static_cast<uint64_t>(kSecondsPerDay));
          if (max_ts_ - static_cast<int64_t>(ts_of(row)) >= expire) continue;
        }
        const int64_t s = shard_of(id, static_cast<uint32_t>(num_shards));
        if (shard_idx >= 0) {
          if (s == shard_idx) mine[0].push_back(Entry{id, row});
        } else {
          mine[s].push_back(Entry{id, row});
        }
      }
    }
    for (auto& b : mine)
      std::sort(b.begin(), b.end(), [](const Entry& a, const Entry& c) { return a.id < c.id; });
  });
  by_shard->assign(static_cast<size_t>(buckets), {});
  for (int64_t s = 0; s < buckets; ++s) {
    std::vector<Entry>& out = (*by_shard)[s];
    for (int t = 0; t < T; ++t) {
      std::vector<Entry>& run = local[t][s];
      if (out.empty()) {
        out.swap(run);
        continue;
      }
      std::vector<Entry> merged(out.size() + run.size());
      std::merge(out.begin(), out.end(), run.begin(), run.end(), merged.begin(),
                 [](const Entry& a, const Entry& c) { return a.id < c.id; });
      out.swap(merged);
      std::vector<Entry>().swap(run);
    }
  }
}

std::vector<std::string> Table::save(const std::string& basename, int64_t nshards) const {
  std::shared_lock<std::shared_mutex> lk(mu_);
  int64_t n = 0;
  for (const auto& p : parts_) n += p->size();
  if (nshards == -1) nshards = std::min<int64_t>(4, std::max<int64_t>(1, n / 1000000));
  if (nshards < 1 || nshards > kMaxShards)
    throw std::invalid_argument("nshards: shard count must be in [1, 99999], got " +
                                std::to_string(nshards));
  std::vector<std::vector<Entry>> shards;
  sorted_entries(true, -1, nshards, &shards);
  const int T = pool_->size();
  std::vector<std::string> paths;
  for (int64_t s = 0; s < nshards; ++s) {
    const std::vector<Entry>& es = shards[s];
    std::vector<ByteBuffer> bufs(static_cast<size_t>(T));
    pool_->run([&](int t) {
      int64_t b, e;
      ThreadPool::range(static_cast<int64_t>(es.size()), T, t, &b, &e);
      size_t total = 0;
      for (int64_t i = b; i < e; ++i) total += 16 + entry_dump_size(cfg_, es[i].row, true);
      ByteBuffer& buf = bufs[t];
      buf.resize(total);
      uint8_t* p = buf.data();
      for (int64_t i = b; i < e; ++i) {
        const size_t sz = entry_dump_size(cfg_, es[i].row, true);
        p = frame_entry(cfg_, es[i].id, es[i].row, sz, p);
      }
    });
    const std::string path = shard_name(basename, s, nshards);
    write_file_atomic(path, bufs);
    paths.push_back(path);
  }
  return paths;
}

Blobs Table::save_as_tensor(int64_t shard_idx, int64_t num_shards, int64_t limit,
                            int64_t offset, int64_t* new_offset) const {
  if (num_shards < 1 || num_shards > 0xFFFFFFFFLL || shard_idx < 0 || shard_idx >= num_shards ||
      limit < 1 || offset < 0)
    throw std::invalid_argument("save_as_tensor: bad shard_idx/num_shards/limit/offset");
  std::shared_lock<std::shared_mutex> lk(mu_);
  std::vector<std::vector<Entry>> buckets;
  sorted_entries(false, shard_idx, num_shards, &buckets);
  const std::vector<Entry>& es = buckets[0];
  const int64_t total = static_cast<int64_t>(es.size());
  const int64_t b = std::min(offset, total);
  const int64_t e = limit > total - b ? total : b + limit;
  Blobs out;
  std::vector<uint8_t> tmp;
  for (int64_t i = b; i < e; ++i) {
    tmp.resize(entry_dump_size(cfg_, es[i].row, true));
    encode_entry_dump(cfg_, es[i].row, true, es[i].id, tmp.data());
    out.push(tmp.data(), tmp.size());
  }
  *new_offset = offset + (e - b);
  return out;
}

void Table::restore(const std::vector<std::string>& paths) {
  const int T = pool_->size();
  const int64_t D = cfg_.dim, W = cfg_.state_words, stride = D + W;
  // ---- stage: read, CRC-check and parse everything; the table is not touched ----
  BigVector<int64_t> ids, stamps, num_counts;
  ByteBuffer staged;  // record i: num[D] then state[W] at staged_f + i * stride
  auto staged_f = [&] { return reinterpret_cast<float*>(staged.data()); };
  // Total checkpoint bytes, to size the staging area once from the first file's record size
  // (growing it by doubling would copy and page-fault it several times over).
  size_t total_bytes = 0;
  for (const std::string& path : paths) {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && st.st_size > 0)
      total_bytes += static_cast<size_t>(st.st_size);
  }
  bool presized = false;
  for (const std::string& path : paths) {
    ByteBuffer buf = read_file(path);
    std::vector<Frame> frames;
    std::string frame_error;
    size_t pos = 0;
    const size_t end = buf.size();
    // Error strings are built only on failure (this loop runs once per record).
    auto where = [&] { return path + ": record " + std::to_string(frames.size()) + ": "; };
    auto at = [&] { return " (record starts at byte " + std::to_string(pos) + ")"; };
    if (buf.size() > 0) frames.reserve(buf.size() / (16 + 8 + 5 * static_cast<size_t>(D)) + 16);
    while (pos < end) {
      if (end - pos < 12) {
        frame_error = where() + "truncated header (" + std::to_string(end - pos) +
                      " of 12 bytes)" + at();
        break;
      }
      uint64_t len;
      uint32_t len_crc;
      memcpy(&len, buf.data() + pos, 8);
      memcpy(&len_crc, buf.data() + pos + 8, 4);
      if (masked_crc(buf.data() + pos, 8) != len_crc) {
        frame_error = where() + "length CRC mismatch" + at();
        break;
      }
      const size_t start = pos + 12;
      if (end - start < len) {
        frame_error = where() + "truncated payload (" + std::to_string(end - start) + " of " +
                      std::to_string(len) + " bytes)" + at();
        break;
      }
      if (end - start - len < 4) {
        frame_error = where() + "truncated footer (" + std::to_string(end - start - len) +
                      " of 4 bytes)" + at();
        break;
      }
      frames.push_back(Frame{start, static_cast<size_t>(len)});
      pos = start + len + 4;
    }
    const int64_t base = static_cast<int64_t>(ids.size());
    const int64_t count = static_cast<int64_t>(frames.size());
    if (!presized && count > 0) {
      presized = true;
      const size_t est = static_cast<size_t>(
          static_cast<double>(total_bytes) / static_cast<double>(buf.size()) * count * 1.02) + 16;
      if (est > static_cast<size_t>(count)) {
        ids.reserve(est);
        stamps.reserve(est);
        num_counts.reserve(est);
        staged.reserve(est * static_cast<size_t>(stride) * 4);
      }
    }
    ids.resize(static_cast<size_t>(base + count));
    stamps.resize(ids.size());
    num_counts.resize(ids.size());
    staged.resize(ids.size() * static_cast<size_t>(stride) * 4);
    std::vector<int64_t> bad_index(static_cast<size_t>(T), -1);
    std::vector<std::string> bad_what(static_cast<size_t>(T));
    pool_->run([&](int t) {
      int64_t b, e;
      ThreadPool::range(count, T, t, &b, &e);
      for (int64_t i = b; i < e; ++i) {
        const Frame& f = frames[i];
        const uint8_t* payload = buf.data() + f.start;
        uint32_t crc;
        memcpy(&crc, payload + f.length, 4);
        std::string err;
        if (masked_crc(payload, f.length) != crc) {
          err = "payload CRC mismatch (record starts at byte " + std::to_string(f.start - 12) +
                ")";
        } else {
          float* slot = staged_f() + (base + i) * stride;
          ParsedEntry pe;
          pe.num = slot;
          pe.state = slot + D;
          err = parse_entry_dump(cfg_, payload, f.length, &pe);
          ids[base + i] = pe.id;
          stamps[base + i] = pe.ts;
          num_counts[base + i] = pe.num_count;
        }
        if (!err.empty()) {
          bad_index[t] = i;
          bad_what[t] = std::move(err);
          return;
        }
      }
    });
    for (int t = 0; t < T; ++t)  // ranges are in order: the first failing part is the earliest
      if (bad_index[t] >= 0)
        throw CheckpointFailure(path + ": record " + std::to_string(bad_index[t]) + ": " +
                                bad_what[t]);
    if (!frame_error.empty()) throw CheckpointFailure(frame_error);
  }

  // ---- commit ----
  std::unique_lock<std::shared_mutex> lk(mu_);
  const int64_t n = static_cast<int64_t>(ids.size());
  BigVector<uint64_t> h = hash_all(ids.data(), n);
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
      Partition& part = *parts_[part_of(h[i])];
      uint32_t r = part.find(ids[i], h[i]);
      if (r == Partition::kEmpty) r = part.insert_new(ids[i], h[i]);
      float* row = part.row_ptr(r);
      // A later record of an id replaces the earlier one entirely. State words and the
      // timestamp are overwritten below, so only a short embedding needs the initializer.
      if (num_counts[i] < D) init_row(row, ids[i]);
      const float* src = staged_f() + i * stride;
      memcpy(row, src, static_cast<size_t>(num_counts[i]) * 4);
      memcpy(row + D, src + D, static_cast<size_t>(W) * 4);
      set_ts(row, stamps[i]);
    }
  });
  for (int64_t i = 0; i < n; ++i) max_ts_ = std::max(max_ts_, stamps[i]);
}

}  // namespace hashlab
