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

constexpr const char* kManifestHeader = "hashlab-checkpoint-manifest 2";
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

// Names in a directory that start with `start`, sorted; a missing directory holds none. `*err`
// is the errno of a directory that exists but cannot be listed (0 otherwise).
std::vector<std::string> list_names(const std::string& dir, const std::string& start, int* err) {
  std::vector<std::string> names;
  *err = 0;
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    if (errno != ENOENT && errno != ENOTDIR) *err = errno;
    return names;
  }
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() > start.size() && name.compare(0, start.size(), start) == 0)
      names.push_back(name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

// For a reader: CheckpointFailure "<dir>: cannot list directory: ..." (dir as the basename
// gives it) when the directory cannot be listed.
std::vector<std::string> names_starting(const std::string& dir, const std::string& start) {
  int err = 0;
  std::vector<std::string> names = list_names(dir, start, &err);
  if (err) throw CheckpointFailure(dir + ": cannot list directory: " + strerror(err));
  return names;
}

// For a save: std::system_error (OSError) "cannot list directory <dir>: ..." before it writes
// anything (it could not remove an older save's files).
std::vector<std::string> names_for_save(const std::string& dir, const std::string& shown,
                                        const std::string& start) {
  int err = 0;
  std::vector<std::string> names = list_names(dir, start, &err);
  if (err) throw_errno("cannot list directory " + shown, err);
  return names;
}

// Opens a file for reading without blocking (a FIFO would otherwise wait for a writer) and
// makes sure it is a regular file. Returns the fd and its size; -1 when the file does not
// exist and `missing_ok`.
int open_regular(const std::string& path, uint64_t* size, bool missing_ok = false) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT && missing_ok) return -1;
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

constexpr const char* kManifestHeaderV1 = "hashlab-checkpoint-manifest 1";  // read only

struct Manifest {
  bool pending = false;
  uint64_t generation = 0;          // 0: a version-1 manifest (no generation line)
  std::vector<ShardRecord> shards;  // temp names only in a pending manifest
};

// The generation of a save that replaces `current` (null: no readable manifest).
uint64_t next_generation(const Manifest* current) {
  return current == nullptr || current->generation == UINT64_MAX ? 1 : current->generation + 1;
}

std::string committed_line(const ShardRecord& s) {
  char crc[16];
  snprintf(crc, sizeof crc, "%08x", s.crc);
  return "shard " + std::to_string(s.index) + " " + s.name + " " + std::to_string(s.size) + " " +
         crc;
}

std::string manifest_text(const Manifest& m) {
  std::string out = std::string(kManifestHeader) + "\n";
  out += m.pending ? "state pending\n" : "state committed\n";
  out += "generation " + std::to_string(m.generation) + "\n";
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
  if (lines[0] != kManifestHeader && lines[0] != kManifestHeaderV1)
    throw bad("the first line must be '" + std::string(kManifestHeader) + "' (or version 1's '" +
              kManifestHeaderV1 + "')");
  const size_t head = lines[0] == kManifestHeaderV1 ? 3 : 4;  // lines before the shard lines
  if (lines.size() < head) throw bad("it ends after line " + std::to_string(lines.size()));
  Manifest m;
  if (lines[1] == "state pending") m.pending = true;
  else if (lines[1] != "state committed") throw bad("line 2 must be 'state committed|pending'");
  if (head == 4) {
    const auto g = split_words(lines[2]);
    if (g.size() != 2 || g[0] != "generation" || !to_u64(g[1], &m.generation) ||
        m.generation == 0)
      throw bad("line 3 must be 'generation <1..2^64-1>'");
  }
  const auto count = split_words(lines[head - 1]);
  uint64_t n = 0;
  if (count.size() != 2 || count[0] != "shards" || !to_u64(count[1], &n) || n < 1 ||
      n > static_cast<uint64_t>(kMaxShards))
    throw bad("line " + std::to_string(head) + " must be 'shards <1..99999>'");
  if (lines.size() != head + n) throw bad("it lists " + std::to_string(lines.size() - head) +
                                          " shard lines for " + std::to_string(n) + " shards");
  for (uint64_t i = 0; i < n; ++i) {
    ShardRecord r = ShardRecord::parse(lines[head + i], prefix, static_cast<int64_t>(n), path,
                                       m.pending);
    if (r.index != static_cast<int64_t>(i)) throw bad("shard lines are out of order");
    m.shards.push_back(std::move(r));
  }
  return m;
}

