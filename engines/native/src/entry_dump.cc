#include "entry_dump.h"

#include <cstring>

namespace hashlab {
namespace {

// SingleOptimizerDump field number of each optimizer's dump (0: none, moving_average).
int dump_field(OptKind k) {
  switch (k) {
    case OptKind::kAdagrad: return 1;
    case OptKind::kSgd: return 2;
    case OptKind::kFtrl: return 3;
    case OptKind::kAdadelta: return 6;
    case OptKind::kAdam: return 7;
    case OptKind::kAmsgrad: return 8;
    case OptKind::kMomentum: return 9;
    case OptKind::kRmsprop: return 11;
    case OptKind::kRmspropV2: return 12;
    case OptKind::kBatchSoftmax: return 14;
    case OptKind::kGroupAdagrad: return 15;
    case OptKind::kMovingAverage: return 0;
  }
  return 0;
}

const char* dump_name(int field) {
  switch (field) {
    case 1: return "adagrad";
    case 2: return "sgd";
    case 3: return "ftrl";
    case 4: return "dynamic_wd_adagrad";
    case 6: return "adadelta";
    case 7: return "adam";
    case 8: return "amsgrad";
    case 9: return "momentum";
    case 11: return "rmsprop";
    case 12: return "rmspropv2";
    case 13: return "group_ftrl";
    case 14: return "batch_softmax";
    case 15: return "group_adagrad";
    default: return "None";
  }
}

bool is_dump_member(int field) {
  return field == 1 || field == 2 || field == 3 || field == 4 || (field >= 6 && field <= 9) ||
         (field >= 11 && field <= 15);
}

inline size_t varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

inline uint8_t* put_varint(uint8_t* p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<uint8_t>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<uint8_t>(v);
  return p;
}

// Every NaN is written as kCanonicalNaN, whatever its sign and payload in memory (optimizer
// math leaves them as the FPU makes them, which differs between engines): checkpoint bytes are
// the same on every engine (docs/checkpoints.md, "NaN").
inline uint8_t* put_floats(uint8_t* p, uint8_t tag, const float* v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    *p++ = tag;
    uint32_t bits;
    memcpy(&bits, v + i, 4);
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u) bits = kCanonicalNaN;
    memcpy(p, &bits, 4);
    p += 4;
  }
  return p;
}

inline uint64_t global_step_of(const float* st) {
  uint64_t v;
  memcpy(&v, st, 8);
  return v;
}

// Size of the inner optimizer message (inside SingleOptimizerDump.<kind>).
size_t inner_size(const Segment& s, const float* st) {
  const size_t d = static_cast<size_t>(s.dim);
  switch (s.opt.kind) {
    case OptKind::kAdagrad: case OptKind::kMomentum: case OptKind::kRmsprop:
    case OptKind::kRmspropV2: return 5 * d;
    case OptKind::kFtrl: case OptKind::kAdadelta: return 10 * d;
    case OptKind::kAdam: return 10 * d + 10;
    case OptKind::kAmsgrad: return 15 * d + 10;
    case OptKind::kBatchSoftmax: return 1 + varint_size(global_step_of(st));
    case OptKind::kGroupAdagrad: return 5;
    default: return 0;
  }
}

size_t opt_size(const TableConfig& cfg, const float* row) {
  size_t total = 0;
  for (const Segment& s : cfg.segments) {
    if (!dump_field(s.opt.kind)) continue;
    const size_t inner = inner_size(s, row + cfg.dim + s.state_offset);
    const size_t single = 1 + varint_size(inner) + inner;
    total += 1 + varint_size(single) + single;
  }
  return total;
}

}  // namespace

size_t entry_dump_size(const TableConfig& cfg, const float* row, bool with_id) {
  uint32_t ts;
  memcpy(&ts, row + cfg.dim + cfg.state_words, 4);
  const size_t opt = opt_size(cfg, row);
  return (with_id ? 9 : 0) + 5 * static_cast<size_t>(cfg.dim) + 1 + varint_size(opt) + opt + 1 +
         varint_size(ts);
}

