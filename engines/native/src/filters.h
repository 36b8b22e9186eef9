// Native hash filters (fsf Part A, semantics §6): sliding, probabilistic, dummy.
//
// The count arrays use the fixed filter hash of semantics §1, so their dumps restore in any
// engine. A filter may be shared by several tables, so every call takes the filter's mutex;
// tables hold it across their whole sequential filter pass (batch order matters).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace hashlab {

constexpr int kMaxCount = 15;
// Elements per sliding-filter split at most (Python: engines.filters.MAX_SPLIT_CAPACITY).
constexpr int64_t kMaxSplitCapacity = int64_t{1} << 34;

// Monolith's HashFilter<uint16_t>: open addressing over (signature << 4 | count) cells.
struct SplitArray {
  int64_t capacity = 0;
  double fill_rate = 1.5;
  int64_t total_size = 0;
  int64_t num_elements = 0;
  int64_t failure_count = 0;
  std::vector<uint16_t> cells;  // total_size + 64 cells

  SplitArray(int64_t cap, double rate);
  int64_t find(int64_t fid, int max_step) const;  // -1: no usable cell in the window
  bool is_empty(int64_t pos) const { return cells[pos] == 0; }
  int count_at(int64_t pos) const { return pos < 0 ? kMaxCount : (cells[pos] & kMaxCount); }
  int add_at(int64_t pos, int64_t fid, int64_t add_count);
  bool full() const { return num_elements >= capacity - 1; }
  void clear();
};

class HashFilter {
 public:
  virtual ~HashFilter() = default;
  // Monolith's ShouldBeFiltered(fid, count, slot threshold, table); in_table: -1 = no table
  // (intercept_gradient), 0 = a table offering an id it lacks, 1 = the id is in the table.
  virtual bool filter_with_threshold(int64_t fid, int64_t count, int32_t threshold,
                                     int in_table) = 0;
  virtual int add(int64_t, int64_t) { return kMaxCount; }
  virtual int get(int64_t) { return kMaxCount; }
  virtual int64_t estimated_total_element() { return 0; }
  virtual int64_t failure_count() { return 0; }

  bool should_be_filtered(int64_t fid, int64_t count, int in_table) {
    return filter_with_threshold(fid, count, threshold_of(fid), in_table);
  }
  int32_t threshold_of(int64_t fid) const {
    return thresholds_[(static_cast<uint64_t>(fid) >> 48) & 0x7FFF];
  }
  void set_thresholds(std::vector<int32_t> t) { thresholds_ = std::move(t); }
  std::mutex& mutex() { return mu_; }

 protected:
  std::vector<int32_t> thresholds_ = std::vector<int32_t>(1 << 15, 0);
  std::mutex mu_;
};

class SlidingHashFilter final : public HashFilter {
 public:
  static constexpr int kSlidingMaxStep = 16;
  static constexpr int kMaxForwardStep = 2;

  SlidingHashFilter(int64_t capacity, int64_t split_num);
  bool filter_with_threshold(int64_t fid, int64_t count, int32_t threshold, int) override;
  int add(int64_t fid, int64_t count) override;
  int get(int64_t fid) override;
  int64_t estimated_total_element() override;
  int64_t failure_count() override { return failure_count_; }

  // Checkpoint support (the Python side encodes/decodes the protobuf records).
  int64_t split_num() const { return split_num_; }
  int64_t max_backward_step() const { return max_backward_step_; }
  int64_t head = 0;
  int64_t head_increment = 0;
  int64_t failure_count_ = 0;
  std::vector<SplitArray> splits;

 private:
  struct Hit { int64_t split = -1, pos = -1; };
  Hit find(int64_t begin, int64_t max_look, int64_t fid, bool exhaust, bool forward) const;
  Hit find_old(int64_t fid) const;
  int64_t next(int64_t i) const { return (i + 1) % static_cast<int64_t>(splits.size()); }
  int64_t prev(int64_t i) const {
    const int64_t n = static_cast<int64_t>(splits.size());
    return (i - 1 + n) % n;
  }
  int64_t split_num_;
  int64_t max_backward_step_;
};

class ProbabilisticFilter final : public HashFilter {
 public:
  ProbabilisticFilter(uint64_t seed, bool equal_probability);
  bool filter_with_threshold(int64_t fid, int64_t count, int32_t threshold,
                             int in_table) override;
  uint32_t rand32();

 private:
  uint64_t s_[16];
  bool equal_probability_;
};

class DummyHashFilter final : public HashFilter {
 public:
  bool filter_with_threshold(int64_t, int64_t, int32_t, int) override { return false; }
};

}  // namespace hashlab
