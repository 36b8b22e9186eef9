// One partition of the embedding table: an open-addressing (linear probing) slot array of
// {id, row} over row storage in fixed-size chunks.
//
// Why this shape: a 16-byte slot keeps four probes per cache line and never moves rows, so a
// rehash copies 16 bytes per entry and row pointers stay valid across growth; fixed chunks
// grow the row storage without the 2x copy-and-waste of a doubling vector. Entries are never
// erased (TTL only filters at save), so there are no tombstones and rows are dense 0..size-1.
//
// Row storage: a small first chunk (tiny tables stay tiny), then chunks of ~2 MiB on huge
// pages (see big_alloc.h); the row -> chunk division uses a precomputed reciprocal.
//
// Row layout, in 4-byte words: [embedding D][optimizer state W][timestamp][id lo][id hi].
#pragma once

#include <cstdint>
#include <algorithm>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <vector>

#include "big_alloc.h"

namespace hashlab {

class Partition {
 public:
  static constexpr uint32_t kEmpty = 0xFFFFFFFFu;
  struct Slot {
    int64_t id;
    uint32_t row;
    uint32_t pad;
  };

  explicit Partition(int64_t row_words) : row_words_(row_words) {
    const int64_t row_bytes = row_words * 4;
    first_rows_ = static_cast<uint32_t>(std::max<int64_t>(1, (int64_t{64} << 10) / row_bytes));
    big_rows_ = static_cast<uint32_t>(std::max<int64_t>(1, static_cast<int64_t>(kHugePage) / row_bytes));
    big_magic_ = ~uint64_t{0} / big_rows_ + 1;
  }

  int64_t size() const { return size_; }
  int64_t row_words() const { return row_words_; }

  // Row index of id, or kEmpty. h: the id's table hash (low bits pick the home slot).
  uint32_t find(int64_t id, uint64_t h) const {
    if (cap_ == 0) return kEmpty;
    uint64_t i = h & mask_;
    for (;;) {
      const Slot& s = slots_[i];
      if (s.row == kEmpty) return kEmpty;
      if (s.id == id) return s.row;
      i = (i + 1) & mask_;
    }
  }

  void prefetch(uint64_t h) const {
    if (cap_) __builtin_prefetch(&slots_[h & mask_]);
  }

  // Make room for `more` new entries: may rehash and allocate row chunks. Throws bad_alloc
  // without changing the partition's contents.
  void reserve(int64_t more) { reserve_for(size_ + more, size_ + more); }

  // Room for `total` entries after a clear() (restore): nothing is lost if this throws.
  void reserve_total(int64_t total) { reserve_for(total > size_ ? total : size_, total); }

 private:
  void reserve_for(int64_t need, int64_t rows) {
    if (need > static_cast<int64_t>(kEmpty) - 1)
      throw std::length_error("a table partition cannot hold more than 2^32-2 entries");
    if (need * 10 > static_cast<int64_t>(cap_) * 7) {  // max load factor 0.7
      uint64_t cap = cap_ ? cap_ : 16;
      while (need * 10 > static_cast<int64_t>(cap) * 7) cap *= 2;
      rehash(cap);
    }
    const int64_t chunks =
        rows <= first_rows_ ? 1 : 1 + (rows - first_rows_ + big_rows_ - 1) / big_rows_;
    while (static_cast<int64_t>(chunks_.size()) < chunks) {
      const int64_t n = chunks_.empty() ? first_rows_ : big_rows_;
      chunks_.emplace_back(
          static_cast<float*>(alloc_big(static_cast<size_t>(n * row_words_) * 4)));
    }
  }

 public:
  // The row of id, inserting it (one probe) when absent; reserve() must have made room.
  // *inserted tells the caller to initialise the new row.
  uint32_t find_or_insert(int64_t id, uint64_t h, bool* inserted) {
    uint64_t i = h & mask_;
    for (;;) {
      Slot& s = slots_[i];
      if (s.row == kEmpty) break;
      if (s.id == id) {
        *inserted = false;
        return s.row;
      }
      i = (i + 1) & mask_;
    }
    const uint32_t row = static_cast<uint32_t>(size_++);
    slots_[i].id = id;
    slots_[i].row = row;
    memcpy(row_ptr(row) + row_words_ - 2, &id, 8);
    *inserted = true;
    return row;
  }

  // Insert an absent id; reserve() must have made room. Returns the new row index.
  uint32_t insert_new(int64_t id, uint64_t h) {
    uint64_t i = h & mask_;
    while (slots_[i].row != kEmpty) i = (i + 1) & mask_;
    const uint32_t row = static_cast<uint32_t>(size_++);
    slots_[i].id = id;
    slots_[i].row = row;
    float* r = row_ptr(row);
    memcpy(r + row_words_ - 2, &id, 8);
    return row;
  }

  float* row_ptr(uint32_t row) const {
    if (row < first_rows_) return chunks_[0].get() + static_cast<int64_t>(row) * row_words_;
    const uint32_t k = row - first_rows_;
    // k / big_rows_ exactly for 32-bit k (Lemire's fastdiv).
    const uint32_t q = big_rows_ == 1 ? k
        : static_cast<uint32_t>((static_cast<unsigned __int128>(big_magic_) * k) >> 64);
    return chunks_[q + 1].get() + static_cast<int64_t>(k - q * big_rows_) * row_words_;
  }

  int64_t id_of(uint32_t row) const {
    int64_t id;
    memcpy(&id, row_ptr(row) + row_words_ - 2, 8);
    return id;
  }

  // Forget every entry; keeps the memory (restore reserves first, then clears).
  void clear() {
    for (uint64_t i = 0; i < cap_; ++i) slots_[i].row = kEmpty;
    size_ = 0;
  }

  // Bytes held (slot array + row chunks), for the memory report.
  int64_t bytes() const {
    int64_t rows = 0;
    if (!chunks_.empty()) rows = first_rows_ + (static_cast<int64_t>(chunks_.size()) - 1) * big_rows_;
    return static_cast<int64_t>(cap_ * sizeof(Slot)) + rows * row_words_ * 4;
  }

 private:
  void rehash(uint64_t cap) {
    std::unique_ptr<Slot[], BigDeleter> fresh(static_cast<Slot*>(alloc_big(cap * sizeof(Slot))));
    for (uint64_t i = 0; i < cap; ++i) fresh[i].row = kEmpty;
    const uint64_t mask = cap - 1;
    for (uint64_t i = 0; i < cap_; ++i) {
      const Slot& s = slots_[i];
      if (s.row == kEmpty) continue;
      uint64_t j = hash_of(s.id) & mask;
      while (fresh[j].row != kEmpty) j = (j + 1) & mask;
      fresh[j] = s;
    }
    slots_ = std::move(fresh);
    cap_ = cap;
    mask_ = mask;
  }

 public:
  // The table hash of an id: splitmix64 of the id xor a constant, so partition/slot placement
  // is independent of the checkpoint shard (which is mix64(id) % n).
  static uint64_t hash_of(int64_t id) {
    uint64_t z = static_cast<uint64_t>(id) ^ 0x5851F42D4C957F2DULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }

 private:
  int64_t row_words_;
  uint32_t first_rows_, big_rows_;
  uint64_t big_magic_;
  std::unique_ptr<Slot[], BigDeleter> slots_;
  uint64_t cap_ = 0, mask_ = 0;
  int64_t size_ = 0;
  std::vector<std::unique_ptr<float, BigDeleter>> chunks_;
};

}  // namespace hashlab
