#include "checkpoint_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <system_error>

#include "common.h"
#include "table_config.h"  // CheckpointFailure

namespace hashlab {
namespace {

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

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_errno("cannot open directory " + dir, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw_errno("cannot fsync directory " + dir, err);
}

// "<dir>/<prefix>" split as glob would see it: the directory part exactly as given (so
// paths in messages read like the Python engines'), and the file-name prefix.
struct SplitBase {
  std::string dir_text;  // "" or ending in '/'
  std::string dir;       // "." when basename has no directory part
  std::string prefix;
};

SplitBase split_base(const std::string& basename) {
  const size_t slash = basename.rfind('/');
  SplitBase s;
  if (slash == std::string::npos) {
    s.dir.assign(1, '.');  // (assign, not = "."; gcc 12 -O3 warns falsely about the latter)
    s.prefix = basename;
  } else {
    s.dir_text = basename.substr(0, slash + 1);
    s.dir = slash == 0 ? "/" : basename.substr(0, slash);
    s.prefix = basename.substr(slash + 1);
  }
  return s;
}

// Parses "-NNNNN-of-MMMMM" exactly (five digits each).
bool parse_suffix(const std::string& suffix, int64_t* i, int64_t* n) {
  if (suffix.size() != 15 || suffix[0] != '-' || suffix.compare(6, 4, "-of-") != 0) return false;
  for (size_t k : {1u, 2u, 3u, 4u, 5u, 10u, 11u, 12u, 13u, 14u})
    if (suffix[k] < '0' || suffix[k] > '9') return false;
  *i = std::stoll(suffix.substr(1, 5));
  *n = std::stoll(suffix.substr(10, 5));
  return true;
}

// Names in the basename's directory that start with "<prefix>-" (what glob "basename-*"
// matches: a leading '.' is matched only when the prefix itself starts with one), sorted.
std::vector<std::string> matching_names(const SplitBase& b) {
  std::vector<std::string> names;
  DIR* d = ::opendir(b.dir.c_str());
  if (!d) return names;  // a missing directory holds no checkpoint
  const std::string want = b.prefix + "-";
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() > want.size() && name.compare(0, want.size(), want) == 0) names.push_back(name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

std::string shard_name(const std::string& basename, int64_t i, int64_t n) {
  char suffix[32];
  snprintf(suffix, sizeof suffix, "-%05lld-of-%05lld", static_cast<long long>(i),
           static_cast<long long>(n));
  return basename + suffix;
}

AtomicFile::AtomicFile(const std::string& path) : path_(path) {
  namespace fs = std::filesystem;
  const fs::path abs = fs::absolute(fs::path(path));
  dir_ = abs.parent_path().string();
  std::error_code ec;
  fs::create_directories(abs.parent_path(), ec);
  if (ec) throw std::system_error(ec, "cannot create directory " + dir_);
  path_ = abs.string();
  std::string hidden(1, '.');  // a dot name: shard globs (`basename-*`) never see it
  hidden += abs.filename().string();
  hidden += ".tmp-";
  hidden += random_hex();
  tmp_ = (abs.parent_path() / hidden).string();
  // O_EXCL: never clobber a file that happens to have the temporary name.
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd_ < 0) throw_errno("cannot create " + tmp_, errno);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!tmp_.empty()) ::unlink(tmp_.c_str());
}

void AtomicFile::write(const uint8_t* p, size_t n) {
  while (n) {
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot write " + tmp_, errno);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void AtomicFile::commit() {
  if (::fsync(fd_) != 0) throw_errno("cannot fsync " + tmp_, errno);
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) throw_errno("cannot close " + tmp_, errno);
  if (::rename(tmp_.c_str(), path_.c_str()) != 0)
    throw_errno("cannot rename " + tmp_ + " to " + path_, errno);
  tmp_.clear();  // renamed: nothing to remove any more
  fsync_dir(dir_);
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

std::vector<std::string> find_shard_set(const std::string& basename) {
  const SplitBase b = split_base(basename);
  const std::vector<std::string> names = matching_names(b);
  if (names.empty()) throw CheckpointFailure("no checkpoint files for " + basename);
  std::map<int64_t, std::string> found;
  int64_t n = -1;
  std::string first;
  for (const std::string& name : names) {
    const std::string path = b.dir_text + name;
    int64_t i = 0, count = 0;
    if (!parse_suffix(name.substr(b.prefix.size()), &i, &count))
      throw CheckpointFailure("stray file " + path + " matches " + basename +
                              "-* but is not a shard");
    if (n < 0) {
      n = count;
      first = path;
    } else if (count != n) {
      char msg[64];
      snprintf(msg, sizeof msg, " says -of-%05lld but ", static_cast<long long>(count));
      char tail[32];
      snprintf(tail, sizeof tail, " says -of-%05lld", static_cast<long long>(n));
      throw CheckpointFailure(path + msg + first + tail);
    }
    if (count < 1 || i >= count) {
      char msg[64];
      snprintf(msg, sizeof msg, "-of-%05lld", static_cast<long long>(count));
      throw CheckpointFailure(path + ": shard index " + std::to_string(i) +
                              " is out of range for " + msg);
    }
    found[i] = path;
  }
  std::vector<std::string> paths;
  for (int64_t i = 0; i < n; ++i) {
    auto it = found.find(i);
    if (it == found.end())
      throw CheckpointFailure("shard " + std::to_string(i) + " of " + std::to_string(n) +
                              " is missing: " + shard_name(basename, i, n));
    paths.push_back(it->second);
  }
  return paths;
}

void remove_stale_shards(const std::string& basename, int64_t keep_count) {
  const SplitBase b = split_base(basename);
  bool removed = false;
  for (const std::string& name : matching_names(b)) {
    int64_t i = 0, count = 0;
    if (!parse_suffix(name.substr(b.prefix.size()), &i, &count) || count == keep_count) continue;
    const std::string path = b.dir_text + name;
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)  // a concurrent cleaner got there first
      throw_errno("cannot remove stale shard " + path, errno);
    removed = true;
  }
  if (removed) fsync_dir(b.dir);
}

}  // namespace hashlab