uint8_t* encode_entry_dump(const TableConfig& cfg, const float* row, bool with_id, int64_t id,
                           uint8_t* p) {
  if (with_id) {
    *p++ = 0x09;  // id: sfixed64
    memcpy(p, &id, 8);
    p += 8;
  }
  p = put_floats(p, 0x15, row, cfg.dim);  // num: field 2, fixed32 each
  *p++ = 0x1A;                            // opt: OptimizerDump
  p = put_varint(p, opt_size(cfg, row));
  for (const Segment& s : cfg.segments) {
    const int field = dump_field(s.opt.kind);
    if (!field) continue;
    const float* st = row + cfg.dim + s.state_offset;
    const int64_t d = s.dim;
    const size_t inner = inner_size(s, st);
    *p++ = 0x0A;  // OptimizerDump.dump
    p = put_varint(p, 1 + varint_size(inner) + inner);
    *p++ = static_cast<uint8_t>((field << 3) | 2);
    p = put_varint(p, inner);
    switch (s.opt.kind) {
      case OptKind::kAdagrad: case OptKind::kMomentum: case OptKind::kRmsprop:
      case OptKind::kRmspropV2:
        p = put_floats(p, 0x0D, st, d);
        break;
      case OptKind::kFtrl:  // zero (1) then norm (2); state is [norm D][zero D]
        p = put_floats(p, 0x0D, st + d, d);
        p = put_floats(p, 0x15, st, d);
        break;
      case OptKind::kAdadelta:
        p = put_floats(p, 0x0D, st, d);
        p = put_floats(p, 0x15, st + d, d);
        break;
      case OptKind::kAdam:
        p = put_floats(p, 0x0D, st, d);
        p = put_floats(p, 0x15, st + d, d);
        p = put_floats(p, 0x1D, st + 2 * d, 1);
        p = put_floats(p, 0x25, st + 2 * d + 1, 1);
        break;
      case OptKind::kAmsgrad:
        p = put_floats(p, 0x0D, st, d);
        p = put_floats(p, 0x15, st + d, d);
        p = put_floats(p, 0x1D, st + 2 * d, d);
        p = put_floats(p, 0x25, st + 3 * d, 1);
        p = put_floats(p, 0x2D, st + 3 * d + 1, 1);
        break;
      case OptKind::kBatchSoftmax:
        *p++ = 0x08;
        p = put_varint(p, global_step_of(st));
        break;
      case OptKind::kGroupAdagrad:
        p = put_floats(p, 0x0D, st, 1);
        break;
      default:
        break;
    }
  }
  uint32_t ts;
  memcpy(&ts, row + cfg.dim + cfg.state_words, 4);
  *p++ = 0x20;  // last_update_ts_sec: int64 varint, always present
  return put_varint(p, ts);
}

// ---- parsing -----------------------------------------------------------------------------

namespace {

struct Reader {
  const uint8_t* p;
  const uint8_t* end;
  std::string err;

  bool done() const { return p >= end; }
  bool varint(uint64_t* v) {
    uint64_t r = 0;
    for (int shift = 0; shift < 70; shift += 7) {
      if (p >= end) return fail("truncated varint");
      const uint8_t b = *p++;
      if (shift == 63 && b > 1) return fail("varint overflows 64 bits");
      r |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) {
        *v = r;
        return true;
      }
    }
    return fail("varint longer than 10 bytes");
  }
  bool fixed32(float* f) {
    if (end - p < 4) return fail("truncated fixed32");
    memcpy(f, p, 4);
    p += 4;
    return true;
  }
  bool tag(int* field, int* wire) {
    uint64_t t;
    if (!varint(&t)) return false;
    *field = static_cast<int>(t >> 3);
    *wire = static_cast<int>(t & 7);
    if ((t >> 3) == 0 || (t >> 3) > 0x1FFFFFFF) return fail("invalid field number");
    return true;
  }
  bool bytes(Reader* sub) {
    uint64_t len;
    if (!varint(&len)) return false;
    if (len > static_cast<uint64_t>(end - p)) return fail("truncated length-delimited field");
    *sub = Reader{p, p + len, {}};
    p += len;
    return true;
  }
  bool skip(int field, int wire, int depth = 0) {
    uint64_t v;
    Reader sub{nullptr, nullptr, {}};
    switch (wire) {
      case 0: return varint(&v);
      case 1:
        if (end - p < 8) return fail("truncated fixed64");
        p += 8;
        return true;
      case 2: return bytes(&sub);
      case 5:
        if (end - p < 4) return fail("truncated fixed32");
        p += 4;
        return true;
      case 3: {  // a group: skip fields up to the matching end-group
        if (depth > 64) return fail("groups nested too deeply");
        for (;;) {
          int f, w;
          if (!tag(&f, &w)) return false;
          if (w == 4) return f == field ? true : fail("mismatched end-group");
          if (!skip(f, w, depth + 1)) return false;
        }
      }
      default: return fail("invalid wire type");
    }
  }
  bool fail(const char* what) {
    if (err.empty()) err = what;
    return false;
  }
};

