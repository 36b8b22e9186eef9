#include "config_text.h"

#include <cerrno>
#include <cstdlib>
#include <map>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace hashlab_tf {
namespace {

constexpr char kHeader[] = "hashlab-table-config 1";
constexpr int64_t kSlots = int64_t{1} << 15;

[[noreturn]] void fail(int line, const std::string& what) {
  throw std::invalid_argument("config: line " + std::to_string(line) + ": " + what);
}

// "key=value" tokens of one line after its leading word; each key exactly once.
class Fields {
 public:
  Fields(std::istringstream& in, int line) : line_(line) {
    std::string tok;
    while (in >> tok) {
      const size_t eq = tok.find('=');
      if (eq == std::string::npos || eq == 0) fail(line, "expected key=value, got '" + tok + "'");
      const std::string key = tok.substr(0, eq);
      if (!values_.emplace(key, tok.substr(eq + 1)).second) fail(line, "duplicate key " + key);
    }
  }
  int64_t integer(const std::string& key) {
    const std::string v = take(key);
    errno = 0;
    char* end = nullptr;
    const long long x = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || errno != 0) fail(line_, key + " is not an integer: " + v);
    return x;
  }
  float real(const std::string& key) {  // hex float (Python float.hex of an f32 value)
    const std::string v = take(key);
    errno = 0;
    char* end = nullptr;
    const float x = std::strtof(v.c_str(), &end);
    if (v.empty() || *end != '\0' || errno == ERANGE) fail(line_, key + " is not a float: " + v);
    return x;
  }
  void done() const {
    if (!values_.empty()) fail(line_, "unknown key " + values_.begin()->first);
  }

 private:
  std::string take(const std::string& key) {
    auto it = values_.find(key);
    if (it == values_.end()) fail(line_, "missing key " + key);
    std::string v = it->second;
    values_.erase(it);
    return v;
  }
  int line_;
  std::map<std::string, std::string> values_;
};

hashlab::Segment parse_segment(Fields& f) {
  hashlab::Segment s;
  s.dim = f.integer("dim");
  s.offset = f.integer("offset");
  s.state_offset = f.integer("state_offset");
  s.state_words = f.integer("state_words");
  s.init.kind = static_cast<hashlab::InitKind>(f.integer("init"));
  s.init.constant = f.real("constant");
  s.init.minval = f.real("minval");
  s.init.maxval = f.real("maxval");
  s.opt.kind = static_cast<hashlab::OptKind>(f.integer("opt"));
  s.opt.learning_rate = f.real("learning_rate");
  s.opt.weight_decay = f.real("weight_decay_factor");
  s.opt.initial_accumulator = f.real("initial_accumulator_value");
  s.opt.beta = f.real("beta");
  s.opt.l1 = f.real("l1_regularization_strength");
  s.opt.l2 = f.real("l2_regularization_strength");
  s.opt.averaging_ratio = f.real("averaging_ratio");
  s.opt.epsilon = f.real("epsilon");
  s.opt.beta1 = f.real("beta1");
  s.opt.beta2 = f.real("beta2");
  s.opt.momentum = f.real("momentum");
  s.opt.nesterov = f.integer("use_nesterov") != 0;
  s.comp.kind = static_cast<hashlab::CompKind>(f.integer("comp"));
  s.comp.r = f.real("r");
  s.comp.step_size = f.integer("step_size");
  s.comp.init_scale = f.real("init_scale");
  s.comp.max_scale = f.real("max_scale");
  s.comp.amplitude = f.real("amplitude");
  f.done();
  return s;
}

}  // namespace

hashlab::TableConfig parse_config_text(const std::string& text, uint64_t seed, bool quirks,
                                       int fid_version) {
  std::istringstream lines(text);
  std::string line;
  int no = 0;
  if (!std::getline(lines, line) || line != kHeader)
    throw std::invalid_argument(std::string("config: not a table config (first line must be '") +
                                kHeader + "')");
  ++no;
  hashlab::TableConfig cfg;
  cfg.seed = seed;
  cfg.quirks = quirks;
  cfg.fid_version = fid_version;
  bool have_table = false, have_expire = false;
  int64_t want_segments = -1;
  while (std::getline(lines, line)) {
    ++no;
    if (line.empty()) continue;
    std::istringstream in(line);
    std::string word;
    in >> word;
    if (word == "table") {
      if (have_table) fail(no, "second table line");
      Fields f(in, no);
      cfg.dim = f.integer("dim");
      cfg.state_words = f.integer("state_words");
      want_segments = f.integer("segments");
      f.done();
      have_table = true;
    } else if (word == "segment") {
      Fields f(in, no);
      cfg.segments.push_back(parse_segment(f));
    } else if (word == "expire") {
      if (have_expire) fail(no, "second expire line");
      std::string tok;
      if (!(in >> tok) || tok.rfind("default=", 0) != 0) fail(no, "expire needs default=DAYS");
      errno = 0;
      char* end = nullptr;
      const long long nd = std::strtoll(tok.c_str() + 8, &end, 10);
      if (tok.size() == 8 || *end != '\0' || errno != 0 || nd < 0)
        fail(no, "bad expire default: " + tok);
      cfg.expire_days.assign(kSlots, nd);
      while (in >> tok) {  // slot:days overrides
        const size_t colon = tok.find(':');
        errno = 0;
        const long long slot = std::strtoll(tok.c_str(), &end, 10);
        if (colon == std::string::npos || end != tok.c_str() + colon || errno != 0 || slot < 0 ||
            slot >= kSlots)
          fail(no, "bad slot override '" + tok + "' (want SLOT:DAYS, slot < 32768)");
        const long long days = std::strtoll(tok.c_str() + colon + 1, &end, 10);
        if (*end != '\0' || errno != 0 || days < 0) fail(no, "bad days in '" + tok + "'");
        cfg.expire_days[static_cast<size_t>(slot)] = days;
      }
      have_expire = true;
    } else {
      fail(no, "unknown line kind '" + word + "'");
    }
  }
  if (!have_table) throw std::invalid_argument("config: the table line is missing");
  if (!have_expire) throw std::invalid_argument("config: the expire line is missing");
  if (static_cast<int64_t>(cfg.segments.size()) != want_segments)
    throw std::invalid_argument("config: table says " + std::to_string(want_segments) +
                                " segments, found " + std::to_string(cfg.segments.size()));
  cfg.validate();
  return cfg;
}

}  // namespace hashlab_tf
