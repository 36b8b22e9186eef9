#include "shard_files.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <random>
#include <system_error>

#include "common.h"
#include "crc32c.h"
#include "entry_dump.h"

namespace hashlab_tf {
namespace fs = std::filesystem;
using hashlab::CheckpointFailure;

namespace {

struct Split {
  std::string dir, name;  // dirname (for listing) and the final path component
};

Split split_path(const std::string& basename) {
  const size_t slash = basename.rfind('/');
  if (slash == std::string::npos) return {".", basename};
  return {slash == 0 ? "/" : basename.substr(0, slash), basename.substr(slash + 1)};
}

// "-NNNNN-of-MMMMM" -> (i, n); false when the text is not exactly a shard suffix.
bool parse_suffix(const std::string& s, int64_t* i, int64_t* n) {
  if (s.size() != 15 || s[0] != '-' || s.compare(6, 4, "-of-") != 0) return false;
  auto digits = [&](size_t at, int64_t* out) {
    int64_t v = 0;
    for (size_t k = at; k < at + 5; ++k) {
      if (s[k] < '0' || s[k] > '9') return false;
      v = v * 10 + (s[k] - '0');
    }
    *out = v;
    return true;
  };
  return digits(1, i) && digits(10, n);
}

// Every `basename-*` path (sorted), like glob(escape(basename) + "-*").
std::vector<std::string> matches(const std::string& basename) {
  const Split sp = split_path(basename);
  std::vector<std::string> out;
  std::error_code ec;
  fs::directory_iterator it(sp.dir, ec), end;
  if (ec) return out;
  const std::string prefix = sp.name + "-";
  for (; it != end; it.increment(ec)) {
    if (ec) break;
    const std::string name = it->path().filename().string();
    if (name.size() >= prefix.size() && name.compare(0, prefix.size(), prefix) == 0)
      out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  const std::string head = basename.substr(0, basename.size() - sp.name.size());
  for (auto& name : out) name = head + name;
  return out;
}

std::string pad5(int64_t v) {
  char buf[16];
  snprintf(buf, sizeof buf, "%05lld", static_cast<long long>(v));
  return buf;
}

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "cannot open " + dir);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw std::system_error(err, std::generic_category(), "cannot fsync " + dir);
}

std::string unique_suffix() {
  static std::mt19937_64 gen{std::random_device{}()};
  static std::mutex mu;
  std::lock_guard<std::mutex> lk(mu);
  char buf[24];
  snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(gen()));
  return buf;
}

std::string read_whole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CheckpointFailure(path + ": cannot read checkpoint file: " + strerror(errno));
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Appends to `kept` the TFRecord frames of `path` whose entry belongs to `part`. Every frame
// is CRC-checked and every entry parsed, so a bad file is reported under its own name.
void filter_frames(const hashlab::TableConfig& cfg, const std::string& path, int64_t part,
                   int64_t num_parts, std::string* kept) {
  const std::string buf = read_whole(path);
  const auto* p = reinterpret_cast<const uint8_t*>(buf.data());
  std::vector<float> scratch(static_cast<size_t>(cfg.dim + cfg.state_words));
  size_t pos = 0;
  int64_t record = 0;
  while (pos < buf.size()) {
    const std::string where = path + ": record " + std::to_string(record) + ": ";
    if (buf.size() - pos < 12) throw CheckpointFailure(where + "truncated header");
    uint64_t len;
    uint32_t len_crc, crc;
    memcpy(&len, p + pos, 8);
    memcpy(&len_crc, p + pos + 8, 4);
    if (hashlab::masked_crc(p + pos, 8) != len_crc)
      throw CheckpointFailure(where + "length CRC mismatch");
    if (buf.size() - pos - 12 < len || buf.size() - pos - 12 - len < 4)
      throw CheckpointFailure(where + "truncated payload");
    memcpy(&crc, p + pos + 12 + len, 4);
    if (hashlab::masked_crc(p + pos + 12, len) != crc)
      throw CheckpointFailure(where + "payload CRC mismatch");
    hashlab::ParsedEntry e;
    e.num = scratch.data();
    e.state = scratch.data() + cfg.dim;
    const std::string err = hashlab::parse_entry_dump(cfg, p + pos + 12, len, &e);
    if (!err.empty()) throw CheckpointFailure(where + err);
    const size_t frame = 12 + len + 4;
    if (hashlab::shard_of(e.id, static_cast<uint32_t>(num_parts)) == part)
      kept->append(buf, pos, frame);
    pos += frame;
    ++record;
  }
}

}  // namespace

std::string shard_name(const std::string& basename, int64_t i, int64_t n) {
  return basename + "-" + pad5(i) + "-of-" + pad5(n);
}