// Repeated float field: unpacked (wire 5) or packed (wire 2); appends at dst[*count...].
bool read_floats(Reader& r, int field, int wire, float* dst, int64_t cap, int64_t* count) {
  float f;
  if (wire == 5) {
    if (!r.fixed32(&f)) return false;
    if (*count < cap) dst[*count] = f;
    ++*count;
    // Fast path: a run of the same one-byte tag (how save writes a repeated float field) is
    // consumed here; the generic loop would handle each element the same way.
    if (field > 0 && field < 16) {
      const uint8_t tag = static_cast<uint8_t>(field << 3 | 5);
      while (r.end - r.p >= 5 && r.p[0] == tag) {
        memcpy(&f, r.p + 1, 4);
        r.p += 5;
        if (*count < cap) dst[*count] = f;
        ++*count;
      }
    }
    return true;
  }
  Reader sub{nullptr, nullptr, {}};
  if (!r.bytes(&sub)) return false;
  if ((sub.end - sub.p) % 4) return r.fail("packed float field length is not a multiple of 4");
  while (!sub.done()) {
    sub.fixed32(&f);
    if (*count < cap) dst[*count] = f;
    ++*count;
  }
  return true;
}

// One optimizer dump being assembled (protobuf merges repeated occurrences).
struct DumpState {
  int member = 0;          // oneof field number seen last (0: none)
  int64_t counts[3] = {0, 0, 0};
  float scalars[2] = {0.f, 0.f};  // beta powers / grad_square_sum
  uint64_t step = 0;              // batch_softmax
};

// Parses the body of one oneof member of SingleOptimizerDump into `st` for segment s.
bool parse_member(Reader& r, const Segment& s, int member, float* st, DumpState* ds) {
  const int64_t d = s.dim;
  const bool ours = member == dump_field(s.opt.kind);
  while (!r.done()) {
    int f, w;
    if (!r.tag(&f, &w)) return false;
    bool handled = false;
    if (ours) {
      const bool flt = (w == 5 || w == 2);
      switch (s.opt.kind) {
        case OptKind::kAdagrad: case OptKind::kMomentum: case OptKind::kRmsprop:
        case OptKind::kRmspropV2:
          if (f == 1 && flt) handled = read_floats(r, f, w, st, d, &ds->counts[0]);
          break;
        case OptKind::kFtrl:
          if (f == 1 && flt) handled = read_floats(r, f, w, st + d, d, &ds->counts[0]);
          else if (f == 2 && flt) handled = read_floats(r, f, w, st, d, &ds->counts[1]);
          break;
        case OptKind::kAdadelta:
          if (f == 1 && flt) handled = read_floats(r, f, w, st, d, &ds->counts[0]);
          else if (f == 2 && flt) handled = read_floats(r, f, w, st + d, d, &ds->counts[1]);
          break;
        case OptKind::kAdam: case OptKind::kAmsgrad: {
          const bool ams = s.opt.kind == OptKind::kAmsgrad;
          const int pw = ams ? 4 : 3;
          if (f == 1 && flt) handled = read_floats(r, f, w, st, d, &ds->counts[0]);
          else if (f == 2 && flt) handled = read_floats(r, f, w, st + d, d, &ds->counts[1]);
          else if (ams && f == 3 && flt) handled = read_floats(r, f, w, st + 2 * d, d, &ds->counts[2]);
          else if ((f == pw || f == pw + 1) && w == 5)
            handled = r.fixed32(&ds->scalars[f - pw]);
          break;
        }
        case OptKind::kBatchSoftmax:
          if (f == 1 && w == 0) handled = r.varint(&ds->step);
          break;
        case OptKind::kGroupAdagrad:
          if (f == 1 && w == 5) handled = r.fixed32(&ds->scalars[0]);
          break;
        default:
          break;
      }
      if (!r.err.empty()) return false;
    }
    if (!handled && !r.skip(f, w)) return false;
  }
  return true;
}

