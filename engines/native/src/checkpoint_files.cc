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
#include "crc32c.h"
#include "table_config.h"  // CheckpointFailure

namespace hashlab {
namespace {

constexpr const char* kManifestHeader = "hashlab-checkpoint-manifest 1";
constexpr size_t kMaxManifestBytes = size_t{16} << 20;

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

bool is_hex16(const std::string& s) {
  if (s.size() != 16) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_errno("cannot open directory " + dir, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw_errno("cannot fsync directory " + dir, err);
}

void write_all(int fd, const uint8_t* p, size_t n, const std::string& what) {
  while (n) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot write " + what, errno);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

// "<dir>/<prefix>" split as glob would see it: the directory part exactly as given (so paths in
// messages read like the Python engines'), and the file-name prefix.
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

// Is `name` exactly "<prefix>-NNNNN-of-MMMMM"?
bool shard_file_name(const std::string& name, const std::string& prefix, int64_t* i,
                     int64_t* n) {
  return name.size() == prefix.size() + 15 && name.compare(0, prefix.size(), prefix) == 0 &&
         parse_suffix(name.substr(prefix.size()), i, n);
}

// Names in the basename's directory that start with `start`, sorted.
std::vector<std::string> names_starting(const std::string& dir, const std::string& start) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return names;  // a missing directory holds no checkpoint
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() > start.size() && name.compare(0, start.size(), start) == 0)
      names.push_back(name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

// Opens a file for reading without blocking (a FIFO would otherwise wait for a writer) and
// makes sure it is a regular file. Returns the fd and its size.
int open_regular(const std::string& path, uint64_t* size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) throw CheckpointFailure(path + ": checkpoint file not found");
    throw CheckpointFailure(path + ": cannot read checkpoint file: " + strerror(errno));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw CheckpointFailure(path + ": cannot stat checkpoint file: " + strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw CheckpointFailure(path + ": not a regular file (a directory, FIFO, socket or "
                            "device cannot be a checkpoint file)");
  }
  *size = static_cast<uint64_t>(st.st_size);
  return fd;
}

// Exactly `size` bytes of fd (the size fstat reported): never more, so a file that grows while
// it is read cannot make us allocate beyond what we checked.
ByteBuffer read_exactly(int fd, uint64_t size, const std::string& path) {
  ByteBuffer buf;
  buf.resize(static_cast<size_t>(size));
  size_t at = 0;
  while (at < size) {
    const ssize_t r = ::read(fd, buf.data() + at, static_cast<size_t>(size - at));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      const int err = errno;
      ::close(fd);
      throw CheckpointFailure(path + ": cannot read checkpoint file: " + strerror(err));
    }
    if (r == 0) {
      ::close(fd);
      throw CheckpointFailure(path + ": the file shrank while it was read");
    }
    at += static_cast<size_t>(r);
  }
  ::close(fd);
  return buf;
}

// ---- the manifest (docs/checkpoints.md) -------------------------------------------------------

struct Manifest {
  bool pending = false;
  std::vector<ShardRecord> shards;  // temp names only in a pending manifest
};

std::string committed_line(const ShardRecord& s) {
  char crc[16];
  snprintf(crc, sizeof crc, "%08x", s.crc);
  return "shard " + std::to_string(s.index) + " " + s.name + " " + std::to_string(s.size) + " " +
         crc;
}

std::string manifest_text(const Manifest& m) {
  std::string out = std::string(kManifestHeader) + "\n";
  out += m.pending ? "state pending\n" : "state committed\n";
  out += "shards " + std::to_string(m.shards.size()) + "\n";
  for (const ShardRecord& s : m.shards) out += (m.pending ? s.line() : committed_line(s)) + "\n";
  return out;
}

std::vector<std::string> split_words(const std::string& line) {
  std::vector<std::string> w;
  size_t i = 0;
  while (i <= line.size()) {
    const size_t sp = line.find(' ', i);
    w.push_back(line.substr(i, sp == std::string::npos ? std::string::npos : sp - i));
    if (sp == std::string::npos) break;
    i = sp + 1;
  }
  return w;
}

bool to_u64(const std::string& s, uint64_t* v) {
  if (s.empty() || s.size() > 20) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  errno = 0;
  *v = std::strtoull(s.c_str(), nullptr, 10);
  return errno != ERANGE && !(s.size() > 1 && s[0] == '0');
}

// Parses a manifest strictly; `prefix` is the basename's file-name prefix.
Manifest parse_manifest(const std::string& text, const std::string& prefix,
                        const std::string& path) {
  auto bad = [&](const std::string& what) -> CheckpointFailure {
    return CheckpointFailure(path + ": not a valid checkpoint manifest: " + what);
  };
  if (text.empty() || text.back() != '\n') throw bad("it must end with a newline");
  std::vector<std::string> lines;
  for (size_t i = 0; i < text.size();) {
    const size_t nl = text.find('\n', i);
    lines.push_back(text.substr(i, nl - i));
    i = nl + 1;
  }
  if (lines.size() < 3 || lines[0] != kManifestHeader)
    throw bad("the first line must be '" + std::string(kManifestHeader) + "'");
  Manifest m;
  if (lines[1] == "state pending") m.pending = true;
  else if (lines[1] != "state committed") throw bad("line 2 must be 'state committed|pending'");
  const auto count = split_words(lines[2]);
  uint64_t n = 0;
  if (count.size() != 2 || count[0] != "shards" || !to_u64(count[1], &n) || n < 1 ||
      n > static_cast<uint64_t>(kMaxShards))
    throw bad("line 3 must be 'shards <1..99999>'");
  if (lines.size() != 3 + n) throw bad("it lists " + std::to_string(lines.size() - 3) +
                                       " shard lines for " + std::to_string(n) + " shards");
  for (uint64_t i = 0; i < n; ++i) {
    ShardRecord r = ShardRecord::parse(lines[3 + i], prefix, static_cast<int64_t>(n), path,
                                       m.pending);
    if (r.index != static_cast<int64_t>(i)) throw bad("shard lines are out of order");
    m.shards.push_back(std::move(r));
  }
  return m;
}

// The manifest of basename, or false when there is none (a manifest-less checkpoint).
bool read_manifest(const std::string& basename, const SplitBase& b, Manifest* m) {
  const std::string path = basename + ".manifest";
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return false;
    throw CheckpointFailure(path + ": cannot stat checkpoint manifest: " + strerror(errno));
  }
  uint64_t size = 0;
  const int fd = open_regular(path, &size);
  if (size > kMaxManifestBytes) {
    ::close(fd);
    throw CheckpointFailure(path + ": not a valid checkpoint manifest: " +
                            std::to_string(size) + " bytes is too large");
  }
  ByteBuffer buf = read_exactly(fd, size, path);
  *m = parse_manifest(std::string(reinterpret_cast<const char*>(buf.data()), buf.size()),
                      b.prefix, path);
  return true;
}

void write_file_atomic_in(const std::string& dir, const std::string& name,
                          const std::string& data) {
  std::string hidden(1, '.');  // a dot name: shard globs (`basename-*`) never see it
  hidden += name;
  hidden += ".tmp-";
  hidden += random_hex();
  const std::string tmp = dir + "/" + hidden, path = dir + "/" + name;
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) throw_errno("cannot create " + tmp, errno);
  try {
    write_all(fd, reinterpret_cast<const uint8_t*>(data.data()), data.size(), tmp);
    if (::fsync(fd) != 0) throw_errno("cannot fsync " + tmp, errno);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw_errno("cannot close " + tmp, err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw_errno("cannot rename " + tmp + " to " + path, err);
  }
  fsync_dir(dir);
}

std::string make_dirs(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw std::system_error(ec, "cannot create directory " + dir);
  return dir;
}

}  // namespace

