#include "shard_files.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>
#include <system_error>

#include "checkpoint_files.h"
#include "common.h"
#include "crc32c.h"
#include "entry_dump.h"

namespace hashlab_tf {
namespace fs = std::filesystem;
using hashlab::CheckpointFailure;

namespace {

std::string unique_suffix() {
  static std::mt19937_64 gen{std::random_device{}()};
  static std::mutex mu;
  std::lock_guard<std::mutex> lk(mu);
  char buf[24];
  snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(gen()));
  return buf;
}

void fsync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "cannot open " + dir.string());
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw std::system_error(err, std::generic_category(), "cannot fsync " + dir.string());
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

// Appends to `kept` the TFRecord frames of `path` whose entry belongs to `part`. Every frame
// is CRC-checked and every entry parsed, so a bad file is reported under its own name.
void filter_frames(const hashlab::TableConfig& cfg, const std::string& path, int64_t part,
                   int64_t num_parts, std::vector<uint8_t>* kept) {
  const hashlab::ByteBuffer buf = hashlab::read_file(path);
  const uint8_t* p = buf.data();
  const size_t end = buf.size();
  std::vector<float> scratch(static_cast<size_t>(cfg.dim + cfg.state_words));
  size_t pos = 0;
  for (int64_t record = 0; pos < end; ++record) {
    const std::string where = path + ": record " + std::to_string(record) + ": ";
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
    const size_t frame = 12 + len + 4;
    if (hashlab::shard_of(e.id, static_cast<uint32_t>(num_parts)) == part)
      kept->insert(kept->end(), p + pos, p + pos + frame);
    pos += frame;
  }
}

// Restores from a temporary shard set; its errors name the original files instead.
void restore_via(hashlab::Table& table, const std::string& tmp_basename,
                 const std::vector<std::pair<std::string, std::string>>& renames) {
  try {
    table.restore(tmp_basename);
  } catch (const CheckpointFailure& e) {
    std::string msg = e.what();
    for (const auto& [tmp, original] : renames)
      for (size_t at; (at = msg.find(tmp)) != std::string::npos;)
        msg.replace(at, tmp.size(), original);
    throw CheckpointFailure(msg);
  }
}

}  // namespace

std::vector<std::string> save_part(const hashlab::Table& table, const std::string& basename,
                                   int64_t nshards, int64_t first, int64_t stride) {
  if (stride < 1 || first < 0 || first >= stride)
    throw std::invalid_argument("save: need 0 <= first_shard < shard_stride, got " +
                                std::to_string(first) + " and " + std::to_string(stride));
  if (stride == 1) return table.save(basename, nshards);
  if (nshards < 1 || nshards % stride != 0)
    throw std::invalid_argument("nshards: a part save needs a shard count that is a multiple "
                                "of the number of parts (" + std::to_string(stride) +
                                "), got " + std::to_string(nshards));
  // The core writes every shard; this part's ids fill only its own, which are renamed into
  // place. The others must be empty and are dropped.
  const fs::path base(basename);
  const std::string tmp = (base.parent_path() / ("." + base.filename().string() + ".part" +
                                                 std::to_string(first) + "-" + unique_suffix()))
                              .string();
  std::vector<std::string> written, out;
  auto drop_written = [&] {
    std::error_code ec;
    for (const auto& w : written)
      if (!w.empty()) fs::remove(w, ec);
  };
  try {
    written = table.save(tmp, nshards);
    for (int64_t s = 0; s < nshards; ++s)
      if (s % stride != first && fs::file_size(written[s]) != 0)
        throw std::invalid_argument("save: this part holds ids of shard " + std::to_string(s) +
                                    ", which belongs to part " + std::to_string(s % stride) +
                                    " (ids must be routed by shard_of(id, parts))");
    for (int64_t s = first; s < nshards; s += stride) {
      const std::string dst = hashlab::shard_name(basename, s, nshards);
      fs::rename(written[s], dst);
      written[s].clear();
      out.push_back(dst);
    }
  } catch (...) {
    drop_written();
    throw;
  }
  drop_written();
  fsync_dir(fs::absolute(base).parent_path());
  hashlab::remove_stale_shards(basename, nshards);
  return out;
}

void restore_part(hashlab::Table& table, const std::string& basename, int64_t part,
                  int64_t num_parts) {
  if (num_parts < 1 || num_parts > hashlab::kMaxShards || part < 0 || part >= num_parts)
    throw std::invalid_argument("restore: need 0 <= part < num_parts <= 99999, got part " +
                                std::to_string(part) + " of " + std::to_string(num_parts));
  if (num_parts == 1) return table.restore(basename);
  const std::vector<std::string> paths = hashlab::find_shard_set(basename);
  const int64_t m = static_cast<int64_t>(paths.size());
  TempDir dir;
  const std::string tmp_base = dir.path() + "/part";
  std::vector<std::pair<std::string, std::string>> renames;
  if (m % num_parts == 0) {
    // Shard s holds ids of part s % num_parts only: link this part's files as a set of m/N.
    const int64_t k = m / num_parts;
    for (int64_t j = 0; j < k; ++j) {
      const std::string link = hashlab::shard_name(tmp_base, j, k);
      const fs::path target = fs::absolute(paths[part + j * num_parts]);
      fs::create_symlink(target, link);
      renames.emplace_back(link, paths[part + j * num_parts]);
    }
  } else {
    // Any other count: copy this part's frames into one file of a one-shard set.
    std::vector<uint8_t> kept;
    for (const std::string& path : paths)
      filter_frames(table.config(), path, part, num_parts, &kept);
    hashlab::AtomicFile out(hashlab::shard_name(tmp_base, 0, 1));
    out.write(kept.data(), kept.size());
    out.commit();
  }
  restore_via(table, tmp_base, renames);
}

}  // namespace hashlab_tf