std::optional<Manifest> parse_snapshot(const std::optional<std::string>& snapshot,
                                       const std::string& basename, const SplitBase& b) {
  if (!snapshot) return std::nullopt;
  return parse_manifest(*snapshot, b.prefix, basename + ".manifest");
}

// A save's view of the current manifest: null when there is none or it cannot be read (then
// it names nothing the save must keep).
std::optional<Manifest> current_manifest(const std::string& basename, const SplitBase& b) {
  try {
    return parse_snapshot(manifest_snapshot(basename), basename, b);
  } catch (const CheckpointFailure&) {
    return std::nullopt;
  }
}

// Writes dir/name via a hidden temporary, fsync and rename; on a failure before the rename the
// temporary is removed and dir/name is untouched. sync_dir false leaves the fsync of the
// directory (the rename's durability) to the caller.
void write_file_atomic_in(const std::string& dir, const std::string& name,
                          const std::string& data, bool sync_dir = true) {
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
  if (sync_dir) fsync_dir(dir);
}

std::string make_dirs(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw std::system_error(ec, "cannot create directory " + dir);
  return dir;
}

// Removes leftovers of killed saves: hidden temporaries of this prefix that `current` (a
// pending manifest) does not name; a pending manifest's temporaries may be the only copy of
// its checkpoint.
void remove_leftovers(const std::string& dir, const std::string& prefix,
                      const std::vector<std::string>& names, const Manifest* current) {
  for (const std::string& name : names) {
    const size_t tmp = name.rfind(".tmp-");
    if (tmp == std::string::npos || tmp == 0 || !is_hex16(name.substr(tmp + 5))) continue;
    const std::string target = name.substr(1, tmp - 1);
    int64_t i = 0, n = 0;
    if (target != prefix + ".manifest" && !shard_file_name(target, prefix, &i, &n)) continue;
    bool named = false;
    if (current && current->pending)
      for (const ShardRecord& s : current->shards) named = named || s.temp == name;
    if (!named) ::unlink((dir + "/" + name).c_str());
  }
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
  prefix_ = b.prefix;
  const std::vector<std::string> names = names_for_save(dir_, b.dir, "." + b.prefix);
  if (stride == 1) {
    // Leftovers of a killed save. A writer of a shared set skips this: the other writers'
    // temporaries look the same.
    const std::optional<Manifest> current = current_manifest(basename, b);
    remove_leftovers(dir_, b.prefix, names, current ? &*current : nullptr);
  }
  shards_.resize(static_cast<size_t>(nshards));
}

ShardSetWriter::~ShardSetWriter() = default;

TempShard& ShardSetWriter::shard(int64_t i) {
  if (i < 0 || i >= nshards_ || !owns(i))
    throw std::logic_error("shard " + std::to_string(i) + " is not this writer's");
  if (!shards_[i]) shards_[i] = std::make_unique<TempShard>(dir_, prefix_ + shard_name("", i,
                                                                                       nshards_));
  return *shards_[i];
}

std::vector<ShardRecord> ShardSetWriter::records() {
  std::vector<ShardRecord> out;
  for (int64_t i = first_; i < nshards_; i += stride_)
    if (!shards_[i] || !shards_[i]->finished())
      throw std::logic_error("shard " + std::to_string(i) + " was not written");
  for (int64_t i = first_; i < nshards_; i += stride_) {
    const TempShard& t = *shards_[i];
    out.push_back(ShardRecord{i, t.final_name(), t.temp_name(), t.size(), t.crc()});
    shards_[i]->keep();  // from here on the commit owns the temporary file
  }
  return out;
}

SaveResult ShardSetWriter::commit() {
  if (stride_ != 1) throw std::logic_error("a shared set is committed by commit_shard_set");
  return commit_shard_set(basename_, records());
}

