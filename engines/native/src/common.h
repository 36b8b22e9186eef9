// Shared by the CPU and CUDA builds: the HASHLAB_HD marker and the fixed hashes of
// docs/semantics.md §1. Everything here is header-only and free of host-only calls.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define HASHLAB_HD __host__ __device__ __forceinline__
#else
#define HASHLAB_HD inline
#endif

namespace hashlab {

// splitmix64 finaliser: table hashing, checkpoint shards, initialiser counters.
HASHLAB_HD uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Checkpoint shard of an id (semantics §1).
HASHLAB_HD uint32_t shard_of(int64_t id, uint32_t n) {
  return static_cast<uint32_t>(mix64(static_cast<uint64_t>(id)) % n);
}

// absl's integer mix with a fixed seed, so hash-filter dumps restore in any process.
HASHLAB_HD uint64_t filter_hash(int64_t fid) {
  const uint64_t a = 0x00007F1234567000ULL + static_cast<uint64_t>(fid);
  const uint64_t k = 0x9DDFEA08EB382D69ULL;
#if defined(__CUDA_ARCH__)
  return (a * k) ^ __umul64hi(a, k);
#else
  const unsigned __int128 m = static_cast<unsigned __int128>(a) * k;
  return static_cast<uint64_t>(m) ^ static_cast<uint64_t>(m >> 64);
#endif
}

// TTL slot of an id: fid v2 (15 bits at 48) by default, fid v1 (top 10 bits) on request.
HASHLAB_HD uint32_t ttl_slot(int64_t id, int fid_version) {
  const uint64_t u = static_cast<uint64_t>(id);
  return fid_version == 1 ? static_cast<uint32_t>(u >> 54)
                          : static_cast<uint32_t>((u >> 48) & 0x7FFF);
}

}  // namespace hashlab
