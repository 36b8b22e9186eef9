#include "table_config.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iterator>

namespace hashlab {
namespace {

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument("config: " + what); }

template <size_t N>
int index_of(const char* const (&names)[N], std::string_view name, const char* what) {
  for (size_t i = 0; i < N; ++i)
    if (name == names[i]) return static_cast<int>(i);
  bad("unknown " + std::string(what) + " '" + std::string(name) + "'");
}

int64_t to_int(std::string_view s, const std::string& where) {
  const std::string text(s);
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE) bad(where + ": '" + text + "' is not an int64");
  return v;
}

uint64_t to_uint(std::string_view s, const std::string& where) {
  const std::string text(s);
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || text[0] == '-' || *end != '\0' || errno == ERANGE)
    bad(where + ": '" + text + "' is not a uint64");
  return v;
}

// Floats are hex floats ("0x1.99999ap-4"): strtod reads them exactly.
float to_float(std::string_view s, const std::string& where) {
  const std::string text(s);
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0') bad(where + ": '" + text + "' is not a number");
  const float f = static_cast<float>(v);
  if (static_cast<double>(f) != v) bad(where + ": " + text + " is not an exact float32");
  return f;
}

bool to_bool(std::string_view s, const std::string& where) {
  if (s == "0") return false;
  if (s == "1") return true;
  bad(where + ": '" + std::string(s) + "' is not 0 or 1");
}

std::vector<std::string_view> split_ws(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    const size_t b = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > b) out.push_back(line.substr(b, i - b));
  }
  return out;
}

// key=value pairs of one segment line; each key may appear once.
struct Fields {
  std::vector<std::pair<std::string_view, std::string_view>> kv;
  std::string where;

  const std::string_view* find(std::string_view key) const {
    for (const auto& p : kv)
      if (p.first == key) return &p.second;
    return nullptr;
  }
  std::string_view need(std::string_view key) const {
    const std::string_view* v = find(key);
    if (!v) bad(where + " is missing " + std::string(key));
    return *v;
  }
  std::string at(std::string_view key) const { return where + "." + std::string(key); }
  int64_t i(std::string_view key) const { return to_int(need(key), at(key)); }
  float f(std::string_view key) const { return to_float(need(key), at(key)); }
  bool b(std::string_view key) const { return to_bool(need(key), at(key)); }
};

// The config fields each optimizer's math reads (see opt_math.h); all are required.
void read_opt(const Fields& fl, OptParams* p) {
  using K = OptKind;
  const K k = p->kind;
  const bool wd = k == K::kAdagrad || k == K::kAdadelta || k == K::kAdam || k == K::kAmsgrad ||
                  k == K::kMomentum || k == K::kRmsprop || k == K::kRmspropV2 ||
                  k == K::kGroupAdagrad;
  if (wd) p->weight_decay = fl.f("weight_decay_factor");
  if (k == K::kAdagrad || k == K::kFtrl || k == K::kGroupAdagrad)
    p->initial_accumulator = fl.f("initial_accumulator_value");
  if (k == K::kFtrl || k == K::kGroupAdagrad) {
    p->beta = fl.f("beta");
    p->l2 = fl.f("l2_regularization_strength");
  }
  if (k == K::kFtrl) p->l1 = fl.f("l1_regularization_strength");
  if (k == K::kAdadelta) {
    p->averaging_ratio = fl.f("averaging_ratio");
    p->epsilon = fl.f("epsilon");
  }
  if (k == K::kAdam || k == K::kAmsgrad) {
    p->beta1 = fl.f("beta1");
    p->beta2 = fl.f("beta2");
    p->epsilon = fl.f("epsilon");
  }
  if (k == K::kAdam || k == K::kAmsgrad || k == K::kMomentum) p->nesterov = fl.b("use_nesterov");
  if (k == K::kMomentum || k == K::kRmsprop || k == K::kRmspropV2 || k == K::kMovingAverage)
    p->momentum = fl.f("momentum");
  if (k == K::kRmsprop || k == K::kRmspropV2) p->learning_rate = fl.f("learning_rate");
}

void read_init(const Fields& fl, InitParams* p) {
  if (p->kind == InitKind::kConstants) p->constant = fl.f("constant");
  if (p->kind == InitKind::kRandomUniform) {
    p->minval = fl.f("minval");
    p->maxval = fl.f("maxval");
  }
}

void read_comp(const Fields& fl, CompParams* p) {
  if (p->kind == CompKind::kFixedR8) p->r = fl.f("r");
  if (p->kind == CompKind::kOneBit) {
    p->step_size = fl.i("step_size");
    p->init_scale = fl.f("init_scale");
    p->max_scale = fl.f("max_scale");
    p->amplitude = fl.f("amplitude");
  }
}