namespace {

// Before the commit point: a rename after it must not fail on a directory in the way.
void check_final_names(const std::string& dir, const std::vector<ShardRecord>& records) {
  for (const ShardRecord& r : records) {
    const std::string path = dir + "/" + r.name;
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
      throw std::system_error(EISDIR, std::generic_category(),
                              "cannot save shard " + r.name + ": a directory has its name");
  }
}

// Steps 5-7 of a save (docs/checkpoints.md), after the commit point: every failure is
// collected into the result's warning, none is thrown.
std::string after_commit(const std::string& basename, const std::string& dir,
                         const std::string& prefix, const Manifest& pending,
                         const std::vector<std::string>& superseded) {
  std::vector<std::string> problems;
  auto attempt = [&](const std::string& what, auto&& step) {
    try {
      step();
      return true;
    } catch (const std::system_error& e) {
      problems.push_back(what + ": " + e.code().message());
      return false;
    }
  };
  auto remove = [&](const std::string& name) {
    const std::string path = dir + "/" + name;
    attempt("remove " + name, [&] {
      if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw_errno("cannot remove " + path,
                                                                      errno);
    });
  };
  // The commit must be durable before any final name changes (else a power loss could keep
  // the renames and lose the manifest that names their CRCs).
  bool renamed = attempt("fsync the directory after the commit", [&] { fsync_dir(dir); });
  if (renamed)
    for (const ShardRecord& s : pending.shards) {
      const std::string from = dir + "/" + s.temp, to = dir + "/" + s.name;
      renamed &= attempt("rename " + s.temp + " to " + s.name, [&] {
        if (::rename(from.c_str(), to.c_str()) != 0) throw_errno("cannot rename " + from, errno);
      });
    }
  int err = 0;
  std::vector<std::string> stale;
  for (const std::string& name : list_names(dir, prefix + "-", &err)) {
    int64_t i = 0, count = 0;  // another count's set: an older save's
    if (shard_file_name(name, prefix, &i, &count) &&
        count != static_cast<int64_t>(pending.shards.size()))
      stale.push_back(name);
  }
  if (err)
    problems.push_back("list the directory for an older save's shards: " +
                       std::string(strerror(err)));
  std::vector<std::string> old_temps = superseded;  // an earlier pending manifest's
  std::sort(old_temps.begin(), old_temps.end());
  for (const std::string& name : stale) remove(name);
  for (const std::string& name : old_temps) remove(name);
  Manifest committed = pending;
  committed.pending = false;
  const bool done = renamed && attempt("fsync the directory", [&] { fsync_dir(dir); }) &&
                    attempt("write the committed manifest", [&] {
                      write_file_atomic_in(dir, prefix + ".manifest", manifest_text(committed));
                    });
  if (problems.empty()) return "";
  std::string out = basename + ": saved (the new checkpoint is committed), but a step after the "
                    "commit failed: ";
  for (size_t i = 0; i < problems.size(); ++i) out += (i ? "; " : "") + problems[i];
  if (!done)
    out += "; the manifest stays pending and names where each new shard is (restore reads "
           "them; the next save finishes the job)";
  return out;
}

}  // namespace

SaveResult commit_shard_set(const std::string& basename, std::vector<ShardRecord> records) {
  check_basename(basename);
  const SplitBase b = split_base(basename);
  const std::string dir = std::filesystem::absolute(b.dir).lexically_normal().string();
  const int64_t n = static_cast<int64_t>(records.size());
  Manifest m;
  m.pending = true;
  std::vector<std::string> superseded;
  try {
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
    // its set; once this commit replaces that manifest they are leftovers, removed after it.
    const std::optional<Manifest> current = current_manifest(basename, b);
    if (current && current->pending)
      for (const ShardRecord& s : current->shards) superseded.push_back(s.temp);
    for (const ShardRecord& s : records)
      superseded.erase(std::remove(superseded.begin(), superseded.end(), s.temp),
                       superseded.end());
    m.generation = next_generation(current ? &*current : nullptr);
    m.shards = records;
    check_final_names(dir, m.shards);
    fsync_dir(dir);  // the temporaries are durable before the manifest names them
    // The commit point: once this rename happened, the new set is the checkpoint.
    write_file_atomic_in(dir, b.prefix + ".manifest", manifest_text(m), false);
  } catch (...) {
    for (const ShardRecord& s : records)  // everything this save wrote
      if (!s.temp.empty()) ::unlink((dir + "/" + s.temp).c_str());
    throw;
  }
  SaveResult out;
  out.warning = after_commit(basename, dir, b.prefix, m, superseded);
  for (int64_t i = 0; i < n; ++i) out.paths.push_back(shard_name(basename, i, n));
  return out;
}