std::string ShardRecord::line() const { return committed_line(*this) + " " + temp; }

ShardRecord ShardRecord::parse(const std::string& line, const std::string& prefix, int64_t n,
                               const std::string& where, bool with_temp) {
  auto bad = [&](const std::string& what) {
    return CheckpointFailure(where + ": not a valid checkpoint manifest: " + what);
  };
  const auto w = split_words(line);
  if (w.size() != (with_temp ? 6u : 5u) || w[0] != "shard")
    throw bad("shard line '" + line + "' is malformed");
  ShardRecord r;
  uint64_t index = 0;
  int64_t si = 0, sn = 0;
  if (!to_u64(w[1], &index) || index >= static_cast<uint64_t>(n)) throw bad("bad shard index");
  r.index = static_cast<int64_t>(index);
  r.name = w[2];
  if (!shard_file_name(r.name, prefix, &si, &sn) || si != r.index || sn != n)
    throw bad("'" + r.name + "' is not shard " + std::to_string(r.index) + " of " +
              std::to_string(n) + " of " + prefix);
  if (!to_u64(w[3], &r.size)) throw bad("bad size in '" + line + "'");
  if (w[4].size() != 8 || w[4].find_first_not_of("0123456789abcdef") != std::string::npos)
    throw bad("bad crc32c in '" + line + "'");
  r.crc = static_cast<uint32_t>(std::strtoul(w[4].c_str(), nullptr, 16));
  if (!with_temp) return r;  // a committed manifest's line names no temporary
  r.temp = w[5];
  const std::string start = "." + r.name + ".tmp-";
  if (r.temp.size() != start.size() + 16 || r.temp.compare(0, start.size(), start) != 0 ||
      !is_hex16(r.temp.substr(start.size())))
    throw bad("bad temporary name '" + r.temp + "'");
  return r;
}

