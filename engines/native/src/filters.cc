#include "filters.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "common.h"

namespace hashlab {
namespace {
constexpr int kSplitMaxStep = 64;  // HashFilter's probe length and the padding after total_size

inline uint16_t signature(int64_t fid) {
  return static_cast<uint16_t>((static_cast<uint64_t>(fid) >> 17) & 0xFFF);
}
}  // namespace

SplitArray::SplitArray(int64_t cap, double rate)
    : capacity(cap), fill_rate(rate),
      total_size(static_cast<int64_t>(static_cast<double>(cap) * rate)) {
  if (total_size < 1) throw std::invalid_argument("capacity: the filter split has no cells");
  cells.assign(static_cast<size_t>(total_size + kSplitMaxStep), 0);
}

int64_t SplitArray::find(int64_t fid, int max_step) const {
  const uint16_t sig = signature(fid);
  int64_t pos = static_cast<int64_t>(filter_hash(fid) % static_cast<uint64_t>(total_size));
  const int64_t n = static_cast<int64_t>(cells.size());
  for (int i = 0; i < max_step; ++i) {
    const uint16_t cell = cells[pos];
    if (cell == 0 || (cell >> 4) == sig) return pos;
    if (++pos == n) pos = 0;
  }
  return -1;
}

int SplitArray::add_at(int64_t pos, int64_t fid, int64_t add_count) {
  add_count = std::min<int64_t>(add_count, kMaxCount);
  const uint16_t cell = cells[pos];
  if (cell == 0) {
    num_elements = std::min(num_elements + 1, capacity);
    cells[pos] = static_cast<uint16_t>((signature(fid) << 4) + add_count);
    return 0;
  }
  const int count = cell & kMaxCount;
  cells[pos] = count + add_count >= kMaxCount ? static_cast<uint16_t>(cell | kMaxCount)
                                              : static_cast<uint16_t>(cell + add_count);
  return count;
}

void SplitArray::clear() {
  std::fill(cells.begin(), cells.end(), 0);
  num_elements = 0;
  failure_count = 0;
}

// ---- sliding ---------------------------------------------------------------------------

SlidingHashFilter::SlidingHashFilter(int64_t capacity, int64_t split_num)
    : split_num_(split_num) {
  const int64_t cap = std::max<int64_t>(capacity, 300);
  const int64_t n = std::max<int64_t>(split_num, 5);
  max_backward_step_ = n - kMaxForwardStep;
  splits.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) splits.emplace_back(cap / (n - 1), 1.2);
}

SlidingHashFilter::Hit SlidingHashFilter::find(int64_t begin, int64_t max_look, int64_t fid,
                                               bool exhaust, bool forward) const {
  int64_t index = begin;
  for (int64_t i = 0; i < max_look; ++i) {
    const SplitArray& split = splits[index];
    const int64_t pos = split.find(fid, kSlidingMaxStep);
    if (pos >= 0 && !(exhaust && split.is_empty(pos))) return Hit{index, pos};
    index = forward ? next(index) : prev(index);
  }
  return Hit{};
}

SlidingHashFilter::Hit SlidingHashFilter::find_old(int64_t fid) const {
  return find(prev(head), std::min(head_increment, max_backward_step_), fid, true, false);
}

int SlidingHashFilter::add(int64_t fid, int64_t count) {
  const Hit cur = find(head, kMaxForwardStep, fid, false, true);
  if (cur.split < 0) {
    ++failure_count_;
    return kMaxCount;
  }
  SplitArray& split = splits[cur.split];
  if (!split.is_empty(cur.pos)) return split.add_at(cur.pos, fid, count);
  const Hit old = find_old(fid);
  const int old_count = old.split < 0 ? 0 : splits[old.split].count_at(old.pos);
  split.add_at(cur.pos, fid, old_count + count);  // carry the old generation's count forward
  if (splits[head].full()) {
    head = next(head);
    ++head_increment;
    splits[next(head)].clear();  // the spare ahead of the new head
  }
  return old_count;
}

int SlidingHashFilter::get(int64_t fid) {
  const Hit cur = find(head, kMaxForwardStep, fid, false, true);
  if (cur.split < 0) return kMaxCount;
  if (!splits[cur.split].is_empty(cur.pos)) return splits[cur.split].count_at(cur.pos);
  const Hit old = find_old(fid);
  return old.split < 0 ? 0 : splits[old.split].count_at(old.pos);
}

bool SlidingHashFilter::filter_with_threshold(int64_t fid, int64_t count, int32_t threshold,
                                              int) {
  if (threshold <= 0) return false;  // and the count is not touched
  return add(fid, count) < threshold;
}

int64_t SlidingHashFilter::estimated_total_element() {
  int64_t total = 0;
  for (const auto& s : splits) total += s.num_elements;
  return total;
}

// ---- probabilistic -----------------------------------------------------------------------

ProbabilisticFilter::ProbabilisticFilter(uint64_t seed, bool equal_probability)
    : equal_probability_(equal_probability) {
  uint64_t x = seed ? seed : 0x9E3779B97F4A7C15ULL;  // xorshift64* cannot start from 0
  for (auto& w : s_) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w = x * 2685821657736338717ULL;
  }
}

uint32_t ProbabilisticFilter::rand32() {
  uint64_t x = s_[0];
  const uint64_t y = s_[1];
  s_[0] = y;
  x ^= x << 23;
  x ^= x >> 17;
  x ^= y ^ (y >> 26);
  s_[1] = x;
  return static_cast<uint32_t>(x + y);
}

bool ProbabilisticFilter::filter_with_threshold(int64_t, int64_t count, int32_t threshold,
                                                int in_table) {
  if (in_table != 0) return false;  // no table, or already in it: no draw
  const uint32_t r = rand32();
  bool inserted;
  if (equal_probability_) {
    const float exponent = 1.f / static_cast<float>(threshold);  // thr 0 -> inf -> p = 1
    const float p = 1.f - std::pow(0.05f, exponent);
    const double q = static_cast<double>(1.f - p);
    inserted = r < 4294967295.0 * (1.0 - std::pow(q, static_cast<double>(count)));
  } else {
    const unsigned __int128 lhs = static_cast<unsigned __int128>(r) *
                                  static_cast<uint64_t>(threshold);
    const unsigned __int128 rhs = static_cast<unsigned __int128>(4294967295ULL) *
                                  static_cast<uint64_t>(count < 0 ? 0 : count);
    inserted = lhs < rhs;
  }
  return !inserted;
}

}  // namespace hashlab