void write_file_atomic(const std::string& path, const std::string& data) {
  const std::filesystem::path abs = std::filesystem::absolute(path);
  write_file_atomic_in(make_dirs(abs.parent_path().string()), abs.filename().string(), data);
}

// ---- reading ---------------------------------------------------------------------------------

std::optional<std::string> manifest_snapshot(const std::string& basename) {
  const std::string path = basename + ".manifest";
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return std::nullopt;
    throw CheckpointFailure(path + ": cannot stat checkpoint manifest: " + strerror(errno));
  }
  uint64_t size = 0;
  const int fd = open_regular(path, &size);
  if (size > kMaxManifestBytes) {
    ::close(fd);
    throw CheckpointFailure(path + ": not a valid checkpoint manifest: " +
                            std::to_string(size) + " bytes is too large");
  }
  const ByteBuffer buf = read_exactly(fd, size, path);
  return std::string(reinterpret_cast<const char*>(buf.data()), buf.size());
}

bool same_manifest(const std::string& basename, const std::optional<std::string>& snapshot) {
  try {
    return manifest_snapshot(basename) == snapshot;
  } catch (const CheckpointFailure&) {
    return false;  // unreadable now: the next attempt reports it
  }
}

ShardSet find_shard_set(const std::string& basename, const std::optional<std::string>& snapshot) {
  check_basename(basename);
  const SplitBase b = split_base(basename);
  ShardSet set;
  if (const std::optional<Manifest> m = parse_snapshot(snapshot, basename, b)) {
    set.from_manifest = true;
    for (const ShardRecord& s : m->shards) {
      ShardToRead r;
      r.path = b.dir_text + s.name;
      struct stat st;
      if (m->pending && ::lstat((b.dir + "/" + s.temp).c_str(), &st) == 0) {
        r.path = b.dir_text + s.temp;  // not renamed yet: the pending set's copy (or, once
        r.fallback = b.dir_text + s.name;  // renamed, the final name)
      }
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

ShardSet find_shard_set(const std::string& basename) {
  check_basename(basename);
  return find_shard_set(basename, manifest_snapshot(basename));
}

OpenShard::OpenShard(const ShardToRead& s) : path_(s.path) {
  fd_ = open_regular(path_, &size_, !s.fallback.empty());
  if (fd_ < 0) {  // a save renamed the pending temporary to its final name meanwhile
    path_ = s.fallback;
    fd_ = open_regular(path_, &size_);
  }
  if (s.verified && size_ != s.size) {
    ::close(fd_);
    fd_ = -1;
    throw CheckpointFailure(path_ + ": " + std::to_string(size_) + " bytes, the checkpoint "
                            "manifest says " + std::to_string(s.size) +
                            " (a foreign, truncated or partly written shard)");
  }
}

OpenShard::OpenShard(OpenShard&& o) noexcept : fd_(o.fd_), size_(o.size_), path_(o.path_) {
  o.fd_ = -1;
}

OpenShard::~OpenShard() {
  if (fd_ >= 0) ::close(fd_);
}

ByteBuffer OpenShard::read() {
  const int fd = fd_;
  fd_ = -1;  // read_exactly closes it
  return read_exactly(fd, size_, path_);
}

void verify_shard_crc(const ShardToRead& s, const std::string& path, const ByteBuffer& bytes) {
  if (s.verified && crc32c(bytes.data(), bytes.size()) != s.crc)
    throw CheckpointFailure(path + ": CRC32C differs from the checkpoint manifest's (a foreign "
                            "or modified shard)");
}

void check_still_without_manifest(const std::string& basename) {
  struct stat st;
  if (::lstat((basename + ".manifest").c_str(), &st) == 0)
    throw CheckpointFailure(basename + ".manifest appeared while the checkpoint was read");
}

}  // namespace hashlab