std::string shard_name(const std::string& basename, int64_t i, int64_t n) {
  char suffix[48];  // room for two full int64s: the compiler checks the worst case
  snprintf(suffix, sizeof suffix, "-%05lld-of-%05lld", static_cast<long long>(i),
           static_cast<long long>(n));
  return basename + suffix;
}

void check_basename(const std::string& basename) {
  if (basename.empty()) throw std::invalid_argument("basename must be a non-empty path");
  if (basename.find('\0') != std::string::npos)
    throw std::invalid_argument("basename must not contain a NUL byte");
  if (basename.back() == '/')
    throw std::invalid_argument("basename must name a file prefix, not a directory: " +
                                basename);
}

// ---- writing ---------------------------------------------------------------------------------

TempShard::TempShard(const std::string& dir, const std::string& final_name)
    : dir_(dir), final_name_(final_name) {
  temp_name_ = "." + final_name + ".tmp-" + random_hex();
  const std::string path = dir_ + "/" + temp_name_;
  // O_EXCL: never clobber a file that happens to have the temporary name.
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd_ < 0) throw_errno("cannot create " + path, errno);
}

TempShard::~TempShard() {
  if (fd_ >= 0) ::close(fd_);
  if (!keep_) ::unlink((dir_ + "/" + temp_name_).c_str());
}

void TempShard::write(const uint8_t* p, size_t n) {
  write_all(fd_, p, n, dir_ + "/" + temp_name_);
  crc_ = crc32c_extend(crc_, p, n);
  size_ += n;
}

void TempShard::finish() {
  const std::string path = dir_ + "/" + temp_name_;
  if (::fsync(fd_) != 0) throw_errno("cannot fsync " + path, errno);
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) throw_errno("cannot close " + path, errno);
}

