#include "checkpoint_host.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <numeric>

#include "crc32c.h"
#include "entry_dump.h"

namespace hashlab::gpu {
namespace {

constexpr int64_t kSecondsPerDay = 86400;

int64_t stride_of(const TableConfig& cfg) { return cfg.dim + cfg.state_words + 1; }

uint32_t ts_of(const float* rec, const TableConfig& cfg) {
  uint32_t ts;
  memcpy(&ts, rec + cfg.dim + cfg.state_words, 4);
  return ts;
}

bool expired(const TableConfig& cfg, int64_t id, uint32_t ts, int64_t max_ts) {
  const int64_t days = cfg.expire_days[ttl_slot(id, cfg.fid_version)];
  const int64_t expire =
      static_cast<int64_t>(static_cast<uint64_t>(days) * static_cast<uint64_t>(kSecondsPerDay));
  return max_ts - static_cast<int64_t>(ts) >= expire;
}

void sort_by_id(const HostEntries& e, std::vector<int64_t>* idx) {
  std::sort(idx->begin(), idx->end(), [&](int64_t a, int64_t b) { return e.ids[a] < e.ids[b]; });
}

void append_frame(const TableConfig& cfg, const float* rec, int64_t id, std::string* out) {
  const size_t sz = entry_dump_size(cfg, rec, true);
  const size_t at = out->size();
  out->resize(at + 16 + sz);
  uint8_t* p = reinterpret_cast<uint8_t*>(out->data()) + at;
  const uint64_t len = sz;
  memcpy(p, &len, 8);
  const uint32_t len_crc = masked_crc(p, 8);
  memcpy(p + 8, &len_crc, 4);
  encode_entry_dump(cfg, rec, true, id, p + 12);
  const uint32_t crc = masked_crc(p + 12, sz);
  memcpy(p + 12 + sz, &crc, 4);
}

std::string dump_of(const TableConfig& cfg, const float* rec, bool with_id, int64_t id) {
  std::string s(entry_dump_size(cfg, rec, with_id), '\0');
  encode_entry_dump(cfg, rec, with_id, id, reinterpret_cast<uint8_t*>(s.data()));
  return s;
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    if (errno == ENOENT) throw CheckpointFailure(path + ": checkpoint file not found");
    throw CheckpointFailure(path + ": cannot read checkpoint file: " + strerror(errno));
  }
  std::vector<uint8_t> buf;
  uint8_t chunk[1 << 16];
  size_t got;
  while ((got = std::fread(chunk, 1, sizeof chunk, f)) > 0) buf.insert(buf.end(), chunk, chunk + got);
  const bool bad = std::ferror(f);
  std::fclose(f);
  if (bad) throw CheckpointFailure(path + ": cannot read checkpoint file");
  return buf;
}

}  // namespace

std::vector<std::string> encode_shards(const TableConfig& cfg, const HostEntries& e,
                                       int64_t max_ts, int64_t nshards) {
  const int64_t stride = stride_of(cfg);
  std::vector<std::vector<int64_t>> by_shard(static_cast<size_t>(nshards));
  for (int64_t i = 0; i < static_cast<int64_t>(e.ids.size()); ++i) {
    if (expired(cfg, e.ids[i], ts_of(&e.recs[i * stride], cfg), max_ts)) continue;
    by_shard[shard_of(e.ids[i], static_cast<uint32_t>(nshards))].push_back(i);
  }
  std::vector<std::string> files(static_cast<size_t>(nshards));
  for (int64_t s = 0; s < nshards; ++s) {
    sort_by_id(e, &by_shard[s]);
    for (int64_t i : by_shard[s]) append_frame(cfg, &e.recs[i * stride], e.ids[i], &files[s]);
  }
  return files;
}

