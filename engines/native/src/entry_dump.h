// EntryDump records (fsf §B.2), hand-encoded so save and lookup_entry never touch protobuf.
//
// Bytes match the Python protobuf serializer for the messages the reference builds: fields in
// number order, `num` and every optimizer vector as unpacked repeated float (tag per element),
// every scalar explicitly present (so zeros are written), moving_average writes no dump, sgd an
// empty one, `last_update_ts_sec` always. The parser follows protobuf's wire rules (packed or
// unpacked floats, unknown fields skipped, repeated sub-messages merged).
#pragma once

#include <cstdint>
#include <string>

#include "table_config.h"

namespace hashlab {

// The one bit pattern of NaN in a dump (a positive quiet NaN without payload): every float
// field that holds a NaN is written so (Python: entry_codec.CANONICAL_NAN).
constexpr uint32_t kCanonicalNaN = 0x7FC00000u;

// Exact serialized size of an entry's dump.
size_t entry_dump_size(const TableConfig& cfg, const float* row, bool with_id);
// Writes the dump at out (entry_dump_size bytes); returns the end pointer.
uint8_t* encode_entry_dump(const TableConfig& cfg, const float* row, bool with_id, int64_t id,
                           uint8_t* out);

struct ParsedEntry {
  bool has_id = false;
  int64_t id = 0;
  int64_t ts = 0;
  int64_t num_count = 0;
  float* num = nullptr;    // cfg.dim floats (only num_count written)
  float* state = nullptr;  // cfg.state_words words, fully written on success
};

// Parses one record into e (num/state must point at caller storage). Returns "" on success,
// else what is wrong (the caller adds file and record index).
std::string parse_entry_dump(const TableConfig& cfg, const uint8_t* p, size_t n,
                             ParsedEntry* e);

}  // namespace hashlab