ShardSetWriter::ShardSetWriter(const std::string& basename, int64_t nshards, int64_t first,
                               int64_t stride)
    : basename_(basename), nshards_(nshards), first_(first), stride_(stride) {
  check_basename(basename);
  if (nshards < 1 || nshards > kMaxShards)
    throw std::invalid_argument("nshards: shard count must be in [1, 99999], got " +
                                std::to_string(nshards));
  if (stride < 1 || first < 0 || first >= stride || nshards % stride != 0)
    throw std::invalid_argument("nshards: " + std::to_string(nshards) + " shards cannot be "
                                "split among " + std::to_string(stride) + " writers");
  const SplitBase b = split_base(basename);
  dir_ = make_dirs(std::filesystem::absolute(b.dir).lexically_normal().string());
  if (stride == 1) {
    // Leftovers of a killed save: hidden temporaries of this prefix that the current manifest
    // does not name (a pending manifest's temporaries may be the only copy of a checkpoint).
    // A writer of a shared set skips this: the other writers' temporaries look the same.
    Manifest current;
    bool have = false;
    try {
      have = read_manifest(basename, b, &current);
    } catch (const CheckpointFailure&) {
      have = false;  // unreadable: it names nothing we must keep
    }
    for (const std::string& name : names_starting(dir_, "." + b.prefix)) {
      const size_t tmp = name.rfind(".tmp-");
      if (tmp == std::string::npos || !is_hex16(name.substr(tmp + 5))) continue;
      const std::string target = name.substr(1, tmp - 1);
      int64_t i = 0, n = 0;
      if (target != b.prefix + ".manifest" && !shard_file_name(target, b.prefix, &i, &n))
        continue;
      bool named = false;
      if (have && current.pending)
        for (const ShardRecord& s : current.shards) named = named || s.temp == name;
      if (!named) ::unlink((dir_ + "/" + name).c_str());
    }
  }
  shards_.resize(static_cast<size_t>(nshards));
  for (int64_t i = first; i < nshards; i += stride)
    shards_[i] = std::make_unique<TempShard>(dir_, b.prefix + shard_name("", i, nshards));
}

ShardSetWriter::~ShardSetWriter() = default;

std::vector<ShardRecord> ShardSetWriter::records() {
  std::vector<ShardRecord> out;
  for (int64_t i = 0; i < nshards_; ++i) {
    if (!shards_[i]) continue;
    const TempShard& t = *shards_[i];
    out.push_back(ShardRecord{i, t.final_name(), t.temp_name(), t.size(), t.crc()});
    shards_[i]->keep();  // from here on the committer owns the temporary file
  }
  return out;
}

std::vector<std::string> ShardSetWriter::commit() {
  if (stride_ != 1) throw std::logic_error("a shared set is committed by commit_shard_set");
  return commit_shard_set(basename_, records());
}

std::vector<std::string> commit_shard_set(const std::string& basename,
                                          std::vector<ShardRecord> records) {
  check_basename(basename);
  const SplitBase b = split_base(basename);
  const std::string dir =
      std::filesystem::absolute(b.dir).lexically_normal().string();
  const int64_t n = static_cast<int64_t>(records.size());
  std::sort(records.begin(), records.end(),
            [](const ShardRecord& x, const ShardRecord& y) { return x.index < y.index; });
  for (int64_t i = 0; i < n; ++i) {
    int64_t si = 0, sn = 0;
    if (records[i].index != i || !shard_file_name(records[i].name, b.prefix, &si, &sn) ||
        si != i || sn != n)
      throw std::invalid_argument("shard records: need shards 0.." + std::to_string(n - 1) +
                                  " of " + b.prefix + " once each");
  }
  // A pending manifest of a killed save names temporaries that were kept as the only copy of
  // its set; once this commit replaces that manifest they are leftovers, removed below.
  std::vector<std::string> superseded;
  try {
    Manifest current;
    if (read_manifest(basename, b, &current) && current.pending)
      for (const ShardRecord& s : current.shards) superseded.push_back(s.temp);
  } catch (const CheckpointFailure&) {
    // unreadable: it names nothing to clean up
  }
  Manifest m;
  m.pending = true;
  m.shards = std::move(records);
  for (const ShardRecord& s : m.shards)
    superseded.erase(std::remove(superseded.begin(), superseded.end(), s.temp),
                     superseded.end());
  // The commit point: from here on, the new set is the checkpoint.
  write_file_atomic_in(dir, b.prefix + ".manifest", manifest_text(m));
  for (const ShardRecord& s : m.shards) {
    const std::string from = dir + "/" + s.temp, to = dir + "/" + s.name;
    if (::rename(from.c_str(), to.c_str()) != 0) throw_errno("cannot rename " + from, errno);
  }
  for (const std::string& name : names_starting(dir, b.prefix + "-")) {
    int64_t i = 0, count = 0;
    if (shard_file_name(name, b.prefix, &i, &count) && count != n) {
      const std::string path = dir + "/" + name;
      if (::unlink(path.c_str()) != 0 && errno != ENOENT)
        throw_errno("cannot remove stale shard " + path, errno);
    }
  }
  for (const std::string& temp : superseded) ::unlink((dir + "/" + temp).c_str());
  fsync_dir(dir);
  m.pending = false;
  write_file_atomic_in(dir, b.prefix + ".manifest", manifest_text(m));
  std::vector<std::string> paths;
  for (int64_t i = 0; i < n; ++i) paths.push_back(shard_name(basename, i, n));
  return paths;
}

