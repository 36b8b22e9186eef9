// The table config as one text attr (what engines/tfops/config_text.py writes): the create op
// takes it, plus seed / quirks / fid_version attrs, and builds hashlab::TableConfig from it.
//
// Adapter until the core's own config marshaller lands (see engines/tfops/README.md): the
// format is line based and parsed strictly (every key exactly once, nothing unknown).
#pragma once

#include <cstdint>
#include <string>

#include "table.h"

namespace hashlab_tf {

// Throws std::invalid_argument naming the line and key that is wrong.
hashlab::TableConfig parse_config_text(const std::string& text, uint64_t seed, bool quirks,
                                       int fid_version);

}  // namespace hashlab_tf
