#include "shard_files.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <system_error>

#include "checkpoint_files.h"
#include "common.h"
#include "crc32c.h"
#include "entry_dump.h"

namespace hashlab_tf {
namespace fs = std::filesystem;
using hashlab::CheckpointFailure;

namespace {

std::string random_hex16() {
  static std::mt19937_64 gen{std::random_device{}()};
  static std::mutex mu;
  std::lock_guard<std::mutex> lk(mu);
  char buf[24];
  snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(gen()));
  return buf;
}

void fsync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    throw std::system_error(errno, std::generic_category(), "cannot open " + dir.string());
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0)
    throw std::system_error(err, std::generic_category(), "cannot fsync " + dir.string());
}

std::string hex8(uint32_t v) {
  char buf[16];
  snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

struct Line {
  int64_t shard = 0;
  std::string name, size, crc, temp;
};

Line parse_line(const std::string& text) {
  std::istringstream in(text);
  Line l;
  std::string extra;
  if (!(in >> l.shard >> l.name >> l.size >> l.crc >> l.temp) || (in >> extra))
    throw std::invalid_argument("shard line '" + text + "' is not '<shard> <name> <size> "
                                "<crc> <temp>'");
  return l;
}

// A private directory under the system temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir() : path_((fs::temp_directory_path() / "hashlab-restore-XXXXXX").string()) {
    if (!mkdtemp(path_.data()))
      throw std::system_error(errno, std::generic_category(), "cannot create " + path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Appends to `kept` the TFRecord frames of shard `index` of `count` whose entry belongs to
// `part`. The shard is read and checked as the core's restore does: size and CRC32C against
// the manifest when there is one, both CRCs of every frame, every entry parsed against the
// table's layout, and (manifest) each id in the shard its hash names.
void keep_part_frames(const hashlab::TableConfig& cfg, const hashlab::ShardToRead& shard,
                      int64_t index, int64_t count, int64_t part, int64_t num_parts,
                      std::string* kept) {
  const hashlab::ByteBuffer buf = hashlab::read_shard(shard);
  const uint8_t* p = buf.data();
  const size_t end = buf.size();
  std::vector<float> scratch(static_cast<size_t>(cfg.dim + cfg.state_words));
  size_t pos = 0;
  for (int64_t record = 0; pos < end; ++record) {
    const std::string where = shard.path + ": record " + std::to_string(record) + ": ";
    if (end - pos < 12) throw CheckpointFailure(where + "truncated header");
    uint64_t len;
    uint32_t len_crc, crc;
    memcpy(&len, p + pos, 8);
    memcpy(&len_crc, p + pos + 8, 4);
    if (hashlab::masked_crc(p + pos, 8) != len_crc)
      throw CheckpointFailure(where + "length CRC mismatch");
    if (end - pos - 12 < len || end - pos - 12 - len < 4)
      throw CheckpointFailure(where + "truncated payload");
    memcpy(&crc, p + pos + 12 + len, 4);
    if (hashlab::masked_crc(p + pos + 12, len) != crc)
      throw CheckpointFailure(where + "payload CRC mismatch");
    hashlab::ParsedEntry e;
    e.num = scratch.data();
    e.state = scratch.data() + cfg.dim;
    const std::string err = hashlab::parse_entry_dump(cfg, p + pos + 12, len, &e);
    if (!err.empty()) throw CheckpointFailure(where + err);
    if (shard.verified && hashlab::shard_of(e.id, static_cast<uint32_t>(count)) != index)
      throw CheckpointFailure(where + "id " + std::to_string(e.id) + " belongs to another "
                              "shard (a foreign or misplaced shard)");
    const size_t frame = 12 + len + 4;
    if (hashlab::shard_of(e.id, static_cast<uint32_t>(num_parts)) == part)
      kept->append(reinterpret_cast<const char*>(p + pos), frame);
    pos += frame;
  }
  hashlab::verify_shard_crc(shard, buf);
}

}  // namespace

std::vector<std::string> write_part_shards(const hashlab::Table& table,
                                           const std::string& basename, int64_t nshards,
                                           int64_t first, int64_t stride) {
  hashlab::check_basename(basename);
  if (stride < 1 || first < 0 || first >= stride)
    throw std::invalid_argument("save: need 0 <= first_shard < shard_stride, got " +
                                std::to_string(first) + " and " + std::to_string(stride));
  if (nshards < 1 || nshards > hashlab::kMaxShards || nshards % stride != 0)
    throw std::invalid_argument("nshards: a part save needs a shard count that is a multiple "
                                "of the number of parts (" + std::to_string(stride) +
                                "), got " + std::to_string(nshards));
  // The core writes (and commits) every shard under a private prefix; this task's ids fill
  // only its own shards, which move to the temporary names of the final set. The others must
  // be empty.
  const fs::path base(basename);
  const fs::path dir = fs::absolute(base).parent_path();
  const std::string prefix = base.filename().string();
  const std::string scratch = (base.parent_path() / ("." + prefix + ".part" +
                                                     std::to_string(first) + "-" +
                                                     random_hex16())).string();
  std::vector<std::string> written;
  auto drop_scratch = [&] {
    std::error_code ec;
    for (const auto& w : written)
      if (!w.empty()) fs::remove(w, ec);
    fs::remove(scratch + ".manifest", ec);
  };
  std::vector<std::string> lines;
  try {
    written = table.save(scratch, nshards);
    const hashlab::ShardSet set = hashlab::find_shard_set(scratch);
    for (int64_t s = 0; s < nshards; ++s) {
      const hashlab::ShardToRead& shard = set.shards[s];
      if (s % stride != first) {
        if (shard.size != 0)
          throw std::invalid_argument("save: this part holds ids of shard " +
                                      std::to_string(s) + ", which belongs to part " +
                                      std::to_string(s % stride) +
                                      " (ids must be routed by shard_of(id, parts))");
        continue;
      }
      const std::string name = prefix + hashlab::shard_name("", s, nshards);
      const std::string temp = "." + name + ".tmp-" + random_hex16();
      fs::rename(written[s], dir / temp);
      written[s].clear();
      lines.push_back(std::to_string(s) + " " + name + " " + std::to_string(shard.size) + " " +
                      hex8(shard.crc) + " " + temp);
    }
  } catch (...) {
    drop_scratch();
    throw;
  }
  drop_scratch();
  fsync_dir(dir);
  return lines;
}

std::vector<std::string> commit_part_shards(const std::string& basename, int64_t nshards,
                                            const std::vector<std::string>& lines) {
  hashlab::check_basename(basename);
  std::map<int64_t, Line> by_shard;
  for (const std::string& text : lines) {
    Line l = parse_line(text);
    if (l.shard < 0 || l.shard >= nshards || !by_shard.emplace(l.shard, l).second)
      throw std::invalid_argument("shard lines: shard " + std::to_string(l.shard) +
                                  " is out of range or listed twice");
  }
  if (static_cast<int64_t>(by_shard.size()) != nshards)
    throw std::invalid_argument("shard lines: " + std::to_string(by_shard.size()) + " of " +
                                std::to_string(nshards) + " shards were written");
  const fs::path dir = fs::absolute(fs::path(basename)).parent_path();
  const std::string manifest = basename + ".manifest";
  // docs/checkpoints.md: the pending manifest is the commit point; then rename, drop the shards
  // of another count, fsync, and mark it committed.
  auto text = [&](bool pending) {
    std::string out = "hashlab-checkpoint-manifest 1\n";
    out += pending ? "state pending\n" : "state committed\n";
    out += "shards " + std::to_string(nshards) + "\n";
    for (const auto& [s, l] : by_shard) {
      out += "shard " + std::to_string(s) + " " + l.name + " " + l.size + " " + l.crc;
      out += pending ? " " + l.temp + "\n" : "\n";
    }
    return out;
  };
  hashlab::write_file_atomic(manifest, text(true));
  std::vector<std::string> paths;
  for (const auto& [s, l] : by_shard) {
    fs::rename(dir / l.temp, dir / l.name);
    paths.push_back(hashlab::shard_name(basename, s, nshards));
  }
  const std::string prefix = fs::path(basename).filename().string();
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    int64_t count = 0;
    if (name.size() == prefix.size() + 15 && name.compare(0, prefix.size(), prefix) == 0 &&
        std::sscanf(name.c_str() + prefix.size(), "-%*5d-of-%5ld", &count) == 1 &&
        count != nshards) {
      std::error_code ec;
      fs::remove(entry.path(), ec);
    }
  }
  fsync_dir(dir);
  hashlab::write_file_atomic(manifest, text(false));
  hashlab::find_shard_set(basename);  // the core's reader accepts what we wrote
  return paths;
}

std::unique_ptr<hashlab::Table::Restored> stage_part(const hashlab::Table& table,
                                                     const std::string& basename, int64_t part,
                                                     int64_t num_parts) {
  if (num_parts < 1 || num_parts > hashlab::kMaxShards || part < 0 || part >= num_parts)
    throw std::invalid_argument("restore: need 0 <= part < num_parts <= 99999, got part " +
                                std::to_string(part) + " of " + std::to_string(num_parts));
  if (num_parts == 1) return table.stage_restore(basename);
  const hashlab::ShardSet set = hashlab::find_shard_set(basename);
  const int64_t m = static_cast<int64_t>(set.shards.size());
  // Shard s holds ids of part s % num_parts only when num_parts divides the count.
  const int64_t step = m % num_parts == 0 ? num_parts : 1;
  std::string kept;
  for (int64_t s = m % num_parts == 0 ? part : 0; s < m; s += step)
    keep_part_frames(table.config(), set.shards[s], s, m, part, num_parts, &kept);
  TempDir tmp;
  const std::string tmp_base = tmp.path() + "/part";
  hashlab::write_file_atomic(hashlab::shard_name(tmp_base, 0, 1), kept);
  return table.stage_restore(tmp_base);
}

}  // namespace hashlab_tf