Segment parse_segment(const std::vector<std::string_view>& words, size_t index) {
  Fields fl;
  fl.where = "segment " + std::to_string(index);
  for (size_t w = 1; w < words.size(); ++w) {
    const size_t eq = words[w].find('=');
    if (eq == std::string_view::npos || eq == 0)
      bad(fl.where + ": '" + std::string(words[w]) + "' is not key=value");
    const std::string_view key = words[w].substr(0, eq);
    if (fl.find(key)) bad(fl.where + ": " + std::string(key) + " given twice");
    fl.kv.emplace_back(key, words[w].substr(eq + 1));
  }
  Segment s;
  s.dim = fl.i("dim");
  s.offset = fl.i("offset");
  s.state_offset = fl.i("state_offset");
  s.state_words = fl.i("state_words");
  s.opt.kind = static_cast<OptKind>(index_of(kOptimizerNames, fl.need("optimizer"), "optimizer"));
  s.init.kind =
      static_cast<InitKind>(index_of(kInitializerNames, fl.need("initializer"), "initializer"));
  s.comp.kind =
      static_cast<CompKind>(index_of(kCompressorNames, fl.need("compressor"), "compressor"));
  read_opt(fl, &s.opt);
  read_init(fl, &s.init);
  read_comp(fl, &s.comp);
  return s;
}

}  // namespace

void TableConfig::validate() const {
  if (segments.empty()) bad("at least one segment is required");
  int64_t off = 0, soff = 0;
  for (size_t k = 0; k < segments.size(); ++k) {
    const Segment& s = segments[k];
    const std::string seg = "segment " + std::to_string(k);
    if (s.dim < 1 || s.dim > kMaxRowWords)
      bad(seg + " dim " + std::to_string(s.dim) + " is out of range [1, " +
          std::to_string(kMaxRowWords) + "]");
    if (static_cast<uint32_t>(s.opt.kind) >= std::size(kOptimizerNames) ||
        static_cast<uint32_t>(s.init.kind) >= std::size(kInitializerNames) ||
        static_cast<uint32_t>(s.comp.kind) >= std::size(kCompressorNames))
      bad(seg + ": unknown optimizer/initializer/compressor kind");
    if (s.offset != off || s.state_offset != soff ||
        s.state_words != opt_state_words(s.opt.kind, s.dim))
      bad(seg + " layout does not match its dim and optimizer");
    if (s.comp.kind == CompKind::kOneBit && s.comp.step_size <= 0)
      bad("one_bit step_size must be > 0 (" + seg + ")");
    off += s.dim;
    soff += s.state_words;
    if (off + soff + 3 > kMaxRowWords)
      bad("dim " + std::to_string(off) + " is too large: an entry would exceed " +
          std::to_string(kMaxRowWords * 4) + " bytes");
  }
  if (dim != off || state_words != soff) bad("dim/state_words do not match the segments");
  if (fid_version != 1 && fid_version != 2) bad("fid_version must be 1 or 2");
  if (expire_days.size() != static_cast<size_t>(kTtlSlots))
    bad("expire_days must have " + std::to_string(kTtlSlots) + " entries");
  for (int64_t d : expire_days)
    if (d < 0) bad("expire days must be >= 0");
}

TableConfig TableConfig::parse(std::string_view text) {
  TableConfig cfg;
  bool seen[7] = {false};  // dim state_words seed quirks fid_version expire_default header
  static constexpr const char* kScalars[] = {"dim", "state_words", "seed", "quirks",
                                             "fid_version", "expire_default"};
  int64_t expire_default = 0;
  std::vector<std::pair<int64_t, int64_t>> per_slot;
  size_t line_no = 0;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    const auto words = split_ws(line);
    if (words.empty()) continue;
    const std::string where = "line " + std::to_string(line_no);
    const std::string_view key = words[0];
    if (!seen[6]) {
      if (words.size() != 2 || key != "hashlab-table-config" || words[1] != "1")
        bad(where + ": expected the header 'hashlab-table-config 1'");
      seen[6] = true;
      continue;
    }
    if (key == "segment") {
      cfg.segments.push_back(parse_segment(words, cfg.segments.size()));
      continue;
    }
    if (key == "expire_slot") {
      if (words.size() != 3) bad(where + ": expire_slot takes <slot> <days>");
      const int64_t slot = to_int(words[1], where + " slot");
      const int64_t days = to_int(words[2], where + " days");
      if (slot < 0 || slot >= kTtlSlots) bad(where + ": slot " + std::to_string(slot) + " out of range");
      per_slot.emplace_back(slot, days);
      continue;
    }
    int which = -1;
    for (int i = 0; i < 6; ++i)
      if (key == kScalars[i]) which = i;
    if (which < 0) bad(where + ": unknown key '" + std::string(key) + "'");
    if (words.size() != 2) bad(where + ": " + std::string(key) + " takes one value");
    if (seen[which]) bad(where + ": " + std::string(key) + " given twice");
    seen[which] = true;
    const std::string at = where + " " + std::string(key);
    switch (which) {
      case 0: cfg.dim = to_int(words[1], at); break;
      case 1: cfg.state_words = to_int(words[1], at); break;
      case 2: cfg.seed = to_uint(words[1], at); break;
      case 3: cfg.quirks = to_bool(words[1], at); break;
      case 4: cfg.fid_version = static_cast<int>(to_int(words[1], at)); break;
      case 5: expire_default = to_int(words[1], at); break;
    }
  }
  if (!seen[6]) bad("empty config text (expected 'hashlab-table-config 1')");
  for (int i = 0; i < 6; ++i)
    if (!seen[i]) bad(std::string("missing ") + kScalars[i]);
  cfg.expire_days.assign(kTtlSlots, expire_default);
  for (const auto& [slot, days] : per_slot) cfg.expire_days[slot] = days;
  cfg.validate();
  return cfg;
}

}  // namespace hashlab