// Checks counts and finishes the state words of segment s from a complete dump.
std::string finish_dump(const TableConfig& cfg, const Segment& s, float* st,
                        const DumpState& ds) {
  const int64_t d = s.dim;
  auto need = [&](int idx, const char* field) -> std::string {
    if (ds.counts[idx] != d)
      return std::string(dump_name(ds.member)) + "." + field + " has " +
             std::to_string(ds.counts[idx]) + " values, expected " + std::to_string(d);
    return "";
  };
  std::string e;
  switch (s.opt.kind) {
    case OptKind::kAdagrad: return need(0, "norm");
    case OptKind::kMomentum: case OptKind::kRmsprop: case OptKind::kRmspropV2:
      return need(0, "n");
    case OptKind::kFtrl:
      if (!(e = need(0, "zero")).empty()) return e;
      return need(1, "norm");
    case OptKind::kAdadelta:
      if (!(e = need(0, "accum")).empty()) return e;
      return need(1, "accum_update");
    case OptKind::kAdam: case OptKind::kAmsgrad: {
      const bool ams = s.opt.kind == OptKind::kAmsgrad;
      if (!(e = need(0, "m")).empty()) return e;
      if (!(e = need(1, "v")).empty()) return e;
      if (ams && !(e = need(2, "vhat")).empty()) return e;
      float* pw = st + (ams ? 3 : 2) * d;
      if (cfg.quirks && !ams) {
        // Monolith restores both powers through the beta1_power slot (semantics §4).
        pw[0] = ds.scalars[1];
        pw[1] = s.opt.beta2;
      } else {
        pw[0] = ds.scalars[0];
        pw[1] = ds.scalars[1];
      }
      return "";
    }
    case OptKind::kBatchSoftmax:
      memcpy(st, &ds.step, 8);
      return "";
    case OptKind::kGroupAdagrad:
      st[0] = ds.scalars[0];
      return "";
    default:
      return "";
  }
}

}  // namespace