void write_file_atomic(const std::string& path, const std::string& data) {
  const std::filesystem::path abs = std::filesystem::absolute(path);
  write_file_atomic_in(make_dirs(abs.parent_path().string()), abs.filename().string(), data);
}

// ---- reading ---------------------------------------------------------------------------------

ShardSet find_shard_set(const std::string& basename) {
  check_basename(basename);
  const SplitBase b = split_base(basename);
  ShardSet set;
  Manifest m;
  if (read_manifest(basename, b, &m)) {
    set.from_manifest = true;
    for (const ShardRecord& s : m.shards) {
      ShardToRead r;
      r.path = b.dir_text + s.name;
      struct stat st;
      if (m.pending && ::lstat((b.dir + "/" + s.temp).c_str(), &st) == 0)
        r.path = b.dir_text + s.temp;  // not renamed yet: the pending set's copy
      r.verified = true;
      r.size = s.size;
      r.crc = s.crc;
      set.shards.push_back(std::move(r));
    }
    return set;
  }
  std::map<int64_t, std::string> found;
  int64_t n = -1;
  std::string first;
  for (const std::string& name : names_starting(b.dir, b.prefix + "-")) {
    int64_t i = 0, count = 0;
    if (!shard_file_name(name, b.prefix, &i, &count)) continue;  // another table's file
    const std::string path = b.dir_text + name;
    if (n < 0) {
      n = count;
      first = path;
    } else if (count != n) {
      char mine[24], theirs[24];
      snprintf(mine, sizeof mine, "%05lld", static_cast<long long>(count));
      snprintf(theirs, sizeof theirs, "%05lld", static_cast<long long>(n));
      throw CheckpointFailure(path + " says -of-" + mine + " but " + first + " says -of-" +
                              theirs);
    }
    if (count < 1 || i >= count) {
      char c[24];
      snprintf(c, sizeof c, "%05lld", static_cast<long long>(count));
      throw CheckpointFailure(path + ": shard index " + std::to_string(i) +
                              " is out of range for -of-" + c);
    }
    found[i] = path;
  }
  if (n < 0) throw CheckpointFailure("no checkpoint files for " + basename);
  for (int64_t i = 0; i < n; ++i) {
    auto it = found.find(i);
    if (it == found.end())
      throw CheckpointFailure("shard " + std::to_string(i) + " of " + std::to_string(n) +
                              " is missing: " + shard_name(basename, i, n));
    ShardToRead r;
    r.path = it->second;
    set.shards.push_back(std::move(r));
  }
  return set;
}

ByteBuffer read_shard(const ShardToRead& s) {
  uint64_t size = 0;
  const int fd = open_regular(s.path, &size);
  if (s.verified && size != s.size) {
    ::close(fd);
    throw CheckpointFailure(s.path + ": " + std::to_string(size) + " bytes, the checkpoint "
                            "manifest says " + std::to_string(s.size) +
                            " (a foreign, truncated or partly written shard)");
  }
  return read_exactly(fd, size, s.path);
}

void verify_shard_crc(const ShardToRead& s, const ByteBuffer& bytes) {
  if (s.verified && crc32c(bytes.data(), bytes.size()) != s.crc)
    throw CheckpointFailure(s.path + ": CRC32C differs from the checkpoint manifest's (a "
                            "foreign or modified shard)");
}

}  // namespace hashlab
