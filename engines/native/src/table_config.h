// The table configuration every native module shares (CPU table, CUDA table, TF op library):
// the entry layout, its parameters, its validation, and the ONE way it crosses from Python.
//
// The marshalled form is text, so the nanobind modules and a TensorFlow string attr carry it
// alike. engines/native/common.py writes it from engines.config.TableSpec; parse() is strict:
// a missing key is an error (never a silent 0), floats travel as C99 hex floats (exact), and
// names are the vocabulary below (Python checks its own name lists against it at import):
//
//   hashlab-table-config 1
//   dim 40
//   state_words 72
//   seed 7
//   quirks 0
//   fid_version 2
//   expire_default 30
//   expire_slot 12 7                 (zero or more: per-slot TTL days)
//   segment dim=8 offset=0 state_offset=0 state_words=8 optimizer=adagrad initializer=zeros
//           compressor=fp32 weight_decay_factor=0x0p+0 initial_accumulator_value=0x1p-1 ...
//
// A segment line carries every field of its optimizer/initializer/compressor config message;
// the parser reads the ones the math uses (listed per kind in table_config.cc) and requires
// each of them, and ignores config fields the math does not use (warmup_steps, ...).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "compress_math.h"
#include "init_math.h"
#include "opt_math.h"

namespace hashlab {

// A checkpoint that is missing, corrupt or does not fit the table. Every binding translates it
// to engines.errors.CheckpointError (one Python type, whichever module raised it).
struct CheckpointFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

constexpr int64_t kMaxRowWords = int64_t{1} << 26;  // 256 MiB per entry
constexpr int kTtlSlots = 1 << 15;                   // fid v2 slot range (v1 uses 1024 of them)

// Names of the enum values, index = value. Python's vocabulary (engines/vocabulary.py) must
// list the same names; the bindings expose these as nb::enum_ and a test compares them.
inline constexpr const char* kOptimizerNames[] = {
    "sgd", "adagrad", "ftrl", "adadelta", "adam", "amsgrad", "momentum", "rmsprop",
    "rmspropv2", "batch_softmax", "moving_average", "group_adagrad"};
inline constexpr const char* kInitializerNames[] = {"zeros", "ones", "constants",
                                                    "random_uniform"};
// kNone: the segment has no comp_config (lookups return raw f32, like fp32/fp16).
inline constexpr const char* kCompressorNames[] = {"none", "fp32", "fp16", "fixed_r8",
                                                   "one_bit"};

struct Segment {
  int64_t dim = 0, offset = 0, state_offset = 0, state_words = 0;
  InitParams init;
  OptParams opt;
  CompParams comp;
};

struct TableConfig {
  std::vector<Segment> segments;
  int64_t dim = 0, state_words = 0;
  uint64_t seed = 0;
  bool quirks = false;
  int fid_version = 2;
  std::vector<int64_t> expire_days = std::vector<int64_t>(kTtlSlots, 0);  // per TTL slot

  // Words of one stored entry record: [embedding D][optimizer state W][timestamp].
  int64_t record_words() const { return dim + state_words + 1; }

  // Checks the layout (offsets contiguous, state sizes right, sizes bounded). Throws
  // std::invalid_argument.
  void validate() const;

  // The marshalled text (format above) -> a validated config. Throws std::invalid_argument
  // naming the line and key.
  static TableConfig parse(std::string_view text);
};

}  // namespace hashlab