std::string parse_entry_dump(const TableConfig& cfg, const uint8_t* data, size_t n,
                             ParsedEntry* e) {
  Reader r{data, data + n, {}};
  // Segments that own a dump, in order, and the dump assembled for each.
  // Small configs (the common case) keep both lists on the stack: this runs once per record.
  constexpr size_t kInline = 8;
  int segs_inline[kInline];
  DumpState dumps_inline[kInline];
  std::vector<int> segs_heap;
  std::vector<DumpState> dumps_heap;
  size_t nsegs = 0;
  for (size_t k = 0; k < cfg.segments.size(); ++k)
    if (dump_field(cfg.segments[k].opt.kind)) ++nsegs;
  int* dump_segs = segs_inline;
  DumpState* dumps = dumps_inline;
  if (nsegs > kInline) {
    segs_heap.resize(nsegs);
    dumps_heap.resize(nsegs);
    dump_segs = segs_heap.data();
    dumps = dumps_heap.data();
  }
  nsegs = 0;
  for (size_t k = 0; k < cfg.segments.size(); ++k)
    if (dump_field(cfg.segments[k].opt.kind)) dump_segs[nsegs++] = static_cast<int>(k);
  size_t ndumps = 0;  // optimizer dumps seen (may exceed nsegs: an error, reported below)
  e->has_id = false;
  e->num_count = 0;
  e->ts = 0;
  for (int64_t i = 0; i < cfg.state_words; ++i) e->state[i] = 0.f;

  while (!r.done()) {
    int f, w;
    if (!r.tag(&f, &w)) break;
    if (f == 1 && w == 1) {
      if (r.end - r.p < 8) { r.fail("truncated id"); break; }
      memcpy(&e->id, r.p, 8);
      r.p += 8;
      e->has_id = true;
    } else if (f == 2 && (w == 5 || w == 2)) {
      if (!read_floats(r, f, w, e->num, cfg.dim, &e->num_count)) break;
    } else if (f == 3 && w == 2) {
      Reader opt{nullptr, nullptr, {}};
      if (!r.bytes(&opt)) break;
      while (!opt.done()) {
        int f2, w2;
        if (!opt.tag(&f2, &w2)) break;
        if (f2 != 1 || w2 != 2) {
          if (!opt.skip(f2, w2)) break;
          continue;
        }
        Reader single{nullptr, nullptr, {}};
        if (!opt.bytes(&single)) break;
        const size_t k = ndumps++;
        if (k >= nsegs) {  // too many dumps: validate the wire format only
          while (!single.done()) {
            int f3, w3;
            if (!single.tag(&f3, &w3) || !single.skip(f3, w3)) break;
          }
          if (!single.err.empty()) { opt.fail(single.err.c_str()); break; }
          continue;
        }
        const Segment& s = cfg.segments[dump_segs[k]];
        float* st = e->state + s.state_offset;
        DumpState& ds = dumps[k];
        while (!single.done()) {
          int f3, w3;
          if (!single.tag(&f3, &w3)) break;
          if (w3 == 2 && is_dump_member(f3)) {
            Reader body{nullptr, nullptr, {}};
            if (!single.bytes(&body)) break;
            if (ds.member != f3) {  // a different oneof member replaces the previous one
              ds = DumpState{};
              ds.member = f3;
            }
            if (!parse_member(body, s, f3, st, &ds)) { single.fail(body.err.c_str()); break; }
          } else if (!single.skip(f3, w3)) {
            break;
          }
        }
        if (!single.err.empty()) { opt.fail(single.err.c_str()); break; }
      }
      if (!opt.err.empty()) { r.fail(opt.err.c_str()); break; }
    } else if (f == 4 && w == 0) {
      uint64_t v;
      if (!r.varint(&v)) break;
      e->ts = static_cast<int64_t>(v);
    } else if (!r.skip(f, w)) {
      break;
    }
  }
  if (!r.err.empty()) return "not a valid EntryDump (" + r.err + ")";
  if (!e->has_id) return "EntryDump has no id";
  // int64 on the wire, but entry timestamps are uint32 seconds: a wider one would wrap.
  if (e->ts < 0 || e->ts > static_cast<int64_t>(UINT32_MAX))
    return "last_update_ts_sec " + std::to_string(e->ts) +
           " is outside [0, 4294967295] (entry timestamps are uint32 seconds)";
  if (e->num_count > cfg.dim)
    return std::to_string(e->num_count) + " embedding values, table dim is " +
           std::to_string(cfg.dim);
  if (ndumps != nsegs)
    return std::to_string(ndumps) + " optimizer dumps, the table's optimizers need " +
           std::to_string(nsegs);
  for (size_t k = 0; k < nsegs; ++k) {
    const Segment& s = cfg.segments[dump_segs[k]];
    if (dumps[k].member != dump_field(s.opt.kind))
      return "segment " + std::to_string(dump_segs[k]) + " dump is '" +
             dump_name(dumps[k].member) + "', the table's optimizer is '" +
             dump_name(dump_field(s.opt.kind)) + "'";
    std::string err = finish_dump(cfg, s, e->state + s.state_offset, dumps[k]);
    if (!err.empty()) return "segment " + std::to_string(dump_segs[k]) + ": " + err;
  }
  return "";
}

}  // namespace hashlab