std::vector<std::string> encode_slice(const TableConfig& cfg, const HostEntries& e,
                                      int64_t shard_idx, int64_t num_shards, int64_t limit,
                                      int64_t offset, int64_t* new_offset) {
  const int64_t stride = stride_of(cfg);
  std::vector<int64_t> mine;
  for (int64_t i = 0; i < static_cast<int64_t>(e.ids.size()); ++i)
    if (shard_of(e.ids[i], static_cast<uint32_t>(num_shards)) == shard_idx) mine.push_back(i);
  sort_by_id(e, &mine);
  const int64_t total = static_cast<int64_t>(mine.size());
  const int64_t b = std::min(offset, total);
  const int64_t end = limit > total - b ? total : b + limit;
  std::vector<std::string> out;
  for (int64_t k = b; k < end; ++k)
    out.push_back(dump_of(cfg, &e.recs[mine[k] * stride], true, e.ids[mine[k]]));
  *new_offset = offset + (end - b);
  return out;
}

std::vector<std::string> encode_entries(const TableConfig& cfg, const std::vector<float>& recs,
                                        const std::vector<uint8_t>& found) {
  const int64_t stride = stride_of(cfg);
  std::vector<std::string> out(found.size());
  for (size_t i = 0; i < found.size(); ++i)
    if (found[i]) out[i] = dump_of(cfg, &recs[i * stride], false, 0);
  return out;
}

Staged read_checkpoint(const TableConfig& cfg, const std::vector<std::string>& paths) {
  const int64_t D = cfg.dim, W = cfg.state_words, stride = D + W;
  Staged all;
  for (const std::string& path : paths) {
    const std::vector<uint8_t> buf = read_file(path);
    const uint8_t* data = buf.data();
    const size_t end = buf.size();
    size_t pos = 0;
    int64_t record = 0;
    std::string frame_error;
    while (pos < end) {  // every framed record is parsed before a framing error is reported
      const std::string where = path + ": record " + std::to_string(record) + ": ";
      const std::string at = " (record starts at byte " + std::to_string(pos) + ")";
      if (end - pos < 12) {
        frame_error = where + "truncated header (" + std::to_string(end - pos) + " of 12 bytes)" + at;
        break;
      }
      uint64_t len;
      uint32_t len_crc, crc;
      memcpy(&len, data + pos, 8);
      memcpy(&len_crc, data + pos + 8, 4);
      if (masked_crc(data + pos, 8) != len_crc) {
        frame_error = where + "length CRC mismatch" + at;
        break;
      }
      const size_t start = pos + 12;
      if (end - start < len) {
        frame_error = where + "truncated payload (" + std::to_string(end - start) + " of " +
                      std::to_string(len) + " bytes)" + at;
        break;
      }
      if (end - start - len < 4) {
        frame_error = where + "truncated footer (" + std::to_string(end - start - len) +
                      " of 4 bytes)" + at;
        break;
      }
      memcpy(&crc, data + start + len, 4);
      if (masked_crc(data + start, len) != crc)
        throw CheckpointFailure(where + "payload CRC mismatch" + at);
      const size_t base = all.ids.size();
      all.data.resize((base + 1) * stride);
      ParsedEntry pe;
      pe.num = all.data.data() + base * stride;
      pe.state = pe.num + D;
      const std::string err = parse_entry_dump(cfg, data + start, len, &pe);
      if (!err.empty()) throw CheckpointFailure(where + err);
      all.ids.push_back(pe.id);
      all.ts.push_back(pe.ts);
      all.num_count.push_back(static_cast<int32_t>(pe.num_count));
      pos = start + len + 4;
      ++record;
    }
    if (!frame_error.empty()) throw CheckpointFailure(frame_error);
  }
  // A later record of an id replaces the earlier one entirely: keep the last of each id.
  const int64_t n = static_cast<int64_t>(all.ids.size());
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(),
                   [&](int64_t a, int64_t b) { return all.ids[a] < all.ids[b]; });
  std::vector<int64_t> last;
  for (int64_t k = 0; k < n; ++k)
    if (k + 1 == n || all.ids[idx[k + 1]] != all.ids[idx[k]]) last.push_back(idx[k]);
  if (static_cast<int64_t>(last.size()) == n) return all;
  Staged out;
  for (int64_t i : last) {
    out.ids.push_back(all.ids[i]);
    out.ts.push_back(all.ts[i]);
    out.num_count.push_back(all.num_count[i]);
    out.data.insert(out.data.end(), all.data.begin() + i * stride,
                    all.data.begin() + (i + 1) * stride);
  }
  return out;
}

}  // namespace hashlab::gpu