std::vector<std::string> find_shards(const std::string& basename) {
  const std::vector<std::string> paths = matches(basename);
  if (paths.empty()) throw CheckpointFailure("no checkpoint files for " + basename);
  std::map<int64_t, std::string> found;
  int64_t n = -1;
  std::string first;
  for (const std::string& path : paths) {
    int64_t i, count;
    if (!parse_suffix(path.substr(basename.size()), &i, &count))
      throw CheckpointFailure("stray file " + path + " matches " + basename +
                              "-* but is not a shard");
    if (n < 0) {
      n = count;
      first = path;
    } else if (count != n) {
      throw CheckpointFailure(path + " says -of-" + pad5(count) + " but " + first +
                              " says -of-" + pad5(n));
    }
    if (count < 1 || i >= count)
      throw CheckpointFailure(path + ": shard index " + std::to_string(i) +
                              " is out of range for -of-" + pad5(count));
    found[i] = path;
  }
  std::vector<std::string> out;
  for (int64_t i = 0; i < n; ++i) {
    auto it = found.find(i);
    if (it == found.end())
      throw CheckpointFailure("shard " + std::to_string(i) + " of " + std::to_string(n) +
                              " is missing: " + shard_name(basename, i, n));
    out.push_back(it->second);
  }
  return out;
}

void remove_stale_shards(const std::string& basename, int64_t nshards) {
  bool removed = false;
  for (const std::string& path : matches(basename)) {
    int64_t i, count;
    if (parse_suffix(path.substr(basename.size()), &i, &count) && count != nshards) {
      std::error_code ec;  // a concurrent cleaner (another PS task) may have got there first
      removed |= fs::remove(path, ec);
    }
  }
  if (removed) fsync_dir(fs::absolute(fs::path(basename)).parent_path().string());
}

std::vector<std::string> save_part(const hashlab::Table& table, const std::string& basename,
                                   int64_t nshards, int64_t first, int64_t stride) {
  if (stride < 1 || first < 0 || first >= stride)
    throw std::invalid_argument("save: need 0 <= first < stride, got first " +
                                std::to_string(first) + ", stride " + std::to_string(stride));
  if (stride == 1) {
    std::vector<std::string> paths = table.save(basename, nshards);
    remove_stale_shards(basename, static_cast<int64_t>(paths.size()));
    return paths;
  }
  if (nshards < 1 || nshards % stride != 0)
    throw std::invalid_argument("nshards: a part save needs a shard count that is a multiple "
                                "of the number of parts (" + std::to_string(stride) +
                                "), got " + std::to_string(nshards));
  // The core writes every shard; this part's ids fill only its own, which are renamed into
  // place. The others must be empty and are dropped.
  const Split sp = split_path(basename);
  const std::string tmp = basename.substr(0, basename.size() - sp.name.size()) + "." + sp.name +
                          ".part" + std::to_string(first) + "-" + unique_suffix();
  std::vector<std::string> written;
  std::vector<std::string> out;
  try {
    written = table.save(tmp, nshards);
    for (int64_t s = 0; s < nshards; ++s) {
      if (s % stride == first) continue;
      if (fs::file_size(written[s]) != 0)
        throw std::invalid_argument("save: this part holds ids of shard " + std::to_string(s) +
                                    ", which belongs to part " + std::to_string(s % stride) +
                                    " (ids must be routed by shard_of(id, parts))");
    }
    for (int64_t s = first; s < nshards; s += stride) {
      const std::string dst = shard_name(basename, s, nshards);
      fs::rename(written[s], dst);
      written[s].clear();
      out.push_back(dst);
    }
  } catch (...) {
    std::error_code ec;
    for (const auto& w : written)
      if (!w.empty()) fs::remove(w, ec);
    throw;
  }
  std::error_code ec;
  for (const auto& w : written)
    if (!w.empty()) fs::remove(w, ec);
  fsync_dir(fs::absolute(fs::path(basename)).parent_path().string());
  remove_stale_shards(basename, nshards);
  return out;
}

void restore_part(hashlab::Table& table, const std::string& basename, int64_t part,
                  int64_t num_parts) {
  if (num_parts < 1 || part < 0 || part >= num_parts || num_parts > 0xFFFFFFFFLL)
    throw std::invalid_argument("restore: need 0 <= part < num_parts, got part " +
                                std::to_string(part) + " of " + std::to_string(num_parts));
  const std::vector<std::string> paths = find_shards(basename);
  const int64_t m = static_cast<int64_t>(paths.size());
  if (num_parts == 1) return table.restore(paths);
  if (m % num_parts == 0) {  // shard s holds ids of part s % num_parts only
    std::vector<std::string> mine;
    for (int64_t s = part; s < m; s += num_parts) mine.push_back(paths[s]);
    return table.restore(mine);
  }
  // Other counts: copy this part's frames into one private file and restore that.
  std::string kept;
  for (const std::string& path : paths)
    filter_frames(table.config(), path, part, num_parts, &kept);
  std::string dir = (fs::temp_directory_path() / "hashlab-restore-XXXXXX").string();
  if (!mkdtemp(dir.data()))
    throw std::system_error(errno, std::generic_category(), "cannot create " + dir);
  const std::string file = dir + "/part-00000-of-00001";
  try {
    std::ofstream out(file, std::ios::binary);
    out.write(kept.data(), static_cast<std::streamsize>(kept.size()));
    out.close();
    if (!out) throw std::system_error(errno, std::generic_category(), "cannot write " + file);
    table.restore({file});
  } catch (...) {
    std::error_code ec;
    fs::remove_all(dir, ec);
    throw;
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace hashlab_tf
