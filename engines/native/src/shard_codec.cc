#include "shard_codec.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <future>

#include "common.h"
#include "crc32c.h"
#include "entry_dump.h"

namespace hashlab {
namespace {

constexpr int64_t kSecondsPerDay = 86400;
constexpr size_t kFrameBytes = 16;          // length, length CRC, payload CRC
constexpr size_t kBlockBytes = size_t{4} << 20;  // encode/write unit of a save

inline uint8_t* put_u32(uint8_t* p, uint32_t v) {
  memcpy(p, &v, 4);
  return p + 4;
}

// An upper bound on one entry's EntryDump bytes: every float word costs at most 5 bytes (tag +
// 4), every tag, length and varint at most 11, a handful per segment.
size_t max_dump_bytes(const TableConfig& cfg) {
  return 64 + 5 * static_cast<size_t>(cfg.dim + cfg.state_words) + 48 * cfg.segments.size();
}

// Frames of entries[b, e) into buf (its memory is reused across blocks), in one pass over the
// rows: each payload is encoded in place and its length and CRCs filled in around it.
// Entries are in id order, so their rows are scattered in memory: a row's lines are fetched
// kAhead entries before it is encoded.
void encode_block(const TableConfig& cfg, const std::vector<EntryRef>& es, int64_t b, int64_t e,
                  ByteBuffer* buf) {
  constexpr int64_t kAhead = 8;
  const int64_t row_bytes = cfg.record_words() * 4;
  buf->resize(static_cast<size_t>(e - b) * (kFrameBytes + max_dump_bytes(cfg)));
  uint8_t* p = buf->data();
  for (int64_t i = b; i < e; ++i) {
    if (i + kAhead < e) {
      const char* r = reinterpret_cast<const char*>(es[i + kAhead].rec);
      for (int64_t off = 0; off < row_bytes; off += 64) __builtin_prefetch(r + off);
    }
    uint8_t* payload = p + 12;
    const uint8_t* end = encode_entry_dump(cfg, es[i].rec, true, es[i].id, payload);
    const uint64_t len = static_cast<uint64_t>(end - payload);
    memcpy(p, &len, 8);
    put_u32(p + 8, masked_crc(p, 8));
    p = put_u32(payload + len, masked_crc(payload, len));
  }
  buf->resize(static_cast<size_t>(p - buf->data()));
}

bool by_id(const EntryRef& a, const EntryRef& b) { return a.id < b.id; }

struct Frame {
  size_t start, length;
};

}  // namespace

int64_t auto_nshards(int64_t live_entries) {
  return std::min<int64_t>(4, std::max<int64_t>(1, live_entries / 1000000));
}

bool expired(const TableConfig& cfg, int64_t id, uint32_t ts, int64_t max_ts) {
  const int64_t days = cfg.expire_days[ttl_slot(id, cfg.fid_version)];
  const int64_t expire = static_cast<int64_t>(static_cast<uint64_t>(days) *
                                              static_cast<uint64_t>(kSecondsPerDay));
  return max_ts - static_cast<int64_t>(ts) >= expire;
}

std::vector<std::vector<EntryRef>> ShardCodec::sorted_buckets(const EntrySource& src, bool ttl,
                                                              int64_t max_ts, int64_t shard_idx,
                                                              int64_t num_shards) const {
  const int T = pool_.size();
  const int64_t buckets = shard_idx >= 0 ? 1 : num_shards;
  const int64_t ts_word = cfg_.dim + cfg_.state_words;
  std::vector<std::vector<std::vector<EntryRef>>> local(static_cast<size_t>(T));
  pool_.run([&](int t) {
    auto& mine = local[t];
    mine.assign(static_cast<size_t>(buckets), {});
    std::vector<EntryRef> part;
    for (int64_t p = t; p < src.parts(); p += T) {
      part.clear();
      src.list(p, &part);
      for (const EntryRef& e : part) {
        if (ttl) {
          uint32_t ts;
          memcpy(&ts, e.rec + ts_word, 4);
          if (expired(cfg_, e.id, ts, max_ts)) continue;
        }
        const int64_t s = shard_of(e.id, static_cast<uint32_t>(num_shards));
        if (shard_idx < 0)
          mine[s].push_back(e);
        else if (s == shard_idx)
          mine[0].push_back(e);
      }
    }
    for (auto& b : mine) std::sort(b.begin(), b.end(), by_id);
  });
  std::vector<std::vector<EntryRef>> out(static_cast<size_t>(buckets));
  for (int64_t s = 0; s < buckets; ++s) {
    std::vector<EntryRef>& dst = out[s];
    for (int t = 0; t < T; ++t) {
      std::vector<EntryRef>& run = local[t][s];
      if (dst.empty()) {
        dst.swap(run);
        continue;
      }
      std::vector<EntryRef> merged(dst.size() + run.size());
      std::merge(dst.begin(), dst.end(), run.begin(), run.end(), merged.begin(), by_id);
      dst.swap(merged);
      std::vector<EntryRef>().swap(run);
    }
  }
  return out;
}

// Encoding overlaps writing: the pool encodes a wave of blocks (one per thread) while the
// previous wave is written by a second thread, so a save costs about max(encode, write).
void ShardCodec::write_shard(const std::vector<EntryRef>& es, TempShard* file) const {
  const int T = pool_.size();
  const int64_t n = static_cast<int64_t>(es.size());
  const size_t est = kFrameBytes + 5 * static_cast<size_t>(cfg_.dim + cfg_.state_words) + 32;
  const int64_t per_block = std::max<int64_t>(256, static_cast<int64_t>(kBlockBytes / est));
  const int64_t blocks = (n + per_block - 1) / per_block;
  std::vector<ByteBuffer> waves[2];
  waves[0].resize(static_cast<size_t>(T));
  waves[1].resize(static_cast<size_t>(T));
  std::future<void> writing;  // declared last: joined before the buffers and file go away
  for (int64_t first = 0, w = 0; first < blocks; first += T, ++w) {
    std::vector<ByteBuffer>& wave = waves[w & 1];
    pool_.run([&](int t) {
      const int64_t block = first + t;
      if (block >= blocks) {
        wave[t].resize(0);
        return;
      }
      encode_block(cfg_, es, block * per_block, std::min(n, (block + 1) * per_block), &wave[t]);
    });
    if (writing.valid()) writing.get();
    writing = std::async(std::launch::async, [file, &wave] {
      for (const ByteBuffer& b : wave) file->write(b.data(), b.size());
    });
  }
  if (writing.valid()) writing.get();
  file->finish();
}

SaveResult ShardCodec::save(const EntrySource& src, int64_t max_ts, const std::string& basename,
                            int64_t nshards) const {
  if (nshards == -1) {
    int64_t live = 0;
    std::vector<EntryRef> part;
    for (int64_t p = 0; p < src.parts(); ++p) {
      part.clear();
      src.list(p, &part);
      live += static_cast<int64_t>(part.size());
    }
    nshards = auto_nshards(live);
  }
  ShardSetWriter writer(basename, nshards);  // checks basename and nshards
  const auto shards = sorted_buckets(src, true, max_ts, -1, nshards);
  for (int64_t s = 0; s < nshards; ++s) write_shard(shards[s], &writer.shard(s));
  return writer.commit();
}

std::vector<ShardRecord> ShardCodec::save_part(const EntrySource& src, int64_t max_ts,
                                               const std::string& basename, int64_t nshards,
                                               int64_t first, int64_t stride) const {
  ShardSetWriter writer(basename, nshards, first, stride);  // checks the split
  const auto shards = sorted_buckets(src, true, max_ts, -1, nshards);
  for (int64_t s = 0; s < nshards; ++s) {
    if (writer.owns(s)) {
      write_shard(shards[s], &writer.shard(s));
    } else if (!shards[s].empty()) {
      throw std::invalid_argument("save: this part holds ids of shard " + std::to_string(s) +
                                  ", which belongs to part " + std::to_string(s % stride) +
                                  " (ids must be routed by shard_of(id, parts))");
    }
  }
  return writer.records();
}

Blobs ShardCodec::slice(const EntrySource& src, int64_t shard_idx, int64_t num_shards,
                        int64_t limit, int64_t offset, int64_t* new_offset) const {
  if (num_shards < 1 || num_shards > 0xFFFFFFFFLL || shard_idx < 0 || shard_idx >= num_shards ||
      limit < 1 || offset < 0)
    throw std::invalid_argument("save_as_tensor: bad shard_idx/num_shards/limit/offset");
  const auto buckets = sorted_buckets(src, false, 0, shard_idx, num_shards);
  const std::vector<EntryRef>& es = buckets[0];
  const int64_t total = static_cast<int64_t>(es.size());
  const int64_t b = std::min(offset, total);
  const int64_t e = limit > total - b ? total : b + limit;
  Blobs out;
  std::vector<uint8_t> tmp;
  for (int64_t i = b; i < e; ++i) {
    tmp.resize(entry_dump_size(cfg_, es[i].rec, true));
    encode_entry_dump(cfg_, es[i].rec, true, es[i].id, tmp.data());
    out.push(tmp.data(), tmp.size());
  }
  *new_offset = offset + (e - b);
  return out;
}

// Frames of one file are found sequentially (each length is needed to find the next), then
// the records are CRC-checked and parsed by the pool in parallel into out's staging area.
void ShardCodec::parse_file(const ShardToRead& shard, OpenShard& file, int64_t placement,
                            int64_t num_shards, int64_t part, int64_t num_parts, Staged* out,
                            size_t* presize_bytes) const {
  const int T = pool_.size();
  const int64_t D = cfg_.dim, stride = D + cfg_.state_words;
  const std::string path = file.path();
  ByteBuffer buf = file.read();
  out->files.push_back(path);
  out->file_starts.push_back(out->size());
  std::vector<Frame> frames;
  std::string frame_error;
  size_t pos = 0;
  const size_t end = buf.size();
  // Error strings are built only on failure (this loop runs once per record).
  auto where = [&] { return path + ": record " + std::to_string(frames.size()) + ": "; };
  auto at = [&] { return " (record starts at byte " + std::to_string(pos) + ")"; };
  if (end > 0) frames.reserve(end / (kFrameBytes + 8 + 5 * static_cast<size_t>(D)) + 16);
  while (pos < end) {
    if (end - pos < 12) {
      frame_error = where() + "truncated header (" + std::to_string(end - pos) + " of 12 bytes)" + at();
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
  const int64_t base = out->size();
  const int64_t count = static_cast<int64_t>(frames.size());
  if (*presize_bytes && count > 0) {
    // Size the staging area once for the whole checkpoint from this file's record density
    // (growing it by doubling would copy and page-fault it several times over).
    const size_t est = static_cast<size_t>(static_cast<double>(*presize_bytes) /
                                           static_cast<double>(end) * count * 1.02) + 16;
    *presize_bytes = 0;
    if (est > static_cast<size_t>(count)) {
      out->ids.reserve(est);
      out->ts.reserve(est);
      out->num_count.reserve(est);
      out->rows.reserve(est * static_cast<size_t>(stride) * 4);
    }
  }
  out->ids.resize(static_cast<size_t>(base + count));
  out->ts.resize(out->ids.size());
  out->num_count.resize(out->ids.size());
  out->rows.resize(out->ids.size() * static_cast<size_t>(stride) * 4);
  float* rows = reinterpret_cast<float*>(out->rows.data());
  std::vector<int64_t> bad_index(static_cast<size_t>(T), -1);
  std::vector<std::string> bad_what(static_cast<size_t>(T));
  pool_.run([&](int t) {
    int64_t b, e;
    ThreadPool::range(count, T, t, &b, &e);
    for (int64_t i = b; i < e; ++i) {
      const Frame& f = frames[i];
      const uint8_t* payload = buf.data() + f.start;
      uint32_t crc;
      memcpy(&crc, payload + f.length, 4);
      std::string err;
      if (masked_crc(payload, f.length) != crc) {
        err = "payload CRC mismatch (record starts at byte " + std::to_string(f.start - 12) + ")";
      } else {
        float* slot = rows + (base + i) * stride;
        ParsedEntry pe;
        pe.num = slot;
        pe.state = slot + D;
        err = parse_entry_dump(cfg_, payload, f.length, &pe);
        if (err.empty() && placement >= 0 &&
            shard_of(pe.id, static_cast<uint32_t>(num_shards)) != placement)
          err = "id " + std::to_string(pe.id) + " belongs to shard " +
                std::to_string(shard_of(pe.id, static_cast<uint32_t>(num_shards))) + " of " +
                std::to_string(num_shards) + ", not this one (a foreign or misplaced shard)";
        out->ids[base + i] = pe.id;
        out->ts[base + i] = pe.ts;
        out->num_count[base + i] = pe.num_count;
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
  verify_shard_crc(shard, path, buf);
  if (num_parts > 1) {  // keep only this part's ids (every record was checked above)
    int64_t kept = base;
    for (int64_t i = base; i < base + count; ++i) {
      if (shard_of(out->ids[i], static_cast<uint32_t>(num_parts)) != part) continue;
      if (kept != i) {
        out->ids[kept] = out->ids[i];
        out->ts[kept] = out->ts[i];
        out->num_count[kept] = out->num_count[i];
        memmove(rows + kept * stride, rows + i * stride, static_cast<size_t>(stride) * 4);
      }
      ++kept;
    }
    out->ids.resize(static_cast<size_t>(kept));
    out->ts.resize(static_cast<size_t>(kept));
    out->num_count.resize(static_cast<size_t>(kept));
    out->rows.resize(static_cast<size_t>(kept * stride) * 4);
  }
}

Staged ShardCodec::read(const std::string& basename, int64_t part, int64_t num_parts) const {
  if (num_parts < 1 || num_parts > kMaxShards || part < 0 || part >= num_parts)
    throw std::invalid_argument("restore: need 0 <= part < num_parts <= 99999, got part " +
                                std::to_string(part) + " of " + std::to_string(num_parts));
  check_basename(basename);
  std::string last;
  for (int attempt = 0; attempt < kReadAttempts; ++attempt) {
    const std::optional<std::string> snapshot = manifest_snapshot(basename);
    try {
      return read_set(find_shard_set(basename, snapshot), basename, part, num_parts);
    } catch (const CheckpointFailure& e) {
      if (same_manifest(basename, snapshot)) throw;
      last = e.what();  // a save replaced the manifest meanwhile: read the new one
    }
  }
  throw CheckpointFailure(basename + ": the checkpoint was replaced " +
                          std::to_string(kReadAttempts) + " times while it was read (another "
                          "process keeps saving it); the last attempt failed with: " + last);
}

Staged ShardCodec::read_set(const ShardSet& set, const std::string& basename, int64_t part,
                            int64_t num_parts) const {
  size_t total_bytes = 0;
  for (const ShardToRead& shard : set.shards) {
    struct stat st;
    if (::stat(shard.path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
      total_bytes += static_cast<size_t>(st.st_size);
  }
  Staged out;
  const int64_t n = static_cast<int64_t>(set.shards.size());
  // With a manifest (our placement) and a count the parts divide, shard i holds only ids of
  // part i % num_parts: the other files need not be read.
  const bool skip = set.from_manifest && n % num_parts == 0;
  std::vector<int64_t> wanted;
  for (int64_t i = 0; i < n; ++i)
    if (!skip || i % num_parts == part) wanted.push_back(i);
  for (size_t start = 0; start < wanted.size(); start += kOpenBatch) {
    const size_t stop = std::min(wanted.size(), start + static_cast<size_t>(kOpenBatch));
    std::vector<OpenShard> files;  // opened before any is read: their bytes are fixed now
    files.reserve(stop - start);
    for (size_t k = start; k < stop; ++k) files.emplace_back(set.shards[wanted[k]]);
    if (!set.from_manifest) check_still_without_manifest(basename);
    for (size_t k = start; k < stop; ++k) {
      const int64_t i = wanted[k];
      parse_file(set.shards[i], files[k - start], set.from_manifest ? i : -1, n, part,
                 num_parts, &out, &total_bytes);
    }
  }
  check_unique_ids(out);
  return out;
}

// Every id once: ids are spread over hash buckets, each bucket checked with an open-addressing
// set by one thread. A duplicate names both records (Monolith's own saves never repeat an id;
// a repeat means a copied or foreign shard).
void ShardCodec::check_unique_ids(const Staged& st) const {
  const int64_t n = st.size();
  if (n < 2) return;
  constexpr int kBucketBits = 6, kBuckets = 1 << kBucketBits;
  const int T = pool_.size();
  auto bucket_of = [](uint64_t h) { return static_cast<int>(h >> (64 - kBucketBits)); };
  std::vector<std::vector<std::vector<int64_t>>> local(
      static_cast<size_t>(T), std::vector<std::vector<int64_t>>(kBuckets));
  pool_.run([&](int t) {
    int64_t b, e;
    ThreadPool::range(n, T, t, &b, &e);
    for (int64_t i = b; i < e; ++i) local[t][bucket_of(mix64(~static_cast<uint64_t>(st.ids[i])))]
        .push_back(i);
  });
  std::vector<std::string> dup(static_cast<size_t>(T));
  auto where = [&](int64_t i) {
    const auto it = std::upper_bound(st.file_starts.begin(), st.file_starts.end(), i) - 1;
    const size_t f = static_cast<size_t>(it - st.file_starts.begin());
    return st.files[f] + " record " + std::to_string(i - *it);
  };
  pool_.run([&](int t) {
    std::vector<int64_t> set;
    for (int b = t; b < kBuckets; b += T) {
      size_t count = 0;
      for (int u = 0; u < T; ++u) count += local[u][b].size();
      size_t cap = 16;
      while (cap < 2 * count) cap *= 2;
      set.assign(cap, -1);
      // records in file order (threads' ranges are in order), so the first of a pair comes first
      for (int u = 0; u < T && dup[t].empty(); ++u)
        for (int64_t i : local[u][b]) {
          size_t k = mix64(static_cast<uint64_t>(st.ids[i])) & (cap - 1);
          while (set[k] >= 0 && st.ids[set[k]] != st.ids[i]) k = (k + 1) & (cap - 1);
          if (set[k] >= 0) {
            dup[t] = "id " + std::to_string(st.ids[i]) + " appears twice: " + where(set[k]) +
                     " and " + where(i);
            break;
          }
          set[k] = i;
        }
    }
  });
  for (const std::string& d : dup)
    if (!d.empty()) throw CheckpointFailure(d + " (a duplicated or foreign shard)");
}

}  // namespace hashlab
